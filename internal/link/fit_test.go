package link

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/libmap"
)

// An image that lacks a library the map placed between two of its own
// moves a library by whole pages onto a page it already uses: fewer
// private pages than at the map's addresses, the moved library's pages
// byte-identical to those of the image that placed it, its map region
// unchanged.
// (NoPacks: each library moves on its own; a pack moves as one, see
// TestAPackPageIsTheSameInEveryImageThatUsesAnyOfItsMembers.)
func TestAnImageMovesLibrariesByWholePagesSoItsPrivatePartsTakeFewerPages(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	big := buildLib(t, dir, "ukbig", `
static char big[5000];
int big_touch(int i) { big[i % sizeof big] = 1; return big[0]; }
`)
	small := buildLib(t, dir, "uksmall", `
int small_count = 3;
int small_next(void) { return ++small_count; }
`)
	objs := func(withBig bool) []Object {
		paths := []string{g.plat, g.boot, g.libc}
		if withBig {
			paths = append(paths, big)
		}
		paths = append(paths, small, g.alloc, g.app)
		o, err := ObjectsFromPaths(paths, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	pages := map[bool]int{}
	for _, keep := range []bool{false, true} {
		sub := filepath.Join(dir, map[bool]string{false: "fit", true: "map"}[keep])
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		mapPath := filepath.Join(sub, "map.json")
		first := mustLink(t, Options{Layout: LayoutAligned, Objects: objs(true), Output: filepath.Join(sub, "a"), MapPath: mapPath, MapAddresses: keep, NoPacks: true})
		res := mustLink(t, Options{Layout: LayoutAligned, Objects: objs(false), Output: filepath.Join(sub, "b"), MapPath: mapPath, MapAddresses: keep, NoPacks: true})
		in, err := Inspect(filepath.Join(sub, "b"))
		if err != nil {
			t.Fatal(err)
		}
		pages[keep] = int(in.DensePrivatePages / abi.PageSize)
		m, err := libmap.Load(mapPath)
		if err != nil {
			t.Fatal(err)
		}
		a, err := elfimage.Open(filepath.Join(sub, "a"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := elfimage.Open(filepath.Join(sub, "b"))
		if err != nil {
			t.Fatal(err)
		}
		moved := 0
		for _, l := range res.Config.Libraries {
			if l.App {
				continue
			}
			if keep && l.Shift != 0 {
				t.Errorf("--map-addresses: %s moved by %d", l.Name, l.Shift)
			}
			if l.Shift%abi.PageSize != 0 {
				t.Errorf("%s moved by %d bytes, not whole pages", l.Name, l.Shift)
			}
			found := false
			for _, r := range m.Library(l.Name).Regions {
				found = found || l.MapRegion().Within(r.Region)
			}
			if !found {
				t.Errorf("%s: region %+v moved back by %d is none of the map's", l.Name, l.Region, l.Shift)
			}
			var other *desc.Library
			for i := range first.Config.Libraries {
				if first.Config.Libraries[i].Name == l.Name {
					other = &first.Config.Libraries[i]
				}
			}
			if other == nil {
				t.Fatalf("%s not in the first image", l.Name)
			}
			for off := uint64(0); off < l.Shared.Size; off += abi.PageSize {
				pb, ok1 := b.Page(l.Region.SharedAddr() + off)
				pa, ok2 := a.Page(other.Region.SharedAddr() + off)
				if !ok1 || !ok2 || !bytes.Equal(pa, pb) {
					t.Errorf("%s: shared page +%#x differs between the images (moved by %d and %d)", l.Name, off, l.Shift, other.Shift)
				}
			}
			if l.Shift != 0 {
				moved++
			}
		}
		if !keep && moved == 0 {
			t.Errorf("no library moved: %+v", res.Config.Libraries)
		}
	}
	if pages[false] >= pages[true] {
		t.Errorf("private pages: %d moved, %d at the map's addresses: want fewer", pages[false], pages[true])
	}
}

// fitPrivateParts never overlaps two libraries, moves by whole pages,
// keeps the largest part where the map put it and never takes more
// pages than the map's addresses do.
func TestFitPrivatePartsMovesByWholePagesWithoutOverlapOrMorePages(t *testing.T) {
	const P = abi.PageSize
	base := uint64(abi.DataArenaBase)
	mk := denseLib
	libs := []*placed{
		mk("a", abi.MapBase, base, 3*P+0x100),             // pages 0-3
		mk("b", abi.MapBase+16*P, base+5*P+0x800, 0x100),  // page 5, offset 0x800: free on page 3
		mk("c", abi.MapBase+32*P, base+7*P+0x80, 0x40),    // page 7, offset 0x80: free on page 9 (d)
		mk("d", abi.MapBase+48*P, base+9*P+0x880, 0x100),  // page 9, offset 0x880: taken on page 3 (b): stays
		mk("e", abi.MapBase+52*P, base+11*P+0x800, 0x100), // page 11, offset 0x800: taken on 3 (b) and 9 (d): stays
		// page 13, offset 0: free on 9 and 11, but there its code would
		// overlap e's: stays
		mk("f", abi.MapBase+56*P, base+13*P, 0x40),
		{name: "app", app: true, region: desc.Region{Start: abi.AppRegionBase}},
	}
	count := func() int {
		pg := map[uint64]bool{}
		for _, p := range libs {
			if r := p.region; r.Dense() {
				for x := r.PrivateStart &^ (P - 1); x < r.PrivateEnd(); x += P {
					pg[x] = true
				}
			}
		}
		return len(pg)
	}
	before := count()
	fitPrivateParts(libs)
	if libs[0].shift != 0 {
		t.Errorf("the largest part moved by %d", libs[0].shift)
	}
	want := map[string]uint64{"a": base, "b": base + 3*P + 0x800, "c": base + 9*P + 0x80, "d": base + 9*P + 0x880,
		"e": base + 11*P + 0x800, "f": base + 13*P}
	for _, p := range libs {
		if w, ok := want[p.name]; ok && p.region.PrivateStart != w {
			t.Errorf("%s at %#x, want %#x", p.name, p.region.PrivateStart, w)
		}
	}
	for i, p := range libs {
		if p.shift%P != 0 {
			t.Errorf("%s moved by %d", p.name, p.shift)
		}
		for _, q := range libs[:i] {
			if desc.Overlap(p.region, q.region) {
				t.Errorf("%s and %s overlap: %+v %+v", q.name, p.name, q.region, p.region)
			}
		}
	}
	if after := count(); after >= before {
		t.Errorf("%d pages after, %d before", after, before)
	}
}

// A library whose private part is in the near arena stays there, even
// where a page already taken in the far arena would save it a page: the
// shift would carry its code 256 MiB away from the rest of the image (one
// more page table for every instance, for one private page).
func TestFitPrivatePartsNeverMovesAPartToTheOtherArena(t *testing.T) {
	const P = abi.PageSize
	mk := denseLib
	libs := []*placed{
		mk("old", abi.MapBase, abi.DataArenaBase, 2*P+0x100),        // far: pages 0-2, room on page 2
		mk("new", abi.MapBase+16*P, abi.NearArenaBase+0x800, 0x100), // near: would fit on far page 2
		{name: "app", app: true, region: desc.Region{Start: abi.AppRegionBase}},
	}
	fitPrivateParts(libs)
	if libs[1].shift != 0 || libs[1].region.PrivateStart != abi.NearArenaBase+0x800 {
		t.Errorf("new moved by %#x to %#x: want it where the map put it, in the near arena", libs[1].shift, libs[1].region.PrivateStart)
	}
}

// A pack whose members in this image have no private part never moves,
// and no other library may be moved onto its pages: the image carries the
// pack's other members' bytes there. (A 1000-unikernel fleet failed to
// link when a library with a private part was moved first, its code onto
// such a pack's page: ld refused the overlapping sections.)
func TestFitPrivatePartsNeverMovesALibraryOntoAPackThatCannotMove(t *testing.T) {
	const P = abi.PageSize
	base := uint64(abi.DataArenaBase)
	mk := denseLib
	libs := []*placed{
		mk("a", abi.MapBase, base, 3*P+0x100), // private pages 0-3, room on page 3
		// z's private part would fit on page 3 (a shift of -2 pages),
		// which would lay its code over the pack page at MapBase+14P.
		mk("z", abi.MapBase+16*P, base+5*P+0x800, 0x100),
		{name: "p", pack: abi.MapBase + 14*P, region: desc.Region{Start: abi.MapBase + 14*P + 0x200, SharedSize: 0x100}},
		{name: "app", app: true, region: desc.Region{Start: abi.AppRegionBase}},
	}
	fitPrivateParts(libs)
	if libs[2].shift != 0 {
		t.Errorf("the pack member moved by %d", libs[2].shift)
	}
	packPage := desc.Region{Start: abi.MapBase + 14*P, SharedSize: P}
	for _, p := range libs[:2] {
		if desc.Overlap(p.region, packPage) {
			t.Errorf("%s (moved by %#x) lies on the pack's page: %+v", p.name, p.shift, p.region)
		}
	}
}

// For random images drawn from a random map (libraries and packs back to
// back, private parts packed in the arena, each image a random subset),
// fitPrivateParts moves only by whole pages, a pack as one, and leaves no
// two libraries of the image on each other: no code or private part
// overlaps another's, and no library's code lies on a page of a pack the
// image uses (the image carries that pack's other bytes there). (A
// 1000-unikernel fleet failed to link when a pack that found no other
// place fell back to its map place, which a library moved before it had
// taken.)
func TestFitPrivatePartsNeverLaysALibraryOnAnotherForRandomImages(t *testing.T) {
	const P = abi.PageSize
	better := 0
	defer func() {
		// Packs placed first (fitOrders) take fewer pages for some.
		if !t.Failed() && better == 0 {
			t.Errorf("no random image took fewer private pages than in the size order alone")
		}
		t.Logf("%d of 3000 random images take fewer private pages than in the size order alone", better)
	}()
	for seed := uint64(0); seed < 3000; seed++ {
		r := rand.New(rand.NewPCG(seed, 19))
		var all []*placed
		// Private parts from a few pages below the near arena's end (a
		// full arena: a unit may find no place but its own).
		code, priv := uint64(abi.MapBase), uint64(abi.NearArenaLimit)-uint64(2+r.IntN(24))*P
		// An empty part (no data, no slots: placed.privateEmpty) is 16
		// bytes that no page of the image holds.
		empty := &object{}
		addPriv := func(reg *desc.Region) *object {
			if r.IntN(4) == 0 || priv+2*P+16 > abi.NearArenaLimit {
				return nil // no private part
			}
			priv = (priv + 15) &^ 15
			reg.PrivateStart = priv
			reg.PrivateSize = 16 + uint64(r.IntN(int(2*P)))
			var o *object
			if r.IntN(3) == 0 {
				reg.PrivateSize, o = 16, empty
			}
			priv += reg.PrivateSize
			return o
		}
		for n := 0; n < 4+r.IntN(12); n++ {
			if r.IntN(3) == 0 { // a pack of 1-3 members on 1-2 pages
				start, at := code, code
				for m := 0; m < 1+r.IntN(3); m++ {
					reg := desc.Region{Start: at, SharedSize: 64 + uint64(r.IntN(int(P/2)))}
					o := addPriv(&reg)
					if reg.PrivateSize == 0 {
						reg.PrivateStart = 0
					}
					all = append(all, &placed{name: fmt.Sprintf("k%d_%d", n, m), obj: o, pack: start, region: reg})
					at = (reg.Start + reg.SharedSize + 63) &^ 63
				}
				code = (at + P - 1) &^ (P - 1)
				continue
			}
			reg := desc.Region{Start: code, SharedSize: P * uint64(1+r.IntN(6))}
			o := addPriv(&reg)
			if reg.PrivateSize == 0 {
				reg.PrivateStart = 0
				reg.PrivateSize = 0
			}
			all = append(all, &placed{name: fmt.Sprintf("l%d", n), obj: o, region: reg})
			code += reg.SharedSize
		}
		var libs []*placed
		for _, p := range all {
			if r.IntN(3) != 0 {
				q := *p
				libs = append(libs, &q)
			}
		}
		app := &placed{name: "app", app: true, region: desc.Region{Start: abi.AppRegionBase}}
		libs = append(libs, app)
		// The size order alone (session 10's fit), on a copy.
		var bySize []*placed
		for _, p := range libs {
			q := *p
			bySize = append(bySize, &q)
		}
		fitInOrder(bySize, fitUnits(bySize))
		fitPrivateParts(libs)
		if a, b := unitPages(fitUnits(libs)), unitPages(fitUnits(bySize)); a > b {
			t.Fatalf("seed %d: %d private pages, %d in the size order alone", seed, a, b)
		} else if a < b {
			better++
		}
		// The app's part goes above the others' bytes, and on none.
		placeAppPrivate(app, libs, 64+uint64(r.IntN(int(4*P))))
		packShift := map[uint64]int64{}
		for i, p := range libs {
			if p.shift%P != 0 {
				t.Fatalf("seed %d: %s moved by %d", seed, p.name, p.shift)
			}
			if p.pack != 0 {
				if s, ok := packShift[p.pack]; ok && s != p.shift {
					t.Fatalf("seed %d: pack %#x's members moved apart (%d, %d)", seed, p.pack, s, p.shift)
				}
				packShift[p.pack] = p.shift
			}
			for _, q := range libs[:i] {
				if desc.Overlap(p.region, q.region) {
					t.Fatalf("seed %d: %s and %s overlap: %+v %+v", seed, q.name, p.name, q.region, p.region)
				}
			}
			if p != app && p.region.Dense() && p.region.PrivateSize > 0 && app.region.PrivateSize > 0 &&
				p.region.PrivateStart < app.region.PrivateEnd() && app.region.PrivateStart < p.region.PrivateEnd() {
				t.Fatalf("seed %d: the app's part %#x+%#x lies on %s's %#x+%#x", seed, app.region.PrivateStart, app.region.PrivateSize, p.name, p.region.PrivateStart, p.region.PrivateSize)
			}
		}
		for _, q := range libs {
			if q.pack == 0 {
				continue
			}
			page := desc.Region{Start: q.region.Start &^ (P - 1), SharedSize: (q.region.End()+P-1)&^(P-1) - q.region.Start&^(P-1)}
			for _, p := range libs {
				if p.pack != q.pack && !p.app && desc.Overlap(p.region, page) {
					t.Fatalf("seed %d: %s (moved by %#x) lies on a page of %s's pack: %+v", seed, p.name, p.shift, q.name, p.region)
				}
			}
		}
	}
}

// The app's private part goes right after the last library part that
// holds bytes, below an empty part (no data, no slots: a pack member's
// 16 bytes that no page holds) that lies above: placed after it, the app
// took a page of its own in 5 of a 20-unikernel corpus's images once the
// fit stopped counting empty parts' pages. If the room below the empty
// part is too small, the app goes above it as before.
func TestTheAppsPrivatePartGoesBelowAnEmptyPartAboveTheOthers(t *testing.T) {
	const P = abi.PageSize
	base := uint64(abi.NearArenaBase)
	full := &placed{name: "full", obj: &object{private: 0x2c00}, region: desc.Region{Start: abi.MapBase, SharedSize: P, PrivateStart: base, PrivateSize: 0x2c20}}
	empty := &placed{name: "empty", obj: &object{}, pack: abi.MapBase + 4*P, region: desc.Region{Start: abi.MapBase + 4*P, SharedSize: 0x200, PrivateStart: base + 5*P + 0x920, PrivateSize: 16}}
	app := &placed{name: "app", app: true, region: desc.Region{Start: abi.AppRegionBase}}
	libs := []*placed{full, empty, app}
	placeAppPrivate(app, libs, 0x1000)
	if want := base + 0x2c40; app.region.PrivateStart != want || app.region.PrivateEnd() > empty.region.PrivateStart {
		t.Errorf("the app's part at %#x+%#x, want it at %#x, below the empty part at %#x", app.region.PrivateStart, app.region.PrivateSize, want, empty.region.PrivateStart)
	}
	placeAppPrivate(app, libs, 3*P)
	if app.region.PrivateStart < empty.region.PrivateEnd() {
		t.Errorf("an app part of 3 pages at %#x+%#x: want it above the empty part at %#x", app.region.PrivateStart, app.region.PrivateSize, empty.region.PrivateStart)
	}
}

// denseLib is a library placed at start with a shared part of 4 pages and
// a dense private part of size at priv (the fit tests' libraries).
func denseLib(name string, start, priv, size uint64) *placed {
	return &placed{name: name, region: desc.Region{Start: start, SharedSize: 4 * abi.PageSize, PrivateStart: priv, PrivateSize: size}}
}

// The app's private part (its data, written by every instance) goes to a
// gap on a page that holds a library's initialised data rather than to a
// lower gap on a page that holds only another's slots: the instance then
// writes one page for both.
func TestTheAppsPrivatePartGoesToAGapOnAPageAnInstanceWrites(t *testing.T) {
	const P = abi.PageSize
	base := uint64(abi.NearArenaBase)
	slots := &placed{name: "slots", obj: &object{}, slotCap: 0x200, region: desc.Region{Start: abi.MapBase, SharedSize: P, PrivateStart: base, PrivateSize: 0x200}}
	data := &placed{name: "data", obj: &object{private: 0x48, data: 8}, slotCap: 0x30, region: desc.Region{Start: abi.MapBase + P, SharedSize: P, PrivateStart: base + P, PrivateSize: 0x80}}
	app := &placed{name: "app", app: true, region: desc.Region{Start: abi.AppRegionBase, PrivateStart: base + 3*P, PrivateSize: 0x200}}
	libs := []*placed{slots, data, app}
	if lo, hi := data.hotSpan(); lo != base+P+0x30 || hi != base+P+0x38 {
		t.Errorf("data's hot span %#x-%#x, want its 8 bytes of data after its 0x30 bytes of slots", lo, hi)
	}
	if lo, hi := slots.hotSpan(); lo != hi {
		t.Errorf("slots' hot span %#x-%#x, want none (no data)", lo, hi)
	}
	a, lo, _ := appHole(libs, 0x100)
	if a != app || lo&^(P-1) != base+P {
		t.Fatalf("appHole: %v at %#x; want the app on data's page %#x", a != nil, lo, base+P)
	}
	// Without a library with data, the lowest gap, as before.
	data.obj.data = 0
	if a, lo, _ := appHole(libs, 0x100); a != app || lo&^(P-1) != base {
		t.Fatalf("appHole without data: %v at %#x; want the lowest gap, on page %#x", a != nil, lo, base)
	}
}

// Where two places take as many private pages, fitPrivateParts takes the
// one that puts the libraries' initialised data on fewer pages: here one
// library with data can join the page of another with data or the page
// of a library with slots only, at the same count of pages.
func TestFitPrivatePartsPutsDataTogetherOnATie(t *testing.T) {
	const P = abi.PageSize
	base := uint64(abi.NearArenaBase)
	// (Code regions 8 pages apart: each may move by a few pages.)
	big := &placed{name: "big", obj: &object{private: 0x800, data: 8}, region: desc.Region{Start: abi.MapBase + 8*P, SharedSize: P, PrivateStart: base, PrivateSize: 0x800}}
	cold := &placed{name: "cold", obj: &object{}, slotCap: 0x700, region: desc.Region{Start: abi.MapBase + 16*P, SharedSize: P, PrivateStart: base + 2*P, PrivateSize: 0x700}}
	// Its offset (0x900) fits after big's part and after cold's.
	small := &placed{name: "small", obj: &object{private: 0x40, data: 8}, region: desc.Region{Start: abi.MapBase + 24*P, SharedSize: P, PrivateStart: base + 4*P + 0x900, PrivateSize: 0x40}}
	app := &placed{name: "app", app: true, region: desc.Region{Start: abi.AppRegionBase}}
	libs := []*placed{big, cold, small, app}
	fitPrivateParts(libs)
	units := fitUnits(libs)
	if n, h := unitPages(units), unitHotPages(units); n != 2 || h != 1 {
		t.Errorf("%d private pages, %d with data; want 2 and 1 (small on big's page): big %#x, cold %#x, small %#x",
			n, h, big.region.PrivateStart, cold.region.PrivateStart, small.region.PrivateStart)
	}
}

// For random images of dense libraries (some with initialised data, some
// with slots only, some with neither), fitPrivateParts takes no more
// private pages than the size order alone, and where it takes as many,
// puts the initialised data on no more pages; no two libraries overlap
// and every move is by whole pages.
func TestFitPrivatePartsPutsDataOnNoMorePagesForRandomImages(t *testing.T) {
	const P = abi.PageSize
	fewer := 0
	for seed := uint64(0); seed < 2000; seed++ {
		r := rand.New(rand.NewPCG(seed, 15))
		var all []*placed
		code, priv := uint64(abi.MapBase), uint64(abi.NearArenaBase)
		for n := 0; n < 4+r.IntN(14); n++ {
			o := &object{}
			var slots uint64
			switch r.IntN(3) {
			case 0: // data (and bss)
				o.data = 8 + uint64(r.IntN(256))
				o.private = o.data + uint64(r.IntN(int(2*P)))
			case 1: // slots only
				slots = 16 * uint64(1+r.IntN(64))
			default: // slots and data
				slots = 16 * uint64(1+r.IntN(16))
				o.data = 8 + uint64(r.IntN(64))
				o.private = o.data + uint64(r.IntN(512))
			}
			size := (slots + slotAlign + o.private + 15) &^ 15
			if pageUp(priv%P+size) > pageUp(size) {
				priv = pageUp(priv)
			}
			reg := desc.Region{Start: code, SharedSize: P * uint64(1+r.IntN(4)), PrivateStart: priv, PrivateSize: size}
			all = append(all, &placed{name: fmt.Sprintf("l%d", n), obj: o, slotCap: slots, region: reg})
			code += reg.SharedSize + P*uint64(r.IntN(3))
			priv += size
		}
		var libs []*placed
		for _, p := range all {
			if r.IntN(3) != 0 {
				q := *p
				libs = append(libs, &q)
			}
		}
		libs = append(libs, &placed{name: "app", app: true, region: desc.Region{Start: abi.AppRegionBase}})
		var bySize []*placed
		for _, p := range libs {
			q := *p
			bySize = append(bySize, &q)
		}
		fitInOrder(bySize, fitUnits(bySize))
		fitPrivateParts(libs)
		u, b := fitUnits(libs), fitUnits(bySize)
		n, m := unitPages(u), unitPages(b)
		h, k := unitHotPages(u), unitHotPages(b)
		if n > m || n == m && h > k {
			t.Fatalf("seed %d: %d private pages, %d with data; the size order alone %d, %d", seed, n, h, m, k)
		}
		if n == m && h < k {
			fewer++
		}
		for i, p := range libs {
			if p.shift%P != 0 {
				t.Fatalf("seed %d: %s moved by %d", seed, p.name, p.shift)
			}
			for _, q := range libs[:i] {
				if desc.Overlap(p.region, q.region) {
					t.Fatalf("seed %d: %s and %s overlap: %+v %+v", seed, q.name, p.name, q.region, p.region)
				}
			}
		}
	}
	if fewer == 0 {
		t.Errorf("no random image had its data on fewer pages than in the size order alone")
	}
	t.Logf("%d of 2000 random images have their data on fewer pages at as many private pages", fewer)
}
