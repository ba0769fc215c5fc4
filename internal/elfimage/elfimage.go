// Package elfimage reads the images unipool links: static ELF64 x86-64
// executables (ET_EXEC, or ET_DYN linked as a static PIE at its link
// addresses) with an optional ".unipool" section holding a desc.Config.
// It validates what a loader relies on (segments that fit the file and do
// not overlap, an entry inside executable memory) so that the pool and the
// monitors can take an image's bytes at face value.
package elfimage

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
)

// ErrNoConfig is returned (wrapped) by Config when the image has no
// ".unipool" section, e.g. a packed or dce image.
var ErrNoConfig = errors.New("no " + desc.SectionName + " section")

// maxImageSize bounds what Open reads into memory: guest images are a few
// MiB; anything far larger is not an image of ours.
const maxImageSize = 1 << 30

// Image is a validated, fully read ELF image.
type Image struct {
	path string
	data []byte
	f    *elf.File
	segs []Segment // PT_LOAD, sorted by Vaddr
	tls  *Segment
}

// Segment is one PT_LOAD (or the PT_TLS) program header.
type Segment struct {
	Vaddr    uint64
	MemSize  uint64
	FileSize uint64
	Offset   uint64 // file offset of the first byte
	Align    uint64
	Flags    elf.ProgFlag // elf.PF_R | elf.PF_W | elf.PF_X
}

// End is the first address after the segment in memory.
func (s Segment) End() uint64 { return s.Vaddr + s.MemSize }

// Open reads and validates the image at path.
func Open(path string) (*Image, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if fi.Size() > maxImageSize {
		return nil, fmt.Errorf("image %s: %d bytes, larger than any image (%d)", path, fi.Size(), maxImageSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	return Read(path, data)
}

// Read validates an image held in memory; name is used in errors. The
// Image keeps data (callers must not modify it afterwards).
func Read(name string, data []byte) (*Image, error) {
	im, err := read(name, data)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	return im, nil
}

func read(name string, data []byte) (*Image, error) {
	if len(data) < 4 || string(data[:4]) != elf.ELFMAG {
		return nil, errors.New("not an ELF file")
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if f.Class != elf.ELFCLASS64 {
		return nil, fmt.Errorf("ELF class %v, want ELFCLASS64", f.Class)
	}
	if f.Data != elf.ELFDATA2LSB {
		return nil, fmt.Errorf("ELF data %v, want little-endian", f.Data)
	}
	if f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("machine %v, want EM_X86_64", f.Machine)
	}
	im := &Image{path: name, data: data, f: f}
	var interp bool
	for i, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			interp = true
		case elf.PT_LOAD, elf.PT_TLS:
			s := Segment{Vaddr: p.Vaddr, MemSize: p.Memsz, FileSize: p.Filesz, Offset: p.Off, Align: p.Align, Flags: p.Flags}
			if s.FileSize > s.MemSize {
				return nil, fmt.Errorf("program header %d: file size %#x > memory size %#x", i, s.FileSize, s.MemSize)
			}
			if s.Offset+s.FileSize < s.Offset || s.Offset+s.FileSize > uint64(len(data)) {
				return nil, fmt.Errorf("program header %d: file range [%#x,+%#x) outside the file (%d bytes)", i, s.Offset, s.FileSize, len(data))
			}
			if s.Vaddr+s.MemSize < s.Vaddr {
				return nil, fmt.Errorf("program header %d: address range wraps", i)
			}
			if p.Type == elf.PT_TLS {
				if im.tls != nil {
					return nil, errors.New("more than one PT_TLS")
				}
				im.tls = &s
				continue
			}
			if s.MemSize > 0 {
				im.segs = append(im.segs, s)
			}
		}
	}
	switch f.Type {
	case elf.ET_EXEC:
	case elf.ET_DYN:
		// A static PIE linked at its final addresses loads like an
		// ET_EXEC; one asking for a dynamic linker (below) is not ours.
	default:
		return nil, fmt.Errorf("ELF type %v, want ET_EXEC (or a static ET_DYN)", f.Type)
	}
	if interp {
		return nil, errors.New("dynamically linked (PT_INTERP): want a static image")
	}
	if len(im.segs) == 0 {
		return nil, errors.New("no loadable segments")
	}
	sort.Slice(im.segs, func(i, j int) bool { return im.segs[i].Vaddr < im.segs[j].Vaddr })
	for i := 1; i < len(im.segs); i++ {
		if a, b := im.segs[i-1], im.segs[i]; b.Vaddr < a.End() {
			return nil, fmt.Errorf("segments [%#x,%#x) and [%#x,%#x) overlap", a.Vaddr, a.End(), b.Vaddr, b.End())
		}
	}
	if s, ok := im.segmentAt(f.Entry); !ok || s.Flags&elf.PF_X == 0 {
		return nil, fmt.Errorf("entry %#x is not in an executable segment", f.Entry)
	}
	if im.tls != nil && im.tls.FileSize > 0 {
		if _, err := im.ReadAt(im.tls.Vaddr, im.tls.FileSize); err != nil {
			return nil, fmt.Errorf("PT_TLS image: %w", err)
		}
	}
	return im, nil
}

