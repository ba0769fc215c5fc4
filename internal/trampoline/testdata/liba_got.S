/* Library a: references through the GOT, assembled without relaxable
   relocations (-Wa,-mrelax-relocations=no) so ld keeps the GOT loads. */
	.section .note.GNU-stack,"",@progbits
	.text

	.globl a_gotadd		/* through the GOT (not relaxable by ld) */
a_gotadd: xor %eax,%eax
	add b_counter@GOTPCREL(%rip),%rax
	mov (%rax),%eax
	ret

	.globl a_gotcall	/* call *sym@GOTPCREL(%rip), not relaxed */
a_gotcall: sub $8,%rsp
	mov $40,%esi
	call *b_add@GOTPCREL(%rip)
	add $8,%rsp
	ret

	.globl a_gotcmp		/* cmpq $0,sym@GOTPCREL(%rip): the weak-symbol test */
a_gotcmp: xor %eax,%eax
	cmpq $0,b_mul@GOTPCREL(%rip)
	setne %al
	ret


	.weak a_missing		/* an undefined weak function: its GOT entry holds 0 */
	.globl a_weak
a_weak:	sub $8,%rsp
	mov $3,%eax
	cmpq $0,a_missing@GOTPCREL(%rip)
	je 1f
	call *a_missing@GOTPCREL(%rip)
1:	add $8,%rsp
	ret
