package process

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/monitor"
)

// Once every instance is built, a run keeps nothing it needed only to
// build them: the caller hears of it (Options.Built) and may close the
// blob files it verified, the monitor has closed its own and dropped
// their tables (the run's files, each tracer's descriptors, the snapshot
// page files), each tracer's layout cache holds no table, and a finished
// instance holds no timer. A held fleet of 1000 unikernels kept ~0.5 MiB
// of such tables and ~6,000 descriptors for its whole hold.
func TestABuiltFleetKeepsNothingItNeededOnlyToBuildIt(t *testing.T) {
	dir := t.TempDir()
	uk := snapshotOf(t, dir, pooled(t, dir, "app", readyGuest))
	// The blob files a caller verified (launch.Resolve), shared by the
	// unikernel's instances.
	uk.Blobs = map[string]*os.File{}
	for _, l := range uk.Config.Libraries {
		f, err := os.Open(uk.BlobPath(l.Shared.Digest))
		if err != nil {
			t.Fatal(err)
		}
		uk.Blobs[l.Shared.Digest] = f
	}
	var mu sync.Mutex
	var insts []*instance
	built, resident := 0, 0
	var builtAt, residentAt time.Time
	var tracers []*tracer
	var files *runFiles
	m := &Monitor{Threads: 2,
		built: func(in *instance) {
			mu.Lock()
			insts = append(insts, in)
			mu.Unlock()
		},
		holding: func(ts []*tracer, f *runFiles) { tracers, files = ts, f },
	}
	rs, err := m.Run(context.Background(), []monitor.Unikernel{uk, uk}, monitor.Options{N: 2, Snapshot: true, Timeout: guestTimeout, Hold: time.Minute,
		Built: func() {
			built++
			builtAt = time.Now()
			for _, f := range uk.Blobs {
				f.Close()
			}
		},
		Resident: func(pids []int) {
			resident = len(pids)
			residentAt = time.Now()
			if files == nil || files.m != nil {
				t.Errorf("while the fleet is held the run keeps its files' table (%v)", files)
			}
			for i, tr := range tracers {
				if tr.files != nil || tr.pages.open != nil {
					t.Errorf("tracer %d keeps the run's blob descriptors (%v) and %d page files in its tables while the fleet is held", i, tr.files != nil, len(tr.pages.open))
				}
				if c := tr.layouts; c.mappings != nil || c.maps != nil || c.floats != nil || c.users != nil || c.shapes != nil || c.traps != nil || c.groups != nil {
					t.Errorf("tracer %d's layout cache keeps its tables while the fleet is held", i)
				}
			}
			for _, in := range insts {
				if in.timer != nil {
					t.Errorf("held instance %d keeps its timeout's timer", in.idx)
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Error != "" || r.ExitCode != r.Instance {
			t.Errorf("%s instance %d: exit %d error %q", r.Unikernel, r.Instance, r.ExitCode, r.Error)
		}
	}
	if built != 1 || resident != 4 || len(insts) != 4 {
		t.Fatalf("Built called %d times, %d instances held, %d built; want 1, 4, 4", built, resident, len(insts))
	}
	if builtAt.After(residentAt) {
		t.Errorf("Built came after the fleet was held")
	}
}
