package process

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/unipool/unipool/internal/measure"
	"github.com/unipool/unipool/internal/monitor"
)

// Measurement is what one load mode's instances, all held resident at
// once, cost the host (internal/measure), and their load time.
type Measurement struct {
	Load      string `json:"load"`
	Instances int    `json:"instances"`
	Failed    int    `json:"failed"`
	// NonZero counts the measured instances whose guest exited with a
	// non-zero code: they ran and were measured, but did not succeed.
	NonZero int `json:"exited_nonzero"`
	// Host is what the host pays: the instances' PSS, this monitor
	// process's PSS, and the kernel's part (page tables, kernel stacks,
	// slab), each apart, with the drop of MemAvailable beside them.
	Host measure.Host `json:"host"`
	// CgroupError says why the mode's fleet did not run in a memory
	// cgroup of its own (the kernel part is then host-wide rises).
	CgroupError string `json:"cgroup_error,omitempty"`
	// PSS is the instances' part (Host.Instances).
	PSS uint64 `json:"pss_bytes"`
	// MemAvailableDrop is Host.AvailDrop.
	MemAvailableDrop int64 `json:"mem_available_drop_bytes"`
	// Census and Ideals are the page census of the instances.
	Census *measure.Counts `json:"census,omitempty"`
	Ideals *measure.Ideals `json:"ideals,omitempty"`
	// LoadMean and LoadMedian are the load time per instance: from
	// planning its layout to entering the guest.
	LoadMean   time.Duration `json:"load_mean_ns"`
	LoadMedian time.Duration `json:"load_median_ns"`
	// MonitorPid and MonitorExe are the monitor process measured and its
	// executable (/proc/PID/exe), where it is a process of its own
	// (`unipool run --measure`: the lean binary unipool-vmm).
	MonitorPid int    `json:"monitor_pid,omitempty"`
	MonitorExe string `json:"monitor_exe,omitempty"`
}

// Report compares load modes with the ideals.
type Report struct {
	Modes []Measurement `json:"modes"`
	// Ideal and IdealLoadTime are measure.Ideals from the census of the
	// shared run (else the first): every distinct non-zero page content
	// once, and what sharing at load time reaches at best.
	Ideal         uint64 `json:"ideal_bytes"`
	IdealLoadTime uint64 `json:"ideal_load_time_bytes"`
}

// Measure runs opt.N instances of uks once per load mode, one mode after
// the other, holds each mode's instances resident until they are
// measured, then ends them.
func (m *Monitor) Measure(ctx context.Context, uks []monitor.Unikernel, opt monitor.Options, modes []string) (*Report, error) {
	loaded, err := measure.LoadedContents(uks)
	if err != nil {
		return nil, err
	}
	rep := &Report{}
	self := os.Getpid()
	for _, mode := range modes {
		o := opt
		o.Load = mode
		if o.Hold <= 0 {
			o.Hold = 10 * time.Minute // an upper bound: measuring ends the hold
		}
		meas := Measurement{Load: mode}
		var merr error
		base, err := measure.TakeBaseline(nil)
		if err != nil {
			return nil, err
		}
		// The mode's own memory cgroup, so that the kernel part is what
		// the kernel charges this fleet (else host-wide rises).
		group, gerr := measure.EnterFleetGroup("run-" + mode)
		if gerr != nil {
			meas.CgroupError = gerr.Error()
		}
		o.Resident = func(pids []int) {
			// The monitor is this whole process: it exists to run them.
			// Its garbage goes back first (as the kvm monitor's Measure
			// and the bench do): the figure is what it keeps.
			measure.Settle()
			s, err := measure.Take(measure.Fleet{Instances: pids, Monitors: []int{self}, Group: group}, base, loaded, nil)
			if err != nil {
				merr = err
				return
			}
			meas.Host, meas.Census, meas.Ideals = s.Host, s.Census, s.Ideals
			meas.PSS, meas.MemAvailableDrop = s.Host.Instances, s.Host.AvailDrop
		}
		results, err := m.Run(ctx, uks, o)
		if cerr := group.Close(); err == nil && cerr != nil {
			err = cerr
		}
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
			if r.ExitCode != 0 {
				meas.NonZero++
			}
			loads = append(loads, r.LoadTime)
			sum += r.LoadTime
		}
		if len(loads) > 0 {
			sort.Slice(loads, func(i, j int) bool { return loads[i] < loads[j] })
			meas.LoadMean = sum / time.Duration(len(loads))
			meas.LoadMedian = loads[len(loads)/2]
		}
		if meas.Ideals != nil && (mode == monitor.LoadShared || rep.Ideal == 0) {
			rep.Ideal, rep.IdealLoadTime = meas.Ideals.Ideal, meas.Ideals.LoadTime
		}
		rep.Modes = append(rep.Modes, meas)
	}
	return rep, nil
}
