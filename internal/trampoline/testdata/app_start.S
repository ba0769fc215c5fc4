	.section .note.GNU-stack,"",@progbits
	.text
	.globl _start
_start:	lea tcb(%rip),%rsi	/* thread pointer: a TCB pointing to itself, */
	mov %rsi,(%rsi)		/* the TLS block below it (zeroed, not copied) */
	mov $158,%eax		/* arch_prctl(ARCH_SET_FS, tcb) */
	mov $0x1002,%edi
	syscall
	and $-16,%rsp
	call app_main
	hlt
	.bss
	.balign 64
	.zero 4096
tcb:	.zero 64
