package link

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/libmap"
)

func TestLinkRejectsBadInputNamingTheFileAndSymbol(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	notELF := write("libtext.o", []byte("this is not an object\n"))
	obj, _ := os.ReadFile(g.libc)
	arm := append([]byte(nil), obj...)
	arm[18] = byte(elf.EM_AARCH64)
	wrongArch := write("libarm.o", arm)
	exe := append([]byte(nil), obj...)
	exe[16] = byte(elf.ET_EXEC)
	notRel := write("libexe.o", exe)
	undef := buildLib(t, dir, "uses", `extern int nowhere(void); int uses(void) { return nowhere(); }`)
	dup := buildLib(t, dir, "dupputs", `int puts(const char *s) { return 0; }`)
	truncated := write("libshort.o", obj[:100])

	base := g.objects(false)
	with := func(extra string) []Object {
		return append(append([]Object(nil), base...), Object{Path: extra, Name: NameFromPath(extra)})
	}
	cases := []struct {
		name string
		objs []Object
		want []string
	}{
		{"not ELF", with(notELF), []string{notELF, "not an ELF file"}},
		{"wrong architecture", with(wrongArch), []string{wrongArch, "EM_AARCH64"}},
		{"not relocatable", with(notRel), []string{notRel, "ET_EXEC"}},
		{"truncated", with(truncated), []string{truncated}},
		{"undefined symbol", with(undef), []string{`undefined symbol "nowhere"`, undef}},
		{"duplicate symbol", with(dup), []string{`duplicate symbol "puts"`, g.libc, dup}},
		{"missing file", with(filepath.Join(dir, "libnone.o")), []string{"libnone.o", "no such file"}},
	}
	for _, layout := range Layouts {
		for _, tc := range cases {
			out := filepath.Join(dir, "out-"+layout)
			mapPath := filepath.Join(dir, "map-"+layout+".json")
			_, err := Link(context.Background(), Options{Layout: layout, Objects: tc.objs, Output: out, MapPath: mapPath})
			if err == nil {
				t.Errorf("%s/%s: linked", layout, tc.name)
				continue
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s/%s: error %q does not say %q", layout, tc.name, err, w)
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s/%s: a failed link left %s", layout, tc.name, out)
			}
			if _, err := os.Stat(mapPath); err == nil {
				t.Errorf("%s/%s: a failed link wrote the map", layout, tc.name)
			}
		}
	}
}

func TestCorruptedMapFailsTheLinkNamingTheMap(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	mapPath := filepath.Join(dir, "map.json")
	mustLink(t, Options{Layout: LayoutAligned, Objects: g.objects(false), Output: filepath.Join(dir, "a"), MapPath: mapPath})
	good, _ := os.ReadFile(mapPath)
	bad := good[:len(good)/2]
	if err := os.WriteFile(mapPath, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "b")
	_, err := Link(context.Background(), Options{Layout: LayoutAligned, Objects: g.objects(true), Output: out, MapPath: mapPath})
	if err == nil || !strings.Contains(err.Error(), mapPath) || !strings.Contains(err.Error(), "corrupted") {
		t.Fatalf("link against a truncated map: %v", err)
	}
	if after, _ := os.ReadFile(mapPath); string(after) != string(bad) {
		t.Error("the failed link rewrote the corrupted map")
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("the failed link wrote its image")
	}
}

