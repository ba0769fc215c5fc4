package microvm

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/testcli"
)

// guestTimeout stops a test's guest that runs on: none of them computes
// for more than a moment, even in the emulated KVM host.
const guestTimeout = 60 * time.Second

// inTime runs call and fails t, naming what, if it has not returned within
// testcli.Limit: a hung KVM call fails its test instead of the suite's
// deadline.
func inTime(t *testing.T, what string, call func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); call() }()
	select {
	case <-done:
	case <-time.After(testcli.Limit):
		t.Fatalf("%s: no result within %v (hung)", what, testcli.Limit)
	}
}

// names lists the unikernels of a call, for messages.
func names(uks []monitor.Unikernel, opt monitor.Options) string {
	var ns []string
	for _, u := range uks {
		ns = append(ns, u.Name)
	}
	return fmt.Sprintf("kvm monitor, load %q, -n %d: %s", opt.Load, opt.N, strings.Join(ns, " "))
}

func runVMs(t *testing.T, uks []monitor.Unikernel, opt monitor.Options) []monitor.Result {
	t.Helper()
	if opt.Timeout == 0 {
		opt.Timeout = guestTimeout
	}
	var res []monitor.Result
	var err error
	inTime(t, names(uks, opt), func() { res, err = Monitor{}.Run(context.Background(), uks, opt) })
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(uks)*max(opt.N, 1) {
		t.Fatalf("%d results, want %d", len(res), len(uks)*max(opt.N, 1))
	}
	return res
}

func TestLongModeGuestPrintsAndExitsWithItsCode(t *testing.T) {
	needKVM(t)
	for _, load := range []string{monitor.LoadShared, monitor.LoadNaive} {
		res := runVMs(t, []monitor.Unikernel{pooled(t, t.TempDir(), "hello")}, monitor.Options{N: 1, Load: load})
		r := res[0]
		if r.Error != "" || r.ExitCode != 7 || r.Output != "hello from kvm\n" {
			t.Errorf("%s: exit %d, output %q, error %q; want exit 7, %q", load, r.ExitCode, r.Output, r.Error, "hello from kvm\n")
		}
	}
}

// Free-page reporting (abi.PortDiscard): the whole heap pages of the range
// come back zero, a partial page keeps its bytes, the boot info is left
// alone (the guest exits 0 only then).
func TestFreePageReportGivesBackOnlyWholeHeapPages(t *testing.T) {
	needKVM(t)
	r := runVMs(t, []monitor.Unikernel{pooled(t, t.TempDir(), "discard")}, monitor.Options{N: 1})[0]
	if r.Error != "" || r.ExitCode != 0 {
		t.Fatalf("exit %d, error %q; want 0 (91..95: the check that failed)", r.ExitCode, r.Error)
	}
}

func TestWriteToSharedLibraryStopsOnlyThatVM(t *testing.T) {
	needKVM(t)
	dir := t.TempDir()
	res := runVMs(t, []monitor.Unikernel{pooled(t, dir, "writer"), pooled(t, dir, "hello")}, monitor.Options{N: 3})
	for _, r := range res {
		switch r.Unikernel {
		case "writer":
			if r.ExitCode != -1 || !strings.Contains(r.Error, "write to read-only library ukwriter at GVA 0x40000") || r.Output != "w" {
				t.Errorf("writer %d: exit %d, error %q, output %q", r.Instance, r.ExitCode, r.Error, r.Output)
			}
		case "hello":
			if r.ExitCode != 7 || r.Error != "" {
				t.Errorf("hello %d next to the writers: exit %d, error %q", r.Instance, r.ExitCode, r.Error)
			}
		}
	}
}

func TestWriteToNaiveCopyOfLibraryFaultsWithItsAddress(t *testing.T) {
	needKVM(t)
	res := runVMs(t, []monitor.Unikernel{pooled(t, t.TempDir(), "writer")}, monitor.Options{N: 1, Load: monitor.LoadNaive})
	if want := "page fault: write to read-only address 0x4000"; !strings.Contains(res[0].Error, want) ||
		!strings.Contains(res[0].Error, "library ukwriter, shared part") {
		t.Errorf("error %q, want it to contain %q and the library", res[0].Error, want)
	}
}

