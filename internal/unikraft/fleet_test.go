package unikraft_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/link"
	"github.com/unipool/unipool/internal/unikraft"
)

// libPages is where one library's loaded input sections went in an image,
// and the digest of every page they touch.
type libPages struct {
	sections []string // "name@addr+size", sorted
	pages    map[uint64][32]byte
}

// linkConfig links one built configuration's app in layout (aligned
// against mapPath) and returns, per library, its sections and pages.
func linkConfig(t *testing.T, b *unikraft.ConfigBuild, app, layout, mapPath, out string) (map[string]libPages, map[string][32]byte) {
	t.Helper()
	libs, sums, _ := linkWithApp(t, b, app, b.Apps[app].Object, layout, mapPath, out)
	return libs, sums
}

// linkWithApp links the configuration's libraries with appObj as the app
// named app, like linkConfig, and also returns the link's result.
func linkWithApp(t *testing.T, b *unikraft.ConfigBuild, app, appObj, layout, mapPath, out string) (map[string]libPages, map[string][32]byte, *link.Result) {
	t.Helper()
	var objs []link.Object
	sums := map[string][32]byte{}
	for _, p := range b.Libraries {
		objs = append(objs, link.Object{Path: p, Origin: "unikraft"})
	}
	objs = append(objs, link.Object{Path: appObj, Name: app, App: true, Origin: link.OriginApp})
	for i := range objs {
		data, err := os.ReadFile(objs[i].Path)
		if err != nil {
			t.Fatal(err)
		}
		if objs[i].Name == "" {
			objs[i].Name = link.NameFromPath(objs[i].Path)
		}
		sums[objs[i].Name] = sha256.Sum256(data)
	}
	res, err := link.Link(context.Background(), link.Options{Layout: layout, Objects: objs, Fragments: b.Fragments, MapPath: mapPath, Output: out, Trace: true})
	if err != nil {
		t.Fatalf("link %s: %v", layout, err)
	}
	im, err := elfimage.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	// Only read-only segments are shared between images (their pages
	// come from the shared blobs); the private part (data, bss, the
	// trampoline slots) is each instance's own copy anyway.
	shared := map[uint64]bool{}
	for _, sg := range im.Segments() {
		if sg.Flags&elf.PF_W == 0 {
			for p := sg.Vaddr &^ (abi.PageSize - 1); p < sg.End(); p += abi.PageSize {
				shared[p] = true
			}
		}
	}
	libs := map[string]libPages{}
	for _, s := range res.Inputs {
		if s.Size == 0 || s.Addr < abi.PageSize || imageWide(s.Output) {
			continue // empty, not loaded, or an entry of an image-wide table
		}
		lp := libs[s.Library]
		if lp.pages == nil {
			lp.pages = map[uint64][32]byte{}
		}
		lp.sections = append(lp.sections, fmt.Sprintf("%s@%#x+%#x", s.Name, s.Addr, s.Size))
		for p := s.Addr &^ (abi.PageSize - 1); p < s.Addr+s.Size; p += abi.PageSize {
			if page, ok := im.Page(p); ok && shared[p] {
				lp.pages[p] = sha256.Sum256(page)
			}
		}
		libs[s.Library] = lp
	}
	for _, lp := range libs {
		sort.Strings(lp.sections)
	}
	return libs, sums, res
}

