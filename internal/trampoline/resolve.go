package trampoline

import (
	"debug/elf"
	"fmt"

	"github.com/unipool/unipool/internal/desc"
)

// relClass groups relocation types by what their field holds.
type relClass int

const (
	relIgnore relClass = iota // holds nothing that depends on placement
	relPC32                   // 4-byte PC-relative: S + A - P (or via the GOT)
	relAbs64                  // 8-byte absolute: S + A
	relAbs32                  // 4-byte absolute (zero- or sign-extended)
	relOther                  // anything else: not rewritable
)

// Relocation types binutils 2.41+ emits for APX instructions; debug/elf
// does not name them yet.
const (
	rCode4GOTPCRELX = 43
	rCode4GOTTPOFF  = 44
	rCode4TLSDESC   = 45
	rCode5GOTPCRELX = 46
	rCode6GOTPCRELX = 50
	rGNUVTInherit   = 250
	rGNUVTEntry     = 251
)

func classify(t elf.R_X86_64) relClass {
	switch t {
	case elf.R_X86_64_NONE,
		// Thread-pointer offsets: the same wherever the code is.
		elf.R_X86_64_TPOFF32, elf.R_X86_64_TPOFF64,
		elf.R_X86_64_DTPOFF32, elf.R_X86_64_DTPOFF64, elf.R_X86_64_DTPMOD64,
		elf.R_X86_64_SIZE32, elf.R_X86_64_SIZE64,
		// Marks the call of a relaxed TLS descriptor sequence; no field.
		elf.R_X86_64_TLSDESC_CALL,
		rGNUVTInherit, rGNUVTEntry:
		return relIgnore
	case elf.R_X86_64_PC32, elf.R_X86_64_PLT32,
		elf.R_X86_64_GOTPCREL, elf.R_X86_64_GOTPCRELX, elf.R_X86_64_REX_GOTPCRELX,
		elf.R_X86_64_GOTPC32, elf.R_X86_64_GOTTPOFF, elf.R_X86_64_GOTPC32_TLSDESC,
		elf.R_X86_64_TLSGD, elf.R_X86_64_TLSLD,
		rCode4GOTPCRELX, rCode4GOTTPOFF, rCode4TLSDESC, rCode5GOTPCRELX, rCode6GOTPCRELX:
		return relPC32
	case elf.R_X86_64_64:
		return relAbs64
	case elf.R_X86_64_32, elf.R_X86_64_32S:
		return relAbs32
	}
	return relOther
}

// tlsAccess reports whether t starts a thread-local access sequence. In
// a static image ld relaxes such sequences to thread-pointer offsets
// (which do not depend on any placement) but --emit-relocs keeps the
// original relocation, on bytes that now hold something else.
func tlsAccess(t elf.R_X86_64) bool {
	switch t {
	case elf.R_X86_64_TLSGD, elf.R_X86_64_TLSLD, elf.R_X86_64_GOTTPOFF, elf.R_X86_64_GOTPC32_TLSDESC,
		rCode4GOTTPOFF, rCode4TLSDESC:
		return true
	}
	return false
}

// viaGOT reports whether t addresses a GOT entry holding S (unless ld
// relaxed the instruction, which the caller sees from the bytes).
func viaGOT(t elf.R_X86_64) bool {
	switch t {
	case elf.R_X86_64_GOTPCREL, elf.R_X86_64_GOTPCRELX, elf.R_X86_64_REX_GOTPCRELX,
		rCode4GOTPCRELX, rCode5GOTPCRELX, rCode6GOTPCRELX:
		return true
	}
	return false
}

// regionOf returns the library whose region holds va, or -1.
func regionOf(cfg *desc.Config, va uint64) int {
	for i, l := range cfg.Libraries {
		if l.Region.Holds(va) {
			return i
		}
	}
	return -1
}

// resolve names the library a relocation's target belongs to: the one
// whose region holds the symbol (a symbol one past its region's end, like
// an end-of-bss marker, still belongs to it), else the one holding the
// address va the field actually encodes. It returns -1 for an address in
// no region (an absolute symbol, an undefined weak symbol): such an
// address is the same wherever libraries are placed.
func (rw *rewriter) resolve(r reloc, va uint64) (int, desc.Addr, error) {
	lib := -1
	if r.Sym != 0 {
		s := rw.im.symbols[r.Sym]
		switch {
		case s.Section == elf.SHN_UNDEF:
			// ld resolved an undefined (weak) symbol to 0.
		case elf.ST_TYPE(s.Info) == elf.STT_SECTION:
			// The addend picks the object inside the section.
			lib = regionOf(rw.cfg, va)
		default:
			lib = regionOf(rw.cfg, s.Value)
			if lib < 0 {
				for i, l := range rw.cfg.Libraries {
					if (s.Value == l.Region.End() && l.Region.End() > l.Region.Start) ||
						(l.Region.Dense() && s.Value == l.Region.PrivateEnd()) {
						lib = i
					}
				}
			}
		}
	}
	if lib < 0 {
		lib = regionOf(rw.cfg, va)
	}
	if lib < 0 {
		return -1, desc.Addr{}, nil
	}
	reg := rw.cfg.Libraries[lib].Region
	if va < reg.Start || !(reg.Holds(va) || va == reg.End() || va == reg.PrivateEnd()) {
		return lib, desc.Addr{}, fmt.Errorf("%s+%#x resolves to %#x, outside library %q", rw.im.symbolName(r), r.Addend, va, rw.cfg.Libraries[lib].Name)
	}
	return lib, desc.Addr{Lib: lib, Off: va - reg.Start}, nil
}

// absAddr is the link-time address of a.
func (rw *rewriter) absAddr(a desc.Addr) uint64 {
	return rw.cfg.Libraries[a.Lib].Region.Start + a.Off
}
