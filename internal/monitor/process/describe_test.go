package process

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/monitor"
)

// heavyCopy returns a fresh copy of cfg that carries a snapshot table of
// pages entries (~100 bytes each, unused by a cold start): a description
// as big as a parsed one of a real snapshot fleet, made anew at each call
// as a parse would make it.
func heavyCopy(cfg *desc.Config, pages int) *desc.Config {
	c := *cfg
	s := &desc.Snapshot{Monitor: Name, MemSize: 2 << 20, BootArea: 64 << 10, Pages: make([]desc.Page, pages)}
	for i := range s.Pages {
		s.Pages[i] = desc.Page{Addr: uint64(i+1) << 12, Digest: fmt.Sprintf("sha256:%064x", i)}
	}
	c.Snapshot = s
	return &c
}

// describedLater is uks's unikernels as launch.ResolveLater hands them to
// the monitor: no description, a Describe that reads (here: makes) one.
func describedLater(uks []monitor.Unikernel, pages int, calls *atomic.Int32) []monitor.Unikernel {
	var out []monitor.Unikernel
	for _, u := range uks {
		cfg := u.Config
		u.Config = nil
		u.Describe = func() (*desc.Config, error) {
			calls.Add(1)
			return heavyCopy(cfg, pages), nil
		}
		out = append(out, u)
	}
	return out
}

// A unikernel whose description the monitor reads itself (Describe) has
// it read to be checked before any instance starts, then again when its
// first instance is planned, and dropped with its last: a fleet's
// descriptions are never all in the monitor's heap at once, and a held
// fleet keeps none. Resolved and parsed up front, the 1000 descriptions
// of a snapshot fleet were ~25 MB of live heap while it started, a peak
// whose spans and GC metadata the pool monitor kept for its whole run
// (1.5-1.8 MiB more than the plain-image monitor's).
func TestAFleetsDescriptionsAreNotAllInTheMonitorAtOnce(t *testing.T) {
	const kernels, pages = 6, 30000
	dir := t.TempDir()
	base := pooled(t, dir, "app", callLibc+exitSeven)
	plain := namedCopies(base, kernels)
	// How big one description is in the heap.
	before := heapInUse()
	one := heavyCopy(base.Config, pages)
	size := int64(heapInUse()) - int64(before)
	runtime.KeepAlive(one)
	if size < 2<<20 {
		t.Fatalf("a heavy description is %d KiB in the heap, want >= 2 MiB", size>>10)
	}

	var calls atomic.Int32
	uks := describedLater(plain, pages, &calls)
	before = heapInUse()
	var first, held uint64
	m := &Monitor{Threads: 1, built: func(in *instance) {
		if first == 0 {
			first = heapInUse()
		}
	}}
	rs, err := m.Run(context.Background(), uks, monitor.Options{N: 2, Timeout: guestTimeout, Hold: time.Minute,
		Resident: func([]int) { held = heapInUse() }})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Error != "" || r.ExitCode != 7 {
			t.Fatalf("%s/%d: exit %d error %q", r.Unikernel, r.Instance, r.ExitCode, r.Error)
		}
	}
	// Each read twice: checked, then planned (its two instances from one).
	if n := calls.Load(); n != 2*kernels {
		t.Errorf("%d unikernels' descriptions were read %d times, want %d (once to check, once to plan)", kernels, n, 2*kernels)
	}
	// As the first instance is built: the first unikernel's description
	// (its second instance is still to be planned), not the others.
	if grew := int64(first) - int64(before); grew > size*3/2 {
		t.Errorf("as the first of %d instances of %d unikernels was built, the monitor's heap had grown by %d KiB (one description: %d KiB, all: %d KiB)",
			2*kernels, kernels, grew>>10, size>>10, kernels*size>>10)
	}
	if grew := int64(held) - int64(before); grew > size/2 {
		t.Errorf("with the fleet held, the monitor's heap had grown by %d KiB (one description: %d KiB)", grew>>10, size>>10)
	}
}