// TestInsertingUkrandomIntoAUnikraftConfigurationMovesNoOtherLibrarysPages
// is the poster's ukrand case on real Unikraft objects: the same app built
// by Unikraft's make without and with CONFIG_LIBUKRANDOM, both linked
// aligned against one library map. Every library whose object is the same
// in both builds keeps every loaded section at the same address; packed,
// the insertion moves libraries that did not change. Aligned, their
// read-only (shared) pages are byte-identical too: also those of kvmplat
// and ukintctlr, whose code names their own entries of Unikraft's
// image-wide tables (.uk_event_*), which lie in each image's app region
// and move when a table grows; the trampoline pass routes those
// references through the library's slots.
func TestInsertingUkrandomIntoAUnikraftConfigurationMovesNoOtherLibrarysPages(t *testing.T) {
	without := unikraft.FleetBuild(t, nil, "appalloc", "apphello") // the CLI test's configuration too
	with := unikraft.FleetBuild(t, map[string]string{"CONFIG_LIBUKRANDOM": "y"}, "apphello")
	has := func(b *unikraft.ConfigBuild, lib string) bool {
		for _, p := range b.Libraries {
			if filepath.Base(p) == "lib"+lib+".o" {
				return true
			}
		}
		return false
	}
	if has(without, "ukrandom") || !has(with, "ukrandom") {
		t.Fatalf("want ukrandom only in the second build: %v / %v", without.Libraries, with.Libraries)
	}
	dir := t.TempDir()
	mapPath := filepath.Join(dir, "map.json")
	for _, layout := range []string{link.LayoutAligned, link.LayoutPacked} {
		a, sa := linkConfig(t, without, "apphello", layout, mapPath, filepath.Join(dir, layout+"-without.elf"))
		b, sb := linkConfig(t, with, "apphello", layout, mapPath, filepath.Join(dir, layout+"-with.elf"))
		var same, changed, moved, differ []string
		total := 0
		for lib, pa := range a {
			pb, ok := b[lib]
			if !ok {
				t.Fatalf("%s: library %s is gone with ukrandom", layout, lib)
			}
			if sa[lib] != sb[lib] {
				changed = append(changed, lib)
				continue
			}
			same = append(same, lib)
			if strings.Join(pa.sections, " ") != strings.Join(pb.sections, " ") {
				moved = append(moved, lib)
				continue
			}
			if layout != link.LayoutAligned {
				continue
			}
			diff := 0
			for p, h := range pa.pages {
				if pb.pages[p] != h {
					diff++
				}
			}
			total += len(pa.pages)
			if diff == 0 {
				continue
			}
			// Not moved, but bytes differ. Libraries whose code names
			// their own entries of Unikraft's image-wide tables (kvmplat's
			// trap handlers, ukintctlr's irq event), which lie in each
			// image's app region, reach them through their trampoline
			// slots, so no shared byte depends on the tables.
			differ = append(differ, fmt.Sprintf("%s: %d of %d pages", lib, diff, len(pa.pages)))
			t.Errorf("aligned: library %s (same object, same addresses) has %d of %d shared pages different with ukrandom; its code refers to image-wide tables through %v",
				lib, diff, len(pa.pages), tableRefs(t, libObject(with, lib)))
		}
		sort.Strings(same)
		sort.Strings(changed)
		sort.Strings(moved)
		t.Logf("%s: %d libraries with the same object (%d of them moved), objects changed by CONFIG_LIBUKRANDOM: %v; moved: %v",
			layout, len(same), len(moved), changed, moved)
		if layout == link.LayoutAligned {
			t.Logf("aligned: of %d pages of unchanged libraries, different bytes at the same address: %v", total, differ)
		}
		if len(same) < len(a)/2 {
			t.Errorf("%s: only %d of %d libraries kept their object: %v changed", layout, len(same), len(a), changed)
		}
		switch layout {
		case link.LayoutAligned:
			if len(moved) > 0 {
				t.Errorf("aligned: inserting ukrandom moved libraries whose object did not change: %v", moved)
			}
		case link.LayoutPacked:
			// The claim can fail: packed, it does.
			if len(moved) == 0 {
				t.Errorf("packed: inserting ukrandom moved nothing; the aligned check above proves nothing")
			}
		}
	}
}

// TestAnAppsCodePagesDoNotMoveWithTheImageWideTables: an app whose code
// refers to its own .bss and .data, linked aligned (one map) with two
// Unikraft configurations whose image-wide tables (Unikraft's inittab,
// libinfo, ... in the app region's private part) differ in size. The app
// object is the same in both, so its data and bss keep their addresses and
// every shared page of its code is byte-identical: the image-wide sections
// lie after the app's own private data, not between its data and bss.
func TestAnAppsCodePagesDoNotMoveWithTheImageWideTables(t *testing.T) {
	without := unikraft.FleetBuild(t, nil, "appalloc", "apphello") // the ukrandom test's configurations
	with := unikraft.FleetBuild(t, map[string]string{"CONFIG_LIBUKRANDOM": "y"}, "apphello")
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skipf("needs gcc: %v", err)
	}
	dir := t.TempDir()
	appObj := filepath.Join(dir, "appbss.o")
	// Unikraft's x86_64 code generation (Makefile.uk, arch/x86/x86_64/Makefile.uk).
	cc := exec.Command("gcc", "-c", "-O2", "-m64", "-mno-red-zone", "-fno-asynchronous-unwind-tables", "-fno-PIC",
		"-fno-stack-protector", "-ffreestanding", "-fno-builtin", "-nostdinc", "-fno-common", "-o", appObj, "testdata/appbss.c")
	if out, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cc, err, out)
	}
	mapPath := filepath.Join(dir, "map.json")
	a, _, ra := linkWithApp(t, without, "appbss", appObj, link.LayoutAligned, mapPath, filepath.Join(dir, "without.elf"))
	b, _, rb := linkWithApp(t, with, "appbss", appObj, link.LayoutAligned, mapPath, filepath.Join(dir, "with.elf"))

	// The claim has teeth only if the image-wide part differs in size.
	wa, wb := imageWideBytes(t, filepath.Join(dir, "without.elf")), imageWideBytes(t, filepath.Join(dir, "with.elf"))
	if wa == wb {
		t.Fatalf("the image-wide sections are %#x bytes in both images: the test proves nothing", wa)
	}
	t.Logf("image-wide sections: %#x bytes without ukrandom, %#x with", wa, wb)
	for _, sec := range []string{".bss", ".data"} {
		x, y := inputAddr(ra, "appbss", sec), inputAddr(rb, "appbss", sec)
		if x == 0 || x != y {
			t.Errorf("the app's %s: at %#x without ukrandom, at %#x with", sec, x, y)
		}
	}
	pa, pb := a["appbss"], b["appbss"]
	if len(pa.pages) == 0 {
		t.Fatalf("no shared page of the app was found: %v", pa.sections)
	}
	diff := 0
	for p, h := range pa.pages {
		if pb.pages[p] != h {
			diff++
			t.Errorf("the app's shared page %#x differs between the two images", p)
		}
	}
	t.Logf("app: %d shared pages, %d differ; sections %v", len(pa.pages), diff, pa.sections)
}

