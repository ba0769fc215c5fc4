	.section .note.GNU-stack,"",@progbits
	.text
	.globl _start
_start:	and $-16,%rsp
	call app_main
	hlt
