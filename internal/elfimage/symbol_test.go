package elfimage

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"

	"github.com/unipool/unipool/internal/abi"
)

// symtabImage is a minimal ELF64 file (no program headers) with a .data
// section at 0x1000 holding version, and a symbol table of n filler
// symbols defined in .data followed by abi.BootInfoVersionSymbol at its
// start.
func symtabImage(n int, version uint32) []byte {
	le := binary.LittleEndian
	shstr := []byte("\x00.data\x00.symtab\x00.strtab\x00.shstrtab\x00")
	str := []byte{0}
	var syms bytes.Buffer
	binary.Write(&syms, le, elf.Sym64{}) // entry 0
	add := func(name string, value uint64) {
		binary.Write(&syms, le, elf.Sym64{Name: uint32(len(str)), Info: elf.ST_INFO(elf.STB_GLOBAL, elf.STT_OBJECT), Shndx: 1, Value: value, Size: 4})
		str = append(append(str, name...), 0)
	}
	for i := range n {
		add(fmt.Sprintf("filler_symbol_%d", i), 0x1004)
	}
	add(abi.BootInfoVersionSymbol, 0x1000)
	data := le.AppendUint32(le.AppendUint32(nil, version), 0)
	const ehsize, shsize = 64, 64
	off := uint64(ehsize)
	place := func(b []byte) uint64 { o := off; off += uint64(len(b)); return o }
	dataOff, symOff, strOff, shstrOff := place(data), place(syms.Bytes()), place(str), place(shstr)
	off = (off + 7) &^ 7
	shoff := off
	hdr := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1,
		Shoff: shoff, Ehsize: ehsize, Shentsize: shsize, Shnum: 5, Shstrndx: 4}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS], hdr.Ident[elf.EI_DATA], hdr.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1
	var b bytes.Buffer
	binary.Write(&b, le, hdr)
	b.Write(data)
	b.Write(syms.Bytes())
	b.Write(str)
	b.Write(shstr)
	for uint64(b.Len()) < shoff {
		b.WriteByte(0)
	}
	for _, sh := range []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC | elf.SHF_WRITE), Addr: 0x1000, Off: dataOff, Size: uint64(len(data)), Addralign: 4},
		{Name: 7, Type: uint32(elf.SHT_SYMTAB), Off: symOff, Size: uint64(syms.Len()), Link: 3, Info: 1, Addralign: 8, Entsize: elf.Sym64Size},
		{Name: 15, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(str)), Addralign: 1},
		{Name: 23, Type: uint32(elf.SHT_STRTAB), Off: shstrOff, Size: uint64(len(shstr)), Addralign: 1},
	} {
		binary.Write(&b, le, sh)
	}
	return b.Bytes()
}

// bootInfoVersionBySymbols is BootInfoVersion as it was: through
// elf.File.Symbols, the reference its answers must equal.
func bootInfoVersionBySymbols(f *elf.File) (uint32, error) {
	syms, err := f.Symbols()
	if err != nil {
		return 1, nil
	}
	for _, s := range syms {
		if s.Name != abi.BootInfoVersionSymbol || s.Section == elf.SHN_UNDEF || int(s.Section) >= len(f.Sections) {
			continue
		}
		sec := f.Sections[s.Section]
		if sec.Type != elf.SHT_PROGBITS || s.Value < sec.Addr || s.Value+4 > sec.Addr+sec.Size {
			return 0, fmt.Errorf("%s is not 4 bytes of data in %s", abi.BootInfoVersionSymbol, sec.Name)
		}
		b := make([]byte, 4)
		if _, err := sec.ReadAt(b, int64(s.Value-sec.Addr)); err != nil {
			return 0, fmt.Errorf("%s: %w", abi.BootInfoVersionSymbol, err)
		}
		v := binary.LittleEndian.Uint32(b)
		if v == 0 || v > abi.BootInfoVersion {
			return 0, fmt.Errorf("bad version %d", v)
		}
		return v, nil
	}
	return 1, nil
}

func TestBootInfoVersionIsFoundAfterThousandsOfSymbols(t *testing.T) {
	f, err := elf.NewFile(bytes.NewReader(symtabImage(3000, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := BootInfoVersion(f); v != 2 || err != nil {
		t.Fatalf("BootInfoVersion: %d, %v; want 2", v, err)
	}
	f, _ = elf.NewFile(bytes.NewReader(symtabImage(10, 0)))
	if _, err := BootInfoVersion(f); err == nil {
		t.Fatal("version 0 accepted")
	}
}

// Reading the version allocates a fixed buffer, not the tables, a symbol
// and a string per symbol, as Symbols did (~150 bytes per symbol; the
// plain-image monitor reads it twice per image: Check, then Prepare).
func TestBootInfoVersionAllocatesFarLessThanTheSymbolTable(t *testing.T) {
	const n = 5000
	f, err := elf.NewFile(bytes.NewReader(symtabImage(n, 2)))
	if err != nil {
		t.Fatal(err)
	}
	allocated := func(read func(*elf.File) (uint32, error)) uint64 {
		var a, b runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&a)
		for range 10 {
			if v, err := read(f); v != 2 || err != nil {
				t.Fatalf("%d, %v", v, err)
			}
		}
		runtime.ReadMemStats(&b)
		return (b.TotalAlloc - a.TotalAlloc) / 10
	}
	now, before := allocated(BootInfoVersion), allocated(bootInfoVersionBySymbols)
	t.Logf("per read: %d bytes, through Symbols %d", now, before)
	if bound := uint64(8 << 10); now > bound {
		t.Errorf("BootInfoVersion allocates %d bytes per read of a %d-symbol image, want ≤ %d", now, n, bound)
	}
	if before < 64*n {
		t.Errorf("the reference allocates %d bytes: the bound no longer tells the two apart", before)
	}
}

func FuzzBootInfoVersion(f *testing.F) {
	f.Add(symtabImage(3, 2))
	f.Add(symtabImage(0, 1))
	f.Add(symtabImage(2, 7))
	f.Fuzz(func(t *testing.T, data []byte) {
		ef, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			return
		}
		v, err := BootInfoVersion(ef)
		want, werr := bootInfoVersionBySymbols(ef)
		if v != want || (err == nil) != (werr == nil) {
			t.Fatalf("BootInfoVersion: %d, %v; through Symbols: %d, %v", v, err, want, werr)
		}
	})
}
