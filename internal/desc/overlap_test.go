package desc

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// The overlap and pack checks of Validate were pairwise (every library
// against every one before it, every member page against every pack page
// entry); they are a sorted sweep and an index now. validatePairwise is
// Validate as it was (d9bb632), kept as the reference: on descriptions
// made to overlap often, both give the same error, or none.

// genConfig makes a description of up to 24 libraries from b: regions on
// a small grid of addresses (so that they overlap often), dense or not,
// pack members and pack page entries of two packs, shifts.
func genConfig(b []byte) *Config {
	next := func() uint64 {
		if len(b) == 0 {
			return 0
		}
		v := uint64(b[0])
		b = b[1:]
		return v
	}
	c := &Config{SchemaVersion: SchemaVersionPack, Layout: "aligned"}
	n := 1 + int(next()%24)
	packs := []uint64{0x40000000, 0x40010000}
	for i := 0; i < n; i++ {
		k, a, sz, sh := next(), next(), next(), next()
		l := Library{Name: fmt.Sprintf("l%d", i)}
		shift := int64(0)
		if sh%4 == 0 {
			shift = 0x1000
		}
		switch k % 4 {
		case 0: // a library of its own: page-aligned, contiguous
			l.Region = Region{Start: 0x40000000 + (a%24)*0x1000, SharedSize: (sz % 4) * 0x1000, PrivateSize: (sz / 4 % 3) * 0x1000}
		case 1: // dense: its private part in the data arena
			l.Region = Region{Start: 0x40000000 + (a%24)*0x1000, SharedSize: (sz%3 + 1) * 0x1000,
				PrivateStart: 0x70000000 + (a/24%8)*0x10, PrivateSize: (sz / 3 % 4) * 0x10}
		case 2: // a pack member
			p := packs[a%2]
			l.Pack, l.Shift = p, shift
			l.Region = Region{Start: uint64(int64(p)+shift) + (a/2%8)*0x200 + (sz%4)*0x10, SharedSize: (sz%5 + 1) * 0x100,
				PrivateStart: uint64(0x70001000+shift) + (a/16%8)*0x10, PrivateSize: 0x10}
			l.Shared.Size = l.Region.SharedSize
			l.Private.MemSize = 0x10
		case 3: // a pack page entry
			p := packs[a%2]
			l.Pack, l.Shift, l.PackPage = p, shift, true
			l.Region = Region{Start: uint64(int64(p)+shift) + (a/2%4)*0x1000, SharedSize: (sz%2 + 1) * 0x1000}
			l.Shared = Shared{Size: l.Region.SharedSize, Segments: []Segment{{Off: 0, Size: l.Region.SharedSize, Prot: ProtRX}}}
		}
		if k%4 < 2 {
			l.Shared.Size = l.Region.SharedSize
			l.Private.MemSize = l.Region.PrivateSize
		}
		c.Libraries = append(c.Libraries, l)
	}
	return c
}

func sameVerdict(t *testing.T, c *Config) (refused bool) {
	t.Helper()
	want, got := validatePairwise(c), c.Validate()
	if fmt.Sprint(want) != fmt.Sprint(got) {
		t.Fatalf("description %+v:\nValidate: %v\npairwise: %v", c.Libraries, got, want)
	}
	return got != nil
}

func TestValidateFindsWhatThePairwiseChecksFound(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 13))
	b := make([]byte, 13*8) // a count and 24 libraries of 4 bytes
	verdicts := map[bool]int{}
	overlapsFound := 0
	for range 20000 {
		for i := 0; i < len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], r.Uint64())
		}
		c := genConfig(b)
		verdicts[sameVerdict(t, c)]++
		if firstOverlap(c.Libraries) < len(c.Libraries) {
			overlapsFound++
		}
	}
	// The generator makes both kinds, and overlaps among the refused.
	if verdicts[true] < 1000 || verdicts[false] < 1000 || overlapsFound < 1000 {
		t.Errorf("verdicts %v, %d with an overlap: the generator does not exercise both", verdicts, overlapsFound)
	}
}

func FuzzValidateOverlaps(f *testing.F) {
	f.Add([]byte{3, 2, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2})
	f.Add([]byte{5, 1, 3, 2, 1, 1, 5, 6, 7, 2, 4, 4, 4, 3, 2, 0, 0, 0, 1, 0, 9, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		sameVerdict(t, genConfig(b))
	})
}

