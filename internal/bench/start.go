package bench

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/monitor"
)

// StartOptions are `bench start`'s flags.
type StartOptions struct {
	Pool    string
	Names   []string // pooled unikernels, each with a snapshot
	N       int      // instances of each per run
	Rounds  int      // cold and snapshot runs alternate this many times
	Monitor string
	// Loads, if set, compares these load modes (monitor.LoadShared,
	// monitor.LoadNaive, ...) of cold boots instead of cold boots with
	// starts from snapshots: one run per mode, alternating, each mode
	// once per round (the first mode of a round changes from round to
	// round, so neither always runs on a warmer page cache).
	Loads []string
	Log   io.Writer
}

// StartStats are per-instance times of one way of starting, in µs.
type StartStats struct {
	Instances int     `json:"instances"`
	Failed    int     `json:"failed"`
	ReadyMean float64 `json:"ready_mean_us"` // start to the ready point
	ReadyP50  float64 `json:"ready_p50_us"`
	ReadyP95  float64 `json:"ready_p95_us"`
	LoadMean  float64 `json:"load_mean_us"` // start to entering the guest
	LoadP50   float64 `json:"load_p50_us"`
	LoadP99   float64 `json:"load_p99_us"`
	TotalMean float64 `json:"total_mean_us"` // start to exit (load + run)
	TotalP50  float64 `json:"total_p50_us"`
}

// StartResult compares cold boots with starts from snapshots, measured
// in alternating runs of the same instances.
type StartResult struct {
	Monitor  string     `json:"monitor"`
	Names    []string   `json:"names"`
	Cold     StartStats `json:"cold"`
	Snapshot StartStats `json:"snapshot"`
	// Loads holds one entry per StartOptions.Loads mode (then Cold and
	// Snapshot are empty).
	Loads []LoadStats `json:"loads,omitempty"`
	// Mismatches counts instances whose output or exit code from the
	// snapshot differ from the cold boot's of the same unikernel.
	Mismatches int `json:"mismatches"`
}

// LoadStats are the start times of cold boots with one load mode.
type LoadStats struct {
	Load string `json:"load"`
	StartStats
}

// Start measures start latency per instance, cold and from snapshots
// (or, with o.Loads, cold boots by load mode).
func Start(ctx context.Context, o StartOptions) (*StartResult, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	o.N, o.Rounds = max(o.N, 1), max(o.Rounds, 1)
	if len(o.Loads) > 0 {
		return startLoads(ctx, o)
	}
	cold, err := launch.Resolve(o.Pool, o.Names, "")
	if err != nil {
		return nil, err
	}
	warm, err := launch.ResolveSnapshots(o.Pool, o.Names, "")
	if err != nil {
		return nil, err
	}
	mon, err := monitor.Open(o.Monitor)
	if err != nil {
		return nil, err
	}
	res := &StartResult{Monitor: o.Monitor, Names: o.Names}
	var samples [2]startSamples // cold, from snapshots
	want := map[string]monitor.Result{}
	for round := 0; round < o.Rounds; round++ {
		for mode, uks := range [][]monitor.Unikernel{cold, warm} {
			rs, err := mon.Run(ctx, uks, monitor.Options{N: o.N, Snapshot: mode == 1, Timeout: time.Minute})
			if err != nil {
				return nil, err
			}
			st := &res.Cold
			if mode == 1 {
				st = &res.Snapshot
			}
			for _, r := range rs {
				st.Instances++
				if r.Error != "" || r.ReadyTime == 0 {
					st.Failed++
					continue
				}
				if w, ok := want[r.Unikernel]; !ok {
					want[r.Unikernel] = r
				} else if w.Output != r.Output || w.ExitCode != r.ExitCode {
					res.Mismatches++
				}
				samples[mode].add(r)
			}
			fmt.Fprintf(o.Log, "round %d: %d instances %s\n", round+1, len(rs), []string{"cold", "from snapshots"}[mode])
		}
	}
	samples[0].fill(&res.Cold)
	samples[1].fill(&res.Snapshot)
	return res, nil
}

// startLoads compares cold boots by load mode, the modes alternating.
func startLoads(ctx context.Context, o StartOptions) (*StartResult, error) {
	for _, l := range o.Loads {
		if err := monitor.CheckLoad(l, true); err != nil {
			return nil, err
		}
	}
	uks, err := launch.Resolve(o.Pool, o.Names, "")
	if err != nil {
		return nil, err
	}
	mon, err := monitor.Open(o.Monitor)
	if err != nil {
		return nil, err
	}
	res := &StartResult{Monitor: o.Monitor, Names: o.Names, Loads: make([]LoadStats, len(o.Loads))}
	samples := make([]startSamples, len(o.Loads))
	want := map[string]monitor.Result{}
	for round := 0; round < o.Rounds; round++ {
		for k := range o.Loads {
			mode := (k + round) % len(o.Loads)
			st := &res.Loads[mode]
			st.Load = o.Loads[mode]
			rs, err := mon.Run(ctx, uks, monitor.Options{N: o.N, Load: o.Loads[mode], Timeout: 5 * time.Minute})
			if err != nil {
				return nil, err
			}
			for _, r := range rs {
				st.Instances++
				if r.Error != "" || r.ExitCode != 0 {
					st.Failed++
					continue
				}
				if w, ok := want[r.Unikernel]; !ok {
					want[r.Unikernel] = r
				} else if w.Output != r.Output {
					res.Mismatches++
				}
				samples[mode].add(r)
			}
			fmt.Fprintf(o.Log, "round %d: %d instances, load %s\n", round+1, len(rs), o.Loads[mode])
		}
	}
	for mode := range res.Loads {
		samples[mode].fill(&res.Loads[mode].StartStats)
	}
	return res, nil
}

// startSamples are one mode's start times in µs: to the ready point, the
// load, the load and the run.
type startSamples [3][]float64

func (s *startSamples) add(r monitor.Result) {
	s[0] = append(s[0], micros(r.ReadyTime))
	s[1] = append(s[1], micros(r.LoadTime))
	s[2] = append(s[2], micros(r.LoadTime+r.RunTime))
}

// fill sets st's means and quantiles from the samples.
func (s *startSamples) fill(st *StartStats) {
	st.ReadyMean, st.ReadyP50, st.ReadyP95 = startMean(s[0]), startQuantile(s[0], 0.5), startQuantile(s[0], 0.95)
	st.LoadMean, st.LoadP50, st.LoadP99 = startMean(s[1]), startQuantile(s[1], 0.5), startQuantile(s[1], 0.99)
	st.TotalMean, st.TotalP50 = startMean(s[2]), startQuantile(s[2], 0.5)
}

func micros(d time.Duration) float64 { return float64(d) / 1e3 }

func startMean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func startQuantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
