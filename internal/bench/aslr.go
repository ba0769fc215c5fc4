package bench

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/pool"
)

// HeavyInputs are compute-heavy command lines for apps whose hot loops
// cross library boundaries (app → microlib → libc), where trampolines
// would cost if they cost anything.
var HeavyInputs = map[string]string{
	"matmul": "220 1",
	"primes": "8000000",
	"sort":   "radix 400000 4",
	"bignum": "fact 6000",
	"image":  "gauss 400 300 2",
	"sha256": strings.Repeat("unipool ", 40000),
	"lz":     "9 " + strings.Repeat("the quick brown fox jumps over the lazy dog ", 3000),
}

// ASLRRow is one app's run time with and without ASLR.
type ASLRRow struct {
	Unikernel   string  `json:"unikernel"`
	App         string  `json:"app"`
	Input       string  `json:"input"`
	PlainMs     float64 `json:"plain_median_ms"`
	ASLRMs      float64 `json:"aslr_median_ms"`
	Ratio       float64 `json:"aslr_over_plain"`
	SameOutput  bool    `json:"same_output"`
	Tramps      int     `json:"tramp_bytes"` // sum of the unikernel's tramp tables
	TrampSlots  int     `json:"tramp_slots"`
	Repetitions int     `json:"repetitions"`
}

// TableSize is one library version's trampoline table.
type TableSize struct {
	Library string `json:"library"`
	Version string `json:"version"`
	Bytes   uint64 `json:"bytes"`
	Slots   int    `json:"slots"`
	NoASLR  string `json:"no_aslr,omitempty"`
}

// ASLRResults is `bench aslr`'s outcome.
type ASLRResults struct {
	Rows   []ASLRRow   `json:"apps"`
	Tables []TableSize `json:"tables"`
}

// ASLR runs each compute-heavy app of the fleet with and without --aslr,
// alternating, reps times each, on the process monitor, and collects the
// size of every trampoline table in the pool.
func ASLR(ctx context.Context, fleet *Fleet, reps int, log io.Writer) (*ASLRResults, error) {
	mon, err := monitor.Open("process")
	if err != nil {
		return nil, err
	}
	res := &ASLRResults{}
	done := map[string]bool{}
	for _, u := range fleet.Corpus.Unikernels {
		input, ok := HeavyInputs[u.App]
		if !ok || done[u.App] {
			continue
		}
		done[u.App] = true
		uks, err := launch.Resolve(fleet.PoolDir, []string{u.Name}, input)
		if err != nil {
			return nil, err
		}
		row := ASLRRow{Unikernel: u.Name, App: u.App, Input: input, SameOutput: true, Repetitions: reps}
		if len(input) > 40 {
			row.Input = input[:37] + "..."
		}
		for _, l := range uks[0].Config.Libraries {
			row.Tramps += int(l.Tramp.Size)
			row.TrampSlots += len(l.Tramp.Slots)
		}
		var plain, aslr []float64
		var want string
		for i := 0; i < reps; i++ {
			for _, on := range []bool{false, true} {
				rs, err := mon.Run(ctx, uks, monitor.Options{N: 1, ASLR: on, Timeout: 2 * time.Minute})
				if err != nil {
					return nil, err
				}
				r := rs[0]
				if r.ExitCode != 0 || r.Error != "" {
					return nil, fmt.Errorf("bench aslr: %s (aslr %v): exit %d: %s", u.Name, on, r.ExitCode, r.Error)
				}
				if want == "" {
					want = r.Output
				} else if r.Output != want {
					row.SameOutput = false
				}
				ms := float64(r.RunTime) / 1e6
				if on {
					aslr = append(aslr, ms)
				} else {
					plain = append(plain, ms)
				}
			}
		}
		row.PlainMs, row.ASLRMs = median(plain), median(aslr)
		if row.PlainMs > 0 {
			row.Ratio = row.ASLRMs / row.PlainMs
		}
		fmt.Fprintf(log, "aslr: %s: %.2f ms plain, %.2f ms aslr\n", u.Name, row.PlainMs, row.ASLRMs)
		res.Rows = append(res.Rows, row)
	}
	p, err := pool.Open(fleet.PoolDir)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, name := range fleet.Names {
		c, err := p.Resolve(name)
		if err != nil {
			return nil, err
		}
		for _, l := range c.Libraries {
			key := l.Name + "@" + l.Version + "@" + l.ObjectSHA256
			if l.App {
				key = "app"
			}
			if seen[key] {
				continue
			}
			seen[key] = true
			name, version := l.Name, l.Version
			if l.App {
				name, version = "(apps)", "-"
			}
			res.Tables = append(res.Tables, TableSize{Library: name, Version: version, Bytes: l.Tramp.Size, Slots: len(l.Tramp.Slots), NoASLR: l.NoASLR})
		}
	}
	sort.Slice(res.Tables, func(i, j int) bool {
		if res.Tables[i].Library != res.Tables[j].Library {
			return res.Tables[i].Library < res.Tables[j].Library
		}
		return res.Tables[i].Version < res.Tables[j].Version
	})
	return res, nil
}

// Print writes the two tables.
func (r *ASLRResults) Print(out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "unikernel\tinput\tplain ms\taslr ms\taslr/plain\tsame output\ttramp bytes\tslots\t\n")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.3f\t%v\t%d\t%d\t\n", row.Unikernel, row.Input, row.PlainMs, row.ASLRMs, row.Ratio, row.SameOutput, row.Tramps, row.TrampSlots)
	}
	tw.Flush()
	fmt.Fprintln(out, "\ntrampoline tables (one row per library version in the pool):")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "library\tversion\tbytes\tslots\tno aslr\t\n")
	for _, t := range r.Tables {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t\n", t.Library, t.Version, t.Bytes, t.Slots, t.NoASLR)
	}
	tw.Flush()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
