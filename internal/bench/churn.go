package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/unipool/unipool/internal/measure"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/tlbtrace"
)

// Churn says how instances came and went in `bench memory --arrivals`:
// arrivals at Rate per second (a Poisson process) for Duration seconds,
// each instance running its request, then staying resident (warm) for
// Lifetime seconds before it ends, as a FaaS host keeps a finished
// function instance around for the next request.
type Churn struct {
	Rate     float64 `json:"arrivals_per_s"`
	Lifetime float64 `json:"lifetime_s"`
	Duration float64 `json:"duration_s"`
}

// runChurn runs one mode under churn: unikernel i%len(uks) arrives i-th.
// It samples what the host pays once a second until the last instance
// has ended. FinalBytes is the mean over the steady state (from one
// lifetime after the first arrival to the last arrival).
func runChurn(ctx context.Context, mon monitor.Monitor, resolve func() ([]monitor.Unikernel, error), m Mode, c Churn, expect map[string]string,
	hostWide bool, logw io.Writer) (*ModeResult, error) {
	log := func(f string, a ...any) { fmt.Fprintf(logw, f+"\n", a...) }
	self := os.Getpid()
	base, err := measure.TakeBaseline([]int{self})
	if err != nil {
		return nil, err
	}
	tr, trErr := tlbtrace.Start()
	if trErr != nil {
		log("mode %s: TLB flushes not counted: %v", m.Name, trErr)
	}
	// After the tracer: its tracefs instance (files, buffers) is not
	// the fleet's.
	group := enterGroup(m, hostWide, logw)
	defer leaveGroup(group, m, logw)
	uks, err := resolve()
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	live := map[int]bool{}
	var ever []int
	mr := &ModeResult{Mode: m.Name, MonitorMeasured: "growth"}
	var loads []float64
	var wg sync.WaitGroup
	arrive := func(u monitor.Unikernel) {
		defer wg.Done()
		var mine []int
		opt := monitor.Options{N: 1, Load: m.Load, KSM: m.KSM, ASLR: m.ASLR, ASLRPerLibrary: m.ASLRPerLibrary, Snapshot: m.Snapshot, Timeout: time.Minute,
			// The callback ends the hold after the lifetime; Hold is only
			// an upper bound. Were it the lifetime too, the monitor's
			// timer could end the hold (and Run return) before the
			// callback ran, and the callback would then mark an ended
			// instance live for good.
			Hold: time.Duration(c.Lifetime*float64(time.Second)) + time.Minute,
			Resident: func(p []int) {
				mine = p
				mu.Lock()
				for _, pid := range p {
					live[pid] = true
					ever = append(ever, pid)
				}
				mu.Unlock()
				select { // warm for the lifetime, then the hold ends
				case <-time.After(time.Duration(c.Lifetime * float64(time.Second))):
				case <-ctx.Done():
				}
			}}
		rs, err := mon.Run(ctx, []monitor.Unikernel{u}, opt)
		mu.Lock()
		defer mu.Unlock()
		for _, pid := range mine {
			delete(live, pid)
		}
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
	}
	start := time.Now()
	done := make(chan struct{})
	go func() { // the arrivals
		defer close(done)
		rng := rand.New(rand.NewPCG(1, uint64(len(uks))))
		next := time.Duration(0)
		for i := 0; ; i++ {
			next += time.Duration(rng.ExpFloat64() / c.Rate * float64(time.Second))
			if next.Seconds() > c.Duration || ctx.Err() != nil {
				return
			}
			time.Sleep(time.Until(start.Add(next)))
			wg.Add(1)
			go arrive(uks[i%len(uks)])
		}
	}()
	finished := make(chan struct{})
	go func() { <-done; wg.Wait(); close(finished) }()
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
		mu.Lock()
		pids := make([]int, 0, len(live))
		for pid := range live {
			pids = append(pids, pid)
		}
		mu.Unlock()
		slices.Sort(pids)
		fl := measure.Fleet{Instances: pids, Monitors: []int{self}, MonitorGrowth: true, Group: group}
		if len(pids) > 0 && pids[0] == self { // kvm: the VMs live in this process
			fl.Instances = nil
		}
		measure.Settle()
		h, missing, _ := measure.TakeHost(fl, base)
		mr.Samples = append(mr.Samples, Sample{T: time.Since(start).Seconds(), Host: h, PSS: h.Instances, AvailDelta: h.AvailDrop,
			Missing: missing, Resident: len(pids)})
	}
	mr.Seconds = time.Since(start).Seconds()
	if tr != nil {
		ksmdPID := -1
		if pid, err := measure.FindTask("ksmd"); err == nil {
			ksmdPID = pid
		}
		mr.TLB = classifyFlushes(tr.Stop(), ksmdPID, self, ever, mr.Seconds)
	}
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
		return nil, fmt.Errorf("no instance arrived in %.0f s at %.2f per second", c.Duration, c.Rate)
	}
	return mr, nil
}
