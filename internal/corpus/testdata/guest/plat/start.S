/* Test fixture entry. The fixture is linked by the tests, never run, so it
 * sets up no TLS for the stack canary. */
	.section .text._start,"ax",@progbits
	.globl _start
_start:
	call	ukboot_entry
1:	hlt
	jmp	1b
	.section .note.GNU-stack,"",@progbits
