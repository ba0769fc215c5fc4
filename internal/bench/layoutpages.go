package bench

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
)

// AnalyzeImages hashes every loaded page of the images of one layout and
// counts the pages whose content no other image has (unique) against those
// another image also has (shareable — what KSM could merge), and among
// those, the ones found at the same address in another image (what
// load-time sharing of an aligned layout shares without scanning). The
// address of a library's page is where the library map put it: an image
// may move a library by whole pages (desc.Library.Shift), its pages the
// same pool pages.
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
		mapAddr, err := mapAddresses(path)
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
				addr := mapAddr(m.Addr + off)
				k := key{h, addr}
				all = append(all, page{h, addr})
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

// mapAddresses returns, for an image at path, the function from an
// address in it to the address the library map gave it: moved back by
// the shift of the library holding it (the identity for an image without
// a description or moved libraries).
func mapAddresses(path string) (func(uint64) uint64, error) {
	im, err := elfimage.Open(path)
	if err != nil {
		return nil, err
	}
	cfg, err := im.Config()
	if errors.Is(err, elfimage.ErrNoConfig) {
		return func(a uint64) uint64 { return a }, nil
	}
	if err != nil {
		return nil, err
	}
	return func(a uint64) uint64 {
		for _, l := range cfg.Libraries {
			if l.Shift != 0 && l.Region.Holds(a) {
				return uint64(int64(a) - l.Shift)
			}
		}
		return a
	}, nil
}
