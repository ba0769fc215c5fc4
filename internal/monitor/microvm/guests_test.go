package microvm

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/measure"
	"github.com/unipool/unipool/internal/monitor"
)

// TestHeldGuestsReadByTheirRangesAreWhatTheMonitorCountsOfThem: two
// shared VMs of a pooled sample unikernel, held; their ranges
// (measure.GuestRanges, what bench's monitor process hands the bench)
// read by pid as another process reads them (/proc/PID/pagemap and maps)
// give exactly the guest memory the monitor counts of its own VMs
// (Measure's count: each VM's private pages, each blob or init-blob page
// once), and the census of the ranges read through /proc/PID/mem is the
// census of the guests' memory read in place, the shared blob set counted
// for both VMs.
func TestHeldGuestsReadByTheirRangesAreWhatTheMonitorCountsOfThem(t *testing.T) {
	dir, unikernels := kvmSample(t)
	u := unikernels[0]
	uks, err := launch.Resolve(filepath.Join(dir, "pool"), []string{u.Name}, "")
	if err != nil {
		t.Fatal(err)
	}
	uks[0].Cmdline = u.Input
	var own, read uint64
	var readErr, censusErr error
	var inPlace, outside measure.Counts
	var ranges []measure.GuestRange
	opt := monitor.Options{N: 2, Load: monitor.LoadShared, Hold: time.Minute, Timeout: time.Minute,
		Guests: func(g monitor.HeldGuests) {
			h := g.(heldVMs)
			files := map[string]bool{}
			sets := map[*blobSet]bool{}
			for _, in := range h {
				p, _ := in.m.residentPrivate(files)
				own += p
				if set := in.m.set; set != nil && !sets[set] {
					sets[set] = true
					for _, part := range set.parts {
						filePresent(set.mem[part.off:part.off+part.size], part.path, 0, files)
					}
				}
			}
			own += uint64(len(files)) * pageSize
			ranges = measure.GuestRanges(g)
			s := measure.GuestSet{Pid: os.Getpid(), Ranges: ranges}
			read, readErr = s.Bytes()
			c := measure.NewCensus()
			g.Ranges(func(b []byte, runtime bool) { c.AddMemory(b, measure.AreaOf(runtime)) })
			inPlace = c.Counts
			c = measure.NewCensus()
			censusErr = c.AddGuests(s)
			outside = c.Counts
		},
		Resident: func([]int) {}}
	rs, err := Monitor{}.Run(context.Background(), uks, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Error != "" || r.ExitCode != 0 {
			t.Fatalf("%s/%d: exit %d, %s", r.Unikernel, r.Instance, r.ExitCode, r.Error)
		}
	}
	if readErr != nil || censusErr != nil {
		t.Fatal(readErr, censusErr)
	}
	shared := 0
	for _, r := range ranges {
		if r.Guests == 2 {
			shared++
		}
	}
	t.Logf("%d ranges (%d of the blob set both VMs map); the monitor's count %d KiB, read by pid %d KiB; census %+v",
		len(ranges), shared, own>>10, read>>10, outside)
	if own == 0 || read != own {
		t.Errorf("the guests' memory read by pid is %d KiB, the monitor counts %d KiB", read>>10, own>>10)
	}
	if shared == 0 {
		t.Errorf("no range is mapped by both shared VMs: %+v", ranges)
	}
	if outside != inPlace || outside.Pages == 0 {
		t.Errorf("census read through /proc/PID/mem %+v, in place %+v", outside, inPlace)
	}
}
