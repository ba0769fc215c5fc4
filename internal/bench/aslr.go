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

// ASLRRow is one app's run time as packed (no trampolines: every call
// direct), aligned (cross-library calls through the tramp tables, the
// map's bases) and aligned with --aslr (the same code, every region at
// a random base), the three alternated in one run.
type ASLRRow struct {
	Unikernel string  `json:"unikernel"`
	App       string  `json:"app"`
	Input     string  `json:"input"`
	PackedMs  float64 `json:"packed_median_ms"`
	PlainMs   float64 `json:"plain_median_ms"` // aligned, no --aslr
	ASLRMs    float64 `json:"aslr_median_ms"`
	// Ratio is aslr/aligned; AlignedOverPacked and ASLROverPacked
	// compare with the image without trampolines.
	Ratio             float64 `json:"aslr_over_plain"`
	AlignedOverPacked float64 `json:"aligned_over_packed"`
	ASLROverPacked    float64 `json:"aslr_over_packed"`
	SameOutput        bool    `json:"same_output"`
	Tramps            int     `json:"tramp_bytes"` // sum of the unikernel's tramp tables
	TrampSlots        int     `json:"tramp_slots"`
	Repetitions       int     `json:"repetitions"`
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
	Monitor string      `json:"monitor"`
	Rows    []ASLRRow   `json:"apps"`
	Tables  []TableSize `json:"tables"`
}

// ASLR modes, in the order each repetition runs them.
const (
	ASLRPacked  = "packed"
	ASLRAligned = "aligned"
	ASLROn      = "aligned-aslr"
)

// aslrBenchMem is every instance's memory in bench aslr: the heavy
// inputs need more heap than abi.DefaultMemSize (sort's 400,000 keys).
const aslrBenchMem = 64 << 20

// ASLRFleetLayouts are the layouts bench aslr needs linked.
var ASLRFleetLayouts = []string{"packed"}

// ASLR runs each compute-heavy app of the fleet as packed, aligned and
// aligned --aslr, alternating the three, reps times each, on the named
// monitor, and collects the size of every trampoline table in the pool.
// The fleet must have its packed images (ASLRFleetLayouts).
func ASLR(ctx context.Context, fleet *Fleet, reps int, monitorName string, log io.Writer) (*ASLRResults, error) {
	if monitorName == "" {
		monitorName = "process"
	}
	mon, err := monitor.Open(monitorName)
	if err != nil {
		return nil, err
	}
	packed := fleet.Images["packed"]
	if len(packed) != len(fleet.Corpus.Unikernels) {
		return nil, fmt.Errorf("bench aslr: the fleet has no packed images")
	}
	res := &ASLRResults{Monitor: monitorName}
	done := map[string]bool{}
	for k, u := range fleet.Corpus.Unikernels {
		input, ok := HeavyInputs[u.App]
		if !ok || done[u.App] {
			continue
		}
		done[u.App] = true
		uks, err := launch.Resolve(fleet.PoolDir, []string{u.Name}, input)
		if err != nil {
			return nil, err
		}
		img := []monitor.Unikernel{{Name: u.Name, Image: packed[k], Cmdline: input}}
		row := ASLRRow{Unikernel: u.Name, App: u.App, Input: input, SameOutput: true, Repetitions: reps}
		if len(input) > 40 {
			row.Input = input[:37] + "..."
		}
		for _, l := range uks[0].Config.Libraries {
			row.Tramps += int(l.Tramp.Size)
			row.TrampSlots += len(l.Tramp.Slots)
		}
		times := map[string][]float64{}
		var want string
		for i := 0; i < reps; i++ {
			for _, mode := range []string{ASLRPacked, ASLRAligned, ASLROn} {
				run, opt := uks, monitor.Options{N: 1, ASLR: mode == ASLROn, Timeout: 2 * time.Minute, MemSize: aslrBenchMem}
				if mode == ASLRPacked {
					run, opt.Load = img, monitor.LoadNaive
				}
				rs, err := mon.Run(ctx, run, opt)
				if err != nil {
					launch.Close(uks)
					return nil, err
				}
				r := rs[0]
				if r.ExitCode != 0 || r.Error != "" {
					launch.Close(uks)
					return nil, fmt.Errorf("bench aslr: %s (%s): exit %d: %s", u.Name, mode, r.ExitCode, r.Error)
				}
				if want == "" {
					want = r.Output
				} else if r.Output != want {
					row.SameOutput = false
				}
				times[mode] = append(times[mode], float64(r.RunTime)/1e6)
			}
		}
		launch.Close(uks)
		row.PackedMs, row.PlainMs, row.ASLRMs = median(times[ASLRPacked]), median(times[ASLRAligned]), median(times[ASLROn])
		if row.PlainMs > 0 {
			row.Ratio = row.ASLRMs / row.PlainMs
		}
		if row.PackedMs > 0 {
			row.AlignedOverPacked, row.ASLROverPacked = row.PlainMs/row.PackedMs, row.ASLRMs/row.PackedMs
		}
		fmt.Fprintf(log, "aslr: %s: %.2f ms packed, %.2f ms aligned, %.2f ms aligned --aslr\n", u.Name, row.PackedMs, row.PlainMs, row.ASLRMs)
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
	fmt.Fprintf(out, "run time, median of %d alternated runs each (%s monitor)\n", repsOf(r.Rows), r.Monitor)
	fmt.Fprintf(tw, "unikernel\tinput\tpacked ms\taligned ms\taligned --aslr ms\taligned/packed\taslr/packed\taslr/aligned\tsame output\ttramp bytes\tslots\t\n")
	var ap, sp, sa []float64
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.2f\t%.3f\t%.3f\t%.3f\t%v\t%d\t%d\t\n", row.Unikernel, row.Input, row.PackedMs, row.PlainMs, row.ASLRMs,
			row.AlignedOverPacked, row.ASLROverPacked, row.Ratio, row.SameOutput, row.Tramps, row.TrampSlots)
		ap, sp, sa = append(ap, row.AlignedOverPacked), append(sp, row.ASLROverPacked), append(sa, row.Ratio)
	}
	if len(r.Rows) > 0 {
		fmt.Fprintf(tw, "median\t\t\t\t\t%.3f\t%.3f\t%.3f\t\t\t\t\n", median(ap), median(sp), median(sa))
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

func repsOf(rows []ASLRRow) int {
	if len(rows) == 0 {
		return 0
	}
	return rows[0].Repetitions
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
