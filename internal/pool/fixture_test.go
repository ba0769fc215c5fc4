package pool

import (
	"testing"

	"github.com/unipool/unipool/internal/pool/pooltest"
)

// TestMain gives this test binary its own fixture directory (images and
// the CLI, built once: see pooltest).
func TestMain(m *testing.M) { pooltest.Main(m, "unipool-pool-test-", MapFile) }
