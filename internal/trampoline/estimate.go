package trampoline

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
)

// Estimate returns an upper bound, in bytes, of the trampoline table the
// library in the relocatable object objPath can need once linked, from
// the relocations of its code (slots and stubs together; see
// EstimateParts).
func Estimate(objPath string) (uint64, error) {
	n, err := EstimateParts(objPath, false, nil)
	return n.Slots + n.Stubs, err
}

// Need bounds a library's table: its slot words and its stubs, in bytes.
// A split table (desc.Tramp.Split) reserves each where it goes: the
// stubs after the read-only data, the slots at the start of the private
// part.
type Need struct {
	Slots uint64 `json:"slots"`
	Stubs uint64 `json:"stubs"`
}

// EstimateParts bounds the table of the library in objPath. pie says the
// image is linked position-independent (-pie): ld then relaxes a GOT load
// or GOT call of a symbol the object defines (not weak) into a reference
// inside the library, which needs no table entry. The bound depends on
// the object (and pie) only, so every image reserves the same room for
// it, and identical libraries keep identical layouts.
//
// elsewhere names sections of the object that the link places outside the
// library's region: a platform's image-wide tables (Unikraft's
// .uk_event_*, .uk_inittab*, ...), which gather every library's entries in
// one place per image. A reference to the object's own symbol in such a
// section leaves the library, so it needs a word of the table like a
// reference to another library.
func EstimateParts(objPath string, pie bool, elsewhere []string) (Need, error) {
	data, err := os.ReadFile(objPath)
	if err != nil {
		return Need{}, fmt.Errorf("trampoline: %w", err)
	}
	return estimate(objPath, data, pie, elsewhere)
}

// Per-site bounds of Estimate.
const (
	slotSize = 8
	// a rel32 branch goes through a "jmp *slot(%rip)" stub
	branchStub = 6
	// ld turns a GOT load into lea, mov $imm, an addr32 call, a jmp to a
	// shared stub or leaves it: at worst "mov slot,%r; jmp back" (12)
	gotStub = 12
)

func estimate(name string, data []byte, pie bool, elsewhere []string) (Need, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return Need{}, fmt.Errorf("trampoline: %s: %w", name, err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Data != elf.ELFDATA2LSB {
		return Need{}, fmt.Errorf("trampoline: %s: not a little-endian x86-64 ELF64 file", name)
	}
	if f.Type != elf.ET_REL {
		return Need{}, fmt.Errorf("trampoline: %s: ELF type %v, want a relocatable object (ET_REL)", name, f.Type)
	}
	syms, err := f.Symbols()
	if err != nil && err != elf.ErrNoSymbols {
		return Need{}, fmt.Errorf("trampoline: %s: symbols: %w", name, err)
	}
	syms = append([]elf.Symbol{{}}, syms...)
	away := map[string]bool{}
	for _, n := range elsewhere {
		away[n] = true
	}
	leaves := func(s elf.Symbol) bool {
		if mayLieElsewhere(s) {
			return true
		}
		return s.Section < elf.SHN_LORESERVE && int(s.Section) < len(f.Sections) && away[f.Sections[s.Section].Name]
	}
	var total Need
	for _, s := range f.Sections {
		if s.Type != elf.SHT_RELA || int(s.Info) <= 0 || int(s.Info) >= len(f.Sections) {
			continue
		}
		code := f.Sections[s.Info]
		if code.Flags&elf.SHF_ALLOC == 0 || code.Flags&elf.SHF_EXECINSTR == 0 {
			continue
		}
		var text []byte
		if code.Type == elf.SHT_PROGBITS && code.Offset+code.Size >= code.Offset && code.Offset+code.Size <= uint64(len(data)) {
			text = data[code.Offset : code.Offset+code.Size]
		}
		if s.Offset+s.Size < s.Offset || s.Offset+s.Size > uint64(len(data)) || s.Size%24 != 0 {
			return Need{}, fmt.Errorf("trampoline: %s: relocation section %s lies outside the file", name, s.Name)
		}
		raw := data[s.Offset : s.Offset+s.Size]
		for off := 0; off < len(raw); off += 24 {
			at := binary.LittleEndian.Uint64(raw[off:])
			info := binary.LittleEndian.Uint64(raw[off+8:])
			typ := elf.R_X86_64(info & 0xffffffff)
			symi := uint32(info >> 32)
			if int(symi) >= len(syms) {
				return Need{}, fmt.Errorf("trampoline: %s: section %s: relocation at %#x names symbol %d of %d", name, s.Name, at, symi, len(syms))
			}
			cls := classify(typ)
			if cls == relIgnore {
				continue
			}
			sym := syms[symi]
			if cls == relPC32 && !viaGOT(typ) && symi != 0 && !leaves(sym) {
				continue // a reference inside the library: its region moves as one
			}
			if pie && !leaves(sym) && relaxedInside(typ, sym, symi, text, at) {
				continue
			}
			// Every site has a word of its own (see wordKey).
			total.Slots += slotSize
			switch {
			case viaGOT(typ):
				total.Stubs += gotStub
			case cls == relPC32 && isBranch(text, at):
				total.Stubs += branchStub
			default:
				total.Stubs += maxStub
			}
		}
	}
	return total, nil
}

// mayLieElsewhere reports whether a symbol an object refers to may end up
// outside the object's library region: it is undefined, weak (another
// library's strong definition wins), common or absolute.
func mayLieElsewhere(s elf.Symbol) bool {
	switch s.Section {
	case elf.SHN_UNDEF, elf.SHN_COMMON, elf.SHN_ABS:
		return true
	}
	return elf.ST_BIND(s.Info) == elf.STB_WEAK
}

// isBranch reports whether the 4-byte field at off of text is the rel32 of
// a call, jmp or jcc.
func isBranch(text []byte, off uint64) bool {
	if off < 2 || off > uint64(len(text)) {
		return false
	}
	op := text[off-1]
	return op == 0xe8 || op == 0xe9 || (text[off-2] == 0x0f && op&0xf0 == 0x80)
}

// relaxedInside reports whether ld, linking -pie, turns the GOT reference
// at off of text into a PC-relative one to the symbol itself, inside the
// library: a GOTPCRELX (or REX_GOTPCRELX) "mov foo@GOTPCREL(%rip),%r"
// becomes "lea foo(%rip),%r", "call/jmp *foo@GOTPCREL(%rip)" becomes a
// direct call or jmp, when foo is defined in the object and not weak (so
// no other library's definition can take its place).
func relaxedInside(typ elf.R_X86_64, s elf.Symbol, symi uint32, text []byte, off uint64) bool {
	if typ != elf.R_X86_64_GOTPCRELX && typ != elf.R_X86_64_REX_GOTPCRELX {
		return false
	}
	if symi == 0 || mayLieElsewhere(s) || s.Section >= elf.SHN_LORESERVE {
		return false
	}
	if off < 2 || off > uint64(len(text)) {
		return false
	}
	op, modrm := text[off-2], text[off-1]
	if modrm&0xc7 != 0x05 { // RIP-relative operand
		return false
	}
	switch {
	case op == 0x8b: // mov
		return true
	case op == 0xff && typ == elf.R_X86_64_GOTPCRELX && (modrm == 0x15 || modrm == 0x25): // call, jmp
		return true
	}
	return false
}
