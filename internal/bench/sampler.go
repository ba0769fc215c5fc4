// Package bench measures what the poster claims: the memory N different
// unikernels use under each way of running them (stock images, KSM over
// stock/dce/aligned images, load-time sharing, with ASLR), over time, with
// ksmd's CPU, TLB flushes per issuer and load times, side by side in one run.
package bench

import (
	"context"
	"math"
	"time"

	"github.com/unipool/unipool/internal/ksm"
	"github.com/unipool/unipool/internal/measure"
)

// Sample is one point of a mode's memory over time.
type Sample struct {
	T float64 `json:"t_s"` // seconds since the mode's instances were resident
	// Host is what the host pays: instances, monitor, kernel.
	Host measure.Host `json:"host"`
	// PSS is the instances' part alone (Host.Instances), as older
	// results.json files have it.
	PSS        uint64        `json:"pss_bytes"`
	AvailDelta int64         `json:"avail_delta_bytes"` // MemAvailable drop since before the mode started
	KSM        *ksm.Counters `json:"ksm,omitempty"`
	Missing    int           `json:"missing,omitempty"`  // processes that had gone
	Resident   int           `json:"resident,omitempty"` // instances resident (churn)
}

// Bytes is the sample's memory as charts and stability see it: what the
// host pays, or the instances' PSS for results written before the host
// was measured.
func (s Sample) Bytes() uint64 {
	if s.Host.Total > 0 {
		return s.Host.Total
	}
	return s.PSS
}

// Sampler samples the memory of a set of processes once a period until the
// memory is stable or the deadline passes.
type Sampler struct {
	Period    time.Duration
	Window    int     // samples that must agree for "stable"
	Tolerance float64 // relative change allowed within the window
	MinTime   time.Duration
	MaxTime   time.Duration
	KSM       bool
	// MinScans, with KSM, is how many full scans ksmd must finish before
	// memory may be called stable: KSM merges a page only once it has seen
	// it unchanged over two scans, so early samples look stable but are not.
	MinScans uint64
}

// Run samples with take until stable (after MinTime) or MaxTime; it
// returns the samples and the time at which the memory became (and
// stayed) stable.
func (s Sampler) Run(ctx context.Context, take func() (measure.Host, int)) ([]Sample, float64) {
	if s.Period == 0 {
		s.Period = time.Second
	}
	if s.Window == 0 {
		s.Window = 5
	}
	if s.Tolerance == 0 {
		s.Tolerance = 0.01
	}
	start := time.Now()
	var out []Sample
	var scans0 uint64
	if s.KSM {
		if c, err := ksm.Read(); err == nil {
			scans0 = c.FullScans
		}
	}
	tick := time.NewTicker(s.Period)
	defer tick.Stop()
	for {
		h, missing := take()
		smp := Sample{T: time.Since(start).Seconds(), Host: h, PSS: h.Instances, AvailDelta: h.AvailDrop, Missing: missing}
		if s.KSM {
			if c, err := ksm.Read(); err == nil {
				smp.KSM = &c
			}
		}
		out = append(out, smp)
		elapsed := time.Since(start)
		scanned := !s.KSM || (smp.KSM != nil && smp.KSM.FullScans >= scans0+s.MinScans)
		if elapsed >= s.MaxTime || (elapsed >= s.MinTime && scanned && stable(out, s.Window, s.Tolerance)) {
			return out, stableSince(out, s.Tolerance)
		}
		select {
		case <-ctx.Done():
			return out, stableSince(out, s.Tolerance)
		case <-tick.C:
		}
	}
}

// stable: the last window samples are within tol of the last one.
func stable(ss []Sample, window int, tol float64) bool {
	if len(ss) < window {
		return false
	}
	last := float64(ss[len(ss)-1].Bytes())
	for _, x := range ss[len(ss)-window:] {
		if math.Abs(float64(x.Bytes())-last) > tol*last {
			return false
		}
	}
	return true
}

// stableSince is the time of the first sample from which every later
// sample stays within tol of the final value: the time to converge.
func stableSince(ss []Sample, tol float64) float64 {
	if len(ss) == 0 {
		return 0
	}
	final := float64(ss[len(ss)-1].Bytes())
	t := ss[len(ss)-1].T
	for i := len(ss) - 1; i >= 0; i-- {
		if math.Abs(float64(ss[i].Bytes())-final) > tol*final {
			break
		}
		t = ss[i].T
	}
	return t
}
