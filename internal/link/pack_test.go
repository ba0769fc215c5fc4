package link

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/libmap"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/pool"
)

func library(t *testing.T, cfg *desc.Config, name string) desc.Library {
	t.Helper()
	for _, l := range cfg.Libraries {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no library %q in the description", name)
	return desc.Library{}
}

// Two small libraries placed by one link share a pack page. An image that
// links only one of them carries the other's bytes there (from the map's
// sealed pack), so the page is byte-identical in both images and the pool
// stores it once; pool add refuses a pack page that is not what the map
// sealed. Without packs, each small library has pages of its own.
func TestAPackPageIsTheSameInEveryImageThatUsesAnyOfItsMembers(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	sa := buildLib(t, dir, "uksmalla", `
int smalla_count = 3;
int smalla_next(void) { return ++smalla_count; }
`)
	sb := buildLib(t, dir, "uksmallb", `
static int b;
int smallb_next(int i) { b += i; return b * 7 + smalla_next(); }
`)
	sc := buildLib(t, dir, "uksmallc", `
int smallc_twice(int i) { return 2 * i; }
`)
	objs := func(paths ...string) []Object { return objectsOf(t, paths...) }
	poolDir := filepath.Join(dir, "pool")
	p, err := pool.Init(poolDir)
	if err != nil {
		t.Fatal(err)
	}
	mapPath := p.MapPath()
	a := mustLink(t, Options{Layout: LayoutAligned, Objects: objs(g.plat, g.boot, g.libc, sa, sb, sc, g.alloc, g.app), Output: filepath.Join(dir, "a"), MapPath: mapPath})
	b := mustLink(t, Options{Layout: LayoutAligned, Objects: objs(g.plat, g.boot, g.libc, sa, sb, g.alloc, g.app), Output: filepath.Join(dir, "b"), MapPath: mapPath})
	la, lb := library(t, a.Config, "uksmallc"), library(t, a.Config, "uksmallb")
	if la.Pack == 0 || lb.Pack != la.Pack || la.Region.Start%abi.PageSize == 0 && lb.Region.Start%abi.PageSize == 0 {
		t.Fatalf("uksmallb at %#x (pack %#x), uksmallc at %#x (pack %#x): not side by side in one pack", lb.Region.Start, lb.Pack, la.Region.Start, la.Pack)
	}
	bb := library(t, b.Config, "uksmallb")
	if bb.Pack != lb.Pack || bb.MapRegion() != lb.MapRegion() {
		t.Fatalf("uksmallb moved in the map: %+v, was %+v", bb.MapRegion(), lb.MapRegion())
	}
	ia, err := elfimage.Open(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	ib, err := elfimage.Open(filepath.Join(dir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	// uksmallc's code, which b does not link, lies on the page b maps.
	pc := library(t, a.Config, "uksmallc")
	if pc.Region.Start&^(abi.PageSize-1) != lb.Region.Start&^(abi.PageSize-1) {
		t.Skipf("uksmallc at %#x is not on uksmallb's page %#x", pc.Region.Start, lb.Region.Start)
	}
	pageA, _ := ia.Page(lb.Region.Start)
	pageB, ok := ib.Page(bb.Region.Start)
	if !ok || !bytes.Equal(pageA, pageB) {
		t.Fatal("the pack page differs between an image with both members and one with one")
	}
	off := pc.Region.Start & (abi.PageSize - 1)
	if bytes.Count(pageB[off:off+16], []byte{0}) == 16 {
		t.Fatal("b's pack page lacks uksmallc's code")
	}
	pages := 0
	for _, l := range b.Config.Libraries {
		if l.PackPage && l.Pack == bb.Pack {
			pages++
		}
	}
	if pages == 0 {
		t.Fatal("b's description has no pack page entry")
	}
	in, err := Inspect(filepath.Join(dir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if in.Packed == 0 || in.PackPages == 0 || in.PackBytes == 0 {
		t.Fatalf("inspect reports no packs: %+v", in)
	}

	// The pool: one blob for the pack page, whichever image brought it.
	for _, n := range []string{"a", "b"} {
		if _, err := pool.Add(poolDir, filepath.Join(dir, n), pool.AddOptions{InitBlobs: true}); err != nil {
			t.Fatal(err)
		}
	}
	digests := map[string]string{}
	for _, n := range []string{"a", "b"} {
		c, err := p.Resolve(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range c.Libraries {
			if l.PackPage {
				if d, ok := digests[l.Name]; ok && d != l.Shared.Digest {
					t.Fatalf("pack page %s is two blobs", l.Name)
				}
				digests[l.Name] = l.Shared.Digest
			}
			if l.InPack() && l.Shared.Digest != "" {
				t.Fatalf("pack member %s has a blob of its own", l.Name)
			}
		}
	}
	m, err := libmap.Load(mapPath)
	if err != nil {
		t.Fatal(err)
	}
	m.PackAt(bb.Pack).Content[off] ^= 0xff
	data, _ := m.Marshal()
	if err := os.WriteFile(mapPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = pool.Add(poolDir, filepath.Join(dir, "b"), pool.AddOptions{Name: "b2"})
	if err == nil || !strings.Contains(err.Error(), "does not hold the bytes the library map") {
		t.Fatalf("pool add of a pack page the map did not seal: %v", err)
	}

	// Without packs: pages of its own.
	noMap := filepath.Join(dir, "nopack.json")
	c := mustLink(t, Options{Layout: LayoutAligned, Objects: objs(g.plat, g.boot, g.libc, sa, sb, g.alloc, g.app), Output: filepath.Join(dir, "c"), MapPath: noMap, NoPacks: true})
	if l := library(t, c.Config, "uksmallb"); l.Pack != 0 || l.Region.Start%abi.PageSize != 0 {
		t.Fatalf("--no-packs: uksmallb at %#x in pack %#x", l.Region.Start, l.Pack)
	}
}

// A link places the versions that go into a pack after its other new
// regions: the pack lies after a large library the link places between
// two small ones in link order, its members' private parts lie side by
// side in the data arena (the large one's is not between them), and once
// sealed the pack keeps only the pages its members use, so the next
// link's new regions start right after them. Nothing placed before moves.
func TestALinkOpensItsPackAfterItsOtherNewRegionsAndTheSealedPackGivesBackItsUnusedRoom(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	sa := buildLib(t, dir, "uksmalla", `
int smalla_count = 3;
int smalla_next(void) { return ++smalla_count; }
`)
	big := buildLib(t, dir, "ukbig", `
const char big_table[12000] = {1, 2, 3};
int big_state[300];
int big_get(int i) { big_state[i % 300] += i; return big_table[i % 12000] + big_state[i % 300]; }
`)
	sb := buildLib(t, dir, "uksmallb", `
static int b;
int smallb_next(int i) { b += i; return b * 7 + smalla_next() + big_get(i); }
`)
	sc := buildLib(t, dir, "uksmallc", `
int smallc_twice(int i) { return 2 * i; }
`)
	objs := func(paths ...string) []Object { return objectsOf(t, paths...) }
	mapPath := filepath.Join(dir, "map.json")
	mustLink(t, Options{Layout: LayoutAligned, Objects: objs(g.plat, g.boot, g.libc, sa, big, sb, g.alloc, g.app), Output: filepath.Join(dir, "a"), MapPath: mapPath})
	m, err := libmap.Load(mapPath)
	if err != nil {
		t.Fatal(err)
	}
	region := func(m *libmap.Map, name string) libmap.Region {
		t.Helper()
		l := m.Library(name)
		if l == nil || len(l.Regions) != 1 {
			t.Fatalf("library %q: %+v", name, l)
		}
		return l.Regions[0]
	}
	ra, rb, rbig := region(m, "uksmalla"), region(m, "uksmallb"), region(m, "ukbig")
	if ra.Pack == 0 || rb.Pack != ra.Pack || rbig.Pack != 0 {
		t.Fatalf("packs: uksmalla %#x, uksmallb %#x, ukbig %#x", ra.Pack, rb.Pack, rbig.Pack)
	}
	if rbig.Start > ra.Pack {
		t.Fatalf("ukbig at %#x, after the pack at %#x that the link opened before it", rbig.Start, ra.Pack)
	}
	lo, hi := min(ra.PrivateStart, rb.PrivateStart), max(ra.PrivateEnd(), rb.PrivateEnd())
	if rbig.PrivateStart < hi && rbig.PrivateEnd() > lo {
		t.Fatalf("ukbig's private part [%#x,%#x) lies between the pack members' [%#x,%#x)", rbig.PrivateStart, rbig.PrivateEnd(), lo, hi)
	}
	pk := m.PackAt(ra.Pack)
	if want := (uint64(len(pk.Content)) + abi.PageSize - 1) &^ (abi.PageSize - 1); pk.Size != want || pk.Size >= libmap.PackRoom {
		t.Fatalf("the sealed pack at %#x keeps %#x bytes of room for %d bytes of content, want %#x", pk.Start, pk.Size, len(pk.Content), want)
	}
	if m.End() != pk.Start+pk.Size {
		t.Fatalf("the map ends at %#x, not at the sealed pack's end %#x", m.End(), pk.Start+pk.Size)
	}
	mustLink(t, Options{Layout: LayoutAligned, Objects: objs(g.plat, g.boot, g.libc, sa, sc, g.alloc, g.app), Output: filepath.Join(dir, "c"), MapPath: mapPath})
	m2, err := libmap.Load(mapPath)
	if err != nil {
		t.Fatal(err)
	}
	rc := region(m2, "uksmallc")
	if rc.Pack != pk.Start+pk.Size {
		t.Fatalf("the next link's pack at %#x, not right after the sealed one's pages (%#x)", rc.Pack, pk.Start+pk.Size)
	}
	for _, n := range []string{"uksmalla", "uksmallb", "ukbig"} {
		if r := region(m2, n); r.Region != region(m, n).Region {
			t.Fatalf("%s moved: %+v, was %+v", n, r.Region, region(m, n).Region)
		}
	}
	if p := m2.PackAt(pk.Start); p.Size != pk.Size || !bytes.Equal(p.Content, pk.Content) {
		t.Fatal("the sealed pack changed")
	}
}

// objectsOf is ObjectsFromPaths of paths, failing t on an error.
func objectsOf(t *testing.T, paths ...string) []Object {
	t.Helper()
	o, err := ObjectsFromPaths(paths, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// A pooled unikernel maps each pack it uses with one host mapping: the
// image's description has an entry per pack page its members touch (here
// the pack's first and last pages, members on both), the pool stores the
// whole sealed pack as one blob named by one entry, and the loader's
// plan maps it once, read-only and executable. The blob is the map's
// sealed bytes, the same for every image that uses any member; an
// instance's shared mappings are one per pack plus the segments of the
// libraries with blobs of their own.
func TestAnInstanceMapsAPackWhoseMembersLieOnSeveralPagesWithOneMapping(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	// Five members of about 3 KiB each: a pack of four pages or more.
	var objsAll []string
	for i, n := range []string{"ukpka", "ukpkb", "ukpkc", "ukpkd", "ukpke"} {
		objsAll = append(objsAll, buildLib(t, dir, n, fmt.Sprintf(`
const char %[1]s_table[3000] = {%[2]d, 2, 3};
int %[1]s_get(int i) { return %[1]s_table[i %% 3000] + %[2]d; }
`, n, i+1)))
	}
	objs := func(paths ...string) []Object { return objectsOf(t, paths...) }
	poolDir := filepath.Join(dir, "pool")
	p, err := pool.Init(poolDir)
	if err != nil {
		t.Fatal(err)
	}
	all := mustLink(t, Options{Layout: LayoutAligned, Objects: objs(append([]string{g.plat, g.boot, g.libc}, append(objsAll, g.alloc, g.app)...)...),
		Output: filepath.Join(dir, "all"), MapPath: p.MapPath()})
	// Only the first and last members: the pages between hold the others.
	ends := mustLink(t, Options{Layout: LayoutAligned, Objects: objs(g.plat, g.boot, g.libc, objsAll[0], objsAll[4], g.alloc, g.app),
		Output: filepath.Join(dir, "ends"), MapPath: p.MapPath()})
	pa, pe := library(t, all.Config, "ukpka"), library(t, all.Config, "ukpke")
	if pa.Pack == 0 || pe.Pack != pa.Pack || pe.Region.Start-pa.Region.Start < 3*abi.PageSize {
		t.Fatalf("ukpka at %#x (pack %#x), ukpke at %#x (pack %#x): want them pages apart in one pack", pa.Region.Start, pa.Pack, pe.Region.Start, pe.Pack)
	}
	linked := 0
	for _, l := range ends.Config.Libraries {
		if l.PackPage {
			linked++
		}
	}
	if linked < 2 {
		t.Fatalf("the image's own description has %d pack page entries, want one per page its members touch (2 or more)", linked)
	}
	m, err := libmap.Load(p.MapPath())
	if err != nil {
		t.Fatal(err)
	}
	pk := m.PackAt(pa.Pack)
	for _, n := range []string{"all", "ends"} {
		if _, err := pool.Add(poolDir, filepath.Join(dir, n), pool.AddOptions{InitBlobs: true}); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := p.Verify(); err != nil || !r.OK() {
		t.Fatalf("verify: %v %+v", err, r)
	}
	var digest string
	for _, n := range []string{"all", "ends"} {
		c, err := p.Resolve(n)
		if err != nil {
			t.Fatal(err)
		}
		var entries []desc.Library
		for _, l := range c.Libraries {
			if l.PackPage {
				entries = append(entries, l)
			}
		}
		if len(entries) != 1 || entries[0].Region.Start != pk.Start+uint64(entries[0].Shift) || entries[0].Shared.Size != (uint64(len(pk.Content))+abi.PageSize-1)&^(abi.PageSize-1) {
			t.Fatalf("%s: pooled pack entries %+v, want one for the whole pack at %#x (%d bytes sealed)", n, entries, pk.Start, len(pk.Content))
		}
		blob, err := os.ReadFile(p.BlobPath(entries[0].Shared.Digest))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(blob[:len(pk.Content)], pk.Content) || bytes.Count(blob[len(pk.Content):], []byte{0}) != len(blob)-len(pk.Content) {
			t.Fatalf("%s: the pack's blob is not the map's sealed bytes", n)
		}
		if digest != "" && entries[0].Shared.Digest != digest {
			t.Fatalf("%s: the pack is blob %s, another image's %s", n, entries[0].Shared.Digest, digest)
		}
		digest = entries[0].Shared.Digest

		lay, err := loader.Plan(monitor.Unikernel{Name: n, Config: c, BlobPath: p.BlobPath}, loader.Options{Load: monitor.LoadShared})
		if err != nil {
			t.Fatal(err)
		}
		packMaps, shared, want := 0, 0, 1
		for _, l := range c.Libraries {
			if !l.PackPage && !l.InPack() && l.Shared.Size > 0 {
				want += max(1, len(l.Shared.Segments))
			}
		}
		for _, mp := range lay.Mappings {
			if mp.Part != loader.PartShared {
				continue
			}
			shared++
			if mp.Library == entries[0].Name {
				packMaps++
				if mp.Size != entries[0].Shared.Size || mp.Prot != loader.ProtRead|loader.ProtExec || mp.File == "" {
					t.Fatalf("%s: the pack's mapping %+v, want its %#x bytes r-x from its blob", n, mp, entries[0].Shared.Size)
				}
			}
		}
		if packMaps != 1 || shared != want {
			t.Fatalf("%s: %d mappings of the pack, %d shared mappings in all; want 1 and %d", n, packMaps, shared, want)
		}
	}
	checkWholePackUpkeep(t, p, digest, []string{"all", "ends"})
}

// checkWholePackUpkeep checks pool maintenance of a whole-pack blob that
// the pooled images names all map: verify names its file when a byte of
// it is wrong (one problem per image using it), GC keeps it while one of
// them is pooled and removes it with the last.
func checkWholePackUpkeep(t *testing.T, p *pool.Pool, blob string, names []string) {
	t.Helper()
	path := p.BlobPath(blob)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 1
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bad, 0o444); err != nil {
		t.Fatal(err)
	}
	r, err := p.Verify()
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, pr := range r.Problems {
		if pr.File == path && pr.Blob == blob {
			named++
		}
	}
	if named == 0 || named != len(r.Problems) {
		t.Fatalf("verify of a whole pack with one byte flipped: %v; want problems naming %s only", r.Problems, path)
	}
	if err := os.WriteFile(path, good, 0o444); err != nil {
		t.Fatal(err)
	}
	if r, err := p.Verify(); err != nil || !r.OK() {
		t.Fatalf("verify after the pack's bytes are back: %v %v", r, err)
	}
	for i, n := range names {
		if err := p.Remove(n); err != nil {
			t.Fatal(err)
		}
		if _, err := p.GC(); err != nil {
			t.Fatal(err)
		}
		_, err := os.Stat(path)
		if last := i == len(names)-1; last != os.IsNotExist(err) {
			t.Fatalf("after removing %d of %d images using it and gc: the whole pack's blob: %v", i+1, len(names), err)
		}
	}
}
