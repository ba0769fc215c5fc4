/* Library a, hand-written: the instruction forms gcc rarely emits but
   Debian's objects and assembly do. Each returns a value the app prints. */
	.section .note.GNU-stack,"",@progbits
	.text

	.globl a_jcc		/* jcc rel32 to another library */
a_jcc:	test %edi,%edi
	jne b_add
	mov $7,%eax
	ret

	.globl a_plaincall	/* call rel32 to another library (code built with PLT) */
a_plaincall: sub $8,%rsp
	call b_add
	add $8,%rsp
	ret

	.globl a_dsjmp		/* a 6-byte jmp rel32 (with a hint prefix) */
a_dsjmp: ds jmp b_mul

	.globl a_abs32		/* mov $sym,%r32: R_X86_64_32 */
a_abs32: mov $b_array,%eax
	mov 4(%rax),%eax
	ret

	.globl a_abs64		/* movabs $sym,%r64: R_X86_64_64 in code */
a_abs64: movabs $b_array,%rax
	mov 8(%rax),%eax
	ret

	.globl a_abs32s		/* mov $sym,%r64 (sign-extended): R_X86_64_32S */
a_abs32s: movq $b_counter,%rax
	mov (%rax),%eax
	ret

	.globl a_absidx		/* absolute disp32 with an index */
a_absidx: mov b_array(,%rdi,4),%eax
	ret

	.globl a_absdisp	/* absolute disp32 alone */
a_absdisp: mov b_counter,%eax
	ret

	.globl a_absbase	/* absolute disp32 with a base */
a_absbase: mov b_array(%rdi),%eax
	ret

	.globl a_absbi		/* absolute disp32 with a base and an index */
a_absbi: mov b_array(%rdi,%rsi,4),%eax
	ret

	.globl a_pushabs	/* push $sym */
a_pushabs: push $b_counter
	pop %rax
	mov (%rax),%eax
	ret

	.globl a_storeabs	/* movq $sym,mem (mem in a's own data) */
a_storeabs: movq $b_add,a_fnptr(%rip)
	mov a_fnptr(%rip),%rax
	jmp *%rax

	.globl a_loadr10	/* loads into an extended register, narrow sizes */
a_loadr10: mov $-1,%r10
	mov b_counter(%rip),%r10d	/* 32-bit load: clears the upper half */
	movzbq b_array+4(%rip),%r11
	movswl b_array+8(%rip),%eax
	lea (%r10,%r11),%r10
	add %r10,%rax
	ret

	.globl a_cmpflags	/* flags set by the moved instruction survive */
a_cmpflags: xor %eax,%eax
	cmpl $5,b_counter(%rip)
	sete %al
	ret

	.globl a_addmem		/* read-modify-write of another library's data */
a_addmem: add %edi,b_counter(%rip)
	mov b_counter(%rip),%eax
	ret

	.globl a_callmem	/* call through a pointer in another library */
a_callmem: sub $8,%rsp
	mov $20,%esi
	call *b_hook(%rip)
	add $8,%rsp
	ret

	.globl a_jmpmem		/* tail call through a pointer in another library */
a_jmpmem: mov $30,%esi
	jmp *b_hook(%rip)

	.globl a_jmptab		/* non-PIC jump table: absolute disp32 + index */
a_jmptab: jmp *a_tab(,%rdi,8)
a_t0:	mov $100,%eax
	ret
a_t1:	mov $101,%eax
	ret

	.globl a_leaext		/* lea of another library's function */
a_leaext: lea b_mul(%rip),%rax
	jmp *%rax

	.globl a_redzone	/* the red zone below %rsp survives a stub */
a_redzone: movq $77,-8(%rsp)
	mov b_counter(%rip),%eax
	add -8(%rsp),%rax
	ret

	.globl a_aluimm		/* an ALU operation on an absolute address */
a_aluimm: xor %eax,%eax
	mov %rdi,%rcx
	cmp $b_counter,%rcx
	sete %al
	ret

	.globl a_aluimm_rax	/* the short %rax form: too short to patch in place */
a_aluimm_rax: mov %rdi,%rax
	sub $b_array,%rax
	ret

	.globl a_memimm		/* op $addr, mem: both fields name another library */
a_memimm: xor %eax,%eax		/* (Unikraft's cmpq $uk_event_X+8, uk_event_X(%rip)) */
	cmpq $b_event+24,b_event_end(%rip)
	sete %al			/* equal: 1 */
	xor %ecx,%ecx
	cmpq $b_event+8,b_event_end(%rip)
	seta %cl			/* above: 2 */
	lea (%rax,%rcx,2),%rax
	movq $b_event+16,b_event_last(%rip)
	mov b_event_last(%rip),%rcx
	add (%rcx),%rax			/* + 8 */
	ret

	.globl a_sse		/* SSE load from another library */
a_sse:	cvtsi2sd %rdi,%xmm0
	mulsd b_half(%rip),%xmm0
	cvttsd2si %xmm0,%rax
	ret

	.globl a_local		/* references inside the library need nothing */
a_local: lea a_tab(%rip),%rax
	mov 8(%rax),%rax
	sub %rax,%rax
	call a_t0
	ret

	.data
	.globl a_fnptr
a_fnptr: .quad 0
a_tab:	.quad a_t0, a_t1
