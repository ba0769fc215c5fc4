package distribution

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
	"github.com/unipool/unipool/internal/pool"
)

const pageMask = 0xfff

func pageUp(n uint64) uint64 { return (n + pageMask) &^ pageMask }

// testLib is one library of a test image: C source compiled with gcc and
// placed by a generated linker script at region, the way an aligned link
// places it: [.tramp][text+rodata][data+bss].
type testLib struct {
	name   string
	app    bool
	src    string
	region desc.Region
	// incbin, if set, is a file whose bytes go into the library's rodata
	// (to make large shared parts cheaply).
	incbin string
}

func region(start, tramp, shared, private uint64) desc.Region {
	return desc.Region{Start: start, TrampSize: tramp, SharedSize: shared, PrivateSize: private}
}

// Libraries of the test images. libA and libB are shared by hello and
// world at the same regions, so their shared parts must dedup.
var (
	testLibA = testLib{name: "libA", region: region(0x4000_0000, 0x1000, 0x4000, 0x2000), src: `
__attribute__((section(".tramp"), used)) const unsigned char tramp_a[24] = {0xff, 0x25, 1, 2, 3, 4, 5, 6, 7, 8};
static const char greeting[] = "hello from libA";
int a_counter = 42;
int a_scratch[256];
int a_len(void) { int n = 0; while (greeting[n]) n++; return n + a_counter + a_scratch[3]; }
`}
	testLibB = testLib{name: "libB", region: region(0x4001_0000, 0x1000, 0x2000, 0x1000), src: `
static const unsigned int table[64] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89};
unsigned int b_sum(int n) { unsigned s = 0; for (int i = 0; i < n && i < 64; i++) s += table[i]; return s; }
`}
	testLibC = testLib{name: "libC", region: region(0x4002_0000, 0x1000, 0x2000, 0x1000), src: `
long c_state = 7;
long c_next(void) { c_state = c_state * 6364136223846793005L + 1; return c_state; }
`}
)

func testApp(name, body string) testLib {
	return testLib{name: name, app: true, region: region(0x1000_0000, 0x1000, 0x10000, 0x4000), src: `
int a_len(void); unsigned int b_sum(int); long c_next(void);
char app_buf[4096];
int app_data = 5;
void _start(void) { ` + body + ` for (;;) __asm__ volatile("hlt"); }
`}
}

// buildImage compiles and links libs into an aligned-shaped image at
// dir/name with a .unipool section describing it, and returns its path.
func buildImage(t testing.TB, dir, name string, libs []testLib) string {
	t.Helper()
	work := filepath.Join(dir, name+".build")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("ENTRY(_start)\nSECTIONS {\n")
	var objs []string
	for _, l := range libs {
		src := filepath.Join(work, l.name+".c")
		code := l.src
		if l.incbin != "" {
			code += fmt.Sprintf("\n__asm__(\".section .rodata.big,\\\"a\\\"\\n.incbin \\\"%s\\\"\\n.previous\\n\");\n", l.incbin)
		}
		if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
		obj := filepath.Join(work, l.name+".o")
		run(t, "gcc", "-c", "-O2", "-ffreestanding", "-nostdlib", "-fno-pie", "-fno-asynchronous-unwind-tables",
			"-ffunction-sections", "-fdata-sections", "-fno-stack-protector", "-o", obj, src)
		objs = append(objs, obj)
		r := l.region
		fmt.Fprintf(&script, "  . = %#x;\n  .tramp.%s : { %s(.tramp) }\n", r.TrampAddr(), l.name, obj)
		fmt.Fprintf(&script, "  . = %#x;\n  .shared.%s : { %s(.text .text.*) %s(.rodata .rodata.*) }\n", r.SharedAddr(), l.name, obj, obj)
		fmt.Fprintf(&script, "  . = %#x;\n  .private.%s : { %s(.data .data.*) }\n  .bss.%s : { %s(.bss .bss.* COMMON) }\n", r.PrivateAddr(), l.name, obj, l.name, obj)
	}
	script.WriteString("  /DISCARD/ : { *(.comment) *(.note*) *(.eh_frame*) }\n}\n")
	lds := filepath.Join(work, "link.lds")
	if err := os.WriteFile(lds, []byte(script.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(work, "linked")
	run(t, "ld", append([]string{"-static", "-nostdlib", "-z", "max-page-size=4096", "-z", "noexecstack", "-T", lds, "-o", linked}, objs...)...)

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
		bssEnd := l.region.PrivateAddr() + size(".private."+l.name)
		if s := ef.Section(".bss." + l.name); s != nil && s.Size > 0 {
			bssEnd = s.Addr + s.Size
		}
		lib := desc.Library{
			Name: l.name, Version: "1", App: l.app, Region: l.region,
			Tramp:   desc.Tramp{Size: size(".tramp." + l.name)},
			Shared:  desc.Shared{Size: pageUp(size(".shared." + l.name))},
			Private: desc.Part{FileSize: size(".private." + l.name), MemSize: pageUp(bssEnd - l.region.PrivateAddr())},
		}
		if lib.Tramp.Size >= 16 {
			lib.Tramp.Slots = []desc.Slot{{Off: 8, Target: desc.Addr{Lib: i, Off: l.region.TrampSize}}}
		}
		if lib.Shared.Size > 0 {
			lib.Shared.Segments = []desc.Segment{{Off: 0, Size: lib.Shared.Size, Prot: desc.ProtRX}}
		}
		c.Libraries = append(c.Libraries, lib)
		if l.app {
			c.Entry = desc.Addr{Lib: i, Off: ef.Entry - l.region.Start}
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
	run(t, "objcopy", "--add-section", desc.SectionName+"="+cfgPath, "--set-section-flags", desc.SectionName+"=readonly,contents", linked, out)
	return out
}

// writeMap records libs' regions as the pool's library map.
func writeMap(t testing.TB, poolDir string, libs ...testLib) {
	t.Helper()
	m := libmap.New()
	for _, l := range libs {
		m.Libraries = append(m.Libraries, libmap.Library{Name: l.name, Regions: []libmap.Region{{Region: l.region}}})
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
	if err := os.WriteFile(filepath.Join(poolDir, pool.MapFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// randomFile writes n random bytes to a new file in dir.
func randomFile(t testing.TB, dir string, n int) string {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	path := filepath.Join(dir, fmt.Sprintf("random-%d.bin", n))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
