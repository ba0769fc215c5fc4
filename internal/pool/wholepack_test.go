package pool

import (
	"os"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/libmap"
)

// wholePacks decides per pack: a pack whose whole pages would overlap
// another pack the image uses (here the second pack, moved down next to
// the first by its members' private parts) keeps the first one's page
// entry as it is, and the moved pack becomes one entry of its sealed
// pages; the members' pages lie in their packs' entries either way.
func TestAPackWhoseWholePagesOverlapAnotherKeepsItsPagesAndTheOtherIsWhole(t *testing.T) {
	p, err := Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const p1, p2 = abi.MapBase, abi.MapBase + 0x3000
	m := &libmap.Map{SchemaVersion: libmap.SchemaVersionPack, Packs: []libmap.Pack{
		{Start: p1, Size: 0x3000, Content: make([]byte, 0x2010)},
		{Start: p2, Size: 0x2000, Content: make([]byte, 0x1800)},
	}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.MapPath(), data, 0o644); err != nil {
		t.Fatal(err)
	}
	page := func(pack, at uint64, shift int64) desc.Library {
		return desc.Library{Name: desc.PackPageName(at), Pack: pack, PackPage: true, Shift: shift,
			Region: desc.Region{Start: at, SharedSize: abi.PageSize},
			Shared: desc.Shared{Size: abi.PageSize, Segments: []desc.Segment{{Off: 0, Size: abi.PageSize, Prot: desc.ProtRX}}}}
	}
	const moved = -0x2000
	c := &desc.Config{SchemaVersion: desc.SchemaVersionPack, Layout: "aligned", Entry: desc.Addr{Lib: 0}, Libraries: []desc.Library{
		{Name: "m1", Pack: p1, Region: desc.Region{Start: p1 + 0x40, SharedSize: 0x100, PrivateStart: abi.DataArenaBase, PrivateSize: 16},
			Shared: desc.Shared{Size: 0x100}, Private: desc.Part{MemSize: 16}},
		{Name: "m2", Pack: p2, Shift: moved, Region: desc.Region{Start: p2 + moved + 0x40, SharedSize: 0x100, PrivateStart: abi.DataArenaBase + moved + 0x3000, PrivateSize: 16},
			Shared: desc.Shared{Size: 0x100}, Private: desc.Part{MemSize: 16}},
		page(p1, p1, 0),
		page(p2, p2+moved, moved),
	}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	blobs, err := p.wholePacks(&image{path: "test", el: &elfimage.Image{}, config: c}, c)
	if err != nil {
		t.Fatal(err)
	}
	var entries []desc.Library
	for _, l := range c.Libraries {
		if l.PackPage {
			entries = append(entries, l)
		}
	}
	if len(entries) != 2 || entries[0].Region != (desc.Region{Start: p1, SharedSize: abi.PageSize}) ||
		entries[1].Region != (desc.Region{Start: p2 + moved, SharedSize: 0x2000}) || entries[1].Shift != moved {
		t.Fatalf("pack entries %+v: want the first pack's page as it was and the moved pack whole (2 pages at %#x)", entries, p2+moved)
	}
	if len(blobs) != 1 || len(blobs[p2+moved]) != 0x2000 {
		t.Fatalf("whole pack blobs: %d, want the moved pack's 2 pages", len(blobs))
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
