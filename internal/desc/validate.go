package desc

import "fmt"

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
func checkPacked(l Library, packPages []Library) error {
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