// (Library by library: groups, DefaultGroups, are tested in group_test.go.)
func TestLinkingNewLibrariesNeverMovesOldRegions(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	mapPath := filepath.Join(dir, "map.json")
	first := mustLink(t, Options{Layout: LayoutAligned, Objects: g.objects(false), Output: filepath.Join(dir, "a"), MapPath: mapPath, Groups: noGroups})
	m1, err := libmap.Load(mapPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.NewRegions) != 4 {
		t.Errorf("first link made regions for %v, want the 4 non-app libraries", first.NewRegions)
	}
	// A second image adds ukrand and a libc grown far past its slack.
	bigLibc := filepath.Join(dir, "big")
	os.Mkdir(bigLibc, 0o755)
	grown := buildLib(t, bigLibc, "libc", srcLibc+`const char libc_big_table[256 << 10] = {1};`)
	objs := g.objects(true)
	for i := range objs {
		if objs[i].Name == "libc" {
			objs[i].Path = grown
		}
	}
	second := mustLink(t, Options{Layout: LayoutAligned, Objects: objs, Output: filepath.Join(dir, "b"), MapPath: mapPath, Groups: noGroups})
	if strings.Join(second.NewRegions, ",") != "libc,ukrand" {
		t.Errorf("second link made regions for %v, want libc (outgrown) and ukrand", second.NewRegions)
	}
	m2, err := libmap.Load(mapPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range m1.Libraries {
		l2 := m2.Library(l.Name)
		for i, r := range l.Regions {
			if l2 == nil || len(l2.Regions) <= i || l2.Regions[i].Region != r.Region {
				t.Errorf("library %s: region %d moved or vanished", l.Name, i)
			}
		}
	}
	libc := m2.Library("libc")
	if len(libc.Regions) != 2 || libc.Regions[1].Start < m1.End() {
		t.Errorf("grown libc regions %+v, want a second one past the old map end %#x", libc.Regions, m1.End())
	}
	// Each image's description matches the map, and the old image
	// keeps the old libc region.
	for _, img := range []string{"a", "b"} {
		im, err := elfimage.Open(filepath.Join(dir, img))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := im.Config()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range cfg.Libraries {
			if l.App {
				if l.Region.Start != abi.AppRegionBase {
					t.Errorf("%s: app at %#x", img, l.Region.Start)
				}
				continue
			}
			if l.PackPage {
				continue // a page of a pack, not a library
			}
			found := false
			for _, r := range m2.Library(l.Name).Regions {
				found = found || l.MapRegion().Within(r.Region)
			}
			if !found {
				t.Errorf("%s: library %s region %+v (moved by %d) is not in the map", img, l.Name, l.Region, l.Shift)
			}
			if l.Name == "libc" && img == "a" && !l.MapRegion().Within(libc.Regions[0].Region) {
				t.Errorf("old image's libc is not in the first libc region")
			}
		}
	}
	// Linking the first image again leaves the map file byte for byte as
	// it was (the pack regions' use counts, a placement hint, grow in
	// the file beside it).
	before, _ := os.ReadFile(mapPath)
	again := mustLink(t, Options{Layout: LayoutAligned, Objects: g.objects(false), Output: filepath.Join(dir, "a2"), MapPath: mapPath, Groups: noGroups})
	after, _ := os.ReadFile(mapPath)
	if len(again.NewRegions) != 0 || string(before) != string(after) {
		t.Errorf("relinking a known image changed the map file (new regions %v)", again.NewRegions)
	}
	if m, err := libmap.Load(mapPath); err != nil || !usesPacks(m) {
		t.Errorf("the map (%v) has no pack region that links used: the test checks nothing about use counts", err)
	}
	a1, _ := os.ReadFile(filepath.Join(dir, "a"))
	a2, _ := os.ReadFile(filepath.Join(dir, "a2"))
	if string(a1) != string(a2) {
		t.Error("linking the same objects twice gave different images")
	}
}

func TestConcurrentAlignedLinksShareOneConsistentMap(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	mapPath := filepath.Join(dir, "map.json")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each link brings its own extra library.
			sub := filepath.Join(dir, fmt.Sprint(i))
			os.Mkdir(sub, 0o755)
			extra := buildLib(t, sub, fmt.Sprintf("extra%d", i), fmt.Sprintf("int extra%d(int x) { return x * %d; }", i, i+2))
			objs := append(g.objects(i%2 == 0), Object{Path: extra, Name: fmt.Sprintf("extra%d", i)})
			_, errs[i] = Link(context.Background(), Options{Layout: LayoutAligned, Objects: objs, Output: filepath.Join(sub, "image"), MapPath: mapPath, Groups: noGroups})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("link %d: %v", i, err)
		}
	}
	m, err := libmap.Load(mapPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.Libraries); n != 5+8 {
		t.Errorf("%d libraries in the map, want 13", n)
	}
	for i := range 8 {
		im, err := elfimage.Open(filepath.Join(dir, fmt.Sprint(i), "image"))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := im.Config()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range cfg.Libraries {
			if l.App || l.PackPage {
				continue
			}
			// A small library used by several links may also have a
			// copy in a later link's pack (placed by co-use): any of
			// its regions will do, none other.
			found := false
			for _, r := range m.Library(l.Name).Regions {
				found = found || l.MapRegion().Within(r.Region) && r.Pack == l.Pack
			}
			if !found {
				t.Errorf("image %d: %s at %+v (moved by %d), map says %+v", i, l.Name, l.Region, l.Shift, m.Library(l.Name).Regions)
			}
		}
	}
}

