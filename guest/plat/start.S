/* _start: the guest entry point (guest ABI, ARCHITECTURE.md).
 *
 * Entered in 64-bit mode, interrupts off, %rsp 16-byte aligned at the top of
 * the stack, %rdi = struct uk_bootinfo *. Before any C runs (C is built with
 * -fstack-protector-strong and reads the canary at %fs:0x28), the FS base
 * must point at a TCB whose canary is set: we use the static TCB below,
 * take the canary from bootinfo->canary and set IA32_FS_BASE with wrmsr
 * (emulated by the process monitor, native under KVM). */
#include "tls.h"

#include <uk/bootinfo.h>

	.section .text._start,"ax",@progbits
	.globl _start
	.type _start,@function
_start:
	xorl	%ebp, %ebp		/* terminates frame-pointer walks */
	movq	%rdi, %rbx		/* boot info survives in a callee-saved reg */

	/* The canary is the monitor's (host CSPRNG, low byte 0, so that a
	 * string overflow cannot reproduce it, as glibc does): copied into
	 * the TCB, then cleared in the boot info so no second copy stays in
	 * guest memory. */
	xorl	%edx, %edx
	testq	%rdi, %rdi
	jz	1f
	movq	UK_BOOTINFO_CANARY(%rdi), %rdx
	movq	$0, UK_BOOTINFO_CANARY(%rdi)
1:
	leaq	ukplat_tcb0(%rip), %rax
	movq	%rax, UKPLAT_TCB_SELF(%rax)
	movq	%rax, UKPLAT_TCB_SELF2(%rax)
	movq	%rdx, UKPLAT_TCB_CANARY(%rax)

	/* wrmsr: %ecx = MSR, %edx:%eax = value */
	movq	%rax, %rdx
	shrq	$32, %rdx
	movl	$UKPLAT_MSR_FS_BASE, %ecx
	wrmsr

	movq	%rbx, %rdi
	call	ukplat_entry		/* does not return */
2:	hlt
	jmp	2b
	.size _start, .-_start

/* The static TLS reserve and, right above it, the TCB (variant II). */
	.section .bss.ukplat_tls,"aw",@nobits
	.balign	UKPLAT_TLS_ALIGN
	.globl	ukplat_tls_reserve
	.type	ukplat_tls_reserve,@object
ukplat_tls_reserve:
	.skip	UKPLAT_TLS_RESERVE
	.size	ukplat_tls_reserve, UKPLAT_TLS_RESERVE
	.globl	ukplat_tcb0
	.type	ukplat_tcb0,@object
ukplat_tcb0:
	.skip	UKPLAT_TCB_SIZE
	.size	ukplat_tcb0, UKPLAT_TCB_SIZE

	.section .note.GNU-stack,"",@progbits
