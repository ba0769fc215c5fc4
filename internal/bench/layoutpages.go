package bench

import (
	"crypto/sha256"
	"fmt"

	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
)

// AnalyzeImages hashes every loaded page of the images of one layout and
// counts the pages whose content no other image has (unique) against those
// another image also has (shareable — what KSM could merge), and among
// those, the ones found at the same address in another image (what
// load-time sharing of an aligned layout shares without scanning).
// All-zero pages (bss, padding, table slack) are counted apart: they
// share nothing worth the name.
func AnalyzeImages(layout string, paths []string) (LayoutPages, error) {
	type key struct {
		h    [32]byte
		addr uint64
	}
	byContent := map[[32]byte]int{}
	byAddr := map[key]int{}
	type page struct {
		h    [32]byte
		addr uint64
	}
	zero := sha256.Sum256(make([]byte, 4096))
	var all []page
	res := LayoutPages{Layout: layout}
	for _, path := range paths {
		p, err := loader.Prepare(monitor.Unikernel{Name: path, Image: path}, true)
		if err != nil {
			return res, fmt.Errorf("bench: %w", err)
		}
		lay, err := p.Plan(loader.Options{})
		if err != nil {
			return res, fmt.Errorf("bench: %w", err)
		}
		seen := map[[32]byte]bool{} // count a content once per image
		seenAt := map[key]bool{}
		for _, m := range lay.Mappings {
			if m.Part != loader.PartImage {
				continue
			}
			res.TotalBytes += m.Size
			buf := make([]byte, 4096)
			for off := uint64(0); off < m.Size; off += 4096 {
				clear(buf)
				if off < uint64(len(m.Data)) {
					copy(buf, m.Data[off:])
				}
				h := sha256.Sum256(buf)
				k := key{h, m.Addr + off}
				all = append(all, page{h, m.Addr + off})
				if !seen[h] {
					seen[h] = true
					byContent[h]++
				}
				if !seenAt[k] {
					seenAt[k] = true
					byAddr[k]++
				}
			}
		}
	}
	for _, pg := range all {
		switch {
		case pg.h == zero: // bss, padding, table slack: no content to share
			res.Zero++
		case byContent[pg.h] < 2:
			res.Unique++
		default:
			res.Shareable++
			if byAddr[key{pg.h, pg.addr}] >= 2 {
				res.SameAddr++
			}
		}
	}
	return res, nil
}
