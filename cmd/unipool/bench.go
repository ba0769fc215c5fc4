package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipool/unipool/internal/bench"
	"github.com/unipool/unipool/internal/vmmproc"
)

func init() {
	root := &cobra.Command{Use: "bench", Short: "Measure memory, TLB flushes, CPU and load time of N unikernels per approach"}
	root.AddCommand(benchMemoryCommand(), benchTLBCommand(), benchASLRCommand(), benchPlotCommand(),
		benchStartCommand(), benchDistributeCommand(), benchMonitorProcessCommand())
	commands = append(commands, root)
}

// benchMemoryCommand is `bench memory`: what the host pays for a fleet per mode.
func benchMemoryCommand() *cobra.Command {
	var o bench.MemoryOptions
	var modes string
	mem := &cobra.Command{
		Use:   "memory --count N --out DIR",
		Short: "Memory of N different FaaS unikernels over time, per mode (needs root for KSM and tracefs)",
		Long: `Builds a corpus of N unikernels (--inputs distinct: each its own request, the
expected line from a Go reference), links it packed, dce and aligned, pools the aligned
images, then for each mode starts all N (held resident) and samples every second what
the host pays: the instances' PSS, the monitor's (each mode's monitor runs as a process
of its own: its whole PSS; the kvm monitor's guests live in it, and their pages, read
from outside, are the instances'; --monitor-in-process: the bench process's growth)
and the kernel's part (what the mode's memory cgroup is charged: page tables, kernel
stacks, slab; KVM's structures and second-level page tables), with the drop of MemAvailable and KSM's counters, until
memory is stable (a KSM mode: also after ksmd has finished 3 full scans) or --ksm-wait
runs out. A KSM mode that ran out first says "KSM NOT CONVERGED" (results.json:
ksm_not_converged), and one whose ksmd also scanned other processes' memory names them
(ksm_other_processes): ksmd scans every mergeable process on the host, so an emulated
host's QEMU with mem-merge on makes its full scans take minutes. Then a census of every present page gives the
ideals (all-zero pages apart). Also counts ksmd's CPU time, remote TLB shootdowns by
the process that issued them (tlb:tlb_flush), and load times, and writes
DIR/results.json, DIR/memory.csv, DIR/memory.png (memory over time, one line per mode)
and DIR/pages.png (unique against shareable pages per layout). KSM settings are
restored afterwards, also on failure or interrupt.

With --arrivals RATE the fleet is not held at once: instances arrive at RATE per
second for --duration, each stays resident for --lifetime after its request, and
memory is sampled over the whole time (about RATE × lifetime resident in the steady
state).

Modes (in the order they run; the default is all of them): ` + modeNames() + `.
Also (named in --modes only): ` + extraModeNames() + `; shared-no-packs runs "shared" on
the aligned images linked with --no-packs against a pool and map of their own (the
layout before packs; building the fleet links and pools them too), so --modes
shared,shared-no-packs gives both side by side in one run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd, o, modes)
		},
	}
	addBenchFlags(mem, &o, &modes, 100, 3*time.Minute)
	var lifetime, duration time.Duration
	mem.Flags().Float64Var(&o.Churn.Rate, "arrivals", 0, "churn: instances arriving per second (Poisson), each a request to the next unikernel of the fleet (0: hold the whole fleet at once)")
	mem.Flags().DurationVar(&lifetime, "lifetime", 30*time.Second, "churn: how long a finished instance stays resident (warm) before it ends")
	mem.Flags().DurationVar(&duration, "duration", 0, "churn: how long instances keep arriving (default 3 lifetimes)")
	mem.PreRunE = func(*cobra.Command, []string) error {
		o.Churn.Lifetime, o.Churn.Duration = lifetime.Seconds(), duration.Seconds()
		if o.Churn.Duration == 0 {
			o.Churn.Duration = 3 * o.Churn.Lifetime
		}
		if o.Churn.Rate < 0 || o.Churn.Lifetime <= 0 {
			return fmt.Errorf("--arrivals must be positive and --lifetime more than zero")
		}
		return nil
	}
	return mem
}

// benchMonitorProcessCommand is `bench monitor-process`: one mode's
// monitor, as the lean binary unipool-vmm (which `bench memory` starts
// and measures) runs it, here in the whole CLI (for comparison).
func benchMonitorProcessCommand() *cobra.Command {
	var spec string
	var hold time.Duration
	c := &cobra.Command{
		Use:    "monitor-process --spec FILE",
		Short:  "Run one bench mode's fleet held, as bench memory's monitor process (JSON lines on stdout; a line on stdin ends the hold)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := vmmproc.ReadSpec(spec)
			if err != nil {
				return fmt.Errorf("bench monitor-process: %w", err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			in := cmd.InOrStdin()
			if f, ok := in.(*os.File); ok {
				in = vmmproc.PollableInput(f) // as unipool-vmm reads it
			}
			return vmmproc.Run(ctx, s, hold, in, cmd.OutOrStdout())
		},
	}
	c.Flags().StringVar(&spec, "spec", "", "the mode and its fleet (JSON, written by bench memory)")
	c.Flags().DurationVar(&hold, "hold", 0, "hold the fleet this long (0: until a line or the end of stdin)")
	c.MarkFlagRequired("spec")
	return c
}

// benchTLBCommand is `bench tlb`: TLB flushes per mode and issuer.
func benchTLBCommand() *cobra.Command {
	var t bench.MemoryOptions
	var tmodes string
	tlb := &cobra.Command{
		Use:   "tlb --out DIR",
		Short: "TLB flushes per approach and per issuer for 20 heterogeneous unikernels",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd, t, tmodes)
		},
	}
	addBenchFlags(tlb, &t, &tmodes, 20, 90*time.Second)
	return tlb
}

// benchASLRCommand is `bench aslr`: run time packed, aligned and aligned --aslr.
func benchASLRCommand() *cobra.Command {
	var ao struct {
		count, reps, jobs int
		seed              uint64
		out, monitor      string
	}
	aslr := &cobra.Command{
		Use:   "aslr",
		Short: "Run time of compute-heavy apps as packed (no trampolines), aligned and aligned --aslr, alternated; medians, ratios, every trampoline table's size",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			fleet, err := bench.BuildFleet(ctx, bench.FleetOptions{Count: ao.count, Seed: ao.seed, Work: ao.out, Jobs: ao.jobs,
				Layouts: bench.ASLRFleetLayouts, Log: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			res, err := bench.ASLR(ctx, fleet, ao.reps, ao.monitor, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			res.Print(cmd.OutOrStdout())
			return writeJSON(filepath.Join(ao.out, "aslr.json"), res)
		},
	}
	aslr.Flags().IntVar(&ao.count, "count", 42, "unikernels in the fleet (each compute-heavy app once)")
	aslr.Flags().Uint64Var(&ao.seed, "seed", 1, "corpus seed")
	aslr.Flags().IntVar(&ao.reps, "reps", 7, "runs of each app per mode (alternating)")
	aslr.Flags().IntVar(&ao.jobs, "jobs", 2, "parallel builds and links")
	aslr.Flags().StringVar(&ao.out, "out", "bench-aslr", "output folder (fleet and aslr.json)")
	aslr.Flags().StringVar(&ao.monitor, "monitor", "process", "monitor: process or kvm")
	return aslr
}

// benchPlotCommand is `bench plot`: the plots again from results.json.
func benchPlotCommand() *cobra.Command {
	plot := &cobra.Command{
		Use:   "plot DIR",
		Short: "Draw DIR/memory.png and DIR/pages.png again from DIR/results.json",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := bench.ReadResults(filepath.Join(args[0], "results.json"))
			if err != nil {
				return err
			}
			files, err := res.Plots(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.Join(files, "\n"))
			return nil
		},
	}
	return plot
}

func extraModeNames() string {
	var n []string
	for _, m := range bench.ExtraModes {
		n = append(n, m.Name)
	}
	return strings.Join(n, ", ")
}

func modeNames() string {
	var n []string
	for _, m := range bench.Modes {
		n = append(n, m.Name)
	}
	return strings.Join(n, ", ")
}

func addBenchFlags(c *cobra.Command, o *bench.MemoryOptions, modes *string, count int, wait time.Duration) {
	c.Flags().IntVar(&o.Count, "count", count, "unikernels in the fleet")
	c.Flags().Uint64Var(&o.Seed, "seed", 1, "corpus seed")
	c.Flags().StringVar(&o.Inputs, "inputs", "distinct", "corpus inputs: distinct (each unikernel its own request) or repeated (app.json cases)")
	c.Flags().StringVar(&o.Monitor, "monitor", "process", "monitor: process or kvm")
	c.Flags().StringVar(modes, "modes", modeNames(), "comma-separated modes to run, in order")
	c.Flags().DurationVar(&o.KSMWait, "ksm-wait", wait, "longest a KSM mode waits for ksmd's 3 full scans and memory to be stable")
	c.Flags().IntVar(&o.PagesToScan, "ksm-pages-to-scan", 0, "ksmd pages_to_scan during KSM modes (0: keep the kernel's)")
	c.Flags().StringVar(&o.Out, "out", "bench-out", "output folder")
	c.Flags().StringVar(&o.Work, "work", "", "folder for the corpus, images and pool (default OUT/work)")
	c.Flags().IntVar(&o.Jobs, "jobs", 2, "parallel builds and links")
	c.Flags().BoolVar(&o.Reuse, "reuse", false, "take the fleet an earlier run built in --work as it is (for the emulated KVM host, where building is slow)")
	c.Flags().StringVar(&o.Flavor, "flavor", "unipool", "unipool: unipool's own guests; unikraft: real Unikraft unikernels (`corpus build --flavor unikraft`; needs --monitor kvm to run)")
	c.Flags().IntVar(&o.Configs, "configs", 0, "unikraft: Unikraft configurations of the fleet (default: count / apps)")
	c.Flags().IntVar(&o.AppsPerConfig, "apps-per-config", 0, "unikraft: different apps per configuration (default: all that fit; each is one more make)")
	c.Flags().BoolVar(&o.FleetOnly, "fleet-only", false, "build the fleet in --work (corpus, images, pool) and stop; run again with --reuse")
	c.Flags().BoolVar(&o.IgnoreFreePageReports, "ignore-free-page-reports", false, "the monitor ignores the guests' free-page reports (port 0x503), as one without them would: the same fleet measured without them")
	c.Flags().BoolVar(&o.ModesLayoutsOnly, "modes-layouts-only", false, "link only the layouts --modes run (default: packed, dce and aligned, for the page analysis)")
	c.Flags().Var(negBool{&o.HostWideKernel}, "cgroup", "run each mode's fleet in a memory cgroup of its own and take the kernel part from what the kernel charges it (false: host-wide meminfo rises, which other processes move)")
	c.Flags().Lookup("cgroup").NoOptDefVal = "true"
	c.Flags().BoolVar(&o.InProcessMonitor, "monitor-in-process", false, "run the monitor (process or kvm) inside the bench process and count that process's growth as the monitor's (the figure before the monitor ran as a process of its own: for comparison)")
}

// negBool is a boolean flag that sets *b to its negation.
type negBool struct{ b *bool }

func (n negBool) String() string {
	if n.b == nil {
		return "true"
	}
	return strconv.FormatBool(!*n.b)
}
func (n negBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	*n.b = !v
	return err
}
func (negBool) Type() string { return "bool" }

func runBench(cmd *cobra.Command, o bench.MemoryOptions, modes string) error {
	for _, name := range strings.Split(modes, ",") {
		m, err := bench.ModeByName(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		o.Modes = append(o.Modes, m)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "bench: not root: KSM modes, tracefs and other processes' PSS need root; expect errors")
	}
	// Interrupts cancel the run so that KSM settings are restored.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o.Log = cmd.ErrOrStderr()
	res, err := bench.Memory(ctx, o)
	if err != nil || res == nil { // nil: --fleet-only
		return err
	}
	out := cmd.OutOrStdout()
	res.Table(out)
	fmt.Fprintln(out)
	res.TLBTable(out)
	fmt.Fprintln(out)
	res.PrivateTable(out)
	fmt.Fprintln(out)
	res.RepeatsTable(out, 12)
	fmt.Fprintln(out)
	res.PageTableTable(out)
	fmt.Fprintln(out)
	res.KernelTable(out)
	fmt.Fprintln(out)
	res.PerInstanceTable(out)
	if len(res.Layouts) > 0 {
		fmt.Fprintln(out, "\nloaded pages per layout:")
		sort.Slice(res.Layouts, func(i, j int) bool { return res.Layouts[i].Layout < res.Layouts[j].Layout })
		for _, l := range res.Layouts {
			fmt.Fprintf(out, "  %-8s unique %6d  shareable %6d (same address %6d)  all-zero %6d  total %.1f MiB\n", l.Layout, l.Unique, l.Shareable, l.SameAddr, l.Zero, float64(l.TotalBytes)/(1<<20))
		}
	}
	fmt.Fprintf(out, "\nwrote %s/results.json, memory.csv, memory.png, pages.png\n", o.Out)
	return nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
