package runtimetest

import (
	"fmt"
	"strings"
	"testing"
)

// The driver checks, while it allocates, frees, reallocates and memaligns
// at random: the allocator's own structural check (uk_alloc_check), that
// no two live blocks overlap, that every block lies in the heap, is aligned
// and at least as big as asked, that contents survive other operations
// and realloc, that freeing everything gives back every byte and a large
// block, and that running out of memory returns NULL without damage.
func TestAllocatorsKeepTheirInvariantsUnderRandomStress(t *testing.T) {
	forEachSet(t, func(t *testing.T, i int, exe string) {
		for _, heap := range []string{"8388608", "300000"} {
			runDriver(t, exe, "alloc", fmt.Sprint(6000+i), "30000", heap)
			runDriver(t, exe, "alloc", fmt.Sprint(6100+i), "30000", heap, "zeroed")
		}
	})
}

// An instance pays for the heap it uses: the driver gives each allocator a
// fresh 8 MiB anonymous heap, makes a few dozen small allocations and grows
// one buffer to 4 KiB, then counts the heap's pages the kernel has mapped
// (mincore: written, or only read); then a calloc of 1 MiB may add at most
// two (its header or table entry): fresh memory is not cleared again. Before, the buddy allocator's table
// (heap/33 bytes) was read in full at init: ~60 pages on every instance. And
// the allocator's state, a first block of half a page (stdout's, which
// every request writes) and four small ones after it are one page of the heap: the buddy allocator's
// state and first table entries had a page of their own, one more page
// every instance wrote.
func TestAllocatorsTouchOnlyTheHeapTheyHandOut(t *testing.T) {
	forEachSet(t, func(t *testing.T, i int, exe string) {
		out := runDriver(t, exe, "touch", fmt.Sprint(7000+i), "60")
		t.Log(strings.TrimSpace(out))
		// The allocator's state, in the heap or not, a first block of
		// half a page (stdout's, which every request writes) and small
		// ones after it are one page: the buddy allocator's state had a
		// page of its own.
		first := -1
		for _, l := range strings.Split(out, "\n") {
			fmt.Sscanf(l, "first-block-resident %d", &first)
		}
		if first != 1 {
			t.Errorf("%d heap pages resident once a first block of half a page is written, want 1 (the state and the blocks on one page)", first)
		}
	})
}

// Free-page reporting gives a freed buffer back whole: the buddy allocator
// keeps the list links of free blocks of 1 KiB and up in its table, not in
// the block, so none of a freed 64 KiB buffer's pages stays resident; and
// when everything is freed, the table entries of the heap freed at its end
// are given back too. Either allocator then keeps one page of the heap: its
// own state's, which its first blocks share (TLSF's control block lives in
// the heap since session 14, its list heads of empty lists are given back,
// and so is the page the clean mark ends in: before, a TLSF heap kept the
// page where the request's highest write ended, its control block a page of
// the data arena).
func TestFreePageReportingGivesBackAFreedBufferAndItsTableEntriesWhole(t *testing.T) {
	forEachSet(t, func(t *testing.T, i int, exe string) {
		out := runDriver(t, exe, "giveback", "1")
		t.Log(strings.TrimSpace(out))
		buf, all, firstPage := -1, -1, -1
		var resident []int
		for _, l := range strings.Split(out, "\n") {
			fmt.Sscanf(l, "freed-buffer-resident %d", &buf)
			fmt.Sscanf(l, "all-freed-resident %d", &all)
			fmt.Sscanf(l, "first-block-page %d", &firstPage)
			var p int
			if n, _ := fmt.Sscanf(l, "resident page %d", &p); n == 1 {
				resident = append(resident, p)
			}
		}
		if buf < 0 || all < 0 || firstPage < 0 {
			t.Fatalf("no figures in the driver's output:\n%s", out)
		}
		if buf != 0 {
			t.Errorf("%d pages of a freed 64 KiB buffer stay resident after free-page reporting, want 0", buf)
		}
		if all > 1 {
			t.Errorf("%d pages of the heap stay resident once everything is freed and reported, want at most 1 (the allocator's own)", all)
		}
		for _, p := range resident {
			if p != firstPage {
				t.Errorf("heap page %d stays resident once everything is freed and reported; only the allocator's own page (%d, its first block's) may", p, firstPage)
			}
		}
	})
}
