package link

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/elfimage"
)

// The poster's case: two unikernels that differ only by ukrand, inserted
// in the middle of the link order. Aligned, every page of every other
// library is byte-identical at the same address in both; packed, the
// libraries after ukrand move.
func TestInsertingUkrandMovesNoOtherLibrary(t *testing.T) {
	t.Run("aligned with trampolines", func(t *testing.T) { testInsertingUkrand(t, DefaultTrampoliner) })
	// Without the trampoline pass, code that references image-wide data
	// in the app region (ukboot's __init_array_end: ukrand adds a
	// constructor) differs, and only there.
	t.Run("aligned alone", func(t *testing.T) { testInsertingUkrand(t, NoRewrite{DefaultTrampoliner}) })
}

func testInsertingUkrand(t *testing.T, tramp Trampoliner) {
	needToolchain(t)
	_, strict := tramp.(NoRewrite)
	strict = !strict
	dir := t.TempDir()
	g := buildGuest(t, dir)
	mapPath := filepath.Join(dir, "map.json")

	link := func(layout string, withRand bool, out string) *elfimage.Image {
		t.Helper()
		// (appRelocSites reads the relocations.)
		opt := Options{Layout: layout, Objects: g.objects(withRand), Output: filepath.Join(dir, out), Tramp: tramp, KeepRelocations: true}
		if layout == LayoutAligned {
			opt.MapPath = mapPath
		}
		mustLink(t, opt)
		im, err := elfimage.Open(opt.Output)
		if err != nil {
			t.Fatal(err)
		}
		return im
	}
	// Link the image with ukrand first: ukrand then gets its region
	// before alloc and the app, the harder case for the others.
	withA := link(LayoutAligned, true, "with.aligned")
	withoutA := link(LayoutAligned, false, "without.aligned")

	cfgWith, err := withA.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfgWithout, err := withoutA.Config()
	if err != nil {
		t.Fatal(err)
	}
	libsWithout := map[string]desc.Library{}
	for _, l := range cfgWithout.Libraries {
		libsWithout[l.Name] = l
	}
	compared, differing := 0, 0
	appSites := appRelocSites(t, withA.Path())
	for _, l := range cfgWith.Libraries {
		if l.Name == "ukrand" {
			continue
		}
		o, ok := libsWithout[l.Name]
		if !ok {
			t.Fatalf("library %s missing from the image without ukrand", l.Name)
		}
		// The same map region; each image may have moved it by whole
		// pages (desc.Library.Shift), its pages the same.
		if o.MapRegion() != l.MapRegion() || o.Shared.Size != l.Shared.Size {
			t.Errorf("%s: map region %+v (shared %#x) with ukrand, %+v (shared %#x) without", l.Name, l.MapRegion(), l.Shared.Size, o.MapRegion(), o.Shared.Size)
			continue
		}
		if l.Shared.Size == 0 {
			t.Errorf("%s: no shared part", l.Name)
		}
		for off := uint64(0); off < l.Shared.Size; off += abi.PageSize {
			a := l.Region.SharedAddr() + off
			pw, ok1 := withA.Page(a)
			po, ok2 := withoutA.Page(o.Region.SharedAddr() + off)
			if !ok1 || !ok2 {
				t.Fatalf("%s: page %#x not loaded", l.Name, a)
			}
			if !bytes.Equal(pw, po) {
				differing++
				for i := range pw {
					if pw[i] != po[i] && (strict || !appSites[a+uint64(i)]) {
						t.Errorf("%s: byte %#x differs between the images", l.Name, a+uint64(i))
						break
					}
				}
			}
			compared++
		}
	}
	if !strict && differing == 0 {
		t.Error("without trampolines ukboot's reference to __init_array_end (ukrand adds a constructor) should differ; the exemption went untested")
	}
	// The core (ukplat+ukboot+libc, DefaultGroups) is one unit of one
	// page here; with ukalloc and the app, three pages.
	if compared < 3 {
		t.Fatalf("compared only %d pages", compared)
	}

	// Packed: the same libraries do not stay put.
	withP := link(LayoutPacked, true, "with.packed")
	withoutP := link(LayoutPacked, false, "without.packed")
	moved := 0
	for _, sym := range []string{"malloc", "main"} { // in libraries after ukrand
		a, ok1 := withP.Symbol(sym)
		b, ok2 := withoutP.Symbol(sym)
		if !ok1 || !ok2 {
			t.Fatalf("symbol %s missing from a packed image", sym)
		}
		if a != b {
			moved++
		}
	}
	if moved == 0 {
		t.Error("packed: inserting ukrand moved no later library; the test shows nothing")
	}
	same, total := samePages(t, withP, withoutP)
	if same == total {
		t.Errorf("packed: all %d code pages identical at the same address", total)
	}
	t.Logf("aligned: %d shared pages of the other libraries, %d differ (at references to the app region only); packed: %d of %d code/rodata pages identical", compared, differing, same, total)
}

// samePages counts the non-writable pages of a that b holds identically
// at the same address.
func samePages(t *testing.T, a, b *elfimage.Image) (same, total int) {
	t.Helper()
	for _, s := range a.Segments() {
		if s.Flags&2 != 0 { // PF_W
			continue
		}
		for p := s.Vaddr &^ (abi.PageSize - 1); p < s.End(); p += abi.PageSize {
			pa, _ := a.Page(p)
			pb, ok := b.Page(p)
			total++
			if ok && bytes.Equal(pa, pb) {
				same++
			}
		}
	}
	return same, total
}

// appRelocSites are the bytes of the image's code that relocations fill
// with (a displacement to) an address in the app region.
func appRelocSites(t *testing.T, path string) map[uint64]bool {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	// The app region, and the app's private part in the data arena.
	var app desc.Region
	if im, err := elfimage.Open(path); err == nil {
		if cfg, err := im.Config(); err == nil {
			for _, l := range cfg.Libraries {
				if l.App {
					app = l.Region
				}
			}
		}
	}
	sites := map[uint64]bool{}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_RELA || int(s.Info) >= len(f.Sections) || f.Sections[s.Info].Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		data, err := s.Data()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+24 <= len(data); i += 24 {
			off := binary.LittleEndian.Uint64(data[i:])
			info := binary.LittleEndian.Uint64(data[i+8:])
			addend := int64(binary.LittleEndian.Uint64(data[i+16:]))
			si := int(info >> 32)
			if si == 0 || si > len(syms) {
				continue
			}
			target := syms[si-1].Value
			if elf.ST_TYPE(syms[si-1].Info) == elf.STT_SECTION {
				target += uint64(addend)
			}
			if (target >= abi.AppRegionBase && target < abi.PrivateBase) || (app.Dense() && target >= app.PrivateStart && target <= app.PrivateEnd()) {
				for b := range uint64(4) {
					sites[off+b] = true
				}
			}
		}
	}
	return sites
}