// The aligned layout places what real objects carry: image-wide arrays
// and TLS in the app region, COMDAT groups once, collection sections
// with __start_/__stop_, relro data in the private part, and each
// library's parts inside its region.
func TestAlignedLayoutPlacesEverySectionKind(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	comdat := `__asm__(".section .text.shared_helper,\"axG\",@progbits,shared_helper,comdat\n.globl shared_helper\n.weak shared_helper\nshared_helper: ret\n");`
	a := buildLib(t, dir, "tlsa", comdat+`
__thread int tls_a = 3;
__thread int tls_a_zero;
int common_a;
struct item { const char *name; } __attribute__((aligned(8)));
__attribute__((section("unipool_items"), used)) static const struct item item_a = {"a"};
extern const struct item __start_unipool_items[], __stop_unipool_items[];
const char *const relro_a[] = {"x", "y"};
__attribute__((constructor)) static void ctor_a(void) { common_a++; }
void shared_helper(void);
extern void maybe_hook(void) __attribute__((weak));  /* defined nowhere: no PLT for it */
extern int weak_default(void) __attribute__((weak));  /* weakly defined in tlsb */
int count_items(void) { if (maybe_hook) maybe_hook(); shared_helper(); weak_default(); return (int)(__stop_unipool_items - __start_unipool_items) + tls_a + tls_a_zero; }
`)
	b := buildLib(t, dir, "tlsb", comdat+`
__thread long tls_b = 5;
struct item { const char *name; } __attribute__((aligned(8)));
__attribute__((section("unipool_items"), used)) static const struct item item_b = {"b"};
long ctor_b_ran;
__attribute__((constructor)) static void ctor_b(void) { ctor_b_ran = 1; }
void shared_helper(void);
long use_b(void) { shared_helper(); return tls_b; }
__attribute__((weak)) int weak_default(void) { return 11; }
`)
	objs := append(g.objects(false), Object{Path: a, Name: "tlsa"}, Object{Path: b, Name: "tlsb"})
	out := filepath.Join(dir, "image")
	res := mustLink(t, Options{Layout: LayoutAligned, Objects: objs, Output: out, MapPath: filepath.Join(dir, "map.json")})
	im, err := elfimage.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	f := im.ELF()
	cfg := res.Config
	app := cfg.Libraries[slicesIndex(cfg, "apphello")]
	inApp := func(name string) {
		t.Helper()
		s := f.Section(name)
		if s == nil {
			t.Errorf("no output section %s", name)
			return
		}
		if s.Addr < app.Region.PrivateAddr() || s.Addr+s.Size > app.Region.PrivateEnd() {
			t.Errorf("%s at [%#x,+%#x) is not in the app's private part [%#x,%#x)", name, s.Addr, s.Size, app.Region.PrivateAddr(), app.Region.PrivateEnd())
		}
	}
	for _, s := range []string{".init_array", ".tdata", ".tbss", "unipool_items"} {
		inApp(s)
	}
	if ia := f.Section(".init_array"); ia == nil || ia.Size != 8*3 {
		t.Errorf("init_array holds %v, want the 3 constructors (alloc, tlsa, tlsb)", ia)
	}
	if items := f.Section("unipool_items"); items == nil || items.Size != 16 {
		t.Errorf("unipool_items %v, want both items", items)
	}
	if cfg.TLS == nil || cfg.TLS.FileSize != 16 || cfg.TLS.MemSize < 20 {
		t.Errorf("TLS %+v, want one template with tls_a and tls_b (and tbss)", cfg.TLS)
	}
	var tlsSegs int
	for _, p := range f.Progs {
		if p.Type == elf.PT_TLS {
			tlsSegs++
		}
	}
	if tlsSegs != 1 {
		t.Errorf("%d PT_TLS, want 1", tlsSegs)
	}
	syms, _ := im.Symbols()
	helpers := 0
	for _, s := range syms {
		if s.Name == "shared_helper" {
			helpers++
		}
	}
	if helpers != 1 {
		t.Errorf("COMDAT shared_helper defined %d times", helpers)
	}
	// Each library's symbols: code in its shared part, data in its private part.
	for _, l := range cfg.Libraries {
		for _, s := range syms {
			if s.Section == elf.SHN_UNDEF || s.Section >= elf.SectionIndex(len(f.Sections)) || elf.ST_TYPE(s.Info) == elf.STT_TLS {
				continue
			}
			sec := f.Sections[s.Section]
			if s.Name == "" || !strings.HasSuffix(sec.Name, "."+l.Name) || strings.HasPrefix(sec.Name, ".tramp.") || sec.Flags&elf.SHF_ALLOC == 0 {
				continue
			}
			r := l.Region
			switch {
			case sec.Flags&elf.SHF_WRITE != 0 && (s.Value < r.PrivateAddr() || s.Value >= r.PrivateEnd()):
				t.Errorf("%s: writable %s at %#x outside its private part", l.Name, s.Name, s.Value)
			case sec.Flags&elf.SHF_WRITE == 0 && (s.Value < r.SharedAddr() || s.Value >= r.SharedAddr()+r.SharedSize):
				t.Errorf("%s: read-only %s at %#x outside its shared part", l.Name, s.Name, s.Value)
			}
		}
	}
	relro, ok := im.Symbol("relro_a")
	tlsa := cfg.Libraries[slicesIndex(cfg, "tlsa")]
	if !ok || relro < tlsa.Region.PrivateAddr() {
		t.Errorf("relro_a (absolute addresses) at %#x, want tlsa's private part from %#x", relro, tlsa.Region.PrivateAddr())
	}
	if !strings.HasPrefix(res.Mode, "pie") {
		t.Errorf("mode %q, want pie for PIE objects", res.Mode)
	}
	if a, ok := im.Symbol("weak_default"); !ok || a == 0 {
		t.Errorf("weak_default at %#x: its weak definition was lost", a)
	}
}

