package libmap

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
)

func ver(label string, shared, private uint64) Version {
	return Version{Version: label, ObjectSHA256: fmt.Sprintf("%064x", len(label)*1000+int(shared)), Need: Need{Tramp: 100, Shared: shared, Private: private}}
}

func TestNewLibrariesAppendAndNeverMoveExistingRegions(t *testing.T) {
	m := New()
	a, err := m.Place("ukboot", ver("a1", 10000, 500))
	if err != nil {
		t.Fatal(err)
	}
	if !a.New || a.Region.Start != abi.MapBase {
		t.Fatalf("first region %+v, want new at MapBase", a)
	}
	before := m.Library("ukboot").Regions[0].Region
	b, err := m.Place("ukrand", ver("b1", 3000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if b.Region.Start != a.Region.End() {
		t.Errorf("second region at %#x, want right after the first (%#x)", b.Region.Start, a.Region.End())
	}
	if got := m.Library("ukboot").Regions[0].Region; got != before {
		t.Errorf("placing ukrand moved ukboot: %+v -> %+v", before, got)
	}
	for _, r := range []desc.Region{a.Region, b.Region} {
		for _, v := range []uint64{r.Start, r.TrampSize, r.SharedSize, r.PrivateSize} {
			if v%abi.PageSize != 0 {
				t.Errorf("region %+v not page-aligned", r)
			}
		}
	}
	// Slack: 50% and at least 16 KiB per part.
	if a.Region.SharedSize != pageUp(10000+16384) || a.Region.PrivateSize != pageUp(500+16384) {
		t.Errorf("capacities %+v", a.Region)
	}
}

func TestVersionsOfALibraryShareItsRegion(t *testing.T) {
	m := New()
	p1, _ := m.Place("libc", ver("v1", 20000, 4000))
	p2, err := m.Place("libc", ver("v2", 21000, 4100))
	if err != nil {
		t.Fatal(err)
	}
	if p2.New || p2.Region != p1.Region || !p2.Added {
		t.Errorf("v2 placed %+v, want v1's region %+v", p2, p1.Region)
	}
	again, _ := m.Place("libc", ver("v1", 20000, 4000))
	if again.Added || again.Region != p1.Region {
		t.Errorf("placing v1 again: %+v", again)
	}
	if n := len(m.Library("libc").Regions[0].Versions); n != 2 {
		t.Errorf("%d versions recorded, want 2", n)
	}
}

func TestVersionThatOutgrowsItsRegionGetsANewOneAndTheOldStays(t *testing.T) {
	m := New()
	old, _ := m.Place("zlib", ver("1.2", 40000, 1000))
	other, _ := m.Place("lz4", ver("1.9", 8000, 100))
	big, err := m.Place("zlib", ver("1.3", 200000, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if !big.New || big.Region.Start < other.Region.End() {
		t.Errorf("grown version at %+v, want a new region after lz4 (%#x)", big.Region, other.Region.End())
	}
	regs := m.Library("zlib").Regions
	if len(regs) != 2 || regs[0].Region != old.Region || regs[0].Versions[0].Version != "1.2" || regs[1].Versions[0].Version != "1.3" {
		t.Errorf("zlib regions %+v", regs)
	}
	// The old version still goes to its old region.
	p, _ := m.Place("zlib", ver("1.2", 40000, 1000))
	if p.Region != old.Region {
		t.Errorf("old version now at %+v, want %+v", p.Region, old.Region)
	}
	// A new small version goes to the newest region with room.
	p, _ = m.Place("zlib", ver("1.4", 39000, 1000))
	if p.Region != big.Region {
		t.Errorf("new small version at %+v, want newest region %+v", p.Region, big.Region)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestMapRefusesToGrowPastItsLimit(t *testing.T) {
	m := New()
	if _, err := m.Place("huge", ver("1", (abi.DataArenaBase-abi.MapBase)/2, 0)); err != nil {
		t.Fatal(err)
	}
	// Too large for the room below the data arena and the room above it.
	_, err := m.Place("more", ver("1", (abi.MapLimit-abi.MapBase)/2, 0))
	if err == nil || !strings.Contains(err.Error(), "full") {
		t.Fatalf("placing past the limit: %v", err)
	}
}

func TestUpdateWritesAtomicallyAndOnlyOnSuccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map.json")
	if err := Update(path, func(m *Map) error { _, err := m.Place("a", ver("1", 10, 10)); return err }); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("link failed")
	err = Update(path, func(m *Map) error {
		m.Place("b", ver("1", 10, 10))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Error("a failed update changed the map")
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	m, err := Load(path)
	if err != nil || m.Library("a") == nil || m.Library("b") != nil {
		t.Fatalf("reloaded map %+v, %v", m, err)
	}
}

func TestCorruptedMapIsAClearErrorNamingTheFile(t *testing.T) {
	dir := t.TempDir()
	good := New()
	good.Place("a", ver("1", 10, 10))
	goodJSON, _ := good.Marshal()
	overlap := New()
	overlap.Place("a", ver("1", 10, 10))
	overlap.Place("b", ver("1", 10, 10))
	overlap.Libraries[1].Regions[0].Start = overlap.Libraries[0].Regions[0].Start + abi.PageSize
	overlapJSON, _ := overlap.Marshal()
	cases := map[string][]byte{
		"truncated":  goodJSON[:len(goodJSON)/2],
		"garbage":    []byte("\x00\x01\x02not json"),
		"overlap":    overlapJSON,
		"unaligned":  []byte(strings.Replace(string(goodJSON), `"start": 1073741824`, `"start": 1073741825`, 1)),
		"schema":     []byte(`{"schema_version": 99, "libraries": []}`),
		"trailing":   append(append([]byte(nil), goodJSON...), []byte("{}")...),
		"below base": []byte(strings.Replace(string(goodJSON), `"start": 1073741824`, `"start": 4096`, 1)),
	}
	for name, data := range cases {
		path := filepath.Join(dir, name+".json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: Load error %v, want one naming %s", name, err, path)
		}
		err = Update(path, func(m *Map) error { return nil })
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: Update error %v, want one naming %s", name, err, path)
		}
		if got, _ := os.ReadFile(path); string(got) != string(data) {
			t.Errorf("%s: Update rewrote a corrupted map", name)
		}
	}
}

// Concurrent writers each add a library; all must land, in distinct
// regions, whatever the interleaving.
func TestConcurrentWritersAllLandWithoutOverlap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map.json")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- Update(path, func(m *Map) error {
				_, err := m.Place(fmt.Sprintf("lib%d", i), ver("1", uint64(1000*(i+1)), 10))
				return err
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkAllLanded(t, path, "lib", 8)
}

func TestConcurrentWriterProcessesAllLandWithoutOverlap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map.json")
	var cmds []*exec.Cmd
	for i := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriterProcess$")
		cmd.Env = append(os.Environ(), "LIBMAP_HELPER_MAP="+path, fmt.Sprintf("LIBMAP_HELPER_LIB=proc%d", i))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("writer process: %v", err)
		}
	}
	checkAllLanded(t, path, "proc", 8)
}

// TestHelperWriterProcess is the body of one writer process of
// TestConcurrentWriterProcessesAllLandWithoutOverlap.
func TestHelperWriterProcess(t *testing.T) {
	path := os.Getenv("LIBMAP_HELPER_MAP")
	if path == "" {
		t.Skip("helper process only")
	}
	for j := range 5 {
		err := Update(path, func(m *Map) error {
			_, err := m.Place(os.Getenv("LIBMAP_HELPER_LIB"), ver(fmt.Sprint(j), uint64(1000+j*30000), 10))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func checkAllLanded(t *testing.T, path, prefix string, n int) {
	t.Helper()
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if m.Library(fmt.Sprintf("%s%d", prefix, i)) == nil {
			t.Errorf("%s%d lost", prefix, i)
		}
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestMarshalParseRoundTrips(t *testing.T) {
	m := New()
	m.Place("a", ver("1", 10, 10))
	m.Place("b", ver("2", 100000, 0))
	m.Place("a", ver("3", 1000000, 0))
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, back) {
		t.Errorf("round trip changed the map:\n%+v\n%+v", m, back)
	}
}

func FuzzParse(f *testing.F) {
	m := New()
	m.Place("a", ver("1", 10, 10))
	m.Place("b", ver("2", 100000, 0))
	data, _ := m.Marshal()
	f.Add(data)
	m.PlacePacked("c", small("3", 300, 20))
	m.PlacePacked("d", small("4", 200, 0))
	m.Seal(func(addr, n uint64) ([]byte, error) { return bytes.Repeat([]byte{1}, int(n)), nil })
	data, _ = m.Marshal()
	f.Add(data)
	f.Add([]byte(`{"schema_version":1,"libraries":[]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("a valid map does not re-parse: %v", err)
		}
		if !reflect.DeepEqual(m, back) {
			t.Fatal("round trip changed the map")
		}
		// Placing into any valid map keeps it valid.
		if _, err := m.Place("fuzzlib", ver("x", 12345, 678)); err == nil {
			if err := m.Validate(); err != nil {
				t.Fatalf("placement broke the map: %v", err)
			}
		}
		if _, err := m.PlacePacked("fuzzsmall", small("y", 123, 45)); err == nil {
			if err := m.Validate(); err != nil {
				t.Fatalf("a packed placement broke the map: %v", err)
			}
			if err := m.Seal(func(addr, n uint64) ([]byte, error) { return make([]byte, n), nil }); err != nil {
				t.Fatal(err)
			}
			if err := m.Validate(); err != nil {
				t.Fatalf("sealing broke the map: %v", err)
			}
		}
	})
}

func TestMergeOfMapsWithOneHistoryTakesTheNewerLibrariesRegionsAndVersions(t *testing.T) {
	base := New()
	base.Place("liba", ver("a1", 10000, 500))
	base.Place("libb", ver("b1", 3000, 0))
	ahead := base.clone()
	ahead.Place("liba", ver("a2", 12000, 500))      // a new version in liba's region
	ahead.Place("liba", ver("a3-huge", 1<<20, 500)) // a second region of liba
	ahead.Place("libc", ver("c1", 5000, 100))       // a new library
	m := base.clone()
	if err := m.Merge(ahead, "the registry's map"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, ahead) {
		t.Errorf("merged %+v, want %+v", m, ahead)
	}
	// The other way round: nothing to take, nothing changes.
	if err := ahead.Merge(base, "x"); err != nil || !reflect.DeepEqual(ahead, m) {
		t.Errorf("merging an older map changed the newer: %v", err)
	}
}

func TestMergeRefusesMapsThatPlaceALibraryDifferentlyNamingIt(t *testing.T) {
	a := New()
	a.Place("liba", ver("a1", 10000, 500))
	b := New()
	b.Place("libb", ver("b1", 3000, 0)) // libb at liba's address
	before := a.clone()
	err := a.Merge(b, "the registry's map")
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Library != "libb" || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("merge of overlapping libraries: %v", err)
	}
	if !reflect.DeepEqual(a, before) {
		t.Error("a refused merge changed the map")
	}
	c := New()
	c.Place("libx", ver("x1", 3000, 0))
	c.Place("liba", ver("a1", 10000, 500)) // liba after libx: another address
	err = a.Merge(c, "the registry's map")
	if !errors.As(err, &ce) || ce.Library != "liba" || !strings.Contains(err.Error(), "the registry's map") {
		t.Errorf("merge of a library at two addresses: %v", err)
	}
}

func TestDenseRegionsPackPrivatePartsInTheDataArena(t *testing.T) {
	m := New()
	a, err := m.PlaceDense("a", ver("1", 5000, 100), true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.PlaceDense("b", ver("1", 5000, 30), true)
	if err != nil {
		t.Fatal(err)
	}
	if a.Region.PrivateStart != abi.NearArenaBase || a.Region.PrivateSize != 112 {
		t.Errorf("a's private part at %#x+%#x, want the near arena's start, 112 bytes", a.Region.PrivateStart, a.Region.PrivateSize)
	}
	if b.Region.PrivateStart != a.Region.PrivateEnd() || b.Region.Start != a.Region.End() {
		t.Errorf("b at %+v does not follow a at %+v", b.Region, a.Region)
	}
	// A version with more private data than the region holds gets a new
	// region; the old one stays where it was.
	a2, err := m.PlaceDense("a", ver("2", 5001, 200), true)
	if err != nil || !a2.New || a2.Region.PrivateStart != b.Region.PrivateEnd() {
		t.Errorf("a's larger version: %+v, %v", a2, err)
	}
	if p, _ := m.PlaceDense("a", ver("1", 5000, 100), true); p.Region != a.Region {
		t.Errorf("a's first version moved: %+v", p.Region)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	// The map file keeps the new field; an old reader's schema is the same.
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(data)
	if err != nil || back.Library("b").Regions[0].Region != b.Region {
		t.Fatalf("round trip: %v", err)
	}
	if back.SchemaVersion != SchemaVersionNearArena {
		t.Errorf("a map with private parts in the near arena says schema_version %d, want %d (readers of 1 to 3 must refuse it)", back.SchemaVersion, SchemaVersionNearArena)
	}
	old := strings.Replace(string(data), `"schema_version": 4`, `"schema_version": 1`, 1)
	if _, err := Parse([]byte(old)); err == nil || !strings.Contains(err.Error(), "dense") {
		t.Errorf("a schema 1 map with a dense region: %v", err)
	}
	old = strings.Replace(string(data), `"schema_version": 4`, `"schema_version": 3`, 1)
	if _, err := Parse([]byte(old)); err == nil || !strings.Contains(err.Error(), "near arena") {
		t.Errorf("a schema 3 map with a private part in the near arena: %v", err)
	}
	// Two private parts overlapping are refused.
	back.Library("b").Regions[0].PrivateStart = a.Region.PrivateStart + 16
	if err := back.Validate(); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("overlapping private parts: %v", err)
	}
}

// A dense private part never touches more pages than its size needs (a
// part that fits in a page is never split across two: images using it
// would touch both); else it starts right where the arena ends.
func TestADensePartThatFitsInAPageIsNeverSplitAcrossTwo(t *testing.T) {
	m := New()
	a, err := m.PlaceDense("a", ver("1", 5000, 4000), true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.PlaceDense("b", ver("1", 5000, 200), true)
	if err != nil {
		t.Fatal(err)
	}
	if b.Region.PrivateStart != abi.NearArenaBase+abi.PageSize {
		t.Errorf("b's 208 bytes at %#x after a's end %#x: want the next page %#x", b.Region.PrivateStart, a.Region.PrivateEnd(), uint64(abi.NearArenaBase+abi.PageSize))
	}
	// Three pages from 0x10d0 into a page would touch four: c starts on
	// the next page.
	c, err := m.PlaceDense("c", ver("1", 5000, 3*abi.PageSize), true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Region.PrivateStart != abi.NearArenaBase+2*abi.PageSize {
		t.Errorf("c (three pages) at %#x after b's end %#x: want the next page", c.Region.PrivateStart, b.Region.PrivateEnd())
	}
	// 16 bytes, then 2.5 pages from 16 bytes into a page (three pages
	// either way): each right where the arena ends.
	d, _ := m.PlaceDense("d", ver("1", 5000, 16), true)
	e, _ := m.PlaceDense("e", ver("1", 5000, 2*abi.PageSize+2048), true)
	if d.Region.PrivateStart != c.Region.PrivateEnd() || e.Region.PrivateStart != d.Region.PrivateEnd() {
		t.Errorf("d at %#x, e at %#x: want right after c (%#x) and d (%#x)", d.Region.PrivateStart, e.Region.PrivateStart, c.Region.PrivateEnd(), d.Region.PrivateEnd())
	}
	// Another 2.5 pages from 0x810 into a page would touch four.
	f, _ := m.PlaceDense("f", ver("1", 5000, 2*abi.PageSize+2048), true)
	if f.Region.PrivateStart%abi.PageSize != 0 || f.Region.PrivateStart != pageUp(e.Region.PrivateEnd()) {
		t.Errorf("f (2.5 pages) at %#x after e's end %#x: want the next page", f.Region.PrivateStart, e.Region.PrivateEnd())
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}

func small(label string, shared, private uint64) Version {
	return Version{Version: label, Need: Need{Shared: shared, Private: private}}
}

// Small versions placed by one link share the pages of one pack, side by
// side (64-byte aligned, none crossing a page boundary it need not); the
// link seals the pack with its bytes; later versions go to a new pack and
// nothing placed before moves; a map is never stored with an open pack.
func TestSmallVersionsShareAPackThatTheLinkPlacingThemSeals(t *testing.T) {
	m := New()
	a, err := m.PlacePacked("a", small("1", 500, 40))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.PlacePacked("b", small("1", 700, 0))
	c, _ := m.PlacePacked("c", small("1", 3000, 16))
	big, _ := m.PlacePacked("big", small("1", PackLimit+1, 16))
	if a.Pack == 0 || b.Pack != a.Pack || c.Pack != a.Pack || big.Pack != 0 {
		t.Fatalf("packs: a %#x b %#x c %#x big %#x", a.Pack, b.Pack, c.Pack, big.Pack)
	}
	if a.Region.Start != a.Pack || b.Region.Start != a.Region.Start+512 || a.Region.SharedSize != 512 || a.Region.TrampSize != 0 {
		t.Fatalf("a at %#x (+%#x), b at %#x", a.Region.Start, a.Region.SharedSize, b.Region.Start)
	}
	if c.Region.Start != a.Pack+abi.PageSize {
		t.Fatalf("c (3000 bytes after %#x) at %#x, want the next page", b.Region.End(), c.Region.Start)
	}
	if big.Region.Start%abi.PageSize != 0 || big.Region.Start < a.Pack+PackRoom {
		t.Fatalf("a large version at %#x, inside the pack's room", big.Region.Start)
	}
	if !a.Region.Dense() || !c.Region.Dense() || desc.Overlap(a.Region, b.Region) {
		t.Fatal("members' private parts are not dense, or members overlap")
	}
	if _, err := m.Marshal(); err != nil {
		t.Fatal(err)
	}
	if data, _ := m.Marshal(); true {
		if _, err := Parse(data); err == nil || !strings.Contains(err.Error(), "sealed") {
			t.Fatalf("a map with an open pack parsed: %v", err)
		}
	}
	content := bytes.Repeat([]byte{0xab}, int(c.Region.End()-a.Pack))
	if err := m.Seal(func(addr, n uint64) ([]byte, error) { return content[:n], nil }); err != nil {
		t.Fatal(err)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if p := back.PackAt(a.Pack); p == nil || !bytes.Equal(p.Content, content) {
		t.Fatal("the sealed content does not round-trip")
	}
	// The next link: the same versions go where they went, a new one
	// to a new pack, and nothing moves.
	again, _ := back.PlacePacked("b", small("1", 700, 0))
	d, _ := back.PlacePacked("d", small("1", 100, 16))
	b2, _ := back.PlacePacked("b", small("2", 600, 0))
	if again.Region != b.Region || again.Pack != b.Pack {
		t.Fatalf("b moved: %+v, was %+v", again.Region, b.Region)
	}
	if d.Pack == a.Pack || b2.Pack != d.Pack || b2.Region.Start == b.Region.Start {
		t.Fatalf("a sealed pack took a member: d in %#x, b v2 in %#x at %#x", d.Pack, b2.Pack, b2.Region.Start)
	}
	if p := back.PackAt(a.Pack); !bytes.Equal(p.Content, content) {
		t.Fatal("a sealed pack changed")
	}
}

// A pack member's region must lie in its pack's sealed bytes; a pack
// must be sealed, whole pages, and in a map that says it has packs.
func TestMapValidationRefusesBadPacks(t *testing.T) {
	mk := func() *Map {
		m := New()
		m.PlacePacked("a", small("1", 500, 40))
		m.Seal(func(addr, n uint64) ([]byte, error) { return make([]byte, n), nil })
		return m
	}
	if err := mk().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, spoil := range map[string]func(m *Map){
		"schema":    func(m *Map) { m.SchemaVersion = SchemaVersionDense },
		"unaligned": func(m *Map) { m.Packs[0].Start += 16 },
		"unsealed":  func(m *Map) { m.Packs[0].Content = nil },
		"no pack":   func(m *Map) { m.Libraries[0].Regions[0].Pack += abi.PageSize },
		"outside":   func(m *Map) { m.Libraries[0].Regions[0].SharedSize += 64 },
		"two":       func(m *Map) { r := &m.Libraries[0].Regions[0]; r.Versions = append(r.Versions, small("2", 1, 1)) },
		"overlap": func(m *Map) {
			m.PlaceDense("z", small("1", 10, 10), false)
			m.Libraries[1].Regions[0].Start = m.Packs[0].Start
		},
		"big content": func(m *Map) { m.Packs[0].Content = make([]byte, m.Packs[0].Size+1) },
	} {
		m := mk()
		spoil(m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: a bad pack validated", name)
		}
	}
}

// Private parts go to the near arena (in the app's 2 MiB) while they fit
// there, then to the far one; a map filled before the near arena existed
// (its private parts in the far arena) puts its new ones in the near
// arena, and its old ones stay where they are.
func TestPrivatePartsFillTheNearArenaFirstThenTheFarOne(t *testing.T) {
	m := New()
	room := uint64(abi.NearArenaLimit - abi.NearArenaBase)
	a, err := m.PlaceDense("a", ver("1", 5000, room-abi.PageSize), true)
	if err != nil || a.Region.PrivateStart != abi.NearArenaBase {
		t.Fatalf("a: %+v, %v", a.Region, err)
	}
	b, err := m.PlaceDense("b", ver("1", 5000, 2*abi.PageSize), true)
	if err != nil || b.Region.PrivateStart != abi.DataArenaBase {
		t.Fatalf("b (two pages, one left near): %+v, %v; want the far arena's start", b.Region, err)
	}
	c, err := m.PlaceDense("c", ver("1", 5000, 100), true)
	if err != nil || c.Region.PrivateStart != a.Region.PrivateEnd() {
		t.Fatalf("c (100 bytes): %+v, %v; want the near arena's end %#x", c.Region, err, a.Region.PrivateEnd())
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}

	// A map of schema 3 whose private parts are all in the far arena.
	old := New()
	old.SchemaVersion = SchemaVersionPack
	old.Libraries = []Library{{Name: "x", Regions: []Region{{Region: desc.Region{Start: abi.MapBase, TrampSize: abi.PageSize, SharedSize: abi.PageSize,
		PrivateStart: abi.DataArenaBase, PrivateSize: 64}, Versions: []Version{ver("1", 100, 64)}}}}}
	if err := old.Validate(); err != nil {
		t.Fatal(err)
	}
	y, err := old.PlaceDense("y", ver("1", 100, 64), true)
	if err != nil || y.Region.PrivateStart != abi.NearArenaBase || old.SchemaVersion != SchemaVersionNearArena {
		t.Fatalf("y in an old map: %+v, %v, schema %d", y.Region, err, old.SchemaVersion)
	}
	if x := old.Library("x").Regions[0].Region; x.PrivateStart != abi.DataArenaBase {
		t.Errorf("x moved to %#x", x.PrivateStart)
	}
	if err := old.Validate(); err != nil {
		t.Fatal(err)
	}
}

// Sealing gives back the room a pack's members do not use only when
// nothing lies after the pack: a pack that a region follows keeps its
// room (shrinking it would move nothing, but the room is no longer at
// the map's end), and one that ends the map keeps its members' pages.
func TestASealedPackKeepsOnlyItsPagesWhenNothingFollowsIt(t *testing.T) {
	seal := func(m *Map) {
		if err := m.Seal(func(addr, n uint64) ([]byte, error) { return make([]byte, n), nil }); err != nil {
			t.Fatal(err)
		}
	}
	m := New()
	a, _ := m.PlacePacked("a", small("1", 500, 40))
	c, _ := m.PlacePacked("c", small("1", 3800, 16))
	seal(m)
	if p := m.PackAt(a.Pack); p.Size != 2*abi.PageSize || m.End() != a.Pack+2*abi.PageSize {
		t.Fatalf("sealed pack at %#x: room %#x, map end %#x; want two pages (c ends at %#x)", p.Start, p.Size, m.End(), c.Region.End())
	}
	d, _ := m.PlacePacked("d", small("1", 100, 16))
	if d.Pack != a.Pack+2*abi.PageSize {
		t.Fatalf("the next pack at %#x, want right after the sealed one's pages", d.Pack)
	}
	seal(m)
	m2 := New()
	b, _ := m2.PlacePacked("b", small("1", 500, 40))
	big, _ := m2.PlaceDense("big", small("1", 3*PackLimit, 16), true)
	seal(m2)
	if p := m2.PackAt(b.Pack); p.Size != PackRoom || big.Region.Start != b.Pack+PackRoom {
		t.Fatalf("a pack followed by a region: room %#x, the region at %#x", p.Size, big.Region.Start)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(data); err != nil {
		t.Fatal(err)
	}
}

// PlaceCopy gives a version already in a sealed pack a second region in
// the open pack only if that touches fewer new pages there than the
// caller's limit; the old region and pack stay as they were, Use counts
// links per pack region, and a merge keeps the larger count.
func TestAPackMemberIsCopiedIntoTheOpenPackOnlyWhenThatSavesPages(t *testing.T) {
	seal := func(m *Map) {
		if err := m.Seal(func(addr, n uint64) ([]byte, error) { return bytes.Repeat([]byte{7}, int(n)), nil }); err != nil {
			t.Fatal(err)
		}
	}
	m := New()
	va := small("1", 1500, 32)
	a, _ := m.PlacePacked("a", va)
	m.Use("a", a.Region.Start)
	seal(m)
	if _, ok, err := m.PlaceCopy("a", va, 1); ok || err != nil {
		t.Fatalf("a copy without an open pack: %v %v", ok, err)
	}
	if _, ok, _ := m.PlaceCopy("nope", small("1", 100, 16), 1); ok {
		t.Fatal("a copy of a version no pack holds")
	}
	other := m.clone()
	m.Use("a", a.Region.Start)
	d, _ := m.PlacePacked("d", small("1", 3000, 16))
	if _, ok, _ := m.PlaceCopy("a", va, 1); ok {
		t.Fatal("a copy that needs a page of its own (d leaves 1096 bytes) was placed for a limit of 1")
	}
	m.PlacePacked("e", small("1", 500, 16))
	c, ok, err := m.PlaceCopy("a", va, 2)
	if !ok || err != nil || c.Pack != d.Pack || c.Region.Start == a.Region.Start {
		t.Fatalf("copy: %+v %v %v", c, ok, err)
	}
	seal(m)
	regs := m.PackedRegions("a", va)
	if len(regs) != 2 || regs[0].Region != a.Region || regs[0].Uses != 2 || regs[1].Region != c.Region {
		t.Fatalf("a's pack regions %+v", regs)
	}
	if p := m.PackAt(a.Pack); !bytes.Equal(p.Content, bytes.Repeat([]byte{7}, len(p.Content))) || p.Start != a.Pack {
		t.Fatal("the old pack changed")
	}
	if err := other.Merge(m, "m"); err != nil {
		t.Fatal(err)
	}
	if r := other.PackedRegions("a", va); len(r) != 2 || r[0].Uses != 2 {
		t.Fatalf("merged: %+v", r)
	}
	for i := 0; i < 10; i++ {
		m.Use("a", a.Region.Start)
	}
	if r := m.PackedRegions("a", va); r[0].Uses != CopyMinUses {
		t.Fatalf("uses %d after 12 links, want it to stop at %d", r[0].Uses, CopyMinUses)
	}
	if w := m.WithoutUses(); w.PackedRegions("a", va)[0].Uses != 0 || m.PackedRegions("a", va)[0].Uses == 0 {
		t.Fatal("WithoutUses")
	}
}

// The map file holds the map's layout alone: a link that places nothing
// new but uses pack regions (raising their use counts, a placement hint)
// leaves it byte for byte as it was, so a registry gets no new map tag
// for it; the counts go to the file beside it and Load gives them back.
// (Session 10 kept the counts in the map file: every link rewrote it
// until the fleet's pack regions reached CopyMinUses.)
func TestALinkThatPlacesNothingNewLeavesTheMapFileAsItWas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map.json")
	va := small("1", 1500, 32)
	var start uint64
	if err := Update(path, func(m *Map) error {
		a, err := m.PlacePacked("a", va)
		start = a.Region.Start
		m.Use("a", start)
		if err != nil {
			return err
		}
		return m.Seal(func(addr, n uint64) ([]byte, error) { return bytes.Repeat([]byte{7}, int(n)), nil })
	}); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= CopyMinUses+1; i++ {
		if err := Update(path, func(m *Map) error {
			if p, err := m.PlacePacked("a", va); err != nil || p.New || p.Region.Start != start {
				return fmt.Errorf("relink placed a at %+v (%v)", p, err)
			}
			m.Use("a", start)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if now, _ := os.ReadFile(path); !bytes.Equal(now, first) {
			t.Fatalf("link %d placed nothing new and rewrote the map file:\n%s\nwas\n%s", i, now, first)
		}
		m, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if r := m.PackedRegions("a", va); len(r) != 1 || r[0].Uses != uint64(min(i, CopyMinUses)) {
			t.Fatalf("after %d links the map loads with %+v, want %d uses", i, r, min(i, CopyMinUses))
		}
	}
	if bytes.Contains(first, []byte(`"uses"`)) {
		t.Errorf("the map file holds use counts:\n%s", first)
	}
	// A map file written with the counts inside (session 10) reads with
	// them, and the next update writes it once more without them.
	m, _ := Load(path)
	old, _ := m.Marshal()
	if !bytes.Contains(old, []byte(`"uses"`)) {
		t.Fatal("Marshal drops the counts")
	}
	os.Remove(path + UsesSuffix)
	if err := os.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Update(path, func(m *Map) error {
		if r := m.PackedRegions("a", va); r[0].Uses != CopyMinUses {
			return fmt.Errorf("an old map file's counts read as %+v", r)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, first) {
		t.Errorf("an old map file was not rewritten to its layout:\n%s", now)
	}
	if m, err := Load(path); err != nil || m.PackedRegions("a", va)[0].Uses != CopyMinUses {
		t.Errorf("the counts of an old map file were lost: %v", err)
	}
	// A corrupt count file is an error naming it.
	os.WriteFile(path+UsesSuffix, []byte("{nope"), 0o644)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path+UsesSuffix) {
		t.Errorf("a corrupt count file: %v", err)
	}
}
