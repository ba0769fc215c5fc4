package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"reflect"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/elfimage"
)

// sectionsImage is an x86-64 ELF64 executable of two PT_LOAD segments and
// extra+5 sections: .data (holding the boot-info version, with its symbol
// in .symtab), .symtab, .strtab, .shstrtab, extra filler sections, and
// .uk_bootinfo if uk.
func sectionsImage(extra int, uk bool, version uint32) []byte {
	le := binary.LittleEndian
	shstr := []byte("\x00.data\x00.symtab\x00.strtab\x00.shstrtab\x00.uk_bootinfo\x00")
	const ukName = 33
	var fillerNames []uint32
	for i := range extra {
		fillerNames = append(fillerNames, uint32(len(shstr)))
		shstr = append(append(shstr, fmt.Sprintf(".text.filler_%d", i)...), 0)
	}
	str := []byte{0}
	var syms bytes.Buffer
	binary.Write(&syms, le, elf.Sym64{})
	binary.Write(&syms, le, elf.Sym64{Name: 1, Info: elf.ST_INFO(elf.STB_GLOBAL, elf.STT_OBJECT), Shndx: 1, Value: 0x201000, Size: 4})
	str = append(append(str, abi.BootInfoVersionSymbol...), 0)
	data := le.AppendUint32(nil, version)
	const ehsize, phsize, shsize = 64, 56, 64
	off := uint64(ehsize + 2*phsize)
	place := func(b []byte) uint64 { o := off; off += uint64(len(b)); return o }
	dataOff, symOff, strOff, shstrOff := place(data), place(syms.Bytes()), place(str), place(shstr)
	shoff := (off + 7) &^ 7
	secs := []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC | elf.SHF_WRITE), Addr: 0x201000, Off: dataOff, Size: uint64(len(data)), Addralign: 4},
		{Name: 7, Type: uint32(elf.SHT_SYMTAB), Off: symOff, Size: uint64(syms.Len()), Link: 3, Info: 1, Addralign: 8, Entsize: elf.Sym64Size},
		{Name: 15, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(str)), Addralign: 1},
		{Name: 23, Type: uint32(elf.SHT_STRTAB), Off: shstrOff, Size: uint64(len(shstr)), Addralign: 1},
	}
	for _, n := range fillerNames {
		secs = append(secs, elf.Section64{Name: n, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Addr: 0x200000, Off: 0, Size: 16})
	}
	if uk {
		secs = append(secs, elf.Section64{Name: ukName, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Addr: 0x200000, Size: 16})
	}
	hdr := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1, Entry: 0x200040,
		Phoff: ehsize, Ehsize: ehsize, Phentsize: phsize, Phnum: 2,
		Shoff: shoff, Shentsize: shsize, Shnum: uint16(len(secs)), Shstrndx: 4}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS], hdr.Ident[elf.EI_DATA], hdr.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1
	var b bytes.Buffer
	binary.Write(&b, le, hdr)
	binary.Write(&b, le, elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Off: 0, Vaddr: 0x200000, Paddr: 0x200000, Filesz: 0x100, Memsz: 0x100, Align: 0x1000})
	binary.Write(&b, le, elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_W), Off: dataOff, Vaddr: 0x201000, Paddr: 0x201000, Filesz: 4, Memsz: 0x2000, Align: 0x1000})
	b.Write(data)
	b.Write(syms.Bytes())
	b.Write(str)
	b.Write(shstr)
	for uint64(b.Len()) < shoff {
		b.WriteByte(0)
	}
	for _, sh := range secs {
		binary.Write(&b, le, sh)
	}
	return b.Bytes()
}

// viaNewFile is what readPlainImage read of an image through elf.NewFile
// before leanHeaders.
func viaNewFile(t *testing.T, img []byte) elfHeaders {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	h := fullHeaders(f)
	if !h.linux {
		if h.bootInfo, err = elfimage.BootInfoVersion(f); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func TestLeanHeadersReadWhatElfNewFileReads(t *testing.T) {
	for _, extra := range []int{0, 3, 120} {
		for _, uk := range []bool{false, true} {
			for _, version := range []uint32{1, abi.BootInfoVersion} {
				img := sectionsImage(extra, uk, version)
				got, ok := leanHeaders(bytes.NewReader(img), int64(len(img)))
				if !ok {
					t.Fatalf("extra %d, uk %v: leanHeaders did not read it", extra, uk)
				}
				want := viaNewFile(t, img)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("extra %d, uk %v, version %d:\nlean    %+v\nNewFile %+v", extra, uk, version, got, want)
				}
				if got.linux != uk || (!uk && got.bootInfo != version) {
					t.Errorf("extra %d, uk %v, version %d: linux %v, boot info %d", extra, uk, version, got.linux, got.bootInfo)
				}
			}
		}
	}
}

// What leanHeaders cannot read the way elf.NewFile does goes to it: a
// version it refuses, a name out of the table, a compressed section, no
// sections.
func TestLeanHeadersLeaveOddImagesToElfNewFile(t *testing.T) {
	le := binary.LittleEndian
	good := sectionsImage(2, false, 1)
	shoff := le.Uint64(good[40:])
	for name, edit := range map[string]func(b []byte){
		"bad boot info version": func(b []byte) { copy(b, sectionsImage(2, false, abi.BootInfoVersion+1)) },
		"name out of the table": func(b []byte) { le.PutUint32(b[shoff+5*64:], 1<<20) },
		"compressed section":    func(b []byte) { le.PutUint64(b[shoff+5*64+8:], uint64(elf.SHF_COMPRESSED)) },
		"no sections":           func(b []byte) { le.PutUint64(b[40:], 0); le.PutUint16(b[60:], 0); le.PutUint16(b[62:], 0) },
		"ELF32":                 func(b []byte) { b[elf.EI_CLASS] = byte(elf.ELFCLASS32) },
		"not x86-64":            func(b []byte) { le.PutUint16(b[18:], uint16(elf.EM_AARCH64)) },
	} {
		b := bytes.Clone(good)
		edit(b)
		if _, ok := leanHeaders(bytes.NewReader(b), int64(len(b))); ok {
			t.Errorf("%s: leanHeaders read it", name)
		}
	}
}

// elf.NewFile's garbage grows with an image's sections (a Section, its
// reader and its name each, and the whole name table): an aligned image
// has ~100. leanHeaders' does not.
func TestLeanHeadersAllocationsDoNotGrowWithSections(t *testing.T) {
	allocs := func(extra int) (lean, full float64) {
		img := sectionsImage(extra, false, 1)
		r := bytes.NewReader(img)
		lean = testing.AllocsPerRun(20, func() {
			if _, ok := leanHeaders(r, int64(len(img))); !ok {
				t.Fatal("not read")
			}
		})
		full = testing.AllocsPerRun(20, func() {
			if _, err := elf.NewFile(r); err != nil {
				t.Fatal(err)
			}
		})
		return lean, full
	}
	few, fewFull := allocs(2)
	many, manyFull := allocs(200)
	t.Logf("allocations: lean %v (7 sections), %v (205); elf.NewFile %v, %v", few, many, fewFull, manyFull)
	if many != few {
		t.Errorf("leanHeaders: %v allocations for 7 sections, %v for 205: want the same", few, many)
	}
	if many > 12 {
		t.Errorf("leanHeaders: %v allocations; want at most 12", many)
	}
	if manyFull < 400 {
		t.Errorf("elf.NewFile: %v allocations for 205 sections: the comparison is off", manyFull)
	}
}