// Path is the file the image was read from (or the name given to Read).
func (im *Image) Path() string { return im.path }

// ELF gives access to the parsed ELF file (sections, relocations).
func (im *Image) ELF() *elf.File { return im.f }

// Bytes is the whole file.
func (im *Image) Bytes() []byte { return im.data }

// Type is elf.ET_EXEC or elf.ET_DYN (a static PIE).
func (im *Image) Type() elf.Type { return im.f.Type }

// Entry is the entry point's address.
func (im *Image) Entry() uint64 { return im.f.Entry }

// Segments lists the PT_LOAD segments by address.
func (im *Image) Segments() []Segment { return append([]Segment(nil), im.segs...) }

// TLS is the PT_TLS segment, or nil.
func (im *Image) TLS() *Segment {
	if im.tls == nil {
		return nil
	}
	t := *im.tls
	return &t
}

func (im *Image) segmentAt(vaddr uint64) (Segment, bool) {
	i := sort.Search(len(im.segs), func(i int) bool { return im.segs[i].End() > vaddr })
	if i < len(im.segs) && im.segs[i].Vaddr <= vaddr {
		return im.segs[i], true
	}
	return Segment{}, false
}

// ReadAt returns n bytes of the image's memory at vaddr as a loader would
// lay it out: file bytes, then zeros up to each segment's memory size. The
// range may span adjacent segments but not a hole between them.
func (im *Image) ReadAt(vaddr, n uint64) ([]byte, error) {
	if vaddr+n < vaddr {
		return nil, fmt.Errorf("image %s: range [%#x,+%#x) wraps", im.path, vaddr, n)
	}
	if n > maxImageSize {
		return nil, fmt.Errorf("image %s: read of %#x bytes is too large", im.path, n)
	}
	out := make([]byte, 0, n)
	for a := vaddr; a < vaddr+n; {
		s, ok := im.segmentAt(a)
		if !ok {
			return nil, fmt.Errorf("image %s: address %#x is not in a loadable segment", im.path, a)
		}
		end := min(s.End(), vaddr+n)
		if fileEnd := s.Vaddr + s.FileSize; a < fileEnd {
			stop := min(end, fileEnd)
			off := s.Offset + (a - s.Vaddr)
			out = append(out, im.data[off:off+(stop-a)]...)
			a = stop
		}
		if a < end {
			out = append(out, make([]byte, end-a)...)
			a = end
		}
	}
	return out, nil
}

// Symbols is the image's symbol table (.symtab).
func (im *Image) Symbols() ([]elf.Symbol, error) {
	syms, err := im.f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("image %s: symbols: %w", im.path, err)
	}
	return syms, nil
}

// Symbol returns the address of the first defined symbol called name.
func (im *Image) Symbol(name string) (uint64, bool) {
	syms, err := im.f.Symbols()
	if err != nil {
		return 0, false
	}
	for _, s := range syms {
		if s.Name == name && s.Section != elf.SHN_UNDEF {
			return s.Value, true
		}
	}
	return 0, false
}

