package pool

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/libmap"
)

// checkMap refuses an image whose libraries are not where the pool's map
// put them: a blob is shared only among images that agree on its address.
func (p *Pool) checkMap(im *image) error {
	if err := p.checkMapConfig("image "+im.path, im.config); err != nil {
		return err
	}
	return p.checkPackPages(im)
}

// checkPackPages refuses an image whose pack pages (desc.Library.PackPage)
// do not hold the bytes the map sealed for them: every image must map
// the same pages for a pack to be pooled once.
func (p *Pool) checkPackPages(im *image) error {
	var m *libmap.Map
	for _, l := range im.config.Libraries {
		if !l.PackPage {
			continue
		}
		if m == nil {
			var err error
			if m, err = libmap.Load(p.MapPath()); err != nil {
				return fmt.Errorf("image %s: %w", im.path, err)
			}
		}
		pk := m.PackAt(l.Pack)
		want := make([]byte, pageMask+1)
		at := l.MapRegion().Start
		if pk != nil && at >= pk.Start && at < pk.Start+pk.Size {
			want = sealedBytes(pk, at-pk.Start, pageMask+1)
		}
		got, err := im.read(l.Region.Start, pageMask+1, false)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("image %s: pack page %q at %#x does not hold the bytes the library map %s sealed for its pack at %#x", im.path, l.Name, l.Region.Start, p.MapPath(), l.Pack)
		}
	}
	return nil
}

// checkMapConfig checks c's libraries against the map; what names the
// image or unikernel c describes, for errors.
func (p *Pool) checkMapConfig(what string, c *desc.Config) error {
	if !needsMap(c) {
		return nil
	}
	// libmap.Load reads a missing map as an empty one (for the linker's
	// first link); here a missing map is worth its own message.
	if _, err := os.Stat(p.MapPath()); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: pool %s has no library map (%s): link the image with `--pool %s` so its regions are recorded there", what, p.dir, p.MapPath(), p.dir)
	}
	m, err := libmap.Load(p.MapPath())
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return checkConfigAgainstMap(m, p.MapPath(), p.dir, what, c)
}

func needsMap(c *desc.Config) bool {
	for _, l := range c.Libraries {
		if !l.App {
			return true
		}
	}
	return false
}

// checkConfigAgainstMap checks c's libraries against m, the map at mapPath
// of the pool poolDir (for errors).
func checkConfigAgainstMap(m *libmap.Map, mapPath, poolDir, what string, c *desc.Config) error {
	if !needsMap(c) {
		return nil
	}
	if len(m.Libraries) == 0 {
		return fmt.Errorf("%s: pool %s has no library map (%s) and the registry has none either", what, poolDir, mapPath)
	}
	for _, l := range c.Libraries {
		if l.App {
			continue
		}
		if l.PackPage {
			// One page of the pack, or the whole pack (wholePacks).
			if pk, at := m.PackAt(l.Pack), l.MapRegion().Start; pk == nil || at < pk.Start || at+l.Region.SharedSize > pk.Start+pk.Size || at+l.Region.SharedSize < at {
				return fmt.Errorf("%s: pack page %q at %#x (%#x bytes) lies in no pack at %#x of the library map %s", what, l.Name, l.Region.Start, l.Region.SharedSize, l.Pack, mapPath)
			}
			continue
		}
		var regions []desc.Region
		if ml := m.Library(l.Name); ml != nil {
			for _, r := range ml.Regions {
				regions = append(regions, r.Region)
			}
		}
		found := false
		if ml := m.Library(l.Name); ml != nil {
			for _, r := range ml.Regions {
				found = found || (l.MapRegion().Within(r.Region) && r.Pack == l.Pack)
			}
		}
		if !found {
			r := l.MapRegion()
			return fmt.Errorf("%s: library %q at %#x (tramp %#x, shared %#x, private %#x) disagrees with the library map %s, which has %s",
				what, l.Name, r.Start, r.TrampSize, r.SharedSize, r.PrivateSize, mapPath, describeRegions(regions))
		}
	}
	return nil
}

