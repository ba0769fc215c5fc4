package link

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/libmap"
)

// policyLink places the small versions named in vs (name -> code bytes)
// as one aligned link's packed jobs (placePackMembers), seals the pack it
// opened with made-up bytes, and returns each version's placement.
func policyLink(t testing.TB, m *libmap.Map, vs map[string]uint64, order []string) map[string]*placed {
	t.Helper()
	var jobs []*job
	out := map[string]*placed{}
	for _, name := range order {
		size, ok := vs[name]
		if !ok {
			continue
		}
		need := libmap.Need{Shared: size, Private: 32}
		j := &job{p: &placed{name: name}, need: need, dense: true, packed: true,
			v: libmap.Version{Version: "v", ObjectSHA256: fmt.Sprintf("%064x", size), Need: need}}
		jobs = append(jobs, j)
		out[name] = j.p
	}
	if err := placePackMembers(m, jobs, false); err != nil {
		t.Fatal(err)
	}
	if err := m.Seal(func(addr, n uint64) ([]byte, error) { return bytes.Repeat([]byte{byte(addr)}, int(n)), nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// packPagesOf counts the distinct pack pages an image's members touch.
func packPagesOf(ps map[string]*placed) int {
	var libs []*placed
	for _, p := range ps {
		libs = append(libs, p)
	}
	n := 0
	for _, pgs := range packPages(libs) {
		n += len(pgs)
	}
	return n
}

// A small version that several images use, lying alone on a page of an
// old pack for a new image, is copied into the pack that image opens for
// its new versions, beside them: the image maps one page for both where
// it would map two. A later image that uses both maps the copy; one that
// uses the version with its old neighbour maps the old page; the images
// linked before keep theirs, and a version few images use is not copied.
func TestAWellUsedPackMemberIsCopiedBesideTheNewMembersOfAnImageThatUsesItAloneOnItsPage(t *testing.T) {
	m := libmap.New()
	sizes := map[string]uint64{"a": 1500, "b": 2500, "c": 3000, "d": 700, "e": 600, "rare": 1000}
	order := []string{"a", "b", "c", "d", "e", "rare"}
	first := policyLink(t, m, sizes, []string{"a", "b", "c", "rare"}) // a, b on page 0; c on page 1; rare on page 2
	if first["a"].pack == 0 || first["a"].region.Start>>12 != first["b"].region.Start>>12 {
		t.Fatalf("a at %#x and b at %#x do not share a pack page", first["a"].region.Start, first["b"].region.Start)
	}
	for i := 0; i < libmap.CopyMinUses-1; i++ {
		policyLink(t, m, sizes, []string{"a", "b"})
	}
	// a used by CopyMinUses links, rare by one: an image with a, rare and
	// the new d.
	img := policyLink(t, m, map[string]uint64{"a": 1500, "rare": 1000, "d": 700}, order)
	if img["a"].region.Start == first["a"].region.Start || img["a"].pack != img["d"].pack {
		t.Fatalf("a at %#x (pack %#x), d in pack %#x: a was not copied beside d", img["a"].region.Start, img["a"].pack, img["d"].pack)
	}
	if img["rare"].region.Start != first["rare"].region.Start {
		t.Fatalf("rare, used by one link, was copied to %#x", img["rare"].region.Start)
	}
	if n := packPagesOf(img); n != 2 {
		t.Fatalf("the image maps %d pack pages, want 2 (a and d on one, rare on its old one)", n)
	}
	if regs := m.PackedRegions("a", libmap.Version{Version: "v", ObjectSHA256: fmt.Sprintf("%064x", 1500), Need: libmap.Need{Shared: 1500, Private: 32}}); len(regs) != 2 || regs[0].Start != first["a"].region.Start {
		t.Fatalf("a's regions %+v: the old one must stay where it was, the copy after it", regs)
	}
	later := policyLink(t, m, map[string]uint64{"a": 1500, "d": 700}, order)
	if later["a"].region.Start != img["a"].region.Start {
		t.Fatalf("an image using a and d maps a at %#x, not the copy beside d at %#x", later["a"].region.Start, img["a"].region.Start)
	}
	old := policyLink(t, m, map[string]uint64{"a": 1500, "b": 2500}, order)
	if old["a"].region.Start != first["a"].region.Start {
		t.Fatalf("an image using a and b maps a at %#x, not beside b at %#x", old["a"].region.Start, first["a"].region.Start)
	}
}

func mustMarshal(t *testing.T, m *libmap.Map) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// map2 is a deep copy of m (through its file form).
func map2(m *libmap.Map) *libmap.Map {
	data, err := m.Marshal()
	if err != nil {
		panic(err)
	}
	c, err := libmap.Parse(data)
	if err != nil {
		panic(err)
	}
	return c
}

// The pack policy keeps the map's promise whatever the links: a region
// once handed out never moves or changes, a sealed pack's start and bytes
// never change (its room only shrinks at its own seal, before any other
// link sees it), every version of an image gets a region that holds it,
// no two members of an image overlap, and the map stays valid and reads
// back as written. Each link runs through the map file (libmap.Update):
// the file holds the layout alone and changes only when the layout does
// (a link that places nothing new leaves it byte for byte), and the use
// counts (beside it) load back as the link left them.
func FuzzPackPolicyKeepsTheMapAppendOnly(f *testing.F) {
	for _, s := range []int64{1, 2, 3, 4, 42, 1000} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed int64) {
		r := rand.New(rand.NewSource(seed))
		// A universe of small versions: name -> size.
		type ver struct {
			name string
			size uint64
		}
		var universe []ver
		for i := 0; i < 24; i++ {
			universe = append(universe, ver{fmt.Sprintf("uk%d", i%14), uint64(16 + r.Intn(libmap.PackLimit-16))})
		}
		var pastVs []map[string]uint64
		var pastOrders [][]string
		m := libmap.New()
		path := filepath.Join(t.TempDir(), "map.json")
		for link := 0; link < 30; link++ {
			before := map2(m)
			vs := map[string]uint64{}
			var order []string
			// Half the links an image linked before (it places nothing).
			if link > 0 && r.Intn(2) == 0 {
				i := r.Intn(len(pastVs))
				vs, order = pastVs[i], pastOrders[i]
			} else {
				for k := r.Intn(8) + 1; k > 0; k-- {
					v := universe[r.Intn(len(universe))]
					if _, dup := vs[v.name]; !dup {
						vs[v.name] = v.size
						order = append(order, v.name)
					}
				}
				pastVs, pastOrders = append(pastVs, vs), append(pastOrders, order)
			}
			fileBefore, _ := os.ReadFile(path)
			var img map[string]*placed
			if err := libmap.Update(path, func(fm *libmap.Map) error {
				img = policyLink(t, fm, vs, order)
				m = fm
				return nil
			}); err != nil {
				t.Fatalf("link %d: %v", link, err)
			}
			fileAfter, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			layoutBefore, _ := before.MarshalLayout()
			layoutAfter, _ := m.MarshalLayout()
			if !bytes.Equal(fileAfter, layoutAfter) {
				t.Fatalf("link %d: the map file is not the map's layout", link)
			}
			if link > 0 && bytes.Equal(layoutBefore, layoutAfter) != bytes.Equal(fileBefore, fileAfter) {
				t.Fatalf("link %d: the layout changed %v, the map file %v", link, !bytes.Equal(layoutBefore, layoutAfter), !bytes.Equal(fileBefore, fileAfter))
			}
			if loaded, err := libmap.Load(path); err != nil {
				t.Fatalf("link %d: %v", link, err)
			} else if a, b := mustMarshal(t, loaded), mustMarshal(t, m); !bytes.Equal(a, b) {
				t.Fatalf("link %d: the map loads back as\n%s\nnot as the link left it\n%s", link, a, b)
			}
			if err := m.Validate(); err != nil {
				t.Fatalf("link %d: %v", link, err)
			}
			for _, bl := range before.Libraries {
				l := m.Library(bl.Name)
				for i, br := range bl.Regions {
					if l == nil || i >= len(l.Regions) || l.Regions[i].Region != br.Region || l.Regions[i].Pack != br.Pack || l.Regions[i].Uses < br.Uses {
						t.Fatalf("link %d: library %s region %d changed: %+v, was %+v", link, bl.Name, i, l, br)
					}
				}
			}
			for _, bp := range before.Packs {
				p := m.PackAt(bp.Start)
				if p == nil || p.Size != bp.Size || !bytes.Equal(p.Content, bp.Content) {
					t.Fatalf("link %d: sealed pack at %#x changed", link, bp.Start)
				}
			}
			var regions []desc.Region
			for name, p := range img {
				touches := (p.region.End()-1)/abi.PageSize - p.region.Start/abi.PageSize + 1
				if p.pack == 0 || p.region.SharedSize < vs[name] || p.region.Start%16 != 0 || touches > (p.region.SharedSize+abi.PageSize-1)/abi.PageSize {
					t.Fatalf("link %d: %s (%d bytes) at %#x+%#x in pack %#x", link, name, vs[name], p.region.Start, p.region.SharedSize, p.pack)
				}
				for _, o := range regions {
					if p.region.Start < o.End() && o.Start < p.region.End() {
						t.Fatalf("link %d: %s at %#x overlaps another member", link, name, p.region.Start)
					}
				}
				regions = append(regions, p.region)
			}
			back := map2(m)
			a, _ := back.Marshal()
			b, _ := m.Marshal()
			if !bytes.Equal(a, b) {
				t.Fatalf("link %d: the map does not read back as written", link)
			}
		}
	})
}