// Config reads and validates the image's description (the ".unipool"
// section). Images without one (packed, dce) return an error wrapping
// ErrNoConfig.
func (im *Image) Config() (*desc.Config, error) {
	sec := im.f.Section(desc.SectionName)
	if sec == nil {
		return nil, fmt.Errorf("image %s: %w", im.path, ErrNoConfig)
	}
	if sec.Type == elf.SHT_NOBITS {
		return nil, fmt.Errorf("image %s: %s section has no contents", im.path, desc.SectionName)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("image %s: %s section: %w", im.path, desc.SectionName, err)
	}
	cfg, err := desc.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("image %s: %s section: %w", im.path, desc.SectionName, err)
	}
	// The description must describe this image, not some other one.
	if e := cfg.Libraries[cfg.Entry.Lib].Region.Start + cfg.Entry.Off; e != im.f.Entry {
		return nil, fmt.Errorf("image %s: %s entry %#x differs from the ELF entry %#x", im.path, desc.SectionName, e, im.f.Entry)
	}
	return cfg, nil
}

// Page returns the abi.PageSize bytes of memory at the page containing
// vaddr as a page-granular loader presents them: each segment's bytes
// (zeros past its file size), zeros where no segment is. ok is false if
// no segment touches the page.
func (im *Image) Page(vaddr uint64) (page []byte, ok bool) {
	const size = 0x1000
	base := vaddr &^ (size - 1)
	page = make([]byte, size)
	for _, s := range im.segs {
		lo, hi := max(base, s.Vaddr), min(base+size, s.End())
		if lo >= hi {
			continue
		}
		ok = true
		if fileEnd := s.Vaddr + s.FileSize; lo < fileEnd {
			stop := min(hi, fileEnd)
			off := s.Offset + (lo - s.Vaddr)
			copy(page[lo-base:], im.data[off:off+(stop-lo)])
		}
	}
	return page, ok
}

// BootInfoVersion is the boot-info version an image's guest accepts: the
// uint32 at abi.BootInfoVersionSymbol, or 1 for an image linked before
// ukplat said (or one with no symbol table).
//
// It finds the symbol by walking the symbol table's raw entries, without
// building a []elf.Symbol and a string per symbol (elf.File.Symbols): a
// plain-image monitor reads it for every image it checks and prepares,
// and an aligned image's table of ~800 symbols made ~90 KB of garbage per
// read. Its answer is the same as the first symbol of that name
// Symbols would give (FuzzBootInfoVersion).
func BootInfoVersion(f *elf.File) (uint32, error) {
	sym, ok := findSymbol(f, abi.BootInfoVersionSymbol)
	if !ok {
		return 1, nil
	}
	sec := f.Sections[sym.Section]
	if sec.Type != elf.SHT_PROGBITS || sym.Value < sec.Addr || sym.Value+4 > sec.Addr+sec.Size {
		return 0, fmt.Errorf("%s is not 4 bytes of data in %s", abi.BootInfoVersionSymbol, sec.Name)
	}
	b := make([]byte, 4)
	if _, err := sec.ReadAt(b, int64(sym.Value-sec.Addr)); err != nil {
		return 0, fmt.Errorf("%s: %w", abi.BootInfoVersionSymbol, err)
	}
	v := binary.LittleEndian.Uint32(b)
	if v == 0 || v > abi.BootInfoVersion {
		return 0, fmt.Errorf("the guest accepts boot info version %d; this unipool writes versions 1 to %d (a newer unipool linked it?)", v, abi.BootInfoVersion)
	}
	return v, nil
}

