package trampoline

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"sort"
)

// image is a linked executable held in memory: its bytes (patched in
// place), sections, symbols and the relocations ld kept (--emit-relocs).
// Every read of the file's bytes is bounds-checked: the image may be
// garbage, and garbage must give an error, never a panic.
type image struct {
	name     string
	data     []byte
	loads    []elf.ProgHeader // PT_LOAD, sorted by Vaddr
	sections []*elf.SectionHeader
	symbols  []elf.Symbol // index i is symtab index i (0 is the null symbol)
	relocs   []reloc      // sorted by Off
	// starts are addresses where decoding can begin in executable
	// sections (function symbols, labels, section starts), sorted.
	starts []uint64
	// alloc are the indexes of allocated sections, sorted by address
	alloc []int
}

// reloc is one relocation of the image, in the psABI's terms:
// P (Off, a virtual address), S (Sym's value), A (Addend).
type reloc struct {
	Off    uint64
	Type   elf.R_X86_64
	Sym    uint32 // symtab index; 0: none
	Addend int64
	Sect   int // index of the section it applies to
}

// parseImage reads an x86-64 ELF executable whose relocations were kept.
func parseImage(name string, data []byte) (*image, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Data != elf.ELFDATA2LSB {
		return nil, fmt.Errorf("%s: not a little-endian x86-64 ELF64 file", name)
	}
	// A static PIE (ET_DYN) linked at its final addresses is as good as
	// an ET_EXEC: ld kept the same relocations with the same addresses.
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil, fmt.Errorf("%s: ELF type %v, want an executable", name, f.Type)
	}
	im := &image{name: name, data: data}
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		h := p.ProgHeader
		if h.Filesz > h.Memsz || h.Off+h.Filesz < h.Off || h.Off+h.Filesz > uint64(len(data)) || h.Vaddr+h.Memsz < h.Vaddr {
			return nil, fmt.Errorf("%s: PT_LOAD at %#x lies outside the file", name, h.Vaddr)
		}
		im.loads = append(im.loads, h)
	}
	sort.Slice(im.loads, func(i, j int) bool { return im.loads[i].Vaddr < im.loads[j].Vaddr })
	for _, s := range f.Sections {
		h := s.SectionHeader
		im.sections = append(im.sections, &h)
	}
	syms, err := f.Symbols()
	if err != nil && err != elf.ErrNoSymbols {
		return nil, fmt.Errorf("%s: symbols: %w", name, err)
	}
	im.symbols = append([]elf.Symbol{{}}, syms...)

	for _, s := range f.Sections {
		if s.Type != elf.SHT_RELA && s.Type != elf.SHT_REL {
			continue
		}
		if int(s.Info) <= 0 || int(s.Info) >= len(f.Sections) {
			return nil, fmt.Errorf("%s: relocation section %s applies to section %d, which does not exist", name, s.Name, s.Info)
		}
		target := f.Sections[s.Info]
		if target.Flags&elf.SHF_ALLOC == 0 {
			continue // debug info and the like: not loaded
		}
		if s.Type == elf.SHT_REL {
			return nil, fmt.Errorf("%s: section %s: SHT_REL relocations on x86-64", name, s.Name)
		}
		if s.Offset+s.Size < s.Offset || s.Offset+s.Size > uint64(len(data)) {
			return nil, fmt.Errorf("%s: section %s lies outside the file", name, s.Name)
		}
		raw := data[s.Offset : s.Offset+s.Size]
		if len(raw)%24 != 0 {
			return nil, fmt.Errorf("%s: section %s: size %d is not a multiple of 24", name, s.Name, len(raw))
		}
		for off := 0; off < len(raw); off += 24 {
			info := binary.LittleEndian.Uint64(raw[off+8:])
			r := reloc{
				Off:    binary.LittleEndian.Uint64(raw[off:]),
				Type:   elf.R_X86_64(info & 0xffffffff),
				Sym:    uint32(info >> 32),
				Addend: int64(binary.LittleEndian.Uint64(raw[off+16:])),
				Sect:   int(s.Info),
			}
			if int(r.Sym) >= len(im.symbols) {
				return nil, fmt.Errorf("%s: section %s: relocation at %#x names symbol %d of %d", name, s.Name, r.Off, r.Sym, len(im.symbols))
			}
			im.relocs = append(im.relocs, r)
		}
	}
	sort.SliceStable(im.relocs, func(i, j int) bool { return im.relocs[i].Off < im.relocs[j].Off })

	isCode := func(i int) bool {
		if i <= 0 || i >= len(im.sections) {
			return false
		}
		s := im.sections[i]
		return s.Flags&elf.SHF_EXECINSTR != 0 && s.Flags&elf.SHF_ALLOC != 0 && s.Type == elf.SHT_PROGBITS
	}
	for i, s := range im.sections {
		if isCode(i) {
			im.starts = append(im.starts, s.Addr)
		}
	}
	for _, sym := range im.symbols[1:] {
		t := elf.ST_TYPE(sym.Info)
		if (t == elf.STT_FUNC || t == elf.STT_NOTYPE) && isCode(int(sym.Section)) {
			s := im.sections[sym.Section]
			if sym.Value >= s.Addr && sym.Value-s.Addr < s.Size {
				im.starts = append(im.starts, sym.Value)
			}
		}
	}
	sort.Slice(im.starts, func(i, j int) bool { return im.starts[i] < im.starts[j] })
	for i, s := range im.sections {
		tbss := s.Flags&elf.SHF_TLS != 0 && s.Type == elf.SHT_NOBITS // takes no address space
		if s.Flags&elf.SHF_ALLOC != 0 && !tbss && s.Size > 0 && s.Addr+s.Size > s.Addr {
			im.alloc = append(im.alloc, i)
		}
	}
	sort.SliceStable(im.alloc, func(i, j int) bool { return im.sections[im.alloc[i]].Addr < im.sections[im.alloc[j]].Addr })
	return im, nil
}