// sealedPages checks that every pack page entry of c, a pooled
// description (one pulled from a registry), names as its blob the bytes
// m sealed for its pack there: the pack's content from the entry's map
// address, zero past it, for the entry's size. Pool add makes those
// blobs from the map (wholePacks, after checkPackPages); a pulled
// description names them by digest only, so without this one whose pack
// blob holds other bytes would be mapped as the pack into every instance
// of it (the blob is content-addressed, so no other unikernel's mapping
// changes, but its members' code would not be the code the map placed).
// checkConfigAgainstMap has put every entry inside its pack; what names
// the unikernel, for errors. The digests of the sealed ranges are kept
// (many unikernels use one pack), so a pull of a fleet hashes each pack
// range once.
type sealedPages struct {
	m       *libmap.Map
	mapPath string
	mu      sync.Mutex
	digests map[[3]uint64]digest.Digest // pack start, offset, size
}

func newSealedPages(m *libmap.Map, mapPath string) *sealedPages {
	return &sealedPages{m: m, mapPath: mapPath, digests: map[[3]uint64]digest.Digest{}}
}

func (s *sealedPages) check(what string, c *desc.Config) error {
	for _, l := range c.Libraries {
		if l.PackPage {
			if err := s.checkEntry(what, l); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkEntry is check for one pack page entry l.
func (s *sealedPages) checkEntry(what string, l desc.Library) error {
	pk, at, size := s.m.PackAt(l.Pack), l.MapRegion().Start, l.Shared.Size
	if pk == nil || at < pk.Start || size > pk.Size || at-pk.Start > pk.Size-size {
		return fmt.Errorf("%s: pack page %q at %#x (%#x bytes) lies in no pack at %#x of the library map %s", what, l.Name, l.Region.Start, size, l.Pack, s.mapPath)
	}
	key := [3]uint64{pk.Start, at - pk.Start, size}
	s.mu.Lock()
	want, ok := s.digests[key]
	s.mu.Unlock()
	if !ok {
		want = digest.SHA256.FromBytes(sealedBytes(pk, at-pk.Start, size))
		s.mu.Lock()
		s.digests[key] = want
		s.mu.Unlock()
	}
	if digest.Digest(l.Shared.Digest) != want {
		return fmt.Errorf("%s: pack %q at %#x: its blob %s is not the %#x bytes the library map %s sealed for its pack at %#x (those are %s)",
			what, l.Name, l.Region.Start, l.Shared.Digest, size, s.mapPath, pk.Start, want)
	}
	return nil
}

// sealedBytes is the size bytes of pk from off: its sealed content,
// zero past its end.
func sealedBytes(pk *libmap.Pack, off, size uint64) []byte {
	b := make([]byte, size)
	if off < uint64(len(pk.Content)) {
		copy(b, pk.Content[off:])
	}
	return b
}

func describeRegions(rs []desc.Region) string {
	if len(rs) == 0 {
		return "no region for it"
	}
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%#x (tramp %#x, shared %#x, private %#x)", r.Start, r.TrampSize, r.SharedSize, r.PrivateSize)
	}
	return s
}

// wholePacks replaces in c, an image's description whose pack pages
// checkPackPages found to be what the map sealed, the pack page entries
// of each pack (one per page the image's members touch) by one entry for
// the whole pack: its sealed pages (libmap.Pack.Content, to the page) at
// the pack's place in the image, stored as one blob. An instance then
// maps the pack with one host mapping (a VMA) whichever members it uses;
// the pages it never touches cost it nothing, and they are the same
// sealed bytes in every image, so they tell nothing about another image.
// It returns each whole pack's bytes by its entry's start; the pages the
// image carries must be those bytes (checked here too).
//
// A pack keeps its entries per page (as descriptions pooled before this
// did, which load as they are) where one entry cannot replace them: its
// whole pages would overlap another library of the image (a pack the
// image moved, with its members' private parts, next to another pack
// it uses). Every pack does if the pack page entries are not the
// description's last or an address names one (the entries' indices
// would change).
func (p *Pool) wholePacks(im *image, c *desc.Config) (map[uint64][]byte, error) {
	first := len(c.Libraries)
	for first > 0 && c.Libraries[first-1].PackPage {
		first--
	}
	for _, l := range c.Libraries[:first] {
		if l.PackPage {
			return nil, nil // not all at the end
		}
	}
	if first == len(c.Libraries) || addrNamesFrom(c, first) {
		return nil, nil
	}
	m, err := libmap.Load(p.MapPath())
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", im.path, err)
	}
	var order []uint64 // pack starts, as the image lists them
	byPack := map[uint64][]desc.Library{}
	for _, l := range c.Libraries[first:] {
		if _, ok := byPack[l.Pack]; !ok {
			order = append(order, l.Pack)
		}
		byPack[l.Pack] = append(byPack[l.Pack], l)
	}
	kept := c.Libraries
	// chosen: the entries decided so far (a whole pack, or its pages),
	// then, for the packs not yet decided, their pages.
	chosen := map[uint64][]desc.Library{}
	try := func() []desc.Library {
		libs := append([]desc.Library(nil), kept[:first]...)
		for _, start := range order {
			if e, ok := chosen[start]; ok {
				libs = append(libs, e...)
			} else {
				libs = append(libs, byPack[start]...)
			}
		}
		return libs
	}
	blobs := map[uint64][]byte{}
	for _, start := range order {
		pages := byPack[start]
		pk := m.PackAt(start)
		if pk == nil {
			return nil, fmt.Errorf("image %s: no pack at %#x in the library map %s", im.path, start, p.MapPath())
		}
		shift := pages[0].Shift
		size := pageUp(uint64(len(pk.Content)))
		for _, l := range pages {
			if l.Shift != shift {
				return nil, fmt.Errorf("image %s: pack at %#x: its pages moved by %d and %d", im.path, start, shift, l.Shift)
			}
			size = max(size, l.MapRegion().Start+l.Region.SharedSize-start)
		}
		if size > pk.Size || size > desc.MaxPackSize {
			return nil, fmt.Errorf("image %s: pack at %#x: its pages reach %#x bytes past its start, beyond its room %#x in the library map %s", im.path, start, size, pk.Size, p.MapPath())
		}
		data := make([]byte, size)
		copy(data, pk.Content)
		at := uint64(int64(start) + shift) // where the image has it
		for _, l := range pages {
			got, err := im.read(l.Region.Start, l.Region.SharedSize, false)
			if err != nil {
				return nil, err
			}
			if off := l.Region.Start - at; !bytes.Equal(got, data[off:off+l.Region.SharedSize]) {
				return nil, fmt.Errorf("image %s: pack page %q at %#x does not hold the bytes the library map %s sealed for its pack at %#x", im.path, l.Name, l.Region.Start, p.MapPath(), start)
			}
		}
		chosen[start] = []desc.Library{{
			Name:     desc.PackPageName(at),
			Region:   desc.Region{Start: at, SharedSize: size},
			Shared:   desc.Shared{Size: size, Segments: []desc.Segment{{Off: 0, Size: size, Prot: desc.ProtRX}}},
			Shift:    shift,
			Pack:     start,
			PackPage: true,
		}}
		c.Libraries = try()
		if c.Validate() != nil {
			// Its whole pages overlap another library of the image.
			chosen[start] = pages
			continue
		}
		blobs[at] = data
	}
	c.Libraries = try()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("image %s: with its packs as whole blobs: %w", im.path, err)
	}
	return blobs, nil
}

// addrNamesFrom reports whether an address of c names library from or
// a later one.
func addrNamesFrom(c *desc.Config, from int) bool {
	names := func(a desc.Addr) bool { return a.Lib >= from }
	if names(c.Entry) || (c.TLS != nil && names(c.TLS.Image)) {
		return true
	}
	for _, l := range c.Libraries {
		for _, s := range l.Tramp.Slots {
			if names(s.Target) {
				return true
			}
		}
		for _, r := range l.Relocs {
			if names(r.Target) {
				return true
			}
		}
	}
	return false
}
