package microvm

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPageTablesTranslateEveryMappedPageAndNothingElse(t *testing.T) {
	pt := newPageTables(0x100000)
	maps := []struct{ gva, gpa, size, flags uint64 }{
		{0x4000_0000, 0x1_0000_0000, 3 * pageSize, pteWritable},         // a blob, 4 KiB pages
		{0x2000_0000, 0x20_0000, 2*hugeSize + pageSize, pteNX},          // aligned: two 2 MiB pages + one
		{0x10_0000_1000, 0x50_1000, pageSize, pteNX | pteWritable},      // in the ASLR window
		{0x2100_0000 - pageSize, 0x80_0000 - pageSize, 2 * pageSize, 0}, // crosses a PD boundary
	}
	for _, m := range maps {
		if err := pt.Map(m.gva, m.gpa, m.size, m.flags); err != nil {
			t.Fatal(err)
		}
	}
	mem := make([]byte, pt.base+pt.Size())
	pt.Encode(mem[pt.base:])
	for _, m := range maps {
		for off := uint64(0); off < m.size; off += pageSize / 2 {
			gpa, flags, ok := walk(mem, pt.CR3(), m.gva+off)
			if !ok || gpa != m.gpa+off {
				t.Fatalf("gva %#x: gpa %#x ok %v, want %#x", m.gva+off, gpa, ok, m.gpa+off)
			}
			if flags&(pteWritable|pteNX) != m.flags {
				t.Errorf("gva %#x: flags %#x, want %#x", m.gva+off, flags&(pteWritable|pteNX), m.flags)
			}
		}
	}
	if _, _, ok := walk(mem, pt.CR3(), 0x4000_0000+3*pageSize); ok {
		t.Error("the page after a mapping translates")
	}
	if _, flags, _ := walk(mem, pt.CR3(), 0x2000_0000); flags&pteHuge == 0 {
		t.Error("2 MiB-aligned range not mapped with a 2 MiB page")
	}
	if err := pt.Map(0x4000_1000, 0, pageSize, 0); err == nil {
		t.Error("mapping a page twice succeeded")
	}
}

func TestSystemAreaIsBelowEveryLoaderAddress(t *testing.T) {
	if gpaFaultStackTop > loaderLowest || gpaPrivateData < gpaFaultStackTop {
		t.Fatalf("system area [%#x,%#x) overlaps loader addresses from %#x", gpaGDT, gpaFaultStackTop, loaderLowest)
	}
	if gpaStubs+numVectors*stubSize > gpaSystem+pageSize || gpaIDT+numVectors*16 > gpaStubs || gpaTSS+tssSize > gpaIDT {
		t.Fatal("GDT, TSS, IDT and stubs do not fit one page without overlapping")
	}
	mem := make([]byte, loaderLowest)
	writeSystemArea(mem)
	// Every stub ends in "out %al,(%dx); hlt; jmp" and fits its slot.
	for v := 0; v < numVectors; v++ {
		stub := mem[gpaStubs+v*stubSize : gpaStubs+(v+1)*stubSize]
		found := false
		for i := 0; i+3 < len(stub); i++ {
			if stub[i] == 0xee && stub[i+1] == 0xf4 && stub[i+2] == 0xeb && stub[i+3] == 0xfd {
				found = true
			}
		}
		if !found {
			t.Errorf("vector %d: stub % x does not report and halt", v, stub)
		}
	}
}

