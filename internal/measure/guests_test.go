package measure

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// syntheticGuestMonitor plays a monitor that holds its guests in its own
// memory (as the kvm monitor does), with a known answer. On "guests" it
// makes one guest's private memory (3 MiB: 2 MiB written, each page its
// own content; 1 MiB only read: the kernel's zero page) and maps file
// (2 MiB, each page its own content) twice, shared, read in full: one
// mapping is two guests' blob set, the other a third guest's. It
// answers with the ranges (GuestRanges, one JSON line) and keeps them
// until its input ends.
func syntheticGuestMonitor(in io.Reader, out io.Writer, file string) {
	var keep [][]byte
	mmap := func(fd, size, flags int) []byte {
		b, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, flags)
		if err != nil {
			fmt.Fprintln(out, "error", err)
			os.Exit(1)
		}
		unix.Madvise(b, unix.MADV_NOHUGEPAGE)
		keep = append(keep, b)
		return b
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch sc.Text() {
		case "up":
			fmt.Fprintln(out, "ok")
		case "guests":
			priv := mmap(-1, 3<<20, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			for i := 0; i < 2<<20; i += PageSize {
				copy(priv[i:], fmt.Sprintf("guest page %d", i/PageSize))
			}
			var sum byte
			for i := 2 << 20; i < 3<<20; i += PageSize {
				sum += priv[i]
			}
			f, err := os.OpenFile(file, os.O_RDWR, 0)
			if err != nil {
				fmt.Fprintln(out, "error", err)
				os.Exit(1)
			}
			a := mmap(int(f.Fd()), 2<<20, unix.MAP_SHARED)
			b := mmap(int(f.Fd()), 2<<20, unix.MAP_SHARED)
			f.Close()
			for i := 0; i < 2<<20; i += PageSize {
				sum += a[i] + b[i]
			}
			g := fakeGuests{{priv, true}, {a, false}, {a, false}, {b, false}}
			json.NewEncoder(out).Encode(GuestRanges(g))
			runtime.KeepAlive(sum)
		}
	}
	runtime.KeepAlive(keep)
}

