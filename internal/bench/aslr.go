package bench

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/pool"
)

// HeavyInput is the compute-heavy command line of an app whose hot loops
// cross library boundaries (app → microlib → libc), where trampolines
// would cost if they cost anything; ok false for another app. Built on
// demand: as package-level strings they were ~450 KiB of heap in every
// unipool process (a monitor's too) from its start to its end.
func HeavyInput(app string) (input string, ok bool) {
	switch app {
	case "matmul":
		return "220 1", true
	case "primes":
		return "8000000", true
	case "sort":
		return "radix 400000 4", true
	case "bignum":
		return "fact 6000", true
	case "image":
		return "gauss 400 300 2", true
	case "sha256":
		return strings.Repeat("unipool ", 40000), true
	case "lz":
		return "9 " + strings.Repeat("the quick brown fox jumps over the lazy dog ", 3000), true
	}
	return "", false
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
	// The same on the guest's CPU time (monitor.Result.CPUTime: the
	// instance process's time on a CPU, which the host's load does not
	// stretch as it does the wall-clock run time); 0 if the monitor does
	// not measure it.
	PackedCPUMs          float64 `json:"packed_cpu_median_ms,omitempty"`
	AlignedCPUMs         float64 `json:"aligned_cpu_median_ms,omitempty"`
	ASLRCPUMs            float64 `json:"aslr_cpu_median_ms,omitempty"`
	CPUAlignedOverPacked float64 `json:"cpu_aligned_over_packed,omitempty"`
	CPUASLROverPacked    float64 `json:"cpu_aslr_over_packed,omitempty"`
	CPUASLROverAligned   float64 `json:"cpu_aslr_over_aligned,omitempty"`
	SameOutput           bool    `json:"same_output"`
	Tramps               int     `json:"tramp_bytes"` // sum of the unikernel's tramp tables
	TrampSlots           int     `json:"tramp_slots"`
	Repetitions          int     `json:"repetitions"`
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
		input, ok := HeavyInput(u.App)
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
			b, n := tableSize(l.Tramp)
			row.Tramps += int(b)
			row.TrampSlots += n
		}
		times, cpu := map[string][]float64{}, map[string][]float64{}
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
				cpu[mode] = append(cpu[mode], float64(r.CPUTime)/1e6)
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
		row.PackedCPUMs, row.AlignedCPUMs, row.ASLRCPUMs = median(cpu[ASLRPacked]), median(cpu[ASLRAligned]), median(cpu[ASLROn])
		if row.PackedCPUMs > 0 && row.AlignedCPUMs > 0 {
			row.CPUAlignedOverPacked, row.CPUASLROverPacked = row.AlignedCPUMs/row.PackedCPUMs, row.ASLRCPUMs/row.PackedCPUMs
			row.CPUASLROverAligned = row.ASLRCPUMs / row.AlignedCPUMs
		}
		fmt.Fprintf(log, "aslr: %s: wall %.2f ms packed, %.2f ms aligned, %.2f ms aligned --aslr; cpu %.2f, %.2f, %.2f ms\n", u.Name,
			row.PackedMs, row.PlainMs, row.ASLRMs, row.PackedCPUMs, row.AlignedCPUMs, row.ASLRCPUMs)
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
			b, n := tableSize(l.Tramp)
			res.Tables = append(res.Tables, TableSize{Library: name, Version: version, Bytes: b, Slots: n, NoASLR: l.NoASLR})
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

// Print writes the tables: run time on the CPU and on the clock, and the
// tramp tables.
func (r *ASLRResults) Print(out io.Writer) {
	for _, cpu := range []bool{true, false} {
		what := "guest CPU time (ms)"
		if !cpu {
			what = "wall-clock run time (ms; stretched by the host's load)"
		}
		fmt.Fprintf(out, "%s, median of %d alternated runs each (%s monitor)\n", what, repsOf(r.Rows), r.Monitor)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "unikernel\tinput\tpacked\taligned\taligned --aslr\taligned/packed\taslr/packed\taslr/aligned\tsame output\ttramp bytes\tslots\t\n")
		var ap, sp, sa []float64
		for _, row := range r.Rows {
			p, a, s, x, y, z := row.PackedMs, row.PlainMs, row.ASLRMs, row.AlignedOverPacked, row.ASLROverPacked, row.Ratio
			if cpu {
				p, a, s, x, y, z = row.PackedCPUMs, row.AlignedCPUMs, row.ASLRCPUMs, row.CPUAlignedOverPacked, row.CPUASLROverPacked, row.CPUASLROverAligned
			}
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.2f\t%.3f\t%.3f\t%.3f\t%v\t%d\t%d\t\n", row.Unikernel, row.Input, p, a, s, x, y, z,
				row.SameOutput, row.Tramps, row.TrampSlots)
			ap, sp, sa = append(ap, x), append(sp, y), append(sa, z)
		}
		if len(r.Rows) > 0 {
			fmt.Fprintf(tw, "median\t\t\t\t\t%.3f\t%.3f\t%.3f\t\t\t\t\n", median(ap), median(sp), median(sa))
		}
		tw.Flush()
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out, "trampoline tables (one row per library version in the pool):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "library\tversion\tbytes\tslots\tno aslr\t\n")
	for _, t := range r.Tables {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t\n", t.Library, t.Version, t.Bytes, t.Slots, t.NoASLR)
	}
	tw.Flush()
}

// tableSize is a tramp table's bytes and slots, kept whole in the tramp
// area or split (stubs in the shared part, slot words in the private
// part, listed among the relocations).
func tableSize(t desc.Tramp) (bytes uint64, slots int) {
	if t.Split {
		return t.StubSize + t.SlotSize, int(t.SlotSize / 8)
	}
	return t.Size, len(t.Slots)
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
