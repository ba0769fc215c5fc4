package pool

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

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
			off := at - pk.Start
			if off < uint64(len(pk.Content)) {
				copy(want, pk.Content[off:])
			}
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
			if pk, at := m.PackAt(l.Pack), l.MapRegion().Start; pk == nil || at < pk.Start || at >= pk.Start+pk.Size {
				return fmt.Errorf("%s: pack page %q at %#x lies in no pack at %#x of the library map %s", what, l.Name, l.Region.Start, l.Pack, mapPath)
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
