package loader

import (
	"debug/elf"
	"encoding/binary"
	"io"

	"github.com/unipool/unipool/internal/elfimage"
)

// elfHeaders is what readPlainImage needs of an image's ELF headers.
type elfHeaders struct {
	class   elf.Class
	machine elf.Machine
	typ     elf.Type
	entry   uint64
	progs   []elf.ProgHeader
	// linux: it has a .uk_bootinfo section (isUnikraftImage).
	linux bool
	// bootInfo is elfimage.BootInfoVersion's answer (!linux only).
	bootInfo uint32
}

// leanHeaders reads the headers of an x86-64 ELF64 image (little-endian,
// ET_EXEC or ET_DYN, no extended section numbering, no compressed
// section) without elf.NewFile, which makes a Section (header, reader,
// name) for every section and reads the whole section-name table: ~35 KB
// of garbage per read of an aligned image (~100 sections) against ~8 KB
// for a DCE one (~25), read twice per image (loader.Check, then
// PrepareReads). A monitor's start-up garbage sets how often its
// collector runs and how much runtime metadata and in-span free space it
// keeps for the whole run: with it, bench tlb's aligned-ksm monitor
// allocated 3.3 MB to dce-ksm's 1.7 MB, ran 8 automatic GCs to 3 and held
// ~150 KiB more anonymous memory (docs/notes/monitor-memory.md, session
// 15 tlbmon15). ok is false for any other image, and for anything
// elf.NewFile or elfimage.BootInfoVersion would refuse or read in a way
// of its own: the caller reads such an image with elf.NewFile (and gets
// its errors). Program headers and section headers are read through one
// buffer, a section's name only to compare it with ".uk_bootinfo".
func leanHeaders(r io.ReaderAt, fileSize int64) (h elfHeaders, ok bool) {
	const ehsize, phsize, shsize = 64, 56, 64
	buf := make([]byte, 4096)
	if _, err := r.ReadAt(buf[:ehsize], 0); err != nil {
		return h, false
	}
	id := buf[:elf.EI_NIDENT]
	if string(id[:4]) != elf.ELFMAG || elf.Class(id[elf.EI_CLASS]) != elf.ELFCLASS64 ||
		elf.Data(id[elf.EI_DATA]) != elf.ELFDATA2LSB || elf.Version(id[elf.EI_VERSION]) != elf.EV_CURRENT {
		return h, false
	}
	bo := binary.LittleEndian
	h.class = elf.ELFCLASS64
	h.typ = elf.Type(bo.Uint16(buf[16:]))
	h.machine = elf.Machine(bo.Uint16(buf[18:]))
	if elf.Version(bo.Uint32(buf[20:])) != elf.EV_CURRENT || h.machine != elf.EM_X86_64 ||
		(h.typ != elf.ET_EXEC && h.typ != elf.ET_DYN) {
		return h, false
	}
	h.entry = bo.Uint64(buf[24:])
	phoff, shoff := bo.Uint64(buf[32:]), bo.Uint64(buf[40:])
	phentsize, phnum := uint64(bo.Uint16(buf[54:])), uint64(bo.Uint16(buf[56:]))
	shentsize, shnum, shstrndx := uint64(bo.Uint16(buf[58:])), uint64(bo.Uint16(buf[60:])), uint64(bo.Uint16(buf[62:]))
	size := uint64(fileSize)
	// (Bounds as elf.NewFile's; files it reads otherwise go to it.)
	if int64(phoff) < 0 || int64(shoff) < 0 || shoff == 0 || shnum == 0 || shstrndx == 0 || shstrndx >= shnum ||
		(phnum > 0 && phentsize < phsize) || shentsize < shsize ||
		phoff+phnum*phentsize > size || shoff+shnum*shentsize > size || phoff+phnum*phentsize < phoff {
		return h, false
	}
	h.progs = make([]elf.ProgHeader, 0, phnum)
	for i := uint64(0); i < phnum; i++ {
		b := buf[:phsize]
		if _, err := r.ReadAt(b, int64(phoff+i*phentsize)); err != nil {
			return h, false
		}
		p := elf.ProgHeader{Type: elf.ProgType(bo.Uint32(b[0:])), Flags: elf.ProgFlag(bo.Uint32(b[4:])),
			Off: bo.Uint64(b[8:]), Vaddr: bo.Uint64(b[16:]), Paddr: bo.Uint64(b[24:]),
			Filesz: bo.Uint64(b[32:]), Memsz: bo.Uint64(b[40:]), Align: bo.Uint64(b[48:])}
		if int64(p.Off) < 0 || int64(p.Filesz) < 0 {
			return h, false
		}
		h.progs = append(h.progs, p)
	}
	section := func(i int) (elf.SectionHeader, error) {
		b := buf[:shsize]
		if _, err := r.ReadAt(b, int64(shoff+uint64(i)*shentsize)); err != nil {
			return elf.SectionHeader{}, err
		}
		return elf.SectionHeader{Type: elf.SectionType(bo.Uint32(b[4:])), Flags: elf.SectionFlag(bo.Uint64(b[8:])),
			Addr: bo.Uint64(b[16:]), Offset: bo.Uint64(b[24:]), FileSize: bo.Uint64(b[32:]),
			Link: bo.Uint32(b[40:]), Info: bo.Uint32(b[44:]), Addralign: bo.Uint64(b[48:]), Entsize: bo.Uint64(b[56:])}, nil
	}
	names, err := section(int(shstrndx))
	if err != nil || names.Type != elf.SHT_STRTAB || names.Flags&elf.SHF_COMPRESSED != 0 ||
		names.Offset+names.FileSize > size || names.Offset+names.FileSize < names.Offset {
		return h, false
	}
	const uk = ".uk_bootinfo"
	var symtab elf.SectionHeader
	found := false
	for i := 0; i < int(shnum); i++ {
		s, err := section(i)
		if err != nil || int64(s.Offset) < 0 || int64(s.FileSize) < 0 || s.Flags&elf.SHF_COMPRESSED != 0 {
			return h, false
		}
		name := uint64(bo.Uint32(buf[0:])) // (section read it into buf)
		if name >= names.FileSize {
			return h, false // elf.NewFile: "bad section name index"
		}
		if s.Type == elf.SHT_SYMTAB && !found {
			symtab, found = s, true
		}
		if !h.linux && name+uint64(len(uk)) <= names.FileSize {
			// The name is uk if its bytes are, ended by a NUL or the table.
			n := min(uint64(len(uk))+1, names.FileSize-name)
			b := buf[:n]
			if _, err := r.ReadAt(b, int64(names.Offset+name)); err != nil {
				return h, false
			}
			h.linux = string(b[:len(uk)]) == uk && (n == uint64(len(uk)) || b[len(uk)] == 0)
		}
	}
	if h.linux {
		return h, true
	}
	var tab *elf.SectionHeader
	if found {
		tab = &symtab
	}
	v, ok, err := elfimage.BootInfoVersionOf(r, int(shnum), tab, section)
	if !ok || err != nil {
		return h, false
	}
	h.bootInfo = v
	return h, true
}

// fullHeaders reads the headers of any image through elf.NewFile.
func fullHeaders(f *elf.File) (h elfHeaders) {
	h.class, h.machine, h.typ, h.entry = f.Class, f.Machine, f.Type, f.Entry
	h.progs = make([]elf.ProgHeader, len(f.Progs))
	for i, p := range f.Progs {
		h.progs[i] = p.ProgHeader
	}
	h.linux = isUnikraftImage(f)
	return h
}
