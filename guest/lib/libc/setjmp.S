/* setjmp/longjmp: the callee-saved registers of the SysV x86-64 ABI.
 * jmp_buf: rbx, rbp, r12, r13, r14, r15, rsp (after return), rip. */

	.section .text.setjmp,"ax",@progbits
	.globl	setjmp
	.type	setjmp,@function
	.globl	_setjmp
	.type	_setjmp,@function
setjmp:
_setjmp:
	movq	%rbx, 0(%rdi)
	movq	%rbp, 8(%rdi)
	movq	%r12, 16(%rdi)
	movq	%r13, 24(%rdi)
	movq	%r14, 32(%rdi)
	movq	%r15, 40(%rdi)
	leaq	8(%rsp), %rdx		/* the caller's %rsp after our return */
	movq	%rdx, 48(%rdi)
	movq	(%rsp), %rdx		/* our return address */
	movq	%rdx, 56(%rdi)
	xorl	%eax, %eax
	ret
	.size	setjmp, .-setjmp
	.size	_setjmp, .-_setjmp

	.section .text.longjmp,"ax",@progbits
	.globl	longjmp
	.type	longjmp,@function
	.globl	_longjmp
	.type	_longjmp,@function
longjmp:
_longjmp:
	movl	%esi, %eax
	testl	%eax, %eax		/* longjmp(env, 0) returns 1 */
	jnz	1f
	incl	%eax
1:	movq	0(%rdi), %rbx
	movq	8(%rdi), %rbp
	movq	16(%rdi), %r12
	movq	24(%rdi), %r13
	movq	32(%rdi), %r14
	movq	40(%rdi), %r15
	movq	48(%rdi), %rsp
	jmpq	*56(%rdi)
	.size	longjmp, .-longjmp
	.size	_longjmp, .-_longjmp

	.section .note.GNU-stack,"",@progbits
