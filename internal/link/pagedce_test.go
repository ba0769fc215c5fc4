package link

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
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
// linkAlignedDead links paths aligned (a map of its own in dir, no
// warning), and returns their objects, the image and its dead-page list.
func linkAlignedDead(t *testing.T, dir string, paths ...string) ([]Object, *elfimage.Image, []elfimage.PageRange) {
	t.Helper()
	objs, err := ObjectsFromPaths(paths, nil, nil, "")
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
	return objs, im, ranges
}

func TestAlignedImageListsThePagesNothingReaches(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	dead := buildLib(t, dir, "ukdead", srcDead)
	unused := buildLib(t, dir, "ukunused", srcUnused)
	app := buildLib(t, dir, "appdce", srcDeadApp)
	objs, im, ranges := linkAlignedDead(t, dir, g.plat, g.boot, g.libc, g.alloc, dead, unused, app)
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
	pr, err := loader.PrepareReads(monitor.Unikernel{Name: "image", Image: filepath.Join(dir, "image")}, true)
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

// srcStrs is a library of string literals (SHF_MERGE sections, which ld
// merges: one copy of each string, a string that ends another stored as
// its tail where its alignment allows), each longer than two pages: one
// only a dead function refers to, one only a dead table holds, one the
// live strs_sum reaches at an offset (and walks back from), one a live
// table holds, and one the live code refers to that ld stores as the
// tail of one only a dead function refers to. strs_sum hashes every byte
// the live code reads.
const srcStrs = `
#define K1 "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+/"
#define K8 K1 K1 K1 K1 K1 K1 K1 K1
#define K64 K8 K8 K8 K8 K8 K8 K8 K8
extern int puts(const char *);
int strs_dead(void) { return puts("D" K64 K64 "dead end"); }
int strs_tail_dead(void) { return puts("T-prefix" K64 K64 K64 "tail end"); }
const char *const strs_dead_table[] = {"d" K64 K64 "dead table end"};
const char *strs_dead_get(int i) { return strs_dead_table[i]; }
const char *const strs_table[] = {"t" K64 K64 "table end", "u"};
volatile int strs_i = 0;
__attribute__((noipa)) const char *strs_offset(void) { return "O" K64 K64 "offset end" + 6000; }
static unsigned long hash(const char *s, unsigned long h) {
	while (*s) h = h * 31 + (unsigned char)*s++;
	return h;
}
unsigned long strs_sum(void) {
	unsigned long h = hash(strs_table[strs_i + 1], 0);
	h = hash(strs_table[strs_i], h);
	h = hash(K64 "tail end", h);
	return hash(strs_offset() - 6000, h);
}
`

// strsSum is what srcStrs's strs_sum returns.
func strsSum() uint64 {
	k1 := "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+/"
	k64 := strings.Repeat(k1, 64)
	var h uint64
	for _, s := range []string{"u", "t" + k64 + k64 + "table end", k64 + "tail end", "O" + k64 + k64 + "offset end"} {
		for _, c := range []byte(s) {
			h = h*31 + uint64(c)
		}
	}
	return h
}

const srcStrsApp = `
extern void put_hex(unsigned long);
extern unsigned long strs_sum(void);
int main(void) { put_hex(strs_sum()); return 0; }
`

// String literals and other merged constants are dead or live by what
// refers to them, not by the input section ld's map places them in: a
// string only dead code refers to is left out, a string the live code
// reaches (at an offset too, through a table too) is kept whole, and so
// is a string ld stores inside one that only dead code refers to.
func TestAlignedImageListsTheStringsNothingReaches(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	strs := buildLib(t, dir, "ukstrs", srcStrs)
	app := buildLib(t, dir, "appstrs", srcStrsApp)
	_, im, ranges := linkAlignedDead(t, dir, g.plat, g.boot, g.libc, g.alloc, strs, app)
	// Where each string is: found by its bytes.
	find := func(b string) uint64 {
		t.Helper()
		var at []uint64
		for _, s := range im.Segments() {
			data, err := im.ReadAt(s.Vaddr, s.FileSize)
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; ; {
				i := bytes.Index(data[off:], []byte(b))
				if i < 0 {
					break
				}
				at = append(at, s.Vaddr+uint64(off+i))
				off += i + 1
			}
		}
		if len(at) != 1 {
			t.Fatalf("%q is at %#x in the image, want one place", b[:min(len(b), 20)], at)
		}
		return at[0]
	}
	const k = 64 * 64 // K64's length
	k1 := "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+/"
	long := find("T-prefix" + k1)
	tail := find("tail end\x00") + 9 - (k + 9) // K64 "tail end", stored in the long one
	if tail != long+8+2*k {
		t.Fatalf("the live string K64 \"tail end\" at %#x is not the tail of the dead one at %#x: ld did not merge them", tail, long)
	}
	table := find("t" + k1)
	cases := []struct {
		what   string
		lo, hi uint64
		dead   bool
	}{
		{"only a dead function's", find("D" + k1), find("dead end\x00") + 9, true},
		{"only a dead table's", find("d" + k1), find("dead table end\x00") + 15, true},
		{"the dead one's head, before the live tail", long, tail, true},
		{"the live tail", tail, tail + k + 9, false},
		{"reached at an offset", find("O" + k1), find("offset end\x00") + 11, false},
		{"a live table's", table, table + 1 + 2*k + 10, false},
	}
	for _, s := range cases {
		if s.dead {
			inside := 0
			for p := pageUp(s.lo); p+abi.PageSize <= s.hi; p += abi.PageSize {
				inside++
				if !elfimage.IsDead(ranges, p) {
					t.Errorf("page %#x inside the string %s [%#x,%#x) is not listed dead", p, s.what, s.lo, s.hi)
				}
			}
			if inside < 1 {
				t.Fatalf("the string %s at [%#x,%#x) has no whole page", s.what, s.lo, s.hi)
			}
			continue
		}
		for p := s.lo &^ (abi.PageSize - 1); p < s.hi; p += abi.PageSize {
			if elfimage.IsDead(ranges, p) {
				t.Errorf("page %#x holds a byte of the string %s [%#x,%#x) but is listed dead", p, s.what, s.lo, s.hi)
			}
		}
	}
	if a, ok := im.Symbol("strs_sum"); !ok || elfimage.IsDead(ranges, a) {
		t.Errorf("strs_sum at %#x (%v) lies on a page listed dead", a, ok)
	}
}

// extent is a referenced string's or constant's bytes in a gap of
// merged contents.
func TestMergedExtent(t *testing.T) {
	g := &gap{span: span{0x1000, 0x1000 + 24}, data: []byte("\x00\x00abc\x00hello\x00\x00\x00A\x00B\x00\x00\x00\x01\x02\x03\x04\x05")}
	for _, c := range []struct {
		k          mergeKind
		a, b       uint64
		back       bool
		start, end uint64
	}{
		{mergeKind{1, true}, 0x1002, 0x1002, false, 0x1002, 0x1006},  // "abc\0"
		{mergeKind{1, true}, 0x1003, 0x1003, false, 0x1003, 0x1006},  // its tail "bc\0"
		{mergeKind{1, true}, 0x1003, 0x1003, true, 0x1002, 0x1006},   // the string holding it
		{mergeKind{1, true}, 0x1004, 0x1008, true, 0x1002, 0x100c},   // through "hello\0"
		{mergeKind{2, true}, 0x100e, 0x100e, false, 0x100e, 0x1014},  // "A\0B\0" in 2-byte characters, and its zero
		{mergeKind{1, true}, 0x1015, 0x1015, true, 0x1014, 0x1018},   // no zero before the gap's end
		{mergeKind{4, false}, 0x1014, 0x1014, false, 0x1014, 0x1018}, // an element
		{mergeKind{4, false}, 0x1016, 0x1016, true, 0x1013, 0x1018},  // the elements that may hold it
		{mergeKind{0, false}, 0x1010, 0x1010, false, 0x1000, 0x1018}, // no size: everything
	} {
		if s, e := g.extent(c.k, c.a, c.b, c.back); s != c.start || e != c.end {
			t.Errorf("extent(%+v, %#x, %#x, %v) = [%#x,%#x), want [%#x,%#x)", c.k, c.a, c.b, c.back, s, e, c.start, c.end)
		}
	}
	if got := holes(span{10, 100}, []span{{50, 60}, {0, 20}, {55, 70}, {95, 120}}); len(got) != 2 || got[0] != (span{20, 50}) || got[1] != (span{70, 95}) {
		t.Errorf("holes = %v", got)
	}
}

// An aligned image run as a plain image (a copying load, which leaves
// out its dead pages) reads every string its code reaches: the same hash
// of them as the packed image's, and as computed here.
func TestACopyingLoadKeepsTheStringsTheCodeReaches(t *testing.T) {
	needToolchain(t)
	bin := buildCLI(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	strs := buildLib(t, dir, "ukstrs", srcStrs)
	app := buildLib(t, dir, "appstrs", srcStrsApp)
	objs := []string{g.plat, g.boot, g.libc, g.alloc, strs, app}
	want := runResult{Output: fmt.Sprintf("%x\n", strsSum())}
	packed := filepath.Join(dir, "strs.packed")
	cli(t, bin, false, append([]string{"link", "--layout", "packed", "-o", packed}, objs...)...)
	got := runJSON(t, bin, "--image", packed)
	if got.Error != "" && strings.Contains(got.Error, "ptrace") {
		t.Skipf("the process monitor cannot run here: %s", got.Error)
	}
	if got != want {
		t.Fatalf("packed image: %+v, want %+v", got, want)
	}
	img := filepath.Join(dir, "strs")
	cli(t, bin, false, append([]string{"link", "--layout", "aligned", "--map", filepath.Join(dir, "map.json"), "-o", img}, objs...)...)
	if m := regexp.MustCompile(`copying load: (\d+) of (\d+) non-zero pages \((\d+) dead`).FindStringSubmatch(cli(t, bin, false, "inspect", img)); m == nil || m[3] == "0" {
		t.Fatalf("inspect reports no dead page of the aligned image")
	}
	for _, extra := range [][]string{nil, {"--load", "naive"}} {
		if got := runJSON(t, bin, append([]string{"--image", img}, extra...)...); got != want {
			t.Errorf("aligned image copied %v: %+v, want %+v", extra, got, want)
		}
	}
}
