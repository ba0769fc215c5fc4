package desc

import (
	"fmt"
	"sort"
)

const pageMask = 0xfff

// MaxLibraries bounds a description's library entries (libraries, pack
// pages, the app): a unikernel of unipool's corpus has ~30, a Unikraft one
// ~100.
const MaxLibraries = 4096

// Validate checks the invariants a loader relies on: page-aligned regions
// that do not overlap, parts that fit their capacities, and addresses that
// name an existing library and fall inside its region.
func (c *Config) Validate() error {
	if c.SchemaVersion != SchemaVersion && c.SchemaVersion != SchemaVersionDense && c.SchemaVersion != SchemaVersionPack {
		return fmt.Errorf("description: schema_version %d, want %d, %d or %d", c.SchemaVersion, SchemaVersion, SchemaVersionDense, SchemaVersionPack)
	}
	if len(c.Libraries) == 0 {
		return fmt.Errorf("description: no libraries")
	}
	if len(c.Libraries) > MaxLibraries {
		// Bounded, a hostile description (pulled from a registry) is
		// refused before anything is checked of its entries.
		return fmt.Errorf("description: %d libraries, at most %d", len(c.Libraries), MaxLibraries)
	}
	if c.Boot != "" && c.Boot != BootLinux64 {
		return fmt.Errorf("description: unknown boot protocol %q (want %q or none)", c.Boot, BootLinux64)
	}
	packPages := indexPackPages(c.Libraries)
	// The first library that overlaps one before it (sorted, swept: not
	// every pair compared); the checks below find which one it overlaps.
	overlapAt := firstOverlap(c.Libraries)
	for i, l := range c.Libraries {
		r := l.Region
		if l.Pack != 0 {
			if c.SchemaVersion < SchemaVersionPack {
				return fmt.Errorf("description: library %q: in a pack in a schema_version %d description", l.Name, c.SchemaVersion)
			}
			if err := checkPacked(l, packPages); err != nil {
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
		for j := 0; i == overlapAt && j < i; j++ {
			o := c.Libraries[j]
			if overlapExempt(l, o) {
				continue
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
func checkPacked(l Library, packPages packPageIndex) error {
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
		if !packPages.covers(l.Pack, l.Shift, pg) {
			return fmt.Errorf("description: library %q: its code at %#x lies on no page of its pack at %#x moved as it is", l.Name, pg, l.Pack)
		}
	}
	return nil
}

// packPageIndex is a description's pack page entries by pack and shift,
// each group sorted by start with the running maximum of their ends, so
// that a member's page is looked up in O(log n), not among every entry.
type packPageIndex map[packShift][]pageRun

type packShift struct {
	pack  uint64
	shift int64
}

type pageRun struct {
	start uint64
	end   uint64 // the largest end (start + shared size, as uint64 sums wrap) of the group's runs up to this one
}

func indexPackPages(libs []Library) packPageIndex {
	ix := packPageIndex{}
	for _, l := range libs {
		if l.PackPage {
			k := packShift{l.Pack, l.Shift}
			ix[k] = append(ix[k], pageRun{l.Region.Start, l.Region.Start + l.Region.SharedSize})
		}
	}
	for _, runs := range ix {
		sort.Slice(runs, func(i, j int) bool { return runs[i].start < runs[j].start })
		for i := 1; i < len(runs); i++ {
			runs[i].end = max(runs[i].end, runs[i-1].end)
		}
	}
	return ix
}

// covers reports whether a pack page entry of pack moved by shift holds
// the address pg (start <= pg < start + shared size).
func (ix packPageIndex) covers(pack uint64, shift int64, pg uint64) bool {
	runs := ix[packShift{pack, shift}]
	k := sort.Search(len(runs), func(i int) bool { return runs[i].start > pg }) - 1
	return k >= 0 && runs[k].end > pg
}

// overlapExempt says whether Validate does not compare l and o: a pack
// member and a pack page entry of its pack (the member lies in its
// pack's pages).
func overlapExempt(l, o Library) bool {
	return l.Pack != 0 && o.Pack == l.Pack && l.PackPage != o.PackPage
}

// firstOverlap returns the smallest i such that library i overlaps
// (Overlap) a library before it that overlapExempt does not exempt, or
// len(libs) if none does: the first pair Validate's checks in library
// order would find, without comparing every pair. The first prefix of
// libs that holds an overlap is found by binary search, each prefix
// checked by one sweep over its ranges sorted by start: O(n log² n).
func firstOverlap(libs []Library) int {
	var sw overlapSweep
	sw.init(libs)
	lo, hi := 0, len(libs) // the answer is in [lo, hi]; libs[:lo] holds none
	for lo < hi {
		mid := lo + (hi-lo)/2
		if sw.overlaps(mid + 1) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// libSpan is one address range of a library (a dense one has two: its
// contiguous part and its private part), as Overlap compares them.
type libSpan struct {
	lo, hi uint64
	lib    int
	class  packClass
}

// packClass is a library's kind for overlapExempt: a member or a page
// entry of a pack (pack 0: neither).
type packClass struct {
	pack uint64
	page bool
}

// spanHeap is the sweep's active ranges, the one that ends first on top
// (a binary heap by end).
type spanHeap []libSpan

func (h *spanHeap) push(s libSpan) {
	*h = append(*h, s)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if a[p].hi <= a[i].hi {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *spanHeap) pop() libSpan {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	for i := 0; ; {
		m, l, r := i, 2*i+1, 2*i+2
		if l < n && a[l].hi < a[m].hi {
			m = l
		}
		if r < n && a[r].hi < a[m].hi {
			m = r
		}
		if m == i {
			break
		}
		a[m], a[i] = a[i], a[m]
		i = m
	}
	*h = a
	return top
}

// overlapSweep is firstOverlap's state: the ranges of every library,
// sorted once (a prefix's are these without the later libraries': leaving
// some out keeps the order), and the lists each sweep reuses. Each probe
// made, sorted and dropped lists and a map of its own before: 30 MB of
// the garbage a snapshot monitor made checking 1000 descriptions
// (docs/notes/monitor-memory.md, Session 17 (snapmon17)).
type overlapSweep struct {
	spans   []libSpan
	active  spanHeap
	byLib   []int
	byClass map[packClass]int
}

func (sw *overlapSweep) init(libs []Library) {
	sw.spans = make([]libSpan, 0, len(libs)+len(libs)/2)
	packed := 0
	for i, l := range libs {
		r := l.Region
		var cl packClass
		if l.Pack != 0 {
			cl = packClass{l.Pack, l.PackPage}
			packed++
		}
		sw.spans = append(sw.spans, libSpan{r.Start, r.End(), i, cl})
		if r.Dense() {
			sw.spans = append(sw.spans, libSpan{r.PrivateStart, r.PrivateEnd(), i, cl})
		}
	}
	sort.Slice(sw.spans, func(i, j int) bool {
		if sw.spans[i].lo != sw.spans[j].lo {
			return sw.spans[i].lo < sw.spans[j].lo
		}
		return sw.spans[i].hi < sw.spans[j].hi
	})
	sw.byLib = make([]int, len(libs))
	sw.active = make(spanHeap, 0, len(sw.spans))
	if packed > 0 {
		sw.byClass = make(map[packClass]int, packed)
	}
}

// overlaps reports whether two of the first n libraries overlap, but for
// pairs overlapExempt exempts. Ranges sorted by (start, end): each range
// overlaps exactly the earlier ones still active (ending after its
// start; of two ranges starting at one address, the empty one, sorted
// first, overlaps neither, as in Overlap; two equal ones overlap or not
// whichever comes first), so it is enough to count the active ranges of
// other libraries and of the class it is exempt from. A range that wraps
// (end below start) only adds overlaps: Validate refuses its library
// before it compares it.
func (sw *overlapSweep) overlaps(n int) bool {
	active := sw.active[:0]
	defer func() { sw.active = active[:0] }()
	byLib, byClass := sw.byLib[:n], sw.byClass
	clear(byLib)
	clear(byClass)
	for _, s := range sw.spans {
		if s.lib >= n {
			continue
		}
		for len(active) > 0 && active[0].hi <= s.lo {
			e := active.pop()
			byLib[e.lib]--
			if e.class.pack != 0 {
				byClass[e.class]--
			}
		}
		others := len(active) - byLib[s.lib]
		if s.class.pack != 0 {
			others -= byClass[packClass{s.class.pack, !s.class.page}]
		}
		if others > 0 {
			return true
		}
		active.push(s)
		byLib[s.lib]++
		if s.class.pack != 0 {
			byClass[s.class]++
		}
	}
	return false
}

func (c *Config) checkAddr(a Addr) error {
	if a.Lib < 0 || a.Lib >= len(c.Libraries) {
		return fmt.Errorf("library index %d out of range", a.Lib)
	}
	r := c.Libraries[a.Lib].Region
	// One past a part's end is an address too (an end-of-bss symbol).
	if a.Off > r.End()-r.Start && (!r.Dense() || a.Off < r.PrivateStart-r.Start || a.Off > r.PrivateEnd()-r.Start) {
		return fmt.Errorf("offset %#x outside library %q", a.Off, c.Libraries[a.Lib].Name)
	}
	return nil
}

// Overlap reports whether two regions share an address (their
// contiguous ranges and, for dense ones, their private parts).
func Overlap(a, b Region) bool {
	type span struct{ lo, hi uint64 }
	spans := func(r Region) []span {
		s := []span{{r.Start, r.End()}}
		if r.Dense() {
			s = append(s, span{r.PrivateStart, r.PrivateEnd()})
		}
		return s
	}
	for _, x := range spans(a) {
		for _, y := range spans(b) {
			if x.lo < y.hi && y.lo < x.hi {
				return true
			}
		}
	}
	return false
}

// BlobDigests lists the digests of every blob the description names:
// each library's shared and init blobs, and the private blob.
func (c *Config) BlobDigests() []string {
	var ds []string
	for _, l := range c.Libraries {
		if l.Shared.Digest != "" {
			ds = append(ds, l.Shared.Digest)
		}
		if l.Init != nil && l.Init.Digest != "" {
			ds = append(ds, l.Init.Digest)
		}
	}
	if c.Private != nil && c.Private.Digest != "" {
		ds = append(ds, c.Private.Digest)
	}
	return ds
}
