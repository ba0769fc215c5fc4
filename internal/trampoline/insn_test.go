package trampoline

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// memForms are instructions with a memory operand, as gas encodes them:
// legacy prefixes, REX, 0f/0f38/0f3a opcodes, VEX, x87, immediates after
// the displacement, high-byte registers.
var memForms = []string{
	"mov b_counter(%rip),%eax",
	"mov %r10,b_counter(%rip)",
	"movb $7,b_counter(%rip)",
	"movl $0x12345678,b_counter(%rip)",
	"movq $-1,b_counter(%rip)",
	"addw $0x1234,b_counter(%rip)",
	"lock addl %edi,b_counter(%rip)",
	"cmpb $0,%fs:b_counter(%rip)",
	"mov b_counter(%rip),%ah",
	"mov %sil,b_counter(%rip)",
	"movzbl b_counter(%rip),%r12d",
	"movsbq b_counter(%rip),%r15",
	"movslq b_counter(%rip),%rax",
	"imul $1000,b_counter(%rip),%edx",
	"shll $3,b_counter(%rip)",
	"shlq %cl,b_counter(%rip)",
	"incq b_counter(%rip)",
	"notl b_counter(%rip)",
	"setne b_counter(%rip)",
	"cmove b_counter(%rip),%r9",
	"bt %eax,b_counter(%rip)",
	"xchg %rdx,b_counter(%rip)",
	"cmpxchg %ecx,b_counter(%rip)",
	"movss b_counter(%rip),%xmm3",
	"movsd %xmm12,b_counter(%rip)",
	"movdqu b_counter(%rip),%xmm9",
	"pshufd $0x1b,b_counter(%rip),%xmm1",
	"pinsrd $2,b_counter(%rip),%xmm4",
	"pmovzxbw b_counter(%rip),%xmm5",
	"cvtsi2sdl b_counter(%rip),%xmm0",
	"ucomisd b_counter(%rip),%xmm2",
	"vmovdqu b_counter(%rip),%ymm1",
	"vmovdqu b_counter(%rip),%ymm11",
	"vpaddd b_counter(%rip),%xmm2,%xmm3",
	"vpshufb b_counter(%rip),%xmm8,%xmm9",
	"andn b_counter(%rip),%eax,%ebx",
	"shlx %ecx,b_counter(%rip),%edx",
	"fldl b_counter(%rip)",
	"fistpll b_counter(%rip)",
	"mov b_array(,%rdi,4),%eax",
	"mov b_array(,%r11,8),%r8",
	"mov b_array,%eax",
	"mov b_array(%rdi),%eax",
	"mov b_array(%r13,%rsi,2),%ax",
	"movl $5,b_array(%rbp,%r9,4)",
	"lea b_array(,%rax,8),%rdx",
	"mov 8(%rsp),%rax",
	"mov (%r12),%rax",
}

