package measure

import (
	"os"
	"testing"
)

func TestOwnRollupHasPSS(t *testing.T) {
	r, err := ReadRollup(os.Getpid())
	if err != nil {
		t.Skipf("no smaps_rollup here: %v", err)
	}
	if r.PSS == 0 || r.RSS < r.PSS {
		t.Fatalf("implausible rollup %+v", r)
	}
}

func TestParseRollupRejectsGarbage(t *testing.T) {
	if _, err := parseRollup([]byte("hello\n"), "x"); err == nil {
		t.Fatal("garbage accepted")
	}
	r, err := parseRollup([]byte("Rss: 8 kB\nPss: 4 kB\nPss_Anon: 1 kB\n"), "x")
	if err != nil || r.PSS != 4096 || r.PSSAnon != 1024 {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestStatCPUWithParenthesesInName(t *testing.T) {
	line := "12 (a) b) S 1 1 1 0 -1 0 0 0 0 0 250 50 0 0 20 0 1 0 1 1 1"
	s, err := parseStatCPU([]byte(line), "x")
	if err != nil || s != 3 {
		t.Fatalf("%v %v", s, err)
	}
}

func TestMemAvailableReads(t *testing.T) {
	if v, err := MemAvailable(); err != nil || v == 0 {
		t.Fatalf("%v %v", v, err)
	}
}

func FuzzParseRollup(f *testing.F) {
	f.Add([]byte("Rss: 8 kB\nPss: 4 kB\n"))
	f.Fuzz(func(t *testing.T, data []byte) { parseRollup(data, "fuzz") })
}

func TestSharedMappingRSSReadsOwnProcess(t *testing.T) {
	if _, err := SharedMappingRSS(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

// The bench charges ksmd's CPU and shootdowns to ksmd's pid: where the
// kernel has KSM, ksmd must be found, never guessed as pid 0 (the idle task).
func TestKsmdIsFoundWhereTheKernelHasKSM(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/ksm/run"); err != nil {
		t.Skip("this kernel has no KSM")
	}
	pid, err := FindTask("ksmd")
	if err != nil || pid <= 0 {
		t.Fatalf("ksmd: pid %d, %v", pid, err)
	}
	if _, err := CPUTime(pid); err != nil {
		t.Fatal(err)
	}
	if pid, err := FindTask("no-such-task-here"); err == nil || pid != 0 {
		t.Fatalf("a missing task found as %d", pid)
	}
}

func TestPageTablesOfThisProcess(t *testing.T) {
	pt, err := PageTables(os.Getpid())
	if err != nil || pt == 0 {
		t.Fatalf("VmPTE %d, %v", pt, err)
	}
	if _, err := parseStatusField([]byte("VmPTE: x kB\n"), "VmPTE:", "x"); err == nil {
		t.Fatal("bad VmPTE accepted")
	}
}

func TestProcessKernelCountsThePGDBesideVmPTEAndAStackPerThread(t *testing.T) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	pte, err := parseStatusField(data, "VmPTE:", "status")
	if err != nil {
		t.Fatal(err)
	}
	pt, stacks, err := ProcessKernel(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The Go runtime may map a little between the two reads.
	if pt < pte+PGDSize() || pt > pte+PGDSize()+64<<10 {
		t.Errorf("page tables %d, VmPTE %d + PGD %d", pt, pte, PGDSize())
	}
	if stacks == 0 || stacks%ThreadStackSize != 0 {
		t.Errorf("stacks %d: not a whole number of %d-byte stacks", stacks, ThreadStackSize)
	}
	if _, err := parseStatusCount([]byte("Name:\tx\nThreads:\tmany\n"), "Threads:", "status"); err == nil {
		t.Errorf("a non-numeric Threads line was taken")
	}
}