func TestGuestFaultsAreReportedWithVectorAndAddress(t *testing.T) {
	needKVM(t)
	dir := t.TempDir()
	res := runVMs(t, []monitor.Unikernel{pooled(t, dir, "ud2"), pooled(t, dir, "null"), pooled(t, dir, "halt")}, monitor.Options{N: 1})
	want := map[string]string{
		"ud2":  "guest fault: invalid opcode (#UD) at rip 0x40000000 (library ukud2, shared part)",
		"null": "page fault: read of unmapped address 0x8 (unmapped memory)",
		"halt": "guest halted",
	}
	for _, r := range res {
		if !strings.Contains(r.Error, want[r.Unikernel]) || r.ExitCode != -1 {
			t.Errorf("%s: exit %d, error %q, want %q", r.Unikernel, r.ExitCode, r.Error, want[r.Unikernel])
		}
	}
}

func TestTimeoutStopsRunawayVMAndNotItsNeighbours(t *testing.T) {
	needKVM(t)
	dir := t.TempDir()
	uks := []monitor.Unikernel{pooled(t, dir, "spin"), pooled(t, dir, "hello")}
	t0 := time.Now()
	res := runVMs(t, uks, monitor.Options{N: 2, Timeout: 300 * time.Millisecond})
	// Generous: under the emulated KVM host creating the VMs alone takes
	// seconds; the claim is that the spinning VM does not run on.
	if d := time.Since(t0); d > 60*time.Second {
		t.Errorf("run took %v with a 300ms timeout", d)
	}
	for _, r := range res {
		switch r.Unikernel {
		case "spin":
			if !strings.HasPrefix(r.Error, "timeout") {
				t.Errorf("spin %d: error %q, want a timeout", r.Instance, r.Error)
			}
		case "hello":
			if r.ExitCode != 7 || r.Error != "" {
				t.Errorf("hello %d: exit %d, error %q", r.Instance, r.ExitCode, r.Error)
			}
		}
	}
}

// blobMappings counts this process's mappings of path.
func blobMappings(t *testing.T, path string) int {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(maps), path)
}

func TestFiftyVMsShareOneMappingOfTheirBlob(t *testing.T) {
	needKVM(t)
	uk := pooled(t, t.TempDir(), "hello")
	path := uk.BlobPath("")
	for _, c := range []struct {
		load string
		want int
	}{{monitor.LoadShared, 1}, {monitor.LoadNaive, 0}} {
		mappings := -1
		res := runVMs(t, []monitor.Unikernel{uk}, monitor.Options{N: 50, Load: c.load, Hold: time.Minute,
			Resident: func(pids []int) {
				if len(pids) != 1 || pids[0] != os.Getpid() {
					t.Errorf("resident pids %v, want this process %d", pids, os.Getpid())
				}
				mappings = blobMappings(t, path)
			}})
		if mappings != c.want {
			t.Errorf("%s: 50 resident VMs map the blob %d times, want %d", c.load, mappings, c.want)
		}
		for _, r := range res {
			if r.ExitCode != 7 || r.Output != "hello from kvm\n" {
				t.Fatalf("%s: instance %d: exit %d, output %q, error %q", c.load, r.Instance, r.ExitCode, r.Output, r.Error)
			}
		}
	}
	if n := blobMappings(t, path); n != 0 {
		t.Errorf("blob still mapped %d times after the call", n)
	}
}

func TestMissingBlobStopsTheCallBeforeAnyVMStarts(t *testing.T) {
	needKVM(t)
	dir := t.TempDir()
	good := pooled(t, dir, "hello")
	bad := pooled(t, dir, "spin")
	bad.BlobPath = func(string) string { return dir + "/missing" }
	var res []monitor.Result
	var err error
	opt := monitor.Options{N: 1, Timeout: guestTimeout}
	inTime(t, names([]monitor.Unikernel{good, bad}, opt), func() {
		res, err = Monitor{}.Run(context.Background(), []monitor.Unikernel{good, bad}, opt)
	})
	if err == nil || !strings.Contains(err.Error(), dir+"/missing") {
		t.Fatalf("err %v, want one naming the missing blob", err)
	}
	if res != nil {
		t.Errorf("results %v from a call that should not have started", res)
	}
}

func TestEveryVMOfAUnikernelSharesOneSlotHoldingExactlyItsBlobs(t *testing.T) {
	needKVM(t)
	dir := t.TempDir()
	uks := []monitor.Unikernel{pooled(t, dir, "hello"), pooled(t, dir, "ud2")}
	checked := false
	var err error
	opt := monitor.Options{N: 3, Timeout: guestTimeout}
	inTime(t, names(uks, opt), func() { _, err = run(context.Background(), uks, opt, held(t, uks, &checked)) })
	if err != nil || !checked {
		t.Fatalf("run: %v (held callback called: %v)", err, checked)
	}
}