// The most libraries a description has (MaxLibraries), none overlapping:
// the pairwise checks compared 8.4 million pairs, each Overlap call
// allocating its ranges (25 million allocations, seconds of CPU); the
// sweep allocates per prefix it checks, O(log n) times.
func TestValidatingTheMostLibrariesAllocatesLinearlyNotPerPair(t *testing.T) {
	c := &Config{SchemaVersion: SchemaVersionPack, Layout: "aligned"}
	const packs = 512
	for i := 0; len(c.Libraries) < MaxLibraries; i++ {
		if i < packs {
			// A pack page entry and a member on it, of pack i.
			p := uint64(0x40000000 + i*0x2000)
			c.Libraries = append(c.Libraries,
				Library{Name: fmt.Sprintf("m%d", i), Pack: p, Region: Region{Start: p + 0x40, SharedSize: 0x100, PrivateStart: 0x70000000 + uint64(i)*0x10, PrivateSize: 0x10},
					Shared: Shared{Size: 0x100}, Private: Part{MemSize: 0x10}},
				Library{Name: PackPageName(p), Pack: p, PackPage: true, Region: Region{Start: p, SharedSize: 0x1000},
					Shared: Shared{Size: 0x1000, Segments: []Segment{{Off: 0, Size: 0x1000, Prot: ProtRX}}}})
			continue
		}
		c.Libraries = append(c.Libraries, Library{Name: fmt.Sprintf("l%d", i),
			Region: Region{Start: 0x48000000 + uint64(i)*0x2000, SharedSize: 0x1000, PrivateStart: 0x71000000 + uint64(i)*0x20, PrivateSize: 0x20},
			Shared: Shared{Size: 0x1000}, Private: Part{MemSize: 0x20}})
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1, func() { c.Validate() })
	t.Logf("%d libraries: %.0f allocations", len(c.Libraries), allocs)
	if allocs > 64*MaxLibraries {
		t.Errorf("validating %d libraries allocated %.0f times, want at most %d", len(c.Libraries), allocs, 64*MaxLibraries)
	}
}

