package trampoline

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/unipool/unipool/internal/desc"
)

// fuzzSeeds builds the three-library test image and its objects when the
// tools are there, so the fuzzers start from real ELF files.
func fuzzSeeds(f *testing.F) (image []byte, objs [][]byte) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return nil, nil
	}
	for _, tool := range []string{"gcc", "ld"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, nil
		}
	}
	dir := f.TempDir()
	var libs []testLib
	for _, l := range []struct{ name, src string }{{"app", "app.c"}, {"b", "libb.c"}} {
		b, err := os.ReadFile(filepath.Join("testdata", l.src))
		if err != nil {
			f.Fatal(err)
		}
		libs = append(libs, testLib{name: l.name, srcs: map[string]string{l.src: string(b)}})
	}
	for _, l := range libs {
		for n, src := range l.srcs {
			p := filepath.Join(dir, n)
			os.WriteFile(p, []byte(src), 0o644)
			args := append(append([]string{}, guestCFlags...), "-c", p, "-o", filepath.Join(dir, "lib"+l.name+".o"))
			if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
				f.Fatalf("gcc: %v\n%s", err, out)
			}
		}
		b, _ := os.ReadFile(filepath.Join(dir, "lib"+l.name+".o"))
		objs = append(objs, b)
	}
	// An unresolved program is fine for the fuzzer: ld links what it can.
	cmd := exec.Command("ld", "-static", "-nostdlib", "--emit-relocs", "--unresolved-symbols=ignore-all",
		"-z", "max-page-size=0x1000", "-Ttext=0x40001000", "-e", "0", "-o", "img", "libapp.o", "libb.o")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		f.Fatalf("ld: %v\n%s", err, out)
	}
	image, _ = os.ReadFile(filepath.Join(dir, "img"))
	return image, objs
}

func fuzzConfig() *desc.Config {
	return &desc.Config{SchemaVersion: desc.SchemaVersion, Libraries: []desc.Library{
		{Name: "lo", Region: desc.Region{Start: 0x40000000, TrampSize: 0x1000, SharedSize: 0x10000, PrivateSize: 0x10000}},
		{Name: "hi", Region: desc.Region{Start: 0x40400000, TrampSize: 0x1000, SharedSize: 0x10000, PrivateSize: 0x10000}},
	}}
}

// FuzzAnalyse feeds arbitrary files to the image reader and the whole
// analysis: errors are fine, panics are not.
func FuzzAnalyse(f *testing.F) {
	img, _ := fuzzSeeds(f)
	if img != nil {
		f.Add(img)
		f.Add(img[:len(img)/2])
		f.Add(img[:64])
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		rw, err := analyse("fuzz", append([]byte(nil), data...), fuzzConfig())
		if err != nil {
			return
		}
		if err := rw.apply(); err != nil {
			return
		}
		_ = rw.report()
	})
}

// FuzzEstimate feeds arbitrary files to Estimate's object reader.
func FuzzEstimate(f *testing.F) {
	_, objs := fuzzSeeds(f)
	for _, o := range objs {
		f.Add(o)
		f.Add(o[:len(o)*2/3])
	}
	f.Add([]byte("\x7fELF\x02\x01\x01\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = estimate("fuzz", data, false, nil)
		_, _ = estimate("fuzz", data, true, []string{".data", ".text"})
	})
}

// FuzzReencode checks, for arbitrary instruction bytes, that whatever the
// splitter accepts re-encodes into the same instruction with only its
// memory operand changed — or is refused; never a different instruction.
func FuzzReencode(f *testing.F) {
	f.Add([]byte{0x8b, 0x05, 0x10, 0x20, 0x00, 0x00})                   // mov 0x2010(%rip),%eax
	f.Add([]byte{0x48, 0xc7, 0x05, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}) // movq $-1,0(%rip)
	f.Add([]byte{0x8b, 0x04, 0xbd, 0x00, 0x10, 0x00, 0x40})             // mov 0x40001000(,%rdi,4),%eax
	f.Add([]byte{0xc4, 0xe2, 0x71, 0xf7, 0x14, 0x25, 0, 0x10, 0, 0x40}) // shlx %ecx,0x40001000,%edx
	f.Add([]byte{0x66, 0x43, 0x8b, 0x44, 0x75, 0x00})                   // mov 0(%r13,%r14,2),%ax
	f.Fuzz(func(t *testing.T, raw []byte) {
		inst, err := x86asm.Decode(raw, 64)
		if err != nil || inst.Len == 0 {
			return
		}
		raw = raw[:inst.Len]
		p, err := splitInsn(raw, inst)
		if err != nil {
			return
		}
		const pc = 0x40002000
		// The operand it had: the same instruction again.
		same := p.mem
		if same.base == rRIP {
			same = memOp{base: rRIP, index: noReg, target: pc + uint64(len(raw)) + uint64(p.mem.disp)}
		}
		enc, err := p.withMem(pc, same)
		if err != nil && !strings.Contains(err.Error(), "high-byte") {
			t.Fatalf("% x (%v): re-encoding with its own operand: %v", raw, inst, err)
		}
		if err == nil {
			if err := checkSameBut(enc, pc, inst, same); err != nil {
				t.Fatalf("% x (%v): re-encoding with its own operand: %v", raw, inst, err)
			}
		}
		for _, m := range newOperands {
			enc, err := p.withMem(pc, m)
			if err != nil {
				continue
			}
			err = checkSameBut(enc, pc, inst, m)
			// The decoder cannot show a VEX instruction's RIP base: the
			// check refuses those, which is what keeps them out.
			if err != nil && !(p.vex != nil && m.base == rRIP) {
				t.Errorf("% x (%v) with %+v: %v", raw, inst, m, err)
			}
		}
	})
}