// readAllocates says whether reading fresh anonymous memory gives it a
// page of its own (exclusive in pagemap) rather than the zero page.
func readAllocates(t *testing.T) bool {
	b, err := unix.Mmap(-1, 0, 2*PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	sink := b[0] + b[PageSize]
	runtime.KeepAlive(sink)
	e := SelfPagemap(b)
	return len(e) == 2 && e[0]&PagemapExclusive != 0
}

// fakeGuests is a monitor.HeldGuests over ranges of this process.
type fakeGuests []struct {
	b       []byte
	runtime bool
}

func (g fakeGuests) GuestBytes() uint64 { return 0 }
func (g fakeGuests) Ranges(f func(b []byte, runtime bool)) {
	for _, r := range g {
		f(r.b, r.runtime)
	}
}

// TestGuestsInAMonitorProcessAreReadFromOutsideAndLeaveItsPSSForTheInstances:
// a synthetic monitor process whose guests are known (2 MiB of its own
// written pages, 1 MiB of only read ones, a 2 MiB file mapped twice and
// read: three guests map it) names their ranges; measured from this
// process, which allocates 64 MiB meanwhile, the instances column is
// exactly 4 MiB (the written pages and the file's once; 5 where
// a read fault allocates a page), the monitor
// column is the process's PSS without them (it does not rise by the
// guests' 4 MiB, nor by the measurer's 64), and the census counts every
// present page of every guest: the zero pages, the run-time pages, the
// file's pages three times, distinct once.
func TestGuestsInAMonitorProcessAreReadFromOutsideAndLeaveItsPSSForTheInstances(t *testing.T) {
	if os.Geteuid() != 0 {
		// Another process's pagemap and mem: a child of ours is readable
		// without root where ptrace_scope allows it; try.
		t.Log("not root: reading the child's pagemap and memory may be refused")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "blob")
	content := make([]byte, 2<<20)
	for i := 0; i < len(content); i += PageSize {
		copy(content[i:], fmt.Sprintf("blob page %d", i/PageSize))
	}
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	// GOMAXPROCS=1: the synthetic monitor's own growth while it answers
	// (the Go runtime's threads and their stacks) stays small and the same
	// on a loaded machine.
	cmd.Env = append(os.Environ(), "MEASURE_TEST_ROLE=guests", "MEASURE_TEST_FILE="+file, "GOMAXPROCS=1")
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	out := bufio.NewReader(outPipe)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); cmd.Process.Kill(); cmd.Wait() }()
	say := func(line string) string {
		t.Helper()
		fmt.Fprintln(in, line)
		got, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("the synthetic monitor: %q %v", got, err)
		}
		return got
	}
	say("up")
	pid := cmd.Process.Pid
	base, err := TakeBaseline(nil)
	if err != nil {
		t.Fatal(err)
	}
	h0, missing, err := TakeHost(Fleet{Monitors: []int{pid}}, base)
	if err != nil || missing > 0 {
		t.Fatal(err, missing)
	}
	ballast := make([]byte, 64<<20) // the measurer's own heap
	for i := range ballast {
		ballast[i] = byte(i) | 1
	}
	var ranges []GuestRange
	if err := json.Unmarshal([]byte(say("guests")), &ranges); err != nil {
		t.Fatal(err)
	}
	if len(ranges) != 3 {
		t.Fatalf("ranges %+v: want 3 (the private memory, the two file mappings)", ranges)
	}
	guests := map[uint64]int{}
	for _, r := range ranges {
		guests[r.Size] += r.Guests
	}
	if guests[3<<20] != 1 || guests[2<<20] != 3 {
		t.Errorf("ranges %+v: want the 3 MiB once and the 2 MiB mappings for 3 guests", ranges)
	}
	set := GuestSet{Pid: pid, Ranges: ranges}
	want := uint64(4 << 20)
	if readAllocates(t) {
		// This kernel gives a read of fresh anonymous memory a page of
		// its own (no shared zero page): the host pays for the 1 MiB read.
		t.Log("a read fault allocates a page here: the 1 MiB only read is the guest's too")
		want += 1 << 20
	}
	if b, err := set.Bytes(); err != nil || b != want {
		t.Fatalf("the guests' bytes read from outside: %d KiB (%v), want %d KiB", b>>10, err, want>>10)
	}
	h1, missing, err := TakeHost(Fleet{Monitors: []int{pid}, Guests: []GuestSet{set}}, base)
	if err != nil || missing > 0 {
		t.Fatal(err, missing)
	}
	raw, err := ReadRollup(pid)
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(ballast)
	t.Logf("monitor %d -> %d KiB, instances %d -> %d KiB; the process's PSS %d KiB", h0.Monitor>>10, h1.Monitor>>10,
		h0.Instances>>10, h1.Instances>>10, raw.PSS>>10)
	if h1.Instances != want {
		t.Errorf("the instances column is %d KiB, want %d", h1.Instances>>10, want>>10)
	}
	if h1.InstancesAnon != want-2<<20 || h1.MonitorAnon+h1.MonitorFile > h1.Monitor+64<<10 {
		t.Errorf("instances anon %d KiB (want %d: the file's 2 MiB are not); monitor anon %d + file %d KiB, monitor %d KiB: the guests' pages are still in its parts",
			h1.InstancesAnon>>10, (want-2<<20)>>10, h1.MonitorAnon>>10, h1.MonitorFile>>10, h1.Monitor>>10)
	}
	// The monitor's own growth while it answered (its JSON, the Go
	// runtime's heap and threads: ~0.5 MiB, more on a loaded machine) is
	// bounded at 1 MiB, far below the guests' 4-5 MiB and the measurer's
	// 64 MiB, either of which counted here would fail the test.
	if h1.Monitor < h0.Monitor || h1.Monitor > h0.Monitor+1<<20 {
		t.Errorf("the monitor column went %d -> %d KiB: want no more than its own growth while answering (≤ 1 MiB), not the guests' %d KiB nor the measurer's 64 MiB",
			h0.Monitor>>10, h1.Monitor>>10, want>>10)
	}
	if raw.PSS < h0.Monitor+want {
		t.Errorf("the process's PSS %d KiB did not rise by the guests' %d KiB over %d: the test shows nothing", raw.PSS>>10, want>>10, h0.Monitor>>10)
	}

	c := NewCensus()
	for i := 0; i < len(content); i += PageSize {
		c.AddLoaded(content[i : i+PageSize])
	}
	if err := c.AddGuests(set); err != nil {
		t.Fatal(err)
	}
	wantCounts := Counts{Pages: 768 + 3*512, ZeroPages: 256, Runtime: 512, ImageLoaded: 3 * 512, Distinct: 1024, LoadedDistinct: 512}
	if c.Counts != wantCounts {
		t.Errorf("census %+v, want %+v", c.Counts, wantCounts)
	}
}
