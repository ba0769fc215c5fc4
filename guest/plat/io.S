/* The privileged instructions of the guest ABI, one small function each.
 * Under the process monitor they run in ring 3, fault, and the monitor
 * emulates them; under KVM they exit to the monitor. Keeping them out of
 * plat.c lets host-side tests of plat.c substitute them. */

	.section .text.ukplat_outb,"ax",@progbits
	.globl	ukplat_outb		/* void ukplat_outb(uint16_t port, uint8_t v) */
	.type	ukplat_outb,@function
ukplat_outb:
	movl	%edi, %edx
	movl	%esi, %eax
	outb	%al, %dx
	ret
	.size	ukplat_outb, .-ukplat_outb

	.section .text.ukplat_outl,"ax",@progbits
	.globl	ukplat_outl		/* void ukplat_outl(uint16_t port, uint32_t v) */
	.type	ukplat_outl,@function
ukplat_outl:
	movl	%edi, %edx
	movl	%esi, %eax
	outl	%eax, %dx
	ret
	.size	ukplat_outl, .-ukplat_outl

	.section .text.ukplat_discard_pages,"ax",@progbits
	.globl	ukplat_discard_pages	/* void ukplat_discard_pages(uint64_t start, uint64_t len) */
	.type	ukplat_discard_pages,@function
ukplat_discard_pages:			/* the range stays in %rdi/%rsi for the monitor */
	movl	$0x503, %edx
	xorl	%eax, %eax
	outl	%eax, %dx
	ret
	.size	ukplat_discard_pages, .-ukplat_discard_pages

	.section .text.ukplat_hlt,"ax",@progbits
	.globl	ukplat_hlt		/* void ukplat_hlt(void) */
	.type	ukplat_hlt,@function
ukplat_hlt:
	hlt
	ret
	.size	ukplat_hlt, .-ukplat_hlt

	.section .text.ukplat_wrmsr,"ax",@progbits
	.globl	ukplat_wrmsr		/* void ukplat_wrmsr(uint32_t msr, uint64_t v) */
	.type	ukplat_wrmsr,@function
ukplat_wrmsr:
	movl	%edi, %ecx
	movq	%rsi, %rax
	movq	%rsi, %rdx
	shrq	$32, %rdx
	wrmsr
	ret
	.size	ukplat_wrmsr, .-ukplat_wrmsr

	.section .note.GNU-stack,"",@progbits
