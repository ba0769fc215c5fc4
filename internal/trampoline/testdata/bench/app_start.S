	.section .note.GNU-stack,"",@progbits
	.text
	.globl _start
_start:	mov %rsp,%rdi
	and $-16,%rsp
	call app_main
	hlt