// TestTheSharedSystemPageIsSealedWithEveryBitTheCPUWouldSetAlreadySet:
// the one system page every VM of the process maps copy-on-write holds the
// system area writeSystemArea writes, only within its page, with the
// descriptors' accessed bits and the TSS descriptor's busy bit set (else
// the CPU would write them, and each VM would get its own copy), and its
// memfd is sealed: no one can write it or map it writable shared.
func TestTheSharedSystemPageIsSealedWithEveryBitTheCPUWouldSetAlreadySet(t *testing.T) {
	f, err := sharedSystemFile()
	if err != nil {
		t.Fatal(err)
	}
	page := make([]byte, pageSize+1)
	if n, err := f.ReadAt(page, 0); n != pageSize {
		t.Fatalf("the system page's file holds %d bytes (%v), want %d", n, err, pageSize)
	}
	page = page[:pageSize]
	mem := make([]byte, loaderLowest)
	writeSystemArea(mem)
	for i, b := range mem {
		if (i < gpaSystem || i >= gpaSystem+pageSize) && b != 0 {
			t.Fatalf("writeSystemArea writes %#x outside the system page", i)
		}
	}
	if string(page) != string(mem[gpaSystem:gpaSystem+pageSize]) {
		t.Fatal("the shared system page is not what writeSystemArea writes")
	}
	le := binary.LittleEndian
	for _, sel := range []int{selCode, selData} {
		if typ := le.Uint64(page[sel:]) >> 40 & 0xf; typ&1 == 0 {
			t.Errorf("descriptor %#x: type %#x, accessed bit clear", sel, typ)
		}
	}
	if typ := le.Uint64(page[selTSS:]) >> 40 & 0xf; typ != 0xb {
		t.Errorf("TSS descriptor type %#x, want 0xb (busy)", typ)
	}
	if _, err := f.WriteAt([]byte{1}, 8); err == nil {
		t.Error("the shared system page's file took a write")
	}
	if b, err := unix.Mmap(int(f.Fd()), 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err == nil {
		unix.Munmap(b)
		t.Error("the shared system page's file mapped writable and shared")
	}
	if again, _ := sharedSystemFile(); again != f {
		t.Error("a second call made a second system page")
	}
	if p, ok := systemPiece(); !ok || p.off != gpaSystem || p.size != pageSize || p.fd != int(f.Fd()) || p.own != nil || p.hole {
		t.Errorf("system piece %+v, %v", p, ok)
	}
}

// TestTheSharedIdentityTablesMapTheFirst4GiBWithAccessedAndDirtyPreset:
// the identity tables every Linux-boot VM maps copy-on-write translate
// every 2 MiB page below 4 GiB to itself, writable, with the accessed bit
// in every entry on the way and the dirty bit in the leaf (so the CPU's
// walker has nothing to write), nothing above; their memfd is sealed.
func TestTheSharedIdentityTablesMapTheFirst4GiBWithAccessedAndDirtyPreset(t *testing.T) {
	piece, ok := identityTablesPiece()
	if !ok {
		t.Fatal("no shared identity tables on this kernel")
	}
	if piece.off != gpaIdentityPT || piece.size != 6*pageSize || piece.own != nil || piece.hole {
		t.Fatalf("identity tables piece %+v, want 6 pages at %#x", piece, gpaIdentityPT)
	}
	f, _ := sharedIdentityTables()
	mem := make([]byte, gpaPrivateData)
	if n, err := f.ReadAt(mem[gpaIdentityPT:gpaIdentityPT+piece.size], 0); uint64(n) != piece.size {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	le := binary.LittleEndian
	for gva := uint64(0); gva < identityLimit; gva += hugeSize {
		gpa, flags, ok := walk(mem, gpaIdentityPT, gva+0x1234)
		if !ok || gpa != gva+0x1234 || flags&(pteWritable|pteHuge|pteAccessed|pteDirty) != pteWritable|pteHuge|pteAccessed|pteDirty {
			t.Fatalf("%#x: -> %#x flags %#x ok %v", gva, gpa, flags, ok)
		}
		// The PML4 and PDPT entries on the way.
		pml4e := le.Uint64(mem[gpaIdentityPT+(gva>>39&511)*8:])
		pdpte := le.Uint64(mem[pml4e&pteAddrMask+(gva>>30&511)*8:])
		if pml4e&pteAccessed == 0 || pdpte&pteAccessed == 0 {
			t.Fatalf("%#x: PML4E %#x, PDPTE %#x: accessed bit clear", gva, pml4e, pdpte)
		}
	}
	if _, _, ok := walk(mem, gpaIdentityPT, identityLimit); ok {
		t.Error("4 GiB is mapped")
	}
	if _, err := f.WriteAt([]byte{1}, 0); err == nil {
		t.Error("the shared identity tables' file took a write")
	}
}