// held checks, while the VMs are held, that every VM of a unikernel shares
// one slot holding exactly its blobs.
func held(t *testing.T, uks []monitor.Unikernel, checked *bool) func([]*instance) {
	return func(insts []*instance) {
		*checked = true
		sets := map[string]*blobSet{}
		for _, in := range insts {
			uk := uks[in.uk]
			want := uk.Config.Libraries[0].Shared.Digest
			set := in.m.set
			if set == nil || len(set.parts) != 1 || set.parts[0].id != want {
				t.Errorf("%s/%d: slot holds %+v, want only blob %s", uk.Name, in.result.Instance, set, want)
				continue
			}
			if prev, ok := sets[uk.Name]; ok && prev != set {
				t.Errorf("%s/%d: a second host mapping of the same blobs", uk.Name, in.result.Instance)
			}
			sets[uk.Name] = set
		}
		if sets["hello"] == sets["ud2"] {
			t.Error("two unikernels with different blobs share one slot")
		}
	}
}

func TestMeasureSplitsGuestPagesSharedBlobsAndPageTables(t *testing.T) {
	needKVM(t)
	uk := pooled(t, t.TempDir(), "hello")
	var rep *Report
	var err error
	opt := monitor.Options{N: 4, Timeout: guestTimeout}
	inTime(t, names([]monitor.Unikernel{uk}, opt)+" (measured shared and naive)", func() {
		rep, err = Monitor{}.Measure(context.Background(), []monitor.Unikernel{uk}, opt, []string{monitor.LoadShared, monitor.LoadNaive})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Modes) != 2 {
		t.Fatalf("%d modes, want 2", len(rep.Modes))
	}
	shared, naive := rep.Modes[0], rep.Modes[1]
	for _, m := range rep.Modes {
		if m.VMs != 4 || m.Failed != 0 || m.GuestPrivate == 0 || m.PageTables < 4*2*pageSize || m.LoaderPSS == 0 {
			t.Errorf("%s: %+v", m.Load, m)
		}
	}
	// The hello guest runs its one code page: shared, it is one page of
	// the blob; naive, a private copy per VM.
	if shared.Shared != pageSize || naive.Shared != 0 {
		t.Errorf("resident blob bytes: shared %d, naive %d; want %d and 0", shared.Shared, naive.Shared, pageSize)
	}
	if naive.GuestPrivate-shared.GuestPrivate != 4*pageSize {
		t.Errorf("guest private: naive %d, shared %d; want naive to hold one more page per VM", naive.GuestPrivate, shared.GuestPrivate)
	}
	for _, m := range rep.Modes {
		h, c := m.Host, m.Census
		if h.Instances != m.GuestPrivate+m.Shared || h.Total != h.Instances+h.Monitor+h.Kernel.Total {
			t.Errorf("%s: host %+v: want the guests' memory as the instances' part, parts adding up", m.Load, h)
		}
		// Four VMs of one image: the hello code page is one as-loaded
		// content however many VMs hold it; the guest writes no image page.
		if c == nil || c.ImageWritten != 0 || c.LoadedDistinct == 0 || c.Runtime < 4 {
			t.Errorf("%s: census %+v", m.Load, c)
		}
	}
	if rep.Ideal != shared.Ideals.Ideal || rep.IdealLoadTime != shared.Ideals.LoadTime {
		t.Errorf("report ideals %d/%d, want the shared census's %+v", rep.Ideal, rep.IdealLoadTime, shared.Ideals)
	}
}

func TestInitDataStaysOneSharedPageUntilAVMWritesIt(t *testing.T) {
	needKVM(t)
	dir := t.TempDir()
	word := []byte{0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11}
	uks := []monitor.Unikernel{
		withInit(t, dir, pooled(t, dir, "initread"), word),
		withInit(t, dir, pooled(t, dir, "initwrite"), word),
	}
	var rep *Report
	var err error
	opt := monitor.Options{N: 3, Timeout: guestTimeout}
	inTime(t, names(uks, opt)+" (measured)", func() {
		rep, err = Monitor{}.Measure(context.Background(), uks, opt, []string{monitor.LoadShared})
	})
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Modes[0]
	if m.Failed != 0 {
		t.Fatalf("%d VMs failed", m.Failed)
	}
	// Shared: two code pages and the init page the readers share (the
	// writers copied theirs). Compare with the readers alone.
	if m.Shared != 3*pageSize {
		t.Errorf("shared resident %d bytes, want 3 pages (2 code, 1 init page for 3 readers)", m.Shared)
	}
	res := runVMs(t, uks, monitor.Options{N: 2})
	for _, r := range res {
		if r.ExitCode != 0 || r.Error != "" {
			t.Errorf("%s/%d: exit %d, error %q: init data not as the blob has it", r.Unikernel, r.Instance, r.ExitCode, r.Error)
		}
	}
}
