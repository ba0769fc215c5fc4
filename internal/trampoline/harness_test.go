package trampoline

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/desc"
)

// The test images are host-runnable static Linux programs laid out like
// aligned unikernel images: one region per library, [tramp][shared][private],
// placed by a small generated linker script, relocations kept.

const (
	testTramp   = 0x2000
	testShared  = 0x2000
	testPrivate = 0x2000
)

// Flags of the project's guest objects (docs/formats.md), minus the stack
// protector (no TLS here), without unwind tables.
var guestCFlags = []string{"-O2", "-ffreestanding", "-nostdlib", "-fpie", "-mno-red-zone",
	"-ffunction-sections", "-fdata-sections", "-fno-plt", "-fno-asynchronous-unwind-tables",
	"-fno-stack-protector"}

// testLib is one library of a test image, built from sources.
type testLib struct {
	name   string
	app    bool
	srcs   map[string]string // file name (.c or .S) -> text
	cflags []string          // replaces guestCFlags when set
	// fileFlags are added for one source file
	fileFlags map[string][]string
	// ldr, when set, makes the library from existing objects or
	// archives: ld -r <ldr...> (e.g. -u sym /usr/lib/.../libz.a)
	ldr []string
	// shared and private override the region's part sizes
	shared, private uint64
}

func (l testLib) sizes() (shared, private uint64) {
	shared, private = testShared, testPrivate
	if l.shared != 0 {
		shared = l.shared
	}
	if l.private != 0 {
		private = l.private
	}
	return shared, private
}

