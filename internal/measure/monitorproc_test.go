package measure

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMain lets the test binary play a monitor process: with
// MEASURE_TEST_ROLE=monitor it reads "touch N" lines and writes N MiB of
// fresh anonymous memory (small pages, each written), answering "ok".
func TestMain(m *testing.M) {
	switch os.Getenv("MEASURE_TEST_ROLE") {
	case "monitor":
		syntheticMonitor(os.Stdin, os.Stdout)
		os.Exit(0)
	case "guests":
		syntheticGuestMonitor(os.Stdin, os.Stdout, os.Getenv("MEASURE_TEST_FILE"))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func syntheticMonitor(in io.Reader, out io.Writer) {
	var keep [][]byte
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "touch" {
			n, _ := strconv.Atoi(f[1])
			if n > 0 {
				b, err := unix.Mmap(-1, 0, n<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
				if err != nil {
					fmt.Fprintln(out, "error", err)
					continue
				}
				unix.Madvise(b, unix.MADV_NOHUGEPAGE) // 4 KiB pages: one PTE page per 2 MiB
				for i := 0; i < len(b); i += 4096 {
					b[i] = byte(i>>12) | 1
				}
				keep = append(keep, b)
			}
			fmt.Fprintln(out, "ok")
		}
	}
	runtime.KeepAlive(keep)
}

// TestAMonitorProcessIsMeasuredWholeAndTheMeasurersOwnHeapIsInNoColumn:
// a synthetic monitor process whose answer is known (it writes exactly
// 32 MiB of anonymous memory in 4 KiB pages between two readings), started
// in a fleet group it alone is in, while the measuring process allocates
// 64 MiB of its own heap: the monitor column rises by 32 MiB, its page
// tables by the 16 PTE pages 32 MiB needs, the group's anonymous charge by
// 32 MiB; the measurer's 64 MiB are in none of them (counting the
// measurer's own growth, as bench memory did, would have put them in).
func TestAMonitorProcessIsMeasuredWholeAndTheMeasurersOwnHeapIsInNoColumn(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "MEASURE_TEST_ROLE=monitor")
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	out := bufio.NewReader(outPipe)
	var g *FleetGroup
	if os.Geteuid() == 0 {
		if g, err = NewFleetGroup("synthetic"); err != nil && !GroupsUnavailable(err) {
			t.Fatal(err)
		}
	}
	if g != nil {
		defer g.Close()
		err = g.Start(cmd)
	} else {
		t.Log("no fleet group here (not root, or no memory cgroup): the per-process part only")
		err = cmd.Start()
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); cmd.Process.Kill(); cmd.Wait() }()
	touch := func(mib int) {
		t.Helper()
		fmt.Fprintf(in, "touch %d\n", mib)
		if line, err := out.ReadString('\n'); err != nil || line != "ok\n" {
			t.Fatalf("the synthetic monitor: %q %v", line, err)
		}
	}
	touch(0) // it is up
	pid := cmd.Process.Pid
	if g != nil {
		if inGroup(t, 0, g.Dir()) {
			t.Fatalf("the measuring process moved into %s", g.Dir())
		}
		if !inGroup(t, pid, g.Dir()) {
			t.Fatalf("the monitor process %d is not in %s", pid, g.Dir())
		}
	}
	self := os.Getpid()
	base, err := TakeBaseline([]int{self})
	if err != nil {
		t.Fatal(err)
	}
	fl := Fleet{Monitors: []int{pid}, Group: g}
	h0, missing, err := TakeHost(fl, base)
	if err != nil || missing > 0 {
		t.Fatal(err, missing)
	}

	ballast := make([]byte, 64<<20) // the measurer's own heap: census, samples, bookkeeping
	for i := range ballast {
		ballast[i] = byte(i) | 1
	}
	touch(32)
	h1, _, err := TakeHost(fl, base)
	if err != nil {
		t.Fatal(err)
	}
	old, _, err := TakeHost(Fleet{Monitors: []int{self}, MonitorGrowth: true}, base)
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(ballast)

	const want = 32 << 20
	within := func(what string, got, lo, hi uint64) {
		t.Helper()
		if got < lo || got > hi {
			t.Errorf("%s rose by %d KiB, want %d..%d KiB", what, got>>10, lo>>10, hi>>10)
		}
	}
	t.Logf("monitor %d -> %d KiB (anon %d -> %d, file %d -> %d), page tables %d -> %d KiB; the measurer's own growth %d KiB",
		h0.Monitor>>10, h1.Monitor>>10, h0.MonitorAnon>>10, h1.MonitorAnon>>10, h0.MonitorFile>>10, h1.MonitorFile>>10,
		h0.Kernel.PageTables>>10, h1.Kernel.PageTables>>10, old.Monitor>>10)
	if h1.MonitorProcesses != "own" {
		t.Errorf("monitor counted as %q", h1.MonitorProcesses)
	}
	within("the monitor column", h1.Monitor-h0.Monitor, want, want+512<<10)
	within("the monitor's anonymous PSS", h1.MonitorAnon-h0.MonitorAnon, want, want+512<<10)
	// 32 MiB of 4 KiB pages: 16 PTE pages (one more if the range
	// straddles a PMD page's 1 GiB).
	within("the monitor's page tables", h1.Kernel.PageTables-h0.Kernel.PageTables, 16<<12, 18<<12)
	if old.Monitor < 56<<20 { // the 64 MiB, less what the GC took back of earlier tests' heap
		t.Errorf("the measurer's own growth is %d KiB: the ballast did not land in this process", old.Monitor>>10)
	}
	if g != nil {
		within("the group's anonymous charge", h1.Cgroup.Anon-h0.Cgroup.Anon, want, want+512<<10)
		// The group is charged the page tables too, but kernel charges
		// go through per-CPU batches of 64 pages (package comment): the
		// reading is that close only.
		batch := int64(runtime.NumCPU()) * 256 << 10
		if d := int64(h1.Cgroup.Kernel) - int64(h0.Cgroup.Kernel); d < 16<<12-batch || d > 16<<12+batch {
			t.Errorf("the group's kernel charge rose by %d KiB, want 64 KiB ± %d KiB", d>>10, batch>>10)
		}
	}
}

