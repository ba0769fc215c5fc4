package loader

import (
	"testing"

	"github.com/unipool/unipool/internal/abi"
)

// A free-page report (abi.PortDiscard) is a range the guest chose: any
// two 64-bit values. Whatever they are, what a monitor may drop
// (Layout.Discardable) is whole pages of that range, in order, apart,
// each in a writable heap or stack mapping (never the boot info, a
// library's data, a shared blob or a snapshot's mapped page) — and, where
// the range is small enough to check page by page, every such page of it.
func FuzzDiscardableNeverLeavesTheHeapAndStack(f *testing.F) {
	cold, err := Plan(withSnapshot(f), Options{MemSize: 1 << 20, BootArea: SnapshotBootArea, Cmdline: "x"})
	if err != nil {
		f.Fatal(err)
	}
	heap := cold.Areas[PartHeap]
	restored, err := Plan(withSnapshot(f, abi.AppRegionBase+5*abi.PageSize, heap+abi.PageSize, heap+3*abi.PageSize), Options{Snapshot: true, Cmdline: "own request"})
	if err != nil {
		f.Fatal(err)
	}
	random, err := Plan(testUnikernel(f), Options{MemSize: 1 << 20, ASLR: true, Cmdline: "x"})
	if err != nil {
		f.Fatal(err)
	}
	lays := []*Layout{cold, restored, random}
	for _, lay := range lays {
		for _, part := range []string{PartHeap, PartStack, PartBootInfo} {
			a := lay.Areas[part]
			f.Add(uint8(0), a, uint64(abi.PageSize))
			f.Add(uint8(1), a+1, uint64(3*abi.PageSize))
			f.Add(uint8(2), a-abi.PageSize, uint64(1<<20))
		}
	}
	f.Add(uint8(0), uint64(0), ^uint64(0))
	f.Add(uint8(1), ^uint64(0)-5, uint64(10))
	f.Add(uint8(2), uint64(abi.MapBase), uint64(64*abi.PageSize))

	f.Fuzz(func(t *testing.T, which uint8, addr, size uint64) {
		lay := lays[int(which)%len(lays)]
		end := addr + size
		if end < addr {
			end = ^uint64(0)
		}
		ranges := lay.Discardable(addr, size)
		given := map[uint64]bool{}
		var prev uint64
		for i, r := range ranges {
			if r[0]%abi.PageSize != 0 || r[1]%abi.PageSize != 0 || r[0] >= r[1] {
				t.Fatalf("range %d %#x-%#x: not whole pages", i, r[0], r[1])
			}
			if r[0] < addr || r[1] > end {
				t.Fatalf("range %#x-%#x outside the report %#x+%#x", r[0], r[1], addr, size)
			}
			if i > 0 && r[0] <= prev {
				t.Fatalf("ranges %x not in order and apart", ranges)
			}
			prev = r[1]
			for p := r[0]; p < r[1]; p += abi.PageSize {
				m := lay.Find(p)
				if !discardable(lay, m) {
					t.Fatalf("page %#x given back, in %+v", p, m)
				}
				if len(given) < 1<<16 {
					given[p] = true
				}
			}
		}
		// Completeness where the report is small: every whole page of it
		// in the heap or stack is given back.
		lo := (addr + abi.PageSize - 1) &^ (abi.PageSize - 1)
		if lo < addr || end-lo > 4096*abi.PageSize {
			return
		}
		for p := lo; p+abi.PageSize <= end && p+abi.PageSize > p; p += abi.PageSize {
			if discardable(lay, lay.Find(p)) && !given[p] {
				t.Fatalf("heap or stack page %#x of the report %#x+%#x not given back (%x)", p, addr, size, ranges)
			}
		}
	})
}

// discardable: a page of m may be dropped (and read back as zero or as
// its snapshot page); never the stack's top page(s), with the boot info.
func discardable(lay *Layout, m *Mapping) bool {
	if m == nil || (m.Part != PartHeap && m.Part != PartStack) || m.Prot&ProtWrite == 0 {
		return false
	}
	if lay.BootEnd != 0 && m.Addr <= lay.BootInfo && lay.BootInfo < m.Addr+m.Size {
		return false
	}
	return m.File == "" || m.COW
}