func needTools(t testing.TB) {
	t.Helper()
	if runtime.GOARCH != "amd64" || runtime.GOOS != "linux" {
		t.Skip("needs an x86-64 Linux host to run the test programs")
	}
	for _, tool := range []string{"gcc", "ld"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

func run(t testing.TB, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// buildObjects compiles every library into dir/lib<name>.o (ld -r, as the
// corpus does).
func buildObjects(t testing.TB, dir string, libs []testLib) {
	t.Helper()
	for _, l := range libs {
		var objs []string
		names := make([]string, 0, len(l.srcs))
		for n := range l.srcs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			src := filepath.Join(dir, l.name+"_"+n)
			if err := os.WriteFile(src, []byte(l.srcs[n]), 0o644); err != nil {
				t.Fatal(err)
			}
			obj := src + ".o"
			flags := l.cflags
			if flags == nil {
				flags = guestCFlags
			}
			args := append(append(append([]string{}, flags...), l.fileFlags[n]...), "-c", src, "-o", obj)
			run(t, dir, "gcc", args...)
			objs = append(objs, obj)
		}
		run(t, dir, "ld", append(append([]string{"-r", "-o", "lib" + l.name + ".o"}, objs...), l.ldr...)...)
	}
}

// The objects of threeLibs, built once per test binary.
var (
	sharedOnce sync.Once
	sharedDir  string
)

// copyObjects puts the objects of libs (threeLibs) into dir, building them
// on first use.
func copyObjects(t testing.TB, dir string, libs []testLib) {
	t.Helper()
	sharedOnce.Do(func() {
		d, err := os.MkdirTemp("", "trampoline-objects-")
		if err != nil {
			t.Fatal(err)
		}
		buildObjects(t, d, libs)
		sharedDir = d
	})
	if sharedDir == "" {
		t.Fatal("building the shared test objects failed")
	}
	for _, l := range libs {
		b, err := os.ReadFile(filepath.Join(sharedDir, "lib"+l.name+".o"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "lib"+l.name+".o"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// linkImage links the objects with each library's region at starts[name]
// and returns the description a linker would hand to Rewrite.
func linkImage(t testing.TB, dir string, libs []testLib, starts map[string]uint64, out string) *desc.Config {
	t.Helper()
	var s strings.Builder
	s.WriteString("ENTRY(_start)\nPHDRS {\n")
	for _, l := range libs {
		fmt.Fprintf(&s, "  %s_t PT_LOAD FLAGS(5);\n  %s_s PT_LOAD FLAGS(5);\n  %s_p PT_LOAD FLAGS(6);\n", l.name, l.name, l.name)
	}
	s.WriteString("  tls PT_TLS;\n}\nSECTIONS {\n")
	cfg := &desc.Config{SchemaVersion: desc.SchemaVersion, Layout: "aligned", MemSize: 1 << 20}
	for i, l := range libs {
		st := starts[l.name]
		shared, private := l.sizes()
		n, o := l.name, "lib"+l.name+".o"
		fmt.Fprintf(&s, "  . = %#x;\n", st)
		fmt.Fprintf(&s, "  .tramp.%s : { BYTE(0xcc); . = %#x; } :%s_t =0xcccccccc\n", n, testTramp, n)
		fmt.Fprintf(&s, "  .text.%s %#x : { %s(.text .text.*) } :%s_s\n", n, st+testTramp, o, n)
		fmt.Fprintf(&s, "  .rodata.%s : { %s(.rodata .rodata.*) } :%s_s\n", n, o, n)
		fmt.Fprintf(&s, "  .data.%s %#x : { %s(.data .data.* .data.rel.ro .data.rel.ro.*) } :%s_p\n", n, st+testTramp+shared, o, n)
		fmt.Fprintf(&s, "  .got.%s : { %s(.got) } :%s_p\n", n, o, n)
		if l.app {
			fmt.Fprintf(&s, "  .tdata : { *(.tdata .tdata.*) } :%s_p :tls\n  .tbss : { *(.tbss .tbss.*) } :%s_p :tls\n", n, n)
		}
		fmt.Fprintf(&s, "  .bss.%s : { %s(.bss .bss.* COMMON) } :%s_p\n", n, o, n)
		if i == len(libs)-1 {
			// ld's own sections (the GOT it makes) land in the last private part.
			fmt.Fprintf(&s, "  .got : { *(.got) } :%s_p\n  .got.plt : { *(.got.plt) } :%s_p\n", n, n)
		}
		cfg.Libraries = append(cfg.Libraries, desc.Library{Name: l.name, App: l.app,
			Region: desc.Region{Start: st, TrampSize: testTramp, SharedSize: shared, PrivateSize: private}})
	}
	s.WriteString("  /DISCARD/ : { *(.comment) *(.note.*) *(.eh_frame) }\n}\n")
	script := filepath.Join(dir, out+".ld")
	if err := os.WriteFile(script, []byte(s.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-static", "-nostdlib", "--emit-relocs", "-z", "max-page-size=0x1000", "-z", "noexecstack",
		"--no-warn-rwx-segments", "-T", script, "-o", out}
	for _, l := range libs {
		args = append(args, "lib"+l.name+".o")
	}
	run(t, dir, "ld", args...)

	f, err := elf.Open(filepath.Join(dir, out))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range cfg.Libraries {
		l := &cfg.Libraries[i]
		r := l.Region
		for _, sec := range f.Sections {
			if sec.Flags&elf.SHF_ALLOC == 0 || sec.Addr < r.Start || sec.Addr >= r.End() {
				continue
			}
			if sec.Addr+sec.Size > r.End() || (sec.Addr < r.PrivateAddr() && sec.Addr+sec.Size > r.PrivateAddr()) {
				t.Fatalf("%s: section %s does not fit its part of region %q", out, sec.Name, l.Name)
			}
			if sec.Addr >= r.PrivateAddr() {
				end := sec.Addr + sec.Size - r.PrivateAddr()
				l.Private.MemSize = max(l.Private.MemSize, end)
				if sec.Type != elf.SHT_NOBITS {
					l.Private.FileSize = max(l.Private.FileSize, end)
				}
			} else if sec.Addr >= r.SharedAddr() {
				l.Shared.Size = r.SharedSize
			}
		}
		l.Private.MemSize = (l.Private.MemSize + 0xfff) &^ 0xfff
		if f.Entry >= r.Start && f.Entry < r.End() {
			cfg.Entry = desc.Addr{Lib: i, Off: f.Entry - r.Start}
		}
	}
	return cfg
}

// runProgram runs a test program and returns its standard output.
func runProgram(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(path).Output()
	if err != nil {
		t.Fatalf("running %s: %v (output so far: %q)", path, err, out)
	}
	return string(out)
}

// exec_ runs a program that may crash.
func exec_(path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path).Output()
	return string(out), err
}

// placeAt emulates a loader: it returns the rewritten image with every
// library i moved to bases[i] — only its program headers change, its
// bytes stay — with every tramp slot and private relocation filled for
// those bases, as the monitors do per instance.
func placeAt(t *testing.T, path string, cfg *desc.Config, bases []uint64) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	im, err := parseImage(path, data)
	if err != nil {
		t.Fatal(err)
	}
	abs := func(a desc.Addr) uint64 { return bases[a.Lib] + a.Off }
	for _, l := range cfg.Libraries {
		if l.NoASLR != "" && bases[indexOf(cfg, l.Name)] != l.Region.Start {
			t.Fatalf("test moves library %q, which cannot move: %s", l.Name, l.NoASLR)
		}
		for _, s := range l.Tramp.Slots {
			b, ok := im.bytesAt(l.Region.TrampAddr()+s.Off, 8)
			if !ok {
				t.Fatalf("slot %#x of %q not in the file", s.Off, l.Name)
			}
			binary.LittleEndian.PutUint64(b, abs(s.Target))
		}
		for _, r := range l.Relocs {
			b, ok := im.bytesAt(l.Region.PrivateAddr()+r.Off, 8)
			if !ok {
				t.Fatalf("reloc %#x of %q not in the file", r.Off, l.Name)
			}
			binary.LittleEndian.PutUint64(b, abs(r.Target))
		}
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var loads, others [][]byte
	phoff := binary.LittleEndian.Uint64(data[0x20:])
	for i := range f.Progs {
		at := phoff + uint64(i)*56
		raw := append([]byte(nil), data[at:at+56]...)
		if elf.ProgType(binary.LittleEndian.Uint32(raw)) != elf.PT_LOAD {
			others = append(others, raw)
			continue
		}
		va := binary.LittleEndian.Uint64(raw[16:])
		if lib := regionOf(cfg, va); lib >= 0 {
			va += bases[lib] - cfg.Libraries[lib].Region.Start
			binary.LittleEndian.PutUint64(raw[16:], va)
			binary.LittleEndian.PutUint64(raw[24:], va)
		}
		loads = append(loads, raw)
	}
	sort.Slice(loads, func(i, j int) bool {
		return binary.LittleEndian.Uint64(loads[i][16:]) < binary.LittleEndian.Uint64(loads[j][16:])
	})
	for i, raw := range append(loads, others...) {
		copy(data[phoff+uint64(i)*56:], raw)
	}
	entry := binary.LittleEndian.Uint64(data[0x18:])
	if lib := regionOf(cfg, entry); lib >= 0 {
		binary.LittleEndian.PutUint64(data[0x18:], entry+bases[lib]-cfg.Libraries[lib].Region.Start)
	}
	return data
}

func indexOf(cfg *desc.Config, name string) int {
	for i, l := range cfg.Libraries {
		if l.Name == name {
			return i
		}
	}
	return -1
}

// part returns the file bytes of [va, va+n) that are file-backed (a part
// may end in bss).
func part(t *testing.T, path string, va, n uint64) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	im, err := parseImage(path, data)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for a := va; a < va+n; a++ {
		if b, ok := im.bytesAt(a, 1); ok {
			out = append(out, b[0])
		} else {
			out = append(out, 0)
		}
	}
	return out
}