func validatePairwise(c *Config) error {
	if c.SchemaVersion != SchemaVersion && c.SchemaVersion != SchemaVersionDense && c.SchemaVersion != SchemaVersionPack {
		return fmt.Errorf("description: schema_version %d, want %d, %d or %d", c.SchemaVersion, SchemaVersion, SchemaVersionDense, SchemaVersionPack)
	}
	if len(c.Libraries) == 0 {
		return fmt.Errorf("description: no libraries")
	}
	if len(c.Libraries) > MaxLibraries {
		// The checks below compare every pair of libraries: bounded, a
		// hostile description (pulled from a registry) is refused in
		// milliseconds, not minutes.
		return fmt.Errorf("description: %d libraries, at most %d", len(c.Libraries), MaxLibraries)
	}
	if c.Boot != "" && c.Boot != BootLinux64 {
		return fmt.Errorf("description: unknown boot protocol %q (want %q or none)", c.Boot, BootLinux64)
	}
	var packPages []Library // the pack page entries
	for _, l := range c.Libraries {
		if l.PackPage {
			packPages = append(packPages, l)
		}
	}
	for i, l := range c.Libraries {
		r := l.Region
		if l.Pack != 0 {
			if c.SchemaVersion < SchemaVersionPack {
				return fmt.Errorf("description: library %q: in a pack in a schema_version %d description", l.Name, c.SchemaVersion)
			}
			if err := checkPackedPairwise(l, packPages); err != nil {
				return err
			}
		}
		if l.InPack() {
			// Its sub-page region was checked by checkPacked.
		} else if r.Start&pageMask != 0 || r.TrampSize&pageMask != 0 || r.SharedSize&pageMask != 0 || (!r.Dense() && r.PrivateSize&pageMask != 0) {
			return fmt.Errorf("description: library %q: region not page-aligned", l.Name)
		}
		if r.End() < r.Start || r.PrivateEnd() < r.PrivateAddr() {
			return fmt.Errorf("description: library %q: region wraps", l.Name)
		}
		if r.Dense() && c.SchemaVersion < SchemaVersionDense {
			return fmt.Errorf("description: library %q: a dense region in a schema_version %d description", l.Name, c.SchemaVersion)
		}
		if r.Dense() && (r.PrivateStart&15 != 0 || r.PrivateSize&15 != 0 || r.PrivateStart < r.End() || r.PrivateEnd()-r.Start >= 1<<31) {
			return fmt.Errorf("description: library %q: private part [%#x,%#x) is not 16-byte aligned after the region within 2 GiB", l.Name, r.PrivateStart, r.PrivateEnd())
		}
		if l.Shift != 0 && (l.Shift&pageMask != 0 || (!r.Dense() && !l.PackPage) || l.App) {
			return fmt.Errorf("description: library %q: shift %d from its map region: only a dense library moves, by whole pages", l.Name, l.Shift)
		}
		if l.Tramp.Size > r.TrampSize || l.Shared.Size > r.SharedSize || l.Private.MemSize > r.PrivateSize || l.Private.FileSize > l.Private.MemSize {
			return fmt.Errorf("description: library %q: a part exceeds its region", l.Name)
		}
		for j := 0; j < i; j++ {
			o := c.Libraries[j]
			if l.Pack != 0 && o.Pack == l.Pack && l.PackPage != o.PackPage {
				continue // a member lies in its pack's pages
			}
			if Overlap(r, o.Region) {
				return fmt.Errorf("description: libraries %q and %q overlap", c.Libraries[j].Name, l.Name)
			}
		}
		if l.Init != nil && (l.Init.Size < 0 || uint64(l.Init.Size) < l.InitDataOff()+l.Private.FileSize) {
			return fmt.Errorf("description: library %q: init blob of %d bytes cannot hold its table and data", l.Name, l.Init.Size)
		}
		for _, s := range l.Shared.Segments {
			if s.Off&pageMask != 0 || s.Off+s.Size > l.Shared.Size || s.Off+s.Size < s.Off {
				return fmt.Errorf("description: library %q: bad shared segment", l.Name)
			}
		}
		if t := l.Tramp; t.Split && (t.Size != 0 || len(t.Slots) != 0 || t.StubOff+t.StubSize < t.StubOff ||
			(t.StubSize > 0 && t.StubOff+t.StubSize > l.Shared.Size) || t.SlotSize > l.Private.FileSize) {
			return fmt.Errorf("description: library %q: split trampoline table (stubs %#x+%#x, slots %#x) outside its parts", l.Name, t.StubOff, t.StubSize, t.SlotSize)
		}
		if t := l.Tramp; !t.Split && (t.StubOff != 0 || t.StubSize != 0 || t.SlotSize != 0) {
			return fmt.Errorf("description: library %q: stub and slot sizes given for a table that is not split", l.Name)
		}
		for _, s := range l.Tramp.Slots {
			if s.Off+8 > l.Tramp.Size || s.Off+8 < s.Off {
				return fmt.Errorf("description: library %q: tramp slot at %#x outside table", l.Name, s.Off)
			}
			if err := c.checkAddr(s.Target); err != nil {
				return fmt.Errorf("description: library %q: slot: %w", l.Name, err)
			}
		}
		for _, rl := range l.Relocs {
			if rl.Off+8 > l.Private.MemSize || rl.Off+8 < rl.Off {
				return fmt.Errorf("description: library %q: reloc at %#x outside private part", l.Name, rl.Off)
			}
			if err := c.checkAddr(rl.Target); err != nil {
				return fmt.Errorf("description: library %q: reloc: %w", l.Name, err)
			}
		}
	}
	if err := c.checkAddr(c.Entry); err != nil {
		return fmt.Errorf("description: entry: %w", err)
	}
	if c.TLS != nil {
		if err := c.checkAddr(c.TLS.Image); err != nil {
			return fmt.Errorf("description: tls: %w", err)
		}
	}
	for i, a := range c.Arena {
		if a.Addr&pageMask != 0 || a.Size&pageMask != 0 || a.BlobOff&pageMask != 0 || a.Size == 0 ||
			a.Addr+a.Size < a.Addr || a.BlobOff+a.Size < a.BlobOff {
			return fmt.Errorf("description: arena run %d (%#x bytes at %#x, blob offset %#x) not whole pages", i, a.Size, a.Addr, a.BlobOff)
		}
		if i > 0 && a.Addr < c.Arena[i-1].Addr+c.Arena[i-1].Size {
			return fmt.Errorf("description: arena run %d at %#x overlaps or precedes the one before it", i, a.Addr)
		}
	}
	if c.Snapshot != nil {
		if err := c.Snapshot.Validate(); err != nil {
			return fmt.Errorf("description: %w", err)
		}
	}
	return nil
}

