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
	Log     io.Writer
}

// StartStats are per-instance times of one way of starting, in µs.
type StartStats struct {
	Instances int     `json:"instances"`
	Failed    int     `json:"failed"`
	ReadyMean float64 `json:"ready_mean_us"` // start to the ready point
	ReadyP50  float64 `json:"ready_p50_us"`
	ReadyP95  float64 `json:"ready_p95_us"`
	LoadMean  float64 `json:"load_mean_us"`  // start to entering the guest
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
	// Mismatches counts instances whose output or exit code from the
	// snapshot differ from the cold boot's of the same unikernel.
	Mismatches int `json:"mismatches"`
}

// Start measures start latency per instance, cold and from snapshots.
func Start(ctx context.Context, o StartOptions) (*StartResult, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	o.N, o.Rounds = max(o.N, 1), max(o.Rounds, 1)
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
	var samples [2][3][]float64 // mode, {ready, load, total}
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
				samples[mode][0] = append(samples[mode][0], micros(r.ReadyTime))
				samples[mode][1] = append(samples[mode][1], micros(r.LoadTime))
				samples[mode][2] = append(samples[mode][2], micros(r.LoadTime+r.RunTime))
			}
			fmt.Fprintf(o.Log, "round %d: %d instances %s\n", round+1, len(rs), []string{"cold", "from snapshots"}[mode])
		}
	}
	for mode, st := range []*StartStats{&res.Cold, &res.Snapshot} {
		s := samples[mode]
		st.ReadyMean, st.ReadyP50, st.ReadyP95 = startMean(s[0]), startQuantile(s[0], 0.5), startQuantile(s[0], 0.95)
		st.LoadMean = startMean(s[1])
		st.TotalMean, st.TotalP50 = startMean(s[2]), startQuantile(s[2], 0.5)
	}
	return res, nil
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
