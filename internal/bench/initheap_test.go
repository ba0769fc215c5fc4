package bench

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// In the child of TestAProcessOfThisPackageStartsWithASmallHeap: report
// the live heap once every package is initialised, before any test runs.
func init() {
	if os.Getenv("UNIPOOL_TEST_INIT_HEAP") == "" {
		return
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Println(ms.HeapAlloc)
	os.Exit(0)
}

// Every unipool process — a monitor too, for its whole run — holds what
// package initialisation left in its heap: bench's compute-heavy command
// lines were ~450 KiB of it as package-level strings, built at start in
// every process whether it ran the ASLR bench or not (1264 KiB then; ~810
// now, most of it libraries' regexps and plot's fonts).
func TestAProcessOfThisPackageStartsWithASmallHeap(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "UNIPOOL_TEST_INIT_HEAP=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	heap, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatalf("child said %q: %v", out, err)
	}
	t.Logf("live heap after initialisation: %d KiB", heap>>10)
	if heap > 1<<20 {
		t.Errorf("a process of this package starts with %d KiB of live heap, want < 1 MiB", heap>>10)
	}
	if in, ok := HeavyInput("sha256"); !ok || len(in) != 320000 {
		t.Errorf("HeavyInput(sha256): %d bytes, %v", len(in), ok)
	}
}
