package process

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/unipool/unipool/internal/memstat"
	"github.com/unipool/unipool/internal/monitor"
)

// Measurement is the memory and load time of one load mode's instances,
// all held resident at once.
type Measurement struct {
	Load      string `json:"load"`
	Instances int    `json:"instances"`
	Failed    int    `json:"failed"`
	// PSS is the sum of PSS over the instance processes: their physical
	// memory, each shared page divided among its sharers.
	PSS uint64 `json:"pss_bytes"`
	// MemAvailableDrop is how much /proc/meminfo's MemAvailable fell from
	// before the first instance started to when all were held: PSS plus
	// what the kernel spends per process (page tables, task structures).
	// Other activity on the host adds noise to it.
	MemAvailableDrop int64 `json:"mem_available_drop_bytes"`
	// Shared is the resident bytes of the first instance's file mappings:
	// the pool blobs (shared mode) and the stub page every instance maps
	// from one memfd. All instances share them: one copy costs this.
	Shared uint64 `json:"shared_bytes"`
	// Private is the mean resident bytes of private memory per instance.
	Private uint64 `json:"private_bytes"`
	// LoadMean and LoadMedian are the load time per instance: from
	// planning its layout to entering the guest.
	LoadMean   time.Duration `json:"load_mean_ns"`
	LoadMedian time.Duration `json:"load_median_ns"`
}

// Report compares load modes with the ideal: one copy of the libraries
// plus every instance's private memory.
type Report struct {
	Modes []Measurement `json:"modes"`
	// Ideal is Shared + Instances × Private of the shared run: one copy
	// of the libraries, each instance's private memory.
	Ideal uint64 `json:"ideal_bytes"`
}

// Measure runs opt.N instances of uks once per load mode, one mode after
// the other, holds each mode's instances resident until they are
// measured, then ends them.
func (m *Monitor) Measure(ctx context.Context, uks []monitor.Unikernel, opt monitor.Options, modes []string) (*Report, error) {
	rep := &Report{}
	for _, mode := range modes {
		o := opt
		o.Load = mode
		if o.Hold <= 0 {
			o.Hold = 10 * time.Minute // an upper bound: measuring ends the hold
		}
		meas := Measurement{Load: mode}
		var merr error
		before, err := memstat.MemAvailable()
		if err != nil {
			return nil, err
		}
		o.Resident = func(pids []int) {
			after, err := memstat.MemAvailable()
			if err != nil {
				merr = err
				return
			}
			meas.MemAvailableDrop = int64(before) - int64(after)
			var missing int
			meas.PSS, missing = memstat.SumPSS(pids)
			if missing > 0 {
				merr = fmt.Errorf("%d of %d held instances vanished while measured", missing, len(pids))
				return
			}
			var private uint64
			for i, pid := range pids {
				file, anon, err := residentByKind(pid)
				if err != nil {
					merr = err
					return
				}
				if i == 0 {
					meas.Shared = file
				}
				private += anon
			}
			meas.Private = private / uint64(len(pids))
		}
		results, err := m.Run(ctx, uks, o)
		if err != nil {
			return nil, err
		}
		if merr != nil {
			return nil, fmt.Errorf("measure %s: %w", mode, merr)
		}
		var loads []time.Duration
		var sum time.Duration
		for _, r := range results {
			if r.Error != "" {
				meas.Failed++
				continue
			}
			meas.Instances++
			loads = append(loads, r.LoadTime)
			sum += r.LoadTime
		}
		if len(loads) > 0 {
			sort.Slice(loads, func(i, j int) bool { return loads[i] < loads[j] })
			meas.LoadMean = sum / time.Duration(len(loads))
			meas.LoadMedian = loads[len(loads)/2]
		}
		if mode == monitor.LoadShared {
			rep.Ideal = meas.Shared + uint64(meas.Instances)*meas.Private
		}
		rep.Modes = append(rep.Modes, meas)
	}
	return rep, nil
}

// residentByKind sums the resident bytes of pid's file mappings (pool
// blobs, the stub) and of the rest (private memory), from /proc/PID/smaps.
func residentByKind(pid int) (file, anon uint64, err error) {
	path := fmt.Sprintf("/proc/%d/smaps", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", path, err)
	}
	return parseSmapsRSS(data, path)
}

func parseSmapsRSS(data []byte, path string) (file, anon uint64, err error) {
	isFile := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") {
			// A mapping's header: "lo-hi perms offset dev inode [path]".
			isFile = len(f) >= 6 && strings.HasPrefix(f[5], "/")
			continue
		}
		if f[0] != "Rss:" || len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %q: %w", path, sc.Text(), err)
		}
		if isFile {
			file += kb << 10
		} else {
			anon += kb << 10
		}
	}
	return file, anon, nil
}
