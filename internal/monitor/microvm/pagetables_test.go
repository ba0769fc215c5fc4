package microvm

import "testing"

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