func slicesIndex(cfg *desc.Config, name string) int {
	for i, l := range cfg.Libraries {
		if l.Name == name {
			return i
		}
	}
	panic("no library " + name)
}

// Objects compiled without -fpie (Unikraft's default) carry absolute
// 32-bit relocations: the link falls back to -no-pie and still works.
func TestNonPICObjectsLinkPositionDependent(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	flags := append([]string{"-fno-pie", "-mcmodel=kernel"}, guestCFlags[:3]...)
	flags = append(flags, "-mno-red-zone", "-ffunction-sections", "-fdata-sections", "-fno-stack-protector")
	abs := buildLib(t, dir, "nonpic", `int table[4] = {1,2,3,4}; int *nonpic(int i) { return &table[i]; }`, flags...)
	objs := append(g.objects(false), Object{Path: abs, Name: "nonpic"})
	res := mustLink(t, Options{Layout: LayoutAligned, Objects: objs, Output: filepath.Join(dir, "image"), MapPath: filepath.Join(dir, "map.json")})
	if !strings.HasPrefix(res.Mode, "no-pie") || !strings.Contains(res.Mode, abs) {
		t.Errorf("mode %q, want no-pie naming %s", res.Mode, abs)
	}
}

func TestObjectNamesHintsAndApp(t *testing.T) {
	if n := NameFromPath("build/libukboot.o"); n != "ukboot" {
		t.Errorf("NameFromPath = %q", n)
	}
	if n := NameFromPath("x/zlib.o"); n != "zlib" {
		t.Errorf("NameFromPath = %q", n)
	}
	objs, err := ObjectsFromPaths([]string{"b/libukboot.o", "b/libapphello.o", "b/x.o"},
		map[string]string{"x.o": "zlib"}, []Hint{{Name: "zlib", Version: "1.2.13", Origin: "zlib1g-dev"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !objs[1].App || objs[1].Origin != OriginApp || objs[2].Name != "zlib" || objs[2].Version != "1.2.13" || objs[2].Origin != "zlib1g-dev" {
		t.Errorf("objects %+v", objs)
	}
	if _, err := ObjectsFromPaths([]string{"a/libc.o", "b/libc.o"}, nil, nil, ""); err == nil {
		t.Error("two objects named libc accepted")
	}
	if _, err := ParseHint("novalue"); err == nil {
		t.Error("hint without = accepted")
	}
}

func FuzzParseObject(f *testing.F) {
	if _, err := os.Stat("/usr/bin/gcc"); err == nil {
		dir := f.TempDir()
		lib := buildLib(f, dir, "seed", srcLibc)
		if data, err := os.ReadFile(lib); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := parseObject(Object{Path: "fuzz.o", Name: "fuzz"}, data, nil)
		if err != nil {
			return
		}
		checkSymbols([]*object{o}, nil)
		chooseMode([]*object{o})
	})
}

// noGroups links every library as a unit of its own.
var noGroups = [][]string{}

// usesPacks says whether a link used some pack region of m.
func usesPacks(m *libmap.Map) bool {
	for _, l := range m.Libraries {
		for _, r := range l.Regions {
			if r.Pack != 0 && r.Uses > 0 {
				return true
			}
		}
	}
	return false
}
