/* A minimal Multiboot 1 kernel (32-bit, ELF32): checks the boot loader's
 * magic in %eax, prints the command line of the information at %ebx to
 * COM1, then powers off through QEMU's ACPI port (0x604). Assembled with
 * `as --32`, linked with `ld -m elf_i386 -Ttext=0x100000`. */
	.text
	.align 4
	.long 0x1BADB002		/* header: magic */
	.long 3				/* flags: page-align, memory info */
	.long -(0x1BADB002 + 3)		/* checksum */
	.code32
	.globl _start
_start:
	cmpl	$0x2BADB002, %eax
	jne	1f
	testl	$4, (%ebx)		/* MULTIBOOT_INFO_CMDLINE */
	jz	1f
	movl	16(%ebx), %esi		/* cmdline */
	movw	$0x3f8, %dx
2:	movb	(%esi), %al
	testb	%al, %al
	jz	3f
	outb	%al, %dx
	incl	%esi
	jmp	2b
3:	movb	$'\n', %al
	outb	%al, %dx
	movw	$0x604, %dx
	movw	$0x2000, %ax		/* SLP_EN */
	outw	%ax, %dx
1:	hlt
	jmp	1b
