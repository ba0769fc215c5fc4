package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipool/unipool/internal/api"
	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/monitor"
	_ "github.com/unipool/unipool/internal/monitor/kvm"
	"github.com/unipool/unipool/internal/monitor/process"
	"github.com/unipool/unipool/internal/pool"
)

func init() {
	var (
		dir, monName, mem, load, cmdline string
		host                             string
		images                           []string
		opt                              monitor.Options
		asJSON, measure                  bool
	)
	cmd := &cobra.Command{
		Use:   "run [flags] NAME...",
		Short: "Run pooled unikernels (or plain images), N instances each",
		Long: `Run starts -n instances of each named unikernel from the pool, or of each
--image (a plain packed/dce ELF image, loaded by copying its segments).

With the process monitor (the default) every instance is a Linux process that
maps each library blob read-only and shared straight from the pool file; its
port I/O, hlt and wrmsr are trapped and emulated, and seccomp kills it on any
system call. The kvm monitor runs every instance as a microVM of one process.

Output: each instance's console output, its lines prefixed with NAME/I when
more than one instance runs; --json prints instead the list of per-instance
results (exit code, output, load and run time, library bases, pid, error).

Exit status: 0 when every instance wrote exit code 0 to port 0x501; 1 when
any instance exited with another code or failed (a fault, a system call, a
timeout, a halt without an exit code, a load error, a blob that does not
match its digest), each failure reported on stderr.

--measure runs the instances twice, loaded shared and then
naive, holds each set resident once all have finished, and prints what the
host pays for them (internal/measure): the instances, the monitor process and
the kernel (page tables, kernel stacks, slab) apart, the drop of MemAvailable,
the ideals from the page census (every distinct non-zero page once; and for
load-time sharing, the as-loaded image pages once, every written page in
full), and the load time per instance.`,
		RunE: func(cmd *cobra.Command, names []string) error {
			if len(names) == 0 && len(images) == 0 {
				return fmt.Errorf("name a unikernel (`unipool pool ls` lists them) or give --image FILE")
			}
			if mem != "" {
				n, err := poolParseSize(mem)
				if err != nil {
					return fmt.Errorf("--mem: %w", err)
				}
				opt.MemSize = n
			}
			opt.Load = load
			if opt.Snapshot && opt.ASLR {
				return fmt.Errorf("--snapshot with --aslr: a snapshot fixes the layout it was taken with (its pointers hold the map's addresses), so its instances cannot be re-randomised; run either cold with --aslr or from the snapshot without it")
			}
			if opt.Snapshot && len(images) > 0 {
				return fmt.Errorf("--snapshot with --image: only pooled unikernels have snapshots")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if host != "" {
				for _, fl := range []string{"pool", "monitor", "image", "measure", "hold", "snapshot"} {
					if cmd.Flags().Changed(fl) {
						return fmt.Errorf("--%s does not go with --host: the daemon has its own pool and monitor", fl)
					}
				}
				req := api.StartRequest{Unikernels: names, Count: opt.N, Cmdline: cmdline, MemSize: opt.MemSize,
					TimeoutMS: opt.Timeout.Milliseconds(), Load: load, ASLR: opt.ASLR, KSM: opt.KSM, Seed: opt.Seed}
				if opt.Timeout > 0 && req.TimeoutMS == 0 {
					req.TimeoutMS = 1
				}
				return runOnHost(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), host, req, asJSON)
			}
			var uks []monitor.Unikernel
			if len(names) > 0 {
				d := dir
				if d == "" {
					var err error
					if d, err = pool.DefaultDir(); err != nil {
						return err
					}
				}
				resolve := launch.Resolve
				if opt.Snapshot {
					resolve = launch.ResolveSnapshots
				}
				var err error
				if uks, err = resolve(d, names, cmdline); err != nil {
					return err
				}
				defer launch.Close(uks)
			}
			for _, img := range images {
				uks = append(uks, monitor.Unikernel{Name: filepath.Base(img), Image: img, Cmdline: cmdline})
			}
			mon, err := monitor.Open(monName)
			if err != nil {
				return err
			}
			if measure {
				return runMeasure(ctx, cmd.OutOrStdout(), monName, uks, opt, asJSON)
			}
			if opt.Hold > 0 {
				// Say what is held, so other tools can measure it meanwhile.
				stderr, hold := cmd.ErrOrStderr(), opt.Hold
				opt.Resident = func(pids []int) {
					fmt.Fprintf(stderr, "unipool: holding %d finished instances resident for %v (pids %s)\n", len(pids), hold, pidList(pids))
					select {
					case <-time.After(hold):
					case <-ctx.Done():
					}
				}
			}
			results, err := mon.Run(ctx, uks, opt)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(results); err != nil {
					return err
				}
			} else {
				printOutputs(cmd.OutOrStdout(), results)
			}
			return runFailures(cmd.ErrOrStderr(), results)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "pool", "", "pool directory (default $"+pool.EnvPool+", else ~/.local/share/unipool/pool)")
	f.StringVar(&monName, "monitor", process.Name, "monitor: process or kvm")
	f.IntVarP(&opt.N, "instances", "n", 1, "instances of each unikernel")
	f.StringVar(&mem, "mem", "", "guest heap+stack per instance, e.g. 16M (default: the description's)")
	f.DurationVar(&opt.Timeout, "timeout", 0, "kill an instance still running after this long (0: never)")
	f.DurationVar(&opt.Hold, "hold", 0, "keep finished instances resident this long, then end them (for measuring)")
	f.StringVar(&load, "load", monitor.LoadShared, "shared: map pool blobs read-only, shared; naive: copy them (the baseline); stock (--image only): map the image file private, demand-paged, as Linux does")
	f.BoolVar(&opt.KSM, "ksm", false, "mark private (and naive) guest memory MADV_MERGEABLE")
	f.BoolVar(&opt.ASLR, "aslr", false, "a random base for every library region of every instance")
	f.BoolVar(&opt.Snapshot, "snapshot", false, "start every instance from its pooled snapshot (`unipool snapshot`) instead of booting it; not with --aslr")
	f.Uint64Var(&opt.Seed, "seed", 0, "base of the per-instance seeds, and of --aslr bases (0: random)")
	f.StringVar(&cmdline, "cmdline", "", "the guests' command line (default: the description's)")
	f.StringArrayVar(&images, "image", nil, "run a plain ELF image (packed/dce) instead of a pooled name; repeatable")
	f.BoolVar(&asJSON, "json", false, "print the per-instance results as JSON")
	f.StringVar(&host, "host", "", "start the instances through the daemon on this socket (`unipool serve`); output and status as without")
	f.BoolVar(&measure, "measure", false, "run the instances shared, then naive, each held resident until measured; "+
		"print the memory of each against the ideal, and load times")
	commands = append(commands, cmd)
}