// A unikernel whose description fails the monitor's checks is refused
// before any instance of any unikernel starts, naming it; one whose
// description cannot be read again when its instance is planned fails
// that instance alone, saying why, and the others run.
func TestADescriptionReadLaterIsStillCheckedBeforeAnyInstanceStarts(t *testing.T) {
	dir := t.TempDir()
	good := pooled(t, dir, "good", callLibc+exitSeven)
	bad := pooled(t, dir, "bad", callLibc+exitSeven)
	bad.BlobPath = func(string) string { return dir + "/missing-blob" }
	var calls atomic.Int32
	uks := describedLater([]monitor.Unikernel{good, bad}, 1, &calls)
	started := 0
	_, err := (&Monitor{}).Run(context.Background(), uks, monitor.Options{Timeout: guestTimeout,
		Started: func(int, int, func()) { started++ }})
	if err == nil || !strings.Contains(err.Error(), `"bad"`) || !strings.Contains(err.Error(), "missing-blob") {
		t.Errorf("a unikernel whose blob is missing: error %v, want one naming it and the file", err)
	}
	if started != 0 {
		t.Errorf("%d instances started before the bad unikernel was refused", started)
	}

	// Read fine to be checked, not when planned.
	read := 0
	flaky := good
	flaky.Name = "flaky"
	flaky.Config = nil
	flaky.Describe = func() (*desc.Config, error) {
		if read++; read > 1 {
			return nil, errors.New("manifest sha256:0123: content does not match its digest")
		}
		return good.Config, nil
	}
	rs, err := (&Monitor{}).Run(context.Background(), []monitor.Unikernel{good, flaky}, monitor.Options{Timeout: guestTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Error != "" || rs[0].ExitCode != 7 {
		t.Fatalf("results %+v: want good's instance to run", rs)
	}
	if !strings.Contains(rs[1].Error, `"flaky"`) || !strings.Contains(rs[1].Error, "does not match its digest") {
		t.Errorf("flaky's instance: error %q, want the unikernel and why its description could not be read", rs[1].Error)
	}
}

// allocated is what the process has allocated in all (TotalAlloc).
func allocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// A unikernel checked when it was resolved (launch.ResolveLater:
// monitor.Unikernel.Checked) has its description read once, when its
// first instance is planned, not once more before the run to be checked:
// what the monitor allocates to start such a fleet is about one
// description per unikernel. Read to be checked too, each of a 1000
// descriptions of a snapshot fleet was parsed three times (resolved,
// checked, planned), ~160 KB of garbage and ~1 ms of CPU per parse.
// Its blobs are taken for the run when it is read: one that cannot be
// opened then fails that unikernel's instances alone, naming it.
func TestACheckedDescriptionIsReadOnceToPlanNotAgainToCheck(t *testing.T) {
	const kernels, pages = 4, 30000
	dir := t.TempDir()
	base := pooled(t, dir, "app", callLibc+exitSeven)
	plain := namedCopies(base, kernels)
	before := allocated()
	one := heavyCopy(base.Config, pages)
	size := allocated() - before
	runtime.KeepAlive(one)
	if size < 2<<20 {
		t.Fatalf("a heavy description is %d KiB allocated, want >= 2 MiB", size>>10)
	}

	var calls atomic.Int32
	uks := describedLater(plain, pages, &calls)
	for i := range uks {
		uks[i].Checked = true
	}
	before = allocated()
	rs, err := (&Monitor{Threads: 1}).Run(context.Background(), uks, monitor.Options{N: 2, Timeout: guestTimeout})
	grew := allocated() - before
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Error != "" || r.ExitCode != 7 {
			t.Fatalf("%s/%d: exit %d error %q", r.Unikernel, r.Instance, r.ExitCode, r.Error)
		}
	}
	if n := calls.Load(); n != kernels {
		t.Errorf("%d checked unikernels' descriptions were read %d times, want %d (once to plan)", kernels, n, kernels)
	}
	if grew > kernels*size*3/2 {
		t.Errorf("starting %d instances of %d checked unikernels allocated %d KiB, want < %d (one description: %d KiB)",
			2*kernels, kernels, grew>>10, kernels*size*3/2>>10, size>>10)
	}

	// A blob that cannot be opened when the description is read.
	bad := base
	bad.Name = "bad"
	bad.BlobPath = func(string) string { return dir + "/missing-blob" }
	uks = describedLater([]monitor.Unikernel{base, bad}, 1, &calls)
	for i := range uks {
		uks[i].Checked = true
	}
	rs, err = (&Monitor{}).Run(context.Background(), uks, monitor.Options{Timeout: guestTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Error != "" || rs[0].ExitCode != 7 {
		t.Fatalf("results %+v: want the good unikernel's instance to run", rs)
	}
	if !strings.Contains(rs[1].Error, `"bad"`) || !strings.Contains(rs[1].Error, "missing-blob") {
		t.Errorf("the bad unikernel's instance: error %q, want one naming it and the file", rs[1].Error)
	}
}

// namedCopies is n copies of u named app0, app1, ...
func namedCopies(u monitor.Unikernel, n int) []monitor.Unikernel {
	out := make([]monitor.Unikernel, n)
	for i := range out {
		out[i] = u
		out[i].Name = fmt.Sprint("app", i)
	}
	return out
}
