package pool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/unipool/unipool/internal/desc"
)

// mapRegions reads the library map and returns every region it records per
// library name (a library that outgrew its slack has several).
//
// internal/libmap owns the map's format; until it lands this reads the
// shape it is expected to have. Only this function knows that shape.
func mapRegions(path string) (map[string][]desc.Region, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m struct {
		Libraries []struct {
			Name    string        `json:"name"`
			Regions []desc.Region `json:"regions"`
		} `json:"libraries"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("library map %s: %w", path, err)
	}
	out := map[string][]desc.Region{}
	for _, l := range m.Libraries {
		out[l.Name] = append(out[l.Name], l.Regions...)
	}
	return out, nil
}

// checkMap refuses an image whose libraries are not where the pool's map
// put them: a blob is shared only among images that agree on its address.
func (p *Pool) checkMap(im *image) error {
	needMap := false
	for _, l := range im.config.Libraries {
		needMap = needMap || !l.App
	}
	if !needMap {
		return nil
	}
	regions, err := mapRegions(p.MapPath())
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("image %s: pool %s has no library map (%s): link the image with `--pool %s` so its regions are recorded there", im.path, p.dir, p.MapPath(), p.dir)
	}
	if err != nil {
		return fmt.Errorf("image %s: %w", im.path, err)
	}
	for _, l := range im.config.Libraries {
		if l.App {
			continue
		}
		found := false
		for _, r := range regions[l.Name] {
			found = found || r == l.Region
		}
		if !found {
			r := l.Region
			return fmt.Errorf("image %s: library %q at %#x (tramp %#x, shared %#x, private %#x) disagrees with the library map %s, which has %s",
				im.path, l.Name, r.Start, r.TrampSize, r.SharedSize, r.PrivateSize, p.MapPath(), describeRegions(regions[l.Name]))
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
