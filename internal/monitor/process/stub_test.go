package process

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
)

func TestStubCodeIsWhatItsCommentSays(t *testing.T) {
	got := assemble(t, stubSource)
	if !bytes.Equal(got, stubCode) {
		t.Fatalf("as gives\n% x\nstubCode is\n% x", got, stubCode)
	}
	if stubCode[stubAfterTrap-stubSyscall-1] != 0xcc || stubCode[stubBatchDone-stubSyscall-1] != 0xcc {
		t.Fatal("the trap addresses do not follow an int3")
	}
}

func TestStubIsAValidStaticExecutable(t *testing.T) {
	f, err := elf.NewFile(bytes.NewReader(stubELF()))
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != elf.ET_EXEC || f.Machine != elf.EM_X86_64 || f.Entry != stubSyscall || len(f.Progs) != 1 {
		t.Fatalf("type %v machine %v entry %#x progs %d", f.Type, f.Machine, f.Entry, len(f.Progs))
	}
	if p := f.Progs[0]; p.Type != elf.PT_LOAD || p.Vaddr != stubAddr || p.Flags != elf.PF_R|elf.PF_X {
		t.Fatalf("segment %+v", p.ProgHeader)
	}
}

func TestFailedMappingIsReportedByName(t *testing.T) {
	blob := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(blob, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	lay := codeLayout(assemble(t, exitSeven))
	// A pool blob is opened read-only: asking for a writable shared
	// mapping of it must fail, and say which mapping.
	lay.Mappings = append(lay.Mappings, loader.Mapping{Addr: 0x40000000, Size: 4096, Prot: loader.ProtRead | loader.ProtWrite,
		File: blob, Library: "libc", Part: loader.PartShared})
	r := runLayouts(t, monitor.Options{}, lay)[0]
	if !strings.Contains(r.Error, "load: mapping libc/shared at 0x40000000") || !strings.Contains(r.Error, "permission denied") {
		t.Fatalf("error %q", r.Error)
	}
}