// printOutputs writes each instance's console output; with several
// instances every line carries NAME/I, so interleaved logs stay readable.
func printOutputs(w io.Writer, results []monitor.Result) {
	if len(results) == 1 {
		io.WriteString(w, results[0].Output)
		return
	}
	for _, r := range results {
		prefix := fmt.Sprintf("%s/%d: ", r.Unikernel, r.Instance)
		out := strings.TrimSuffix(r.Output, "\n")
		if out == "" {
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			fmt.Fprintf(w, "%s%s\n", prefix, strings.TrimSuffix(line, "\r"))
		}
	}
}

// runFailures reports on w every instance that failed or exited non-zero,
// and returns an error (exit status 1) if there was any.
func runFailures(w io.Writer, results []monitor.Result) error {
	failed, nonzero := 0, 0
	for _, r := range results {
		switch {
		case r.Error != "":
			failed++
			fmt.Fprintf(w, "unipool: instance %d of %s: %s\n", r.Instance, r.Unikernel, r.Error)
		case r.ExitCode != 0:
			nonzero++
			fmt.Fprintf(w, "unipool: instance %d of %s: exit code %d\n", r.Instance, r.Unikernel, r.ExitCode)
		}
	}
	if failed+nonzero == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d instances failed, %d exited non-zero", failed, len(results), nonzero)
}

// runMeasure prints the memory and load time of the instances loaded
// shared and naive, side by side.
func runMeasure(ctx context.Context, w io.Writer, monName string, uks []monitor.Unikernel, opt monitor.Options, asJSON bool) error {
	switch monName {
	case process.Name:
	case "kvm":
		return runKVMMeasure(ctx, w, uks, opt, asJSON)
	default:
		return fmt.Errorf("--measure: monitor %q cannot be measured", monName)
	}
	rep, err := (&process.Monitor{}).Measure(ctx, uks, opt, []string{monitor.LoadShared, monitor.LoadNaive})
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "load\tinstances\tfailed\thost total\tinstances PSS\tmonitor\tkernel\tof which page tables\tMemAvailable drop\tzero pages\tload mean\tload median\t")
	for _, m := range rep.Modes {
		h := m.Host
		zero := "-"
		if m.Ideals != nil {
			zero = mib(m.Ideals.Zero)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\t%v\t\n", m.Load, m.Instances, m.Failed,
			mib(h.Total), mib(h.Instances), mib(h.Monitor), mib(h.Kernel.Total), mib(h.Kernel.PageTables),
			mib(uint64(max(h.AvailDrop, 0))), zero, m.LoadMean.Round(time.Microsecond), m.LoadMedian.Round(time.Microsecond))
	}
	fmt.Fprintf(tw, "ideal, load-time sharing\t\t\t%s\t\t\t\t\t\t\t\t\t\n", mib(rep.IdealLoadTime))
	fmt.Fprintf(tw, "ideal\t\t\t%s\t\t\t\t\t\t\t\t\t\n", mib(rep.Ideal))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "host total = instances PSS + the monitor process's PSS + kernel (page tables, kernel stacks, slab);")
	fmt.Fprintln(w, "ideal = every distinct non-zero page once; load-time ideal = as-loaded image pages once, written and run-time pages in full")
	if len(rep.Modes) == 2 && rep.Modes[0].Host.Total > 0 {
		s, n := rep.Modes[0], rep.Modes[1]
		fmt.Fprintf(w, "naive/shared host memory %.2fx; naive/shared median load time %.2fx\n",
			float64(n.Host.Total)/float64(s.Host.Total), float64(n.LoadMedian)/float64(max(s.LoadMedian, 1)))
	}
	for _, m := range rep.Modes {
		if m.Failed > 0 {
			return fmt.Errorf("%d %s instances failed (run without --measure to see why)", m.Failed, m.Load)
		}
	}
	return nil
}

func kib(b uint64) string { return fmt.Sprintf("%.1f KiB", float64(b)/1024) }
func mib(b uint64) string { return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20)) }

// pidList renders pids compactly: runs of consecutive pids as ranges.
func pidList(pids []int) string {
	var b strings.Builder
	for i := 0; i < len(pids); {
		j := i
		for j+1 < len(pids) && pids[j+1] == pids[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j > i {
			fmt.Fprintf(&b, "%d-%d", pids[i], pids[j])
		} else {
			fmt.Fprintf(&b, "%d", pids[i])
		}
		i = j + 1
	}
	return b.String()
}