// checkPacked checks a pack member or pack page entry: its shape, and
// for a member that every page of its code lies in a pack page entry of
// its pack, moved as it is.
func checkPackedPairwise(l Library, packPages []Library) error {
	r := l.Region
	if l.App || r.TrampSize != 0 || l.Tramp.Size != 0 || l.MapRegion().Start < l.Pack {
		return fmt.Errorf("description: library %q: in the pack at %#x but an app, before its pack or with a tramp part", l.Name, l.Pack)
	}
	// A pack's members and pages lie in its room in the map (at most
	// MaxPackSize: libmap.PackRoom), so a member's code spans a bounded
	// number of pages, each looked up among the pack page entries.
	if off := l.MapRegion().Start - l.Pack; r.SharedSize > MaxPackSize || off > MaxPackSize-r.SharedSize {
		return fmt.Errorf("description: library %q: %#x bytes at %#x past its pack's start %#x in the map: outside a pack's room (%#x bytes)",
			l.Name, r.SharedSize, off, l.Pack, MaxPackSize)
	}
	if l.PackPage {
		if r.Start&pageMask != 0 || r.SharedSize == 0 || r.SharedSize&pageMask != 0 || r.SharedSize > MaxPackSize || r.PrivateSize != 0 ||
			r.Dense() || l.Shared.Size != r.SharedSize || l.Private.MemSize != 0 || len(l.Relocs) != 0 || l.Tramp.Split || l.Init != nil {
			return fmt.Errorf("description: pack page %q at %#x: not whole pages of code (at most %#x bytes) and nothing else", l.Name, r.Start, MaxPackSize)
		}
		return nil
	}
	if r.Start&15 != 0 || r.SharedSize&15 != 0 || !r.Dense() || len(l.Shared.Segments) != 0 || l.Shared.Digest != "" || r.End() <= r.Start {
		return fmt.Errorf("description: library %q: in a pack, its region at %#x must be 16-byte aligned code (no segments or blob of its own) with a dense private part", l.Name, r.Start)
	}
	for pg := r.Start &^ pageMask; pg < r.Start+r.SharedSize; pg += pageMask + 1 {
		found := false
		for _, p := range packPages {
			found = found || (p.Pack == l.Pack && p.Shift == l.Shift && pg >= p.Region.Start && pg < p.Region.Start+p.Region.SharedSize)
		}
		if !found {
			return fmt.Errorf("description: library %q: its code at %#x lies on no page of its pack at %#x moved as it is", l.Name, pg, l.Pack)
		}
	}
	return nil
}

// firstOverlap sorts the ranges once and reuses its lists for every
// prefix it probes: its allocations do not grow with the probes (a list,
// a sort and a map per probe were 30 MB of a snapshot monitor's garbage).
func TestFirstOverlapAllocatesOnceNotPerProbe(t *testing.T) {
	for _, n := range []int{12, 60, 300} {
		var libs []Library
		for i := range n {
			p := uint64(0x40000000 + i*0x2000)
			libs = append(libs, Library{Name: fmt.Sprintf("m%d", i), Pack: p,
				Region: Region{Start: p + 0x40, SharedSize: 0x100, PrivateStart: 0x70000000 + uint64(i)*0x10, PrivateSize: 0x10}})
		}
		if got := firstOverlap(libs); got != n {
			t.Fatalf("%d libraries apart: firstOverlap %d, want %d", n, got, n)
		}
		// ranges, counts, the pack map and its growth, the sort's
		// closure and swapper, the heap's growths: a handful, whatever n
		if allocs := testing.AllocsPerRun(5, func() { firstOverlap(libs) }); allocs > 12 {
			t.Errorf("%d libraries: firstOverlap allocated %.0f times, want at most 12", n, allocs)
		}
		// An overlap at the end is found there.
		last := libs[n-1]
		last.Region.Start = libs[0].Region.Start
		last.Pack = 0
		over := append(libs[:n-1:n-1], last)
		if got := firstOverlap(over); got != n-1 {
			t.Errorf("%d libraries, the last overlapping the first: firstOverlap %d, want %d", n, got, n-1)
		}
	}
}