// assembled returns each of forms assembled by gas, as bytes.
func assembled(t *testing.T, forms []string) [][]byte {
	t.Helper()
	if _, err := exec.LookPath("as"); err != nil {
		t.Skip("as not installed")
	}
	dir := t.TempDir()
	var src strings.Builder
	src.WriteString("\t.text\n")
	for i, f := range forms {
		src.WriteString("L" + string(rune('A'+i/26)) + string(rune('a'+i%26)) + ":\t" + f + "\n")
	}
	src.WriteString("Lend: nop\n")
	s := filepath.Join(dir, "forms.s")
	if err := os.WriteFile(s, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	o := filepath.Join(dir, "forms.o")
	if out, err := exec.Command("as", "-L", "-o", o, s).CombinedOutput(); err != nil {
		t.Fatalf("as: %v\n%s", err, out)
	}
	f, err := elf.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	text, err := f.Section(".text").Data()
	if err != nil {
		t.Fatal(err)
	}
	syms, _ := f.Symbols()
	var offs []uint64
	for _, sy := range syms {
		if strings.HasPrefix(sy.Name, "L") && sy.Section != elf.SHN_UNDEF && elf.ST_TYPE(sy.Info) != elf.STT_SECTION {
			offs = append(offs, sy.Value)
		}
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	if len(offs) != len(forms)+1 {
		t.Fatalf("found %d labels for %d forms", len(offs), len(forms))
	}
	var out [][]byte
	for i := range forms {
		out = append(out, text[offs[i]:offs[i+1]])
	}
	return out
}

// newOperands are the memory operands the rewriter puts into moved
// instructions (and a few harder ones).
var newOperands = []memOp{
	{base: rBX, index: noReg},
	{base: rSI, index: noReg},
	{base: rDI, index: rAX, scale: 8},
	{base: rBX, index: r9, scale: 4},
	{base: rSP, index: rDI, scale: 1, disp: 136},
	{base: rSP, index: noReg, disp: 144},
	{base: rBP, index: noReg},
	{base: r13, index: noReg, disp: -128},
	{base: r12, index: noReg, disp: 1 << 20},
	{base: noReg, index: noReg, disp: 0x40001000},
	{base: rRIP, index: noReg, target: 0x40000123},
}

func TestReencodingKeepsEverythingButTheMemoryOperand(t *testing.T) {
	for i, raw := range assembled(t, memForms) {
		inst, err := x86asm.Decode(raw, 64)
		if err != nil || inst.Len != len(raw) {
			t.Fatalf("%s: % x: decode: %v (len %d)", memForms[i], raw, err, inst.Len)
		}
		p, err := splitInsn(raw, inst)
		if err != nil {
			// x86asm decodes a VEX instruction's RIP-relative operand
			// without its base: such sites are refused, not guessed.
			if (raw[0] == 0xc4 || raw[0] == 0xc5) && strings.Contains(memForms[i], "(%rip)") {
				continue
			}
			t.Errorf("%s: % x: %v", memForms[i], raw, err)
			continue
		}
		for _, m := range newOperands {
			const pc = 0x40002000
			enc, err := p.withMem(pc, m)
			if err != nil {
				// Only what a 2-byte VEX or a high-byte register
				// cannot express may be refused.
				if (p.vex != nil && len(p.vex) == 2 && (m.base >= 8 || m.index >= 8)) || strings.Contains(err.Error(), "high-byte") {
					continue
				}
				t.Errorf("%s with %+v: %v", memForms[i], m, err)
				continue
			}
			if err := checkSameBut(enc, pc, inst, m); err != nil {
				t.Errorf("%s with %+v: %v", memForms[i], m, err)
			}
		}
	}
}

func TestSplitRefusesWhatItCannotReencode(t *testing.T) {
	for _, c := range []struct {
		raw  []byte
		want string
	}{
		{[]byte{0xa1, 0x00, 0x10, 0, 0x40, 0, 0, 0, 0}, "moffs"},        // movabs 0x40001000,%eax
		{[]byte{0x89, 0xc8}, "no ModRM memory"},                         // mov %ecx,%eax
		{[]byte{0x67, 0x8b, 0x05, 0, 0, 0, 0}, "not a 64-bit register"}, // mov 0(%eip),%eax
	} {
		inst, err := x86asm.Decode(c.raw, 64)
		if err != nil {
			t.Fatalf("% x: %v", c.raw, err)
		}
		_, err = splitInsn(c.raw[:inst.Len], inst)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("% x (%v): %v, want an error about %q", c.raw, inst, err, c.want)
		}
	}
}

func TestNopsAreNops(t *testing.T) {
	for n := 0; n <= 20; n++ {
		b := nops(n)
		if len(b) != n {
			t.Fatalf("nops(%d) is %d bytes", n, len(b))
		}
		for off := 0; off < n; {
			in, err := x86asm.Decode(b[off:], 64)
			if err != nil || in.Op != x86asm.NOP {
				t.Fatalf("nops(%d) at %d: %v %v", n, off, in, err)
			}
			off += in.Len
		}
	}
}

func TestStubInstructionsDecodeAsWritten(t *testing.T) {
	a := asm{pc0: 0x40000100}
	a.leaRSP(-redZone)
	a.push(rBX)
	a.push(r11)
	a.rm(true, []byte{0x8b}, rBX, rip(0x40000008))
	a.rm(true, []byte{0x8d}, rBX, memOp{base: rSP, index: rBX, scale: 1, disp: 136})
	a.pop(r11)
	a.pop(rBX)
	a.leaRSP(redZone)
	a.emit(0xc2, 0x88, 0x00)
	a.rel32(0x40001000, 0xe9)
	if a.err != nil {
		t.Fatal(a.err)
	}
	want := []string{
		"lea -0x80(%rsp),%rsp", "push %rbx", "push %r11", "mov 0x40000008", "lea 0x88(%rsp,%rbx),%rbx",
		"pop %r11", "pop %rbx", "lea 0x80(%rsp),%rsp", "retq $0x88", "jmpq 0x40001000",
	}
	off := 0
	for _, w := range want {
		in, err := x86asm.Decode(a.b[off:], 64)
		if err != nil {
			t.Fatal(err)
		}
		pc := a.pc0 + uint64(off)
		got := x86asm.GNUSyntax(in, pc, nil)
		if in.PCRel != 0 {
			// RIP-relative: name the absolute address instead.
			end := pc + uint64(in.Len)
			var to uint64
			for _, arg := range in.Args {
				switch arg := arg.(type) {
				case x86asm.Mem:
					to = end + uint64(arg.Disp)
				case x86asm.Rel:
					to = end + uint64(int64(arg))
				}
			}
			got = fmt.Sprintf("%s %#x", strings.Fields(got)[0], to)
		}
		if got != w {
			t.Errorf("at +%d: %s, want %s", off, got, w)
		}
		off += in.Len
	}
	var far asm
	far.rel32(0x1_0000_0000_0000, 0xe9)
	if far.err == nil {
		t.Error("a rel32 out of reach was accepted")
	}
}