// findSymbol is the first symbol called name in f's symbol table
// (SHT_SYMTAB) that is defined in one of f's sections (not SHN_UNDEF, an
// index below len(f.Sections)); ok is false if there is none, or no
// readable table (as elf.File.Symbols fails). It reads both tables in
// pieces through one 4 KiB buffer: first the string table, for where the
// name starts (a string ends at its NUL; ld shares tails, so a name may
// start inside a longer string), then the symbols, for one that names
// such a place.
func findSymbol(f *elf.File, name string) (elf.Symbol, bool) {
	tab := f.SectionByType(elf.SHT_SYMTAB)
	if f.Class != elf.ELFCLASS64 || tab == nil || tab.Type == elf.SHT_NOBITS || tab.Flags&elf.SHF_COMPRESSED != 0 ||
		tab.Link == 0 || tab.Link >= uint32(len(f.Sections)) {
		// ELF32 (a multiboot kernel), tables Symbols reads in a way of
		// its own (zeros, compressed), or none it can read: as Symbols.
		return findSymbolSlow(f, name)
	}
	strs := f.Sections[tab.Link]
	if strs.Type == elf.SHT_NOBITS || strs.Flags&elf.SHF_COMPRESSED != 0 {
		return findSymbolSlow(f, name)
	}
	size := tab.Size
	if size == 0 || size%elf.Sym64Size != 0 || size > maxImageSize || strs.Size > maxImageSize {
		return elf.Symbol{}, false
	}
	// Symbols reads both tables whole or fails: so does this, before it
	// looks at an entry (their last bytes read means all are there).
	buf := make([]byte, 4096)
	if _, err := tab.ReadAt(buf[:1], int64(size-1)); err != nil {
		return elf.Symbol{}, false
	}
	if strs.Size > 0 {
		if _, err := strs.ReadAt(buf[:1], int64(strs.Size-1)); err != nil {
			return elf.Symbol{}, false
		}
	}
	want := len(name) + 1 // the name and its NUL
	if want > len(buf)/2 {
		return findSymbolSlow(f, name)
	}
	// Where the name starts: pieces overlap by want-1 bytes, so a match
	// across two pieces is seen whole in the second.
	var at []uint64
	for off := uint64(0); off+uint64(want) <= strs.Size; {
		n := min(uint64(len(buf)), strs.Size-off)
		if _, err := strs.ReadAt(buf[:n], int64(off)); err != nil {
			return elf.Symbol{}, false
		}
		for i := 0; i+want <= int(n); i++ {
			if buf[i+want-1] == 0 && string(buf[i:i+want-1]) == name {
				at = append(at, off+uint64(i))
			}
		}
		if off+n == strs.Size {
			break
		}
		off += n - uint64(want-1)
	}
	if len(at) == 0 {
		return elf.Symbol{}, false
	}
	// The symbols, entry 0 (all zeros) aside, in order.
	per := uint64(len(buf) / elf.Sym64Size * elf.Sym64Size)
	for off := uint64(elf.Sym64Size); off < size; {
		n := min(per, size-off)
		if _, err := tab.ReadAt(buf[:n], int64(off)); err != nil {
			return elf.Symbol{}, false
		}
		for e := buf[:n]; len(e) > 0; e = e[elf.Sym64Size:] {
			shndx := elf.SectionIndex(f.ByteOrder.Uint16(e[6:8]))
			if shndx == elf.SHN_UNDEF || int(shndx) >= len(f.Sections) {
				continue
			}
			if _, found := slices.BinarySearch(at, uint64(f.ByteOrder.Uint32(e[0:4]))); !found {
				continue
			}
			return elf.Symbol{Name: name, Info: e[4], Other: e[5], Section: shndx,
				Value: f.ByteOrder.Uint64(e[8:16]), Size: f.ByteOrder.Uint64(e[16:24])}, true
		}
		off += n
	}
	return elf.Symbol{}, false
}

// findSymbolSlow is findSymbol through elf.File.Symbols.
func findSymbolSlow(f *elf.File, name string) (elf.Symbol, bool) {
	syms, err := f.Symbols()
	if err != nil {
		return elf.Symbol{}, false
	}
	for _, s := range syms {
		if s.Name == name && s.Section != elf.SHN_UNDEF && int(s.Section) < len(f.Sections) {
			return s, true
		}
	}
	return elf.Symbol{}, false
}
