package loader

import (
	"debug/elf"
	"fmt"
	"io"
	"sort"

	"github.com/unipool/unipool/internal/abi"
)

// plainImage is a packed or dce image: loaded by copying its PT_LOAD
// segments, the way a stock unikernel loader does.
type plainImage struct {
	entry    uint64
	segments []Mapping // page-aligned, merged, with their bytes
	tls      *elf.Prog
}

func readPlainImage(path string) (*plainImage, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("image %s: not an ELF64 x86-64 executable", path)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil, fmt.Errorf("image %s: ELF type %v is not an executable", path, f.Type)
	}
	img := &plainImage{entry: f.Entry}
	type seg struct {
		lo, hi, vaddr uint64
		prot          int
		data          []byte
	}
	var segs []seg
	for _, p := range f.Progs {
		if p.Type == elf.PT_TLS {
			img.tls = p
		}
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		if p.Filesz > p.Memsz || p.Vaddr+p.Memsz < p.Vaddr {
			return nil, fmt.Errorf("image %s: bad PT_LOAD at %#x", path, p.Vaddr)
		}
		lo := pageDown(p.Vaddr)
		hi := pageUp(p.Vaddr + p.Memsz)
		prot := 0
		if p.Flags&elf.PF_R != 0 {
			prot |= ProtRead
		}
		if p.Flags&elf.PF_W != 0 {
			prot |= ProtWrite
		}
		if p.Flags&elf.PF_X != 0 {
			prot |= ProtExec
		}
		data := make([]byte, p.Filesz)
		if _, err := io.ReadFull(p.Open(), data); err != nil {
			return nil, fmt.Errorf("image %s: segment at %#x: %w", path, p.Vaddr, err)
		}
		segs = append(segs, seg{lo: lo, hi: hi, vaddr: p.Vaddr, prot: prot, data: data})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].vaddr < segs[j].vaddr })
	// Segments that share a page become one mapping with the union of
	// their protections; each segment's bytes land at their exact address.
	for i := 0; i < len(segs); {
		j, hi, prot := i+1, segs[i].hi, segs[i].prot
		for j < len(segs) && segs[j].lo < hi {
			hi, prot = max(hi, segs[j].hi), prot|segs[j].prot
			j++
		}
		lo := segs[i].lo
		var data []byte
		for _, s := range segs[i:j] {
			end := s.vaddr - lo + uint64(len(s.data))
			if uint64(len(data)) < end {
				data = append(data, make([]byte, end-uint64(len(data)))...)
			}
			copy(data[s.vaddr-lo:], s.data)
		}
		img.segments = append(img.segments, Mapping{Addr: lo, Size: hi - lo, Prot: prot, Data: data, Part: PartImage})
		i = j
	}
	if len(img.segments) == 0 {
		return nil, fmt.Errorf("image %s: no loadable segments", path)
	}
	// Packed images live below the app region, aligned images (run as
	// plain images by the KSM baselines) in the app region and the map:
	// anything but the per-instance area and the ASLR window.
	for _, s := range img.segments {
		end := s.Addr + s.Size
		if s.Addr < abi.PageSize*16 || end > abi.MapLimit || (s.Addr < abi.MapBase && end > abi.PrivateBase) {
			return nil, fmt.Errorf("image %s: segment [%#x,%#x) overlaps the per-instance area [%#x,%#x) or lies outside [%#x,%#x)",
				path, s.Addr, end, abi.PrivateBase, abi.MapBase, abi.PageSize*16, abi.MapLimit)
		}
	}
	return img, nil
}

func (p *Prepared) planImage(opt Options) (*Layout, error) {
	lay := &Layout{Entry: p.image.entry}
	for _, s := range p.image.segments {
		s.Data = append([]byte(nil), s.Data...)
		lay.Mappings = append(lay.Mappings, s)
	}
	bi := abi.BootInfo{}
	if t := p.image.tls; t != nil {
		bi.TLSImage, bi.TLSFileSz, bi.TLSMemSz, bi.TLSAlign = t.Vaddr, t.Filesz, t.Memsz, t.Align
	}
	if err := lay.addPrivateMemory(bi, opt); err != nil {
		return nil, fmt.Errorf("image %s: %w", p.u.Image, err)
	}
	if err := lay.check(); err != nil {
		return nil, fmt.Errorf("image %s: %w", p.u.Image, err)
	}
	return lay, nil
}