// inputAddr is where the link put lib's input section name (0: nowhere).
func inputAddr(res *link.Result, lib, name string) uint64 {
	for _, s := range res.Inputs {
		if s.Library == lib && s.Name == name && s.Size > 0 {
			return s.Addr
		}
	}
	return 0
}

// imageWideBytes is the size of an image's Unikraft tables and TLS.
func imageWideBytes(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n uint64
	for _, s := range f.Sections {
		if imageWide(s.Name) {
			n += s.Size
		}
	}
	return n
}

// imageWide tells the output sections that gather every library's entries
// into one per image: Unikraft's tables, the TLS template.
func imageWide(output string) bool {
	return strings.HasPrefix(output, ".uk_") || output == ".tdata" || output == ".tbss"
}

func libObject(b *unikraft.ConfigBuild, lib string) string {
	for _, p := range b.Libraries {
		if link.NameFromPath(p) == lib {
			return p
		}
	}
	return ""
}

// tableRefs lists the symbols in image-wide sections (or Unikraft's table
// bounds) that an object's loaded sections are relocated against.
func tableRefs(t *testing.T, obj string) []string {
	t.Helper()
	f, err := elf.Open(obj)
	if err != nil {
		t.Fatalf("%s: %v", obj, err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatalf("%s: %v", obj, err)
	}
	found := map[string]bool{}
	for _, rs := range f.Sections {
		if rs.Type != elf.SHT_RELA || int(rs.Info) >= len(f.Sections) || f.Sections[rs.Info].Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		data, err := rs.Data()
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+24 <= len(data); off += 24 {
			idx := binary.LittleEndian.Uint64(data[off+8:]) >> 32
			if idx == 0 || int(idx) > len(syms) {
				continue
			}
			s := syms[idx-1]
			name := s.Name
			if int(s.Section) > 0 && int(s.Section) < len(f.Sections) {
				if sec := f.Sections[s.Section].Name; imageWide(sec) {
					found[sec] = true
				}
			} else if s.Section == elf.SHN_UNDEF && (strings.HasPrefix(name, "uk_") || strings.HasPrefix(name, "_uk_")) &&
				(strings.HasSuffix(name, "_start") || strings.HasSuffix(name, "_end")) {
				found[name] = true
			}
		}
	}
	var out []string
	for k := range found {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestFleetAppsAreOneLineEachWithTheirGoReference: every app of
// guest/unikraft has a reference of its work and prints its line.
func TestFleetAppsEachCarryAGoReferenceAndPrintTheirName(t *testing.T) {
	apps, err := unikraft.FleetApps(os.DirFS("../../guest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) < 5 {
		t.Fatalf("only %d fleet apps", len(apps))
	}
	for _, a := range apps {
		e := a.Expect("x")
		if !strings.HasPrefix(e, a.Name+" x ") || len(e) != len(a.Name)+3+8 {
			t.Errorf("%s: expect %q", a.Name, e)
		}
		src, err := os.ReadFile(filepath.Join("../../guest/unikraft", a.Name, "main.c"))
		if err != nil || !bytes.Contains(src, []byte(`report("`+a.Name+`"`)) {
			t.Errorf("%s/main.c does not report as %s (%v)", a.Name, a.Name, err)
		}
	}
}
