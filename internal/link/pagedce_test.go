package link

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
)

// srcDead is a library with code and read-only data its image never
// reaches (each larger than two pages) beside a function the app calls.
const srcDead = `
const char dead_table[13000] = {[0 ... 12999] = 7};
static const char live_table[100] = {4, 5};
int dead_fn(int i) { return dead_table[i % sizeof dead_table]; }
__asm__(".section .text.dead_big,\"ax\",@progbits\n.globl dead_big\ndead_big:\n.fill 13000,1,0x90\nret\n");
int live_get(int i) { return live_table[i % sizeof live_table]; }
`

// srcUnused is a library nothing calls, with a non-allocated section of
// its own: ld's liveness pass removes that too, which must not cost the
// image its list (nothing of it is loaded).
const srcUnused = `
int unused_fn(int i) { return i * 3; }
__asm__(".section .ukinfo,\"\",@progbits\n.asciz \"unused library info\"\n");
`

const srcDeadApp = `
extern int puts(const char *);
extern int live_get(int);
int main(void) { puts("live"); return live_get(1); }
`

// An aligned image lists the pages that hold nothing its unikernel can
// reach (ld --gc-sections over its own objects and script): every page
// inside the unreferenced function and table, none that holds a byte of
// live code or data. A copying load leaves exactly those out; the
// image's loaded bytes are those of a link without the list.
func TestAlignedImageListsThePagesNothingReaches(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	dead := buildLib(t, dir, "ukdead", srcDead)
	unused := buildLib(t, dir, "ukunused", srcUnused)
	app := buildLib(t, dir, "appdce", srcDeadApp)
	objs, err := ObjectsFromPaths([]string{g.plat, g.boot, g.libc, g.alloc, dead, unused, app}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "image")
	res := mustLink(t, Options{Layout: LayoutAligned, Objects: objs, Output: out, MapPath: filepath.Join(dir, "map.json")})
	for _, w := range res.Warnings {
		t.Errorf("link warning: %s", w)
	}
	im, err := elfimage.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	ranges, err := im.DeadPages()
	if err != nil {
		t.Fatal(err)
	}
	sym := func(name string) uint64 {
		a, ok := im.Symbol(name)
		if !ok {
			t.Fatalf("no symbol %s", name)
		}
		return a
	}
	for _, d := range []struct {
		name string
		size uint64
	}{{"dead_big", 13001}, {"dead_table", 13000}} {
		a := sym(d.name)
		inside := 0
		for p := pageUp(a); p+abi.PageSize <= a+d.size; p += abi.PageSize {
			inside++
			if !elfimage.IsDead(ranges, p) {
				t.Errorf("page %#x inside %s [%#x,+%d) is not listed dead", p, d.name, a, d.size)
			}
		}
		if inside < 1 {
			t.Fatalf("%s at %#x has no whole page", d.name, a)
		}
	}
	for _, name := range []string{"live_get", "main", "puts", "_start", "boot_run", "plat_putc", "malloc", "memcpy"} {
		if a := sym(name); elfimage.IsDead(ranges, a) {
			t.Errorf("live %s at %#x lies on a page listed dead", name, a)
		}
	}

	// Without the list: the same loaded bytes, no section.
	plain := filepath.Join(dir, "image.plain")
	mustLink(t, Options{Layout: LayoutAligned, Objects: objs, Output: plain, MapPath: filepath.Join(dir, "map.json"), NoPageDCE: true})
	ip, err := elfimage.Open(plain)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := ip.DeadPages(); err != nil || r != nil || ip.ELF().Section(elfimage.DeadSectionName) != nil {
		t.Fatalf("NoPageDCE: ranges %v, %v, want no section", r, err)
	}
	segs, psegs := im.Segments(), ip.Segments()
	if len(segs) != len(psegs) {
		t.Fatalf("%d segments, %d without the list", len(segs), len(psegs))
	}
	nonzero, listed := 0, 0
	seen := map[uint64]bool{}
	for i, s := range segs {
		if s.Vaddr != psegs[i].Vaddr || s.FileSize != psegs[i].FileSize || s.MemSize != psegs[i].MemSize {
			t.Fatalf("segment %d differs from the link without the list", i)
		}
		for p := s.Vaddr &^ (abi.PageSize - 1); p < s.Vaddr+s.FileSize; p += abi.PageSize {
			if seen[p] {
				continue // (a page two segments share)
			}
			seen[p] = true
			a, _ := im.Page(p)
			b, _ := ip.Page(p)
			if !bytes.Equal(a, b) {
				t.Errorf("page %#x differs from the link without the list", p)
			}
			if !bytes.Equal(a, make([]byte, abi.PageSize)) {
				nonzero++
				if elfimage.IsDead(ranges, p) {
					listed++
				}
			}
		}
	}

	// A copying load reads no dead page, and every other non-zero one.
	pr, err := loader.PrepareReads(monitor.Unikernel{Name: "image", Image: out}, true)
	if err != nil {
		t.Fatal(err)
	}
	lay, err := pr.PlanLast(loader.Options{Load: monitor.LoadNaive})
	if err != nil {
		t.Fatal(err)
	}
	read := map[uint64]bool{}
	for _, r := range lay.Reads.Runs {
		for p := r.Addr &^ (abi.PageSize - 1); p < r.Addr+r.Len; p += abi.PageSize {
			if elfimage.IsDead(ranges, p) {
				t.Errorf("dead page %#x read", p)
			}
			read[p] = true
		}
	}
	if listed < 4 || len(read) != nonzero-listed {
		t.Errorf("%d pages read, %d listed dead of %d non-zero: want at least 4 dead, the rest read", len(read), listed, nonzero)
	}
}
