package process

import (
	"testing"
)

func TestDecodeTrapReadsEachPrivilegedFormTheABIUses(t *testing.T) {
	for _, c := range []struct {
		name string
		code []byte
		want trapInsn
	}{
		{"outb %al,%dx", []byte{0xee}, trapInsn{kind: opOut, size: 1, port: -1, len: 1}},
		{"outw %ax,%dx", []byte{0x66, 0xef}, trapInsn{kind: opOut, size: 2, port: -1, len: 2}},
		{"outl %eax,%dx", []byte{0xef}, trapInsn{kind: opOut, size: 4, port: -1, len: 1}},
		{"outb %al,$0x80", []byte{0xe6, 0x80}, trapInsn{kind: opOut, size: 1, port: 0x80, len: 2}},
		{"outl %eax,$0xe9", []byte{0xe7, 0xe9}, trapInsn{kind: opOut, size: 4, port: 0xe9, len: 2}},
		{"inb %dx,%al", []byte{0xec}, trapInsn{kind: opIn, size: 1, port: -1, len: 1}},
		{"inl %dx,%eax", []byte{0xed}, trapInsn{kind: opIn, size: 4, port: -1, len: 1}},
		{"inb $0x60,%al", []byte{0xe4, 0x60}, trapInsn{kind: opIn, size: 1, port: 0x60, len: 2}},
		{"inw $0x60,%ax", []byte{0x66, 0xe5, 0x60}, trapInsn{kind: opIn, size: 2, port: 0x60, len: 3}},
		{"rep outsb", []byte{0xf3, 0x6e}, trapInsn{kind: opOuts, size: 1, port: -1, rep: true, len: 2}},
		{"outsl", []byte{0x6f}, trapInsn{kind: opOuts, size: 4, port: -1, len: 1}},
		{"hlt", []byte{0xf4}, trapInsn{kind: opHlt, size: 4, port: -1, len: 1}},
		{"cli", []byte{0xfa}, trapInsn{kind: opNop, size: 4, port: -1, len: 1}},
		{"wrmsr", []byte{0x0f, 0x30}, trapInsn{kind: opWrmsr, size: 4, port: -1, len: 2}},
		{"rdmsr", []byte{0x0f, 0x32}, trapInsn{kind: opRdmsr, size: 4, port: -1, len: 2}},
		{"rex.w wrmsr", []byte{0x48, 0x0f, 0x30}, trapInsn{kind: opWrmsr, size: 4, port: -1, len: 3}},
	} {
		got, ok := decodeTrap(append(c.code, 0x90, 0x90))
		if !ok || got != c.want {
			t.Errorf("%s (% x): got %+v ok=%v, want %+v", c.name, c.code, got, ok, c.want)
		}
	}
}

func TestDecodeTrapRefusesEverythingElse(t *testing.T) {
	for _, code := range [][]byte{
		{},                 // nothing readable
		{0x0f, 0x22, 0xe0}, // mov %rax,%cr4
		{0x0f, 0x01, 0x10}, // lgdt
		{0xcd, 0x80},       // int $0x80
		{0xe6},             // out imm8 cut short
		{0x0f},             // two-byte opcode cut short
		{0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0xee}, // too long
	} {
		if got, ok := decodeTrap(code); ok {
			t.Errorf("% x: decoded as %+v, want refused", code, got)
		}
	}
}

// FuzzDecodeTrap: the bytes come from the guest, so any input must decode
// to a form within the bytes given, or be refused, never panic.
func FuzzDecodeTrap(f *testing.F) {
	for _, s := range [][]byte{{0xee}, {0x66, 0xef}, {0xe6, 0x80}, {0xf3, 0x6e}, {0x0f, 0x30}, {0xf4}, {0x48, 0x0f, 0x32}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, code []byte) {
		in, ok := decodeTrap(code)
		if !ok {
			return
		}
		if in.len <= 0 || in.len > len(code) || in.len > maxInsnLen {
			t.Fatalf("% x: length %d outside the %d bytes", code, in.len, len(code))
		}
		if in.size != 1 && in.size != 2 && in.size != 4 {
			t.Fatalf("% x: operand size %d", code, in.size)
		}
		if in.port < -1 || in.port > 0xff {
			t.Fatalf("% x: port %d", code, in.port)
		}
	})
}

func TestParseMapsKeepsOnlyWhatExecLeftBesidesTheStub(t *testing.T) {
	maps := "7f0000000000-7f0000001000 r-xp 00000000 00:1a 7 /memfd:unipool-stub (deleted)\n" +
		"7ffd1c5e1000-7ffd1c602000 rw-p 00000000 00:00 0 [stack]\n" +
		"7ffd1c7d6000-7ffd1c7da000 r--p 00000000 00:00 0 [vvar]\n" +
		"7ffd1c7da000-7ffd1c7dc000 r-xp 00000000 00:00 0 [vdso]\n" +
		"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]\n"
	got, err := parseMaps([]byte(maps), "maps")
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]uint64{{0x7ffd1c5e1000, 0x7ffd1c602000}, {0x7ffd1c7d6000, 0x7ffd1c7da000}, {0x7ffd1c7da000, 0x7ffd1c7dc000}}
	if len(got) != len(want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("range %d: got %x, want %x", i, got[i], want[i])
		}
	}
	if _, err := parseMaps([]byte("zz-yy r-xp\n"), "maps"); err == nil {
		t.Error("bad line accepted")
	}
}

// FuzzParseMaps: /proc/PID/maps is the kernel's, but the parser must not
// panic on any text.
func FuzzParseMaps(f *testing.F) {
	f.Add([]byte("7ffd1c5e1000-7ffd1c602000 rw-p 00000000 00:00 0 [stack]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := parseMaps(data, "maps")
		if err != nil {
			return
		}
		for _, r := range rs {
			if r[1] <= r[0] {
				t.Fatalf("empty range %x", r)
			}
		}
	})
}
