package link

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"sort"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/libmap"
)

// Packs (libmap.Pack): the code of small library versions lies side by
// side in pages of the map, so that an image using several maps one page
// where each would round up to its own. Every image that uses a member
// maps the pack pages the member touches with their whole content, the
// bytes of members it does not link included (the sealed content the
// map keeps), so the pages are identical in every image and pooled once.

// packFill is a run of a pack's sealed bytes that this image carries for
// members it does not link: a section the script reserves at addr in the
// r-x segment seg of its run of pack pages, filled after ld (fillPacks).
type packFill struct {
	addr    uint64
	section string
	seg     string
	data    []byte
}

// packPages lists, per pack of the image's members, the pages its
// members touch (sorted).
func packPages(libs []*placed) map[uint64][]uint64 {
	seen := map[uint64]bool{}
	out := map[uint64][]uint64{}
	for _, p := range libs {
		if p.pack == 0 {
			continue
		}
		r := p.region
		for pg := r.Start &^ (abi.PageSize - 1); pg < r.End(); pg += abi.PageSize {
			if !seen[pg] {
				seen[pg] = true
				out[p.pack] = append(out[p.pack], pg)
			}
		}
	}
	for _, pgs := range out {
		sort.Slice(pgs, func(i, j int) bool { return pgs[i] < pgs[j] })
	}
	return out
}

// packFills names the segment of every run of pack pages the image's
// members touch (placed.packSeg), and returns the bytes the image must
// carry there for the members it does not link, from the map's sealed
// packs (a pack this link opened holds only members of this image).
func (l *linker) packFills(m *libmap.Map, libs []*placed) ([]packFill, error) {
	pages := packPages(libs)
	var starts []uint64
	for s := range pages {
		starts = append(starts, s)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	segOf := map[uint64]string{}
	var fills []packFill
	for k, start := range starts {
		pk := m.PackAt(start)
		if pk == nil {
			return nil, fmt.Errorf("link %s: %s: no pack at %#x", l.opt.Output, l.opt.MapPath, start)
		}
		run := 0
		for i, pg := range pages[start] {
			if i > 0 && pages[start][i-1]+abi.PageSize != pg {
				run++
			}
			segOf[pg] = fmt.Sprintf("pk%d_%d", k, run)
		}
		if len(pk.Content) == 0 {
			continue // opened by this link: every member is here
		}
		var used [][2]uint64
		var shift int64 // the pack's, in this image (fitPrivateParts)
		for _, p := range libs {
			if p.pack == start {
				used = append(used, [2]uint64{p.region.Start, p.region.End()})
				shift = p.shift
			}
		}
		sort.Slice(used, func(i, j int) bool { return used[i][0] < used[j][0] })
		base := uint64(int64(pk.Start) + shift) // where the pack lies in this image
		end := base + uint64(len(pk.Content))
		for _, pg := range pages[start] {
			lo, hi := pg, min(pg+abi.PageSize, end)
			var gaps [][2]uint64
			for _, u := range used {
				if u[1] <= lo || u[0] >= hi {
					continue
				}
				if u[0] > lo {
					gaps = append(gaps, [2]uint64{lo, u[0]})
				}
				lo = max(lo, u[1])
			}
			if lo < hi {
				gaps = append(gaps, [2]uint64{lo, hi})
			}
			for _, g := range gaps {
				b := pk.Content[g[0]-base : g[1]-base]
				// Zeros need no bytes: a segment's holes read as zero.
				lead := len(b) - len(bytes.TrimLeft(b, "\x00"))
				b = bytes.TrimRight(b[lead:], "\x00")
				if len(b) == 0 {
					continue
				}
				a := g[0] + uint64(lead)
				fills = append(fills, packFill{addr: a, section: fmt.Sprintf(".pkfill.%x", a), seg: segOf[pg], data: b})
			}
		}
	}
	for _, p := range libs {
		if p.pack != 0 {
			p.packSeg = segOf[p.region.Start&^(abi.PageSize-1)]
		}
	}
	return fills, nil
}

// fillPacks writes the fills' bytes into the room the script gave them
// (a section each) in the linked image at path.
func fillPacks(path string, fills []packFill) error {
	if len(fills) == 0 {
		return nil
	}
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	off := map[string]uint64{}
	for _, s := range f.Sections {
		off[s.Name] = s.Offset
		for _, fl := range fills {
			if s.Name == fl.section && (s.Size != uint64(len(fl.data)) || s.Addr != fl.addr || s.Type != elf.SHT_PROGBITS) {
				f.Close()
				return fmt.Errorf("pack fill %s: section at %#x of %#x bytes, want %#x at %#x", s.Name, s.Addr, s.Size, len(fl.data), fl.addr)
			}
		}
	}
	f.Close()
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer w.Close()
	for _, fl := range fills {
		o, ok := off[fl.section]
		if !ok {
			return fmt.Errorf("pack fill %s: not in the image", fl.section)
		}
		if _, err := w.WriteAt(fl.data, int64(o)); err != nil {
			return err
		}
	}
	return w.Close()
}

// addPackPages appends to cfg a pack page entry (desc.Library.PackPage)
// for every page the image's pack members touch, once the trampoline pass
// (which knows libraries, not pages) is done.
func addPackPages(cfg *desc.Config, libs []*placed) {
	pages := packPages(libs)
	var starts []uint64
	shift := map[uint64]int64{}
	for s := range pages {
		starts = append(starts, s)
	}
	for _, p := range libs {
		if p.pack != 0 {
			shift[p.pack] = p.shift
		}
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	for _, start := range starts {
		for _, pg := range pages[start] {
			cfg.Libraries = append(cfg.Libraries, desc.Library{
				Shift:    shift[start],
				Name:     desc.PackPageName(pg),
				Region:   desc.Region{Start: pg, SharedSize: abi.PageSize},
				Shared:   desc.Shared{Size: abi.PageSize, Segments: []desc.Segment{{Off: 0, Size: abi.PageSize, Prot: desc.ProtRX}}},
				Pack:     start,
				PackPage: true,
			})
		}
		cfg.SchemaVersion = desc.SchemaVersionPack
	}
}

// sealPack gives the pack this link opened (if any) its content: the
// finished image's bytes there (where the image moved it).
func sealPack(m *libmap.Map, path string, libs []*placed) error {
	pk := m.OpenPack()
	if pk == nil {
		return nil
	}
	var shift int64
	for _, p := range libs {
		if p.pack == pk.Start {
			shift = p.shift
		}
	}
	im, err := elfimage.Open(path)
	if err != nil {
		return err
	}
	return m.Seal(func(addr, n uint64) ([]byte, error) {
		addr = uint64(int64(addr) + shift)
		var out []byte
		for pg := addr &^ (abi.PageSize - 1); pg < addr+n; pg += abi.PageSize {
			b, ok := im.Page(pg)
			if !ok {
				b = make([]byte, abi.PageSize)
			}
			out = append(out, b...)
		}
		off := addr & (abi.PageSize - 1)
		return out[off : off+n], nil
	})
}
