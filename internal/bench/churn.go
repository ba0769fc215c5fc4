package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/unipool/unipool/internal/measure"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/vmmproc"
)

// runChurn runs one mode under churn inside the bench process (the
// monitor too: its growth is the monitor column; --monitor-in-process):
// unikernel i%len(uks) arrives i-th. It samples what the host pays once
// a second until the last instance has ended. FinalBytes is the mean over
// the steady state (from one lifetime after the first arrival to the last
// arrival).
func runChurn(ctx context.Context, mon monitor.Monitor, resolve func() ([]monitor.Unikernel, error), m Mode, c Churn, expect map[string]string,
	hostWide bool, logw io.Writer) (*ModeResult, error) {
	self := os.Getpid()
	base, err := measure.TakeBaseline([]int{self})
	if err != nil {
		return nil, err
	}
	tr := startTLBTrace(m, logw)
	// After the tracer: its tracefs instance (files, buffers) is not
	// the fleet's.
	group := enterGroup(m, hostWide, logw)
	defer leaveGroup(group, m, logw)
	uks, err := resolve()
	if err != nil {
		return nil, err
	}
	mr := &ModeResult{Mode: m.Name, MonitorMeasured: "growth"}
	var loads []float64
	st := newChurnState(self)
	var mu sync.Mutex
	start := time.Now()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		vmmproc.ChurnArrivals(ctx, mon, uks, m.run(), c, time.Minute, false, vmmproc.ChurnEvents{
			Resident: func(id int, pids []int, g monitor.HeldGuests) {
				var ranges []measure.GuestRange
				if g != nil {
					ranges = measure.GuestRanges(g)
				}
				st.arrived(id, pids, ranges)
			},
			Ended: st.ended,
			Finished: func(_ int, rs []monitor.Result, err error) {
				mu.Lock()
				defer mu.Unlock()
				mr.Instances++
				if err != nil || len(rs) == 0 {
					mr.Failed++
					return
				}
				for _, r := range rs {
					if r.ExitCode != 0 || r.Error != "" || !containsLine(r.Output, expect[r.Unikernel]) {
						mr.Failed++
					}
					loads = append(loads, float64(r.LoadTime)/1e6)
				}
			}})
	}()
	mr.Samples = st.sample(ctx, finished, start, base, group, true)
	mr.Seconds = time.Since(start).Seconds()
	if tr != nil {
		mr.TLB = classifyFlushes(tr.Stop(), ksmdPID(), self, st.ever, mr.Seconds)
	}
	return mr, mr.churnTally(c, loads)
}

func ksmdPID() int {
	if pid, err := measure.FindTask("ksmd"); err == nil {
		return pid
	}
	return -1
}

// churnState is which arrivals are resident, seen by the sampler.
type churnState struct {
	monitor int // the monitor process
	mu      sync.Mutex
	live    map[int]churnArrival // by arrival
	ever    []int                // every instance process
}

type churnArrival struct {
	pids   []int
	guests []measure.GuestRange
}

func newChurnState(monitorPID int) *churnState {
	return &churnState{monitor: monitorPID, live: map[int]churnArrival{}}
}

func (s *churnState) arrived(id int, pids []int, guests []measure.GuestRange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var own []int
	for _, p := range pids {
		if p != s.monitor { // the kvm monitor: the VM lives in the monitor process
			own = append(own, p)
		}
	}
	s.live[id] = churnArrival{pids: own, guests: guests}
	s.ever = append(s.ever, own...)
}

func (s *churnState) ended(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, id)
}

// fleet is the resident part now: the instance processes, the guests in
// the monitor process, and how many arrivals are resident.
func (s *churnState) fleet() (pids []int, guests []measure.GuestSet, resident int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ranges []measure.GuestRange
	for _, a := range s.live {
		pids = append(pids, a.pids...)
		ranges = append(ranges, a.guests...)
	}
	slices.Sort(pids)
	if len(ranges) > 0 {
		guests = []measure.GuestSet{{Pid: s.monitor, Ranges: ranges}}
	}
	return pids, guests, len(s.live)
}

// sample measures the resident part once a second until finished is
// closed (and once more then). growth: the monitor is this process (its
// growth counted, after a GC).
func (s *churnState) sample(ctx context.Context, finished <-chan struct{}, start time.Time, base measure.Baseline, group *measure.FleetGroup, growth bool) []Sample {
	var samples []Sample
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-finished:
			running = false
		case <-ctx.Done():
			<-finished
			running = false
		case <-tick.C:
		}
		pids, guests, resident := s.fleet()
		fl := measure.Fleet{Instances: pids, Monitors: []int{s.monitor}, MonitorGrowth: growth, Guests: guests, Group: group}
		if growth {
			measure.Settle()
		}
		h, missing, _ := measure.TakeHost(fl, base)
		samples = append(samples, Sample{T: time.Since(start).Seconds(), Host: h, PSS: h.Instances, AvailDelta: h.AvailDrop,
			Missing: missing, Resident: resident})
	}
	return samples
}

// churnTally sets the figures of a churn run from its samples and load
// times (ms).
func (mr *ModeResult) churnTally(c Churn, loads []float64) error {
	var sum float64
	var n int
	for _, s := range mr.Samples {
		mr.PeakBytes = max(mr.PeakBytes, s.Bytes())
		if s.T >= c.Lifetime && s.T <= c.Duration {
			sum += float64(s.Bytes())
			n++
		}
	}
	if len(mr.Samples) > 0 {
		mr.FirstBytes = mr.Samples[0].Bytes()
	}
	if n == 0 { // a short run on a busy host: every sample with instances in it
		for _, s := range mr.Samples {
			if s.Resident > 0 {
				sum += float64(s.Bytes())
				n++
			}
		}
	}
	if n > 0 {
		mr.FinalBytes = uint64(sum / float64(n))
	}
	slices.Sort(loads)
	if k := len(loads); k > 0 {
		var s float64
		for _, v := range loads {
			s += v
		}
		mr.LoadMeanMs, mr.LoadP95Ms = s/float64(k), loads[min(k-1, k*95/100)]
	}
	if mr.Instances == 0 {
		return fmt.Errorf("no instance arrived in %.0f s at %.2f per second", c.Duration, c.Rate)
	}
	return nil
}