// fileOff returns the file offset of n bytes at virtual address va, if
// they are all file-backed by one PT_LOAD.
func (im *image) fileOff(va, n uint64) (uint64, bool) {
	// The last segment starting at or below va (segments do not overlap
	// in a sane image; in another one, this finds one of them).
	i := sort.Search(len(im.loads), func(i int) bool { return im.loads[i].Vaddr > va })
	if i == 0 {
		return 0, false
	}
	p := im.loads[i-1]
	if va-p.Vaddr < p.Filesz && n <= p.Filesz-(va-p.Vaddr) {
		return p.Off + (va - p.Vaddr), true
	}
	return 0, false
}

// bytesAt returns the file bytes of [va, va+n), aliased: writes patch the image.
func (im *image) bytesAt(va, n uint64) ([]byte, bool) {
	off, ok := im.fileOff(va, n)
	if !ok {
		return nil, false
	}
	return im.data[off : off+n], true
}

// section returns the index of the allocated section holding va, or -1.
func (im *image) section(va uint64) int {
	k := sort.Search(len(im.alloc), func(k int) bool { return im.sections[im.alloc[k]].Addr > va })
	if k == 0 {
		return -1
	}
	// Empty and overlapping (.tbss) sections share addresses: look back
	// over the few that start at or below va.
	for j := k - 1; j >= 0 && j >= k-8; j-- {
		s := im.sections[im.alloc[j]]
		if va-s.Addr < s.Size {
			return im.alloc[j]
		}
	}
	return -1
}

func (im *image) sectionName(i int) string {
	if i < 0 || i >= len(im.sections) {
		return "?"
	}
	return im.sections[i].Name
}

// executable reports whether section i holds code.
func (im *image) executable(i int) bool {
	return i >= 0 && i < len(im.sections) && im.sections[i].Flags&elf.SHF_EXECINSTR != 0
}

// symbolName names relocation r's symbol for messages.
func (im *image) symbolName(r reloc) string {
	if r.Sym == 0 {
		return "no symbol"
	}
	s := im.symbols[r.Sym]
	if elf.ST_TYPE(s.Info) == elf.STT_SECTION {
		return im.sectionName(int(s.Section))
	}
	return s.Name
}

// decodeStart returns the last address <= va in the same executable
// section from which instructions can be decoded.
func (im *image) decodeStart(va uint64) (uint64, bool) {
	i := sort.Search(len(im.starts), func(i int) bool { return im.starts[i] > va })
	if i == 0 {
		return 0, false
	}
	return im.starts[i-1], true
}
