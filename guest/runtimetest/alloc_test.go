package runtimetest

import (
	"fmt"
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
		}
	})
}
