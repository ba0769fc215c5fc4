package microvm

import (
	"encoding/binary"
	"fmt"
)

// Page-table entry bits (Intel SDM vol. 3, 4.5: 4-level paging).
const (
	ptePresent  = 1 << 0
	pteWritable = 1 << 1
	pteAccessed = 1 << 5
	pteDirty    = 1 << 6 // on a leaf
	pteHuge     = 1 << 7 // PS: a PDE mapping a 2 MiB page
	pteNX       = 1 << 63
	pteAddrMask = 0x000f_ffff_ffff_f000
)

// pageTables builds the guest's 4-level page tables in host memory; the
// tables are placed at base in guest-physical memory, one page each, the
// PML4 first.
type pageTables struct {
	base  uint64
	pages [][512]uint64
}

func newPageTables(base uint64) *pageTables {
	return &pageTables{base: base, pages: make([][512]uint64, 1)}
}

// CR3 is the PML4's guest-physical address.
func (pt *pageTables) CR3() uint64 { return pt.base }

// Size is the bytes the tables take.
func (pt *pageTables) Size() uint64 { return uint64(len(pt.pages)) * pageSize }

// next returns the table that entry idx of table t points to, creating it.
// Upper levels allow everything; the leaf decides.
func (pt *pageTables) next(t int, idx uint64) (int, error) {
	e := pt.pages[t][idx]
	if e&ptePresent != 0 {
		if e&pteHuge != 0 {
			return 0, fmt.Errorf("page tables: range overlaps a 2 MiB page")
		}
		return int((e&pteAddrMask - pt.base) / pageSize), nil
	}
	pt.pages = append(pt.pages, [512]uint64{})
	n := len(pt.pages) - 1
	pt.pages[t][idx] = (pt.base + uint64(n)*pageSize) | ptePresent | pteWritable
	return n, nil
}

// Map maps [gva, gva+size) to [gpa, gpa+size) with the given leaf flags,
// using 2 MiB pages where both addresses allow it.
func (pt *pageTables) Map(gva, gpa, size, flags uint64) error {
	if (gva|gpa|size)&pageMask != 0 {
		return fmt.Errorf("page tables: map %#x->%#x+%#x: not page-aligned", gva, gpa, size)
	}
	if gva+size < gva || gva+size > 1<<47 {
		return fmt.Errorf("page tables: map %#x+%#x: beyond the 47-bit lower half", gva, size)
	}
	for size > 0 {
		huge := (gva|gpa)&hugeMask == 0 && size >= hugeSize
		pdpt, err := pt.next(0, gva>>39&511)
		if err != nil {
			return err
		}
		pd, err := pt.next(pdpt, gva>>30&511)
		if err != nil {
			return err
		}
		step := uint64(pageSize)
		if huge {
			step = hugeSize
			if pt.pages[pd][gva>>21&511] != 0 {
				return fmt.Errorf("page tables: %#x mapped twice", gva)
			}
			pt.pages[pd][gva>>21&511] = gpa | flags | ptePresent | pteHuge
		} else {
			t, err := pt.next(pd, gva>>21&511)
			if err != nil {
				return err
			}
			if pt.pages[t][gva>>12&511] != 0 {
				return fmt.Errorf("page tables: %#x mapped twice", gva)
			}
			pt.pages[t][gva>>12&511] = gpa | flags | ptePresent
		}
		gva, gpa, size = gva+step, gpa+step, size-step
	}
	return nil
}

// Encode writes the tables into dst (guest memory at pt.base).
func (pt *pageTables) Encode(dst []byte) {
	for i := range pt.pages {
		for j, e := range pt.pages[i] {
			if e != 0 {
				binary.LittleEndian.PutUint64(dst[i*pageSize+j*8:], e)
			}
		}
	}
}

// Walk translates gva the way the MMU would, reading the encoded tables
// from mem (guest-physical memory starting at GPA 0). Tests and fault
// reports use it.
func walk(mem []byte, cr3, gva uint64) (gpa, flags uint64, ok bool) {
	table := cr3
	for level, shift := 0, uint(39); level < 4; level, shift = level+1, shift-9 {
		off := table + (gva>>shift&511)*8
		if off+8 > uint64(len(mem)) {
			return 0, 0, false
		}
		e := binary.LittleEndian.Uint64(mem[off:])
		if e&ptePresent == 0 {
			return 0, 0, false
		}
		if level == 2 && e&pteHuge != 0 {
			return e&pteAddrMask&^hugeMask | gva&hugeMask, e, true
		}
		if level == 3 {
			return e&pteAddrMask | gva&pageMask, e, true
		}
		table = e & pteAddrMask
	}
	return 0, 0, false
}
