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
// the relocations of its code: the linker sizes Region.TrampSize with it.
func Estimate(objPath string) (uint64, error) {
	data, err := os.ReadFile(objPath)
	if err != nil {
		return 0, fmt.Errorf("trampoline: %w", err)
	}
	return estimate(objPath, data)
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

func estimate(name string, data []byte) (uint64, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return 0, fmt.Errorf("trampoline: %s: %w", name, err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Data != elf.ELFDATA2LSB {
		return 0, fmt.Errorf("trampoline: %s: not a little-endian x86-64 ELF64 file", name)
	}
	if f.Type != elf.ET_REL {
		return 0, fmt.Errorf("trampoline: %s: ELF type %v, want a relocatable object (ET_REL)", name, f.Type)
	}
	syms, err := f.Symbols()
	if err != nil && err != elf.ErrNoSymbols {
		return 0, fmt.Errorf("trampoline: %s: symbols: %w", name, err)
	}
	syms = append([]elf.Symbol{{}}, syms...)
	var total uint64
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
			return 0, fmt.Errorf("trampoline: %s: relocation section %s lies outside the file", name, s.Name)
		}
		raw := data[s.Offset : s.Offset+s.Size]
		for off := 0; off < len(raw); off += 24 {
			at := binary.LittleEndian.Uint64(raw[off:])
			info := binary.LittleEndian.Uint64(raw[off+8:])
			typ := elf.R_X86_64(info & 0xffffffff)
			symi := uint32(info >> 32)
			if int(symi) >= len(syms) {
				return 0, fmt.Errorf("trampoline: %s: section %s: relocation at %#x names symbol %d of %d", name, s.Name, at, symi, len(syms))
			}
			cls := classify(typ)
			if cls == relIgnore {
				continue
			}
			sym := syms[symi]
			if cls == relPC32 && !viaGOT(typ) && symi != 0 && !mayLieElsewhere(sym) {
				continue // a reference inside the library: its region moves as one
			}
			// Every site has a word of its own (see wordKey).
			switch {
			case viaGOT(typ):
				total += slotSize + gotStub
			case cls == relPC32 && isBranch(text, at):
				total += slotSize + branchStub
			default:
				total += slotSize + maxStub
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
