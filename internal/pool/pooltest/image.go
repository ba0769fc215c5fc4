// Package pooltest holds the fixtures that the tests of package pool and
// of package pool/distribution share: test images built with gcc, ld and
// objcopy, the unipool CLI built once per test binary, and small helpers.
// It imports neither pool nor distribution, so tests of both can use it.
package pooltest

import (
	"crypto/rand"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/libmap"
)

const pageMask = 0xfff

func pageUp(n uint64) uint64 { return (n + pageMask) &^ pageMask }

// Lib is one library of a test image: C source compiled with gcc and
// placed by a generated linker script at region, the way an aligned link
// places it: [.tramp][text+rodata][data+bss].
type Lib struct {
	Name   string
	App    bool
	Src    string
	Region desc.Region
	// Incbin, if set, is a file whose bytes go into the library's rodata
	// (to make large shared parts cheaply).
	Incbin string
}

// Region is the region of a library placed at start: a trampoline page,
// then its shared and private parts, of the sizes given.
func Region(start, tramp, shared, private uint64) desc.Region {
	return desc.Region{Start: start, TrampSize: tramp, SharedSize: shared, PrivateSize: private}
}

// Libraries of the test images. LibA and LibB are shared by hello and
// world at the same regions, so their shared parts must dedup.
var (
	LibA = Lib{Name: "libA", Region: Region(0x4000_0000, 0x1000, 0x4000, 0x2000), Src: `
__attribute__((section(".tramp"), used)) const unsigned char tramp_a[24] = {0xff, 0x25, 1, 2, 3, 4, 5, 6, 7, 8};
static const char greeting[] = "hello from libA";
int a_counter = 42;
int a_scratch[256];
int a_len(void) { int n = 0; while (greeting[n]) n++; return n + a_counter + a_scratch[3]; }
`}
	LibB = Lib{Name: "libB", Region: Region(0x4001_0000, 0x1000, 0x2000, 0x1000), Src: `
static const unsigned int table[64] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89};
unsigned int b_sum(int n) { unsigned s = 0; for (int i = 0; i < n && i < 64; i++) s += table[i]; return s; }
`}
	LibC = Lib{Name: "libC", Region: Region(0x4002_0000, 0x1000, 0x2000, 0x1000), Src: `
long c_state = 7;
long c_next(void) { c_state = c_state * 6364136223846793005L + 1; return c_state; }
`}
)

// App is an app library named name whose _start runs body (calls into
// LibA, LibB, LibC) and halts.
func App(name, body string) Lib {
	return Lib{Name: name, App: true, Region: Region(0x1000_0000, 0x1000, 0x10000, 0x4000), Src: `
int a_len(void); unsigned int b_sum(int); long c_next(void);
char app_buf[4096];
int app_data = 5;
void _start(void) { ` + body + ` for (;;) __asm__ volatile("hlt"); }
`}
}

// BuildImage compiles and links libs into an aligned-shaped image at
// dir/name with a .unipool section describing it, and returns its path.
func BuildImage(t testing.TB, dir, name string, libs []Lib) string {
	t.Helper()
	work := filepath.Join(dir, name+".build")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("ENTRY(_start)\nSECTIONS {\n")
	var objs []string
	for _, l := range libs {
		src := filepath.Join(work, l.Name+".c")
		code := l.Src
		if l.Incbin != "" {
			code += fmt.Sprintf("\n__asm__(\".section .rodata.big,\\\"a\\\"\\n.incbin \\\"%s\\\"\\n.previous\\n\");\n", l.Incbin)
		}
		if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
		obj := filepath.Join(work, l.Name+".o")
		Run(t, "gcc", "-c", "-O2", "-ffreestanding", "-nostdlib", "-fno-pie", "-fno-asynchronous-unwind-tables",
			"-ffunction-sections", "-fdata-sections", "-fno-stack-protector", "-o", obj, src)
		objs = append(objs, obj)
		r := l.Region
		fmt.Fprintf(&script, "  . = %#x;\n  .tramp.%s : { %s(.tramp) }\n", r.TrampAddr(), l.Name, obj)
		fmt.Fprintf(&script, "  . = %#x;\n  .shared.%s : { %s(.text .text.*) %s(.rodata .rodata.*) }\n", r.SharedAddr(), l.Name, obj, obj)
		fmt.Fprintf(&script, "  . = %#x;\n  .private.%s : { %s(.data .data.*) }\n  .bss.%s : { %s(.bss .bss.* COMMON) }\n", r.PrivateAddr(), l.Name, obj, l.Name, obj)
	}
	script.WriteString("  /DISCARD/ : { *(.comment) *(.note*) *(.eh_frame*) }\n}\n")
	lds := filepath.Join(work, "link.lds")
	if err := os.WriteFile(lds, []byte(script.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(work, "linked")
	Run(t, "ld", append([]string{"-static", "-nostdlib", "-z", "max-page-size=4096", "-z", "noexecstack", "-T", lds, "-o", linked}, objs...)...)

	ef, err := elf.Open(linked)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	size := func(sec string) uint64 {
		if s := ef.Section(sec); s != nil {
			return s.Size
		}
		return 0
	}
	c := desc.Config{SchemaVersion: desc.SchemaVersion, Layout: "aligned", MemSize: 1 << 20, Cmdline: "test"}
	for i, l := range libs {
		bssEnd := l.Region.PrivateAddr() + size(".private."+l.Name)
		if s := ef.Section(".bss." + l.Name); s != nil && s.Size > 0 {
			bssEnd = s.Addr + s.Size
		}
		lib := desc.Library{
			Name: l.Name, Version: "1", App: l.App, Region: l.Region,
			Tramp:   desc.Tramp{Size: size(".tramp." + l.Name)},
			Shared:  desc.Shared{Size: pageUp(size(".shared." + l.Name))},
			Private: desc.Part{FileSize: size(".private." + l.Name), MemSize: pageUp(bssEnd - l.Region.PrivateAddr())},
		}
		if lib.Tramp.Size >= 16 {
			lib.Tramp.Slots = []desc.Slot{{Off: 8, Target: desc.Addr{Lib: i, Off: l.Region.TrampSize}}}
		}
		if lib.Shared.Size > 0 {
			lib.Shared.Segments = []desc.Segment{{Off: 0, Size: lib.Shared.Size, Prot: desc.ProtRX}}
		}
		c.Libraries = append(c.Libraries, lib)
		if l.App {
			c.Entry = desc.Addr{Lib: i, Off: ef.Entry - l.Region.Start}
		}
	}
	cfg, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := desc.Parse(cfg); err != nil {
		t.Fatalf("test image %s: description: %v", name, err)
	}
	cfgPath := filepath.Join(work, "unipool.json")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	Run(t, "objcopy", "--add-section", desc.SectionName+"="+cfgPath, "--set-section-flags", desc.SectionName+"=readonly,contents", linked, out)
	return out
}

// WriteMap records libs' regions as the library map of the pool at
// poolDir, making the directory.
func WriteMap(t testing.TB, poolDir string, libs ...Lib) {
	t.Helper()
	m := libmap.New()
	for _, l := range libs {
		m.Libraries = append(m.Libraries, libmap.Library{Name: l.Name, Regions: []libmap.Region{{Region: l.Region}}})
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(poolDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(poolDir, mapFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Run runs a command, failing t with its output if it fails.
func Run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// RandomFile writes n random bytes to a new file in dir.
func RandomFile(t testing.TB, dir string, n int) string {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	path := filepath.Join(dir, fmt.Sprintf("random-%d.bin", n))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
