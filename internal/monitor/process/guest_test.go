package process

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
)

// Hand-made guests: a few instructions assembled with the system's `as`,
// laid out the way the loader lays out a plain image, so the machinery is
// tested without the toolchain or the pool.

const (
	testCodeAddr  = abi.PackedBase
	testStackSize = 64 << 10
)

// assemble turns AT&T assembly into the raw bytes of its .text.
func assemble(t testing.TB, src string) []byte {
	t.Helper()
	for _, tool := range []string{"as", "objcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (binutils): %v", tool, err)
		}
	}
	dir := t.TempDir()
	s, o, bin := filepath.Join(dir, "g.s"), filepath.Join(dir, "g.o"), filepath.Join(dir, "g.bin")
	if err := os.WriteFile(s, []byte(".code64\n.text\n"+src+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("as", "--64", "-o", o, s).CombinedOutput(); err != nil {
		t.Fatalf("as: %v\n%s", err, out)
	}
	if out, err := exec.Command("objcopy", "-O", "binary", "-j", ".text", o, bin).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	code, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func pageUp(n uint64) uint64 { return (n + abi.PageSize - 1) &^ (abi.PageSize - 1) }

// codeLayout places code at testCodeAddr (read-only, executable) with a
// boot-info page and a stack, entering at the code's first byte.
func codeLayout(code []byte) *loader.Layout {
	boot := uint64(abi.PrivateBase)
	stack := boot + 2*abi.PageSize
	bi := abi.BootInfo{Magic: abi.BootInfoMagic, Version: abi.BootInfoVersion, Monitor: abi.MonitorProcess}
	return &loader.Layout{
		Mappings: []loader.Mapping{
			{Addr: testCodeAddr, Size: pageUp(uint64(len(code))), Prot: loader.ProtRead | loader.ProtExec,
				Data: code, Library: "app", Part: loader.PartImage},
			{Addr: boot, Size: abi.PageSize, Prot: loader.ProtRead | loader.ProtWrite, Data: bi.Marshal(), Part: loader.PartBootInfo},
			{Addr: stack, Size: testStackSize, Prot: loader.ProtRead | loader.ProtWrite, Part: loader.PartStack},
		},
		Entry:    testCodeAddr,
		StackTop: stack + testStackSize,
		BootInfo: boot,
	}
}

// runLayouts runs one instance per layout and returns their results.
func runLayouts(t testing.TB, opt monitor.Options, lays ...*loader.Layout) []monitor.Result {
	t.Helper()
	files := map[string]*os.File{}
	var jobs []job
	for i, lay := range lays {
		for _, m := range lay.Mappings {
			if m.File != "" && files[m.File] == nil {
				f, err := os.Open(m.File)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				files[m.File] = f
			}
		}
		jobs = append(jobs, job{uk: "test", index: i, plan: func() (*loader.Layout, error) { return lay, nil }})
	}
	return (&Monitor{}).run(context.Background(), jobs, files, opt)
}

// runCode runs one guest made of src.
func runCode(t testing.TB, src string, opt monitor.Options) monitor.Result {
	t.Helper()
	return runLayouts(t, opt, codeLayout(assemble(t, src)))[0]
}

// exitWith is guest code that exits with code.
const exitSeven = `
	mov $0x501, %dx
	mov $7, %eax
	out %eax, %dx
	hlt
`

func TestGuestPrintsAndExitsWithItsCode(t *testing.T) {
	r := runCode(t, `
	mov $0x3f8, %dx
	mov $'h', %al
	out %al, %dx
	mov $'i', %al
	out %al, %dx
`+exitSeven, monitor.Options{})
	if r.Error != "" || r.ExitCode != 7 || r.Output != "hi" {
		t.Fatalf("got exit %d output %q error %q, want 7 \"hi\" \"\"", r.ExitCode, r.Output, r.Error)
	}
	if r.PID <= 0 || r.LoadTime <= 0 {
		t.Errorf("pid %d load time %v: want both positive", r.PID, r.LoadTime)
	}
}