// TestAMeasurersOwnGrowthIsReadBeforeTheGarbageOfReadingTheInstances: where
// the monitor is the measuring process itself (its growth counted), its
// PSS is read before the instances' files, whose reading allocates
// megabytes: with the GC off (the worst case of GC timing), the growth of
// a process that allocated nothing since its baseline stays within a few MiB
// while reading 3000 instances. Read after them, it held their garbage
// (tens of MiB here; with the GC on, anything up to the live heap,
// depending on when the GC ran: bench memory's monitor column moved by
// more than 10 MiB between runs).
func TestAMeasurersOwnGrowthIsReadBeforeTheGarbageOfReadingTheInstances(t *testing.T) {
	self := os.Getpid()
	pids := make([]int, 3000)
	for i := range pids {
		pids[i] = self
	}
	base, err := TakeBaseline([]int{self})
	if err != nil {
		t.Fatal(err)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	Settle()
	h, _, err := TakeHost(Fleet{Instances: pids, Monitors: []int{self}, MonitorGrowth: true}, base)
	if err != nil {
		t.Fatal(err)
	}
	after, _, _ := TakeHost(Fleet{Monitors: []int{self}, MonitorGrowth: true}, base)
	t.Logf("growth read first: %d KiB (anon %d, file %d); read again after the 3000 readings: %d KiB", h.Monitor>>10, h.MonitorAnon>>10, h.MonitorFile>>10, after.Monitor>>10)
	// A fault of a scavenged heap chunk can add 2 MiB of anonymous memory
	// to any reading (a transparent huge page: seen in about 1 run of 3
	// alone, and twice in one reading, 4,112 KiB, after the package's
	// other tests on a fresh clone); the garbage is ~72 MiB. The bound
	// allows a few such faults and stays far below the garbage.
	if h.Monitor > 16<<20 {
		t.Errorf("the measurer's growth read as %d KiB: the garbage of reading the instances is in it", h.Monitor>>10)
	}
	if after.Monitor < h.Monitor+32<<20 {
		t.Errorf("read after the 3000 readings the growth is %d KiB, not tens of MiB above %d KiB: the test shows nothing", after.Monitor>>10, h.Monitor>>10)
	}
}
