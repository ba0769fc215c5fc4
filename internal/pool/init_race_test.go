package pool

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// Pools created by many at once: every Init must open the one pool, none
// may see a half-made one as "not a pool" (CI once did: the creator wrote
// oci-layout between another's failed Open and its second look).
func TestConcurrentInitsAllOpenThePool(t *testing.T) {
	root := t.TempDir()
	for r := range 100 {
		dir := filepath.Join(root, fmt.Sprintf("round%d", r), "pool")
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = Init(dir)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, Init %d: %v", r, i, err)
			}
		}
	}
}
