package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/unipool/unipool/internal/api"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
	_ "github.com/unipool/unipool/internal/monitor/microvm"
	"github.com/unipool/unipool/internal/monitor/process"
	"github.com/unipool/unipool/internal/monitorproc"
	"github.com/unipool/unipool/internal/pool"
	"github.com/unipool/unipool/internal/vmmproc"
)

func init() { commands = append(commands, runCmd()) }

// runFlags are run's options.
type runFlags struct {
	dir, monitor, mem, load, cmdline string
	host                             string
	images                           []string
	opt                              monitor.Options
	json, measure                    bool
}

func runCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] NAME...",
		Short: "Run pooled unikernels (or plain images), N instances each",
		Long: `Run starts -n instances of each named unikernel from the pool, or of each
--image (a plain packed/dce ELF image, loaded by copying its segments).

With the process monitor (the default) every instance is a Linux process that
maps each library blob read-only and shared straight from the pool file; its
port I/O, hlt and wrmsr are trapped and emulated, and seccomp kills it on any
system call. The kvm monitor runs every instance as a microVM of one process.

Output is streamed: each instance's console output is printed as soon as
that instance ends, its lines prefixed with NAME/I when more than one
instance runs; --json prints instead a JSON list of per-instance results
(exit code, output, load and run time, library bases, per-instance areas,
entropy_bits of each region's base and of the canary and seed, pid, error,
cancelled, insecure_seed under --seed), one element as each instance ends,
so in the order they end.

Every instance's secrets are drawn from the host CSPRNG, each on its own:
with --aslr the layout (in a random span of a 64 GiB window: the image —
every library and the app — at one random slide, about 22 bits; the heap at
its own random page, 24; the stack at a random page of one random 2 MiB
chunk, 24, the boot info and TLS on its top page (whoever knows one of the
three knows the others); JSON: entropy_bits, entropy_bits_given_another_base,
entropy_bits_given_another_group, aslr_groups), and always the stack canary
(56 bits) and the guest's random seed (64 bits). The guest
clears the canary and the seed from its boot info once taken. --seed makes
them all follow from the seed instead, for reproducible tests: it says so
on stderr and in every --json result (insecure_seed).

Exit status: 0 when every instance wrote exit code 0 to port 0x501; 1 when
any instance exited with another code or failed (a fault, a system call, a
timeout, a halt without an exit code, a load error, a blob that does not
match its digest), each failure reported on stderr as it happens. An
interrupt (SIGINT, SIGTERM) stops every instance; the instances it cancelled
are counted in one line, not reported one by one. A second interrupt ends
unipool at once.

--measure runs the instances twice, loaded shared and then
naive (only the --load mode when --load is given), holds each set resident once all have finished, and prints what the
host pays for them (internal/measure): the instances, the monitor process (with
the process monitor, each mode's a unipool-vmm process, as run's own; with kvm,
this one) and
the kernel (page tables, kernel stacks, slab) apart, the drop of MemAvailable,
the ideals from the page census (every distinct non-zero page once; and for
load-time sharing, the as-loaded image pages once, every written page in
full), and the load time per instance.`,
		RunE: func(cmd *cobra.Command, names []string) error { return runRun(cmd, &f, names) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "pool", "", "pool directory (default $"+pool.EnvPool+", else ~/.local/share/unipool/pool)")
	fl.StringVar(&f.monitor, "monitor", process.Name, "monitor: process or kvm")
	fl.IntVarP(&f.opt.N, "instances", "n", 1, "instances of each unikernel")
	fl.StringVar(&f.mem, "mem", "", "guest heap+stack per instance, e.g. 16M (default: the description's)")
	fl.DurationVar(&f.opt.Timeout, "timeout", 0, "kill an instance still running after this long (0: never)")
	fl.DurationVar(&f.opt.Hold, "hold", 0, "keep finished instances resident this long, then end them (for measuring); "+
		"with --host the daemon holds them after run returns (`unipool ps` shows them resident, `unipool stop ID` releases them)")
	fl.StringVar(&f.load, "load", monitor.LoadShared, "shared: map pool blobs read-only, shared; naive: copy them (the baseline); stock (--image only): map the image file private, demand-paged, as Linux does")
	fl.BoolVar(&f.opt.KSM, "ksm", false, "mark private (and naive) guest memory MADV_MERGEABLE")
	fl.BoolVar(&f.opt.ASLR, "aslr", false, "a random layout, from the host CSPRNG, for every instance: one slide for the image (libraries and app), a base for the heap, a 2 MiB chunk with a page each for boot info (TLS inside) and stack")
	fl.BoolVar(&f.opt.ASLRPerLibrary, "aslr-per-library", false, "--aslr with a base of its own for each library and the app (an address of one tells nothing of another's, beyond the span), "+
		"at the cost of a page-table page and a private page per library; implies --aslr")
	fl.BoolVar(&f.opt.Snapshot, "snapshot", false, "start every instance from its pooled snapshot (`unipool snapshot`) instead of booting it; not with --aslr")
	fl.Uint64Var(&f.opt.Seed, "seed", 0, "reproducible run: every instance's --aslr bases, stack canary and guest seed follow from it, "+
		"which DISABLES the protection (tests only; 0: each drawn from the host CSPRNG)")
	fl.StringVar(&f.cmdline, "cmdline", "", "the guests' command line (default: the description's)")
	fl.StringArrayVar(&f.images, "image", nil, "run a plain ELF image (packed/dce) instead of a pooled name; repeatable")
	fl.BoolVar(&f.json, "json", false, "print the per-instance results as a JSON list")
	fl.StringVar(&f.host, "host", "", "start the instances through the daemon on this socket (`unipool serve`); output and status as without")
	fl.BoolVar(&f.measure, "measure", false, "run the instances shared, then naive (only --load's mode if given), each held resident until measured; "+
		"print the memory of each against the ideal, and load times")
	return cmd
}

// runRun is `unipool run`.
func runRun(cmd *cobra.Command, f *runFlags, names []string) error {
	f.opt.ASLR = f.opt.ASLR || f.opt.ASLRPerLibrary
	if f.opt.Snapshot && f.opt.ASLR {
		return fmt.Errorf("--snapshot with --aslr: %s", monitor.SnapshotFixesLayout)
	}
	if f.opt.Snapshot && len(f.images) > 0 {
		return fmt.Errorf("--snapshot with --image: only pooled unikernels have snapshots")
	}
	if f.opt.Seed != 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "unipool: warning:", loader.SeededWarning)
	}
	if f.host != "" {
		return runHost(cmd, f, names)
	}
	req := vmmproc.RunRequest{Pool: f.dir, Monitor: f.monitor, Names: names, Images: f.images, Cmdline: f.cmdline, Load: f.load,
		N: f.opt.N, Timeout: f.opt.Timeout, Hold: f.opt.Hold, KSM: f.opt.KSM, ASLR: f.opt.ASLR, ASLRPerLibrary: f.opt.ASLRPerLibrary,
		Snapshot: f.opt.Snapshot, Seed: f.opt.Seed, JSON: f.json, Measure: f.measure}
	if f.mem != "" {
		n, err := poolParseSize(f.mem)
		if err != nil {
			return fmt.Errorf("--mem: %w", err)
		}
		req.MemSize = n
	}
	if f.measure {
		req.Modes = []string{monitor.LoadShared, monitor.LoadNaive}
		if cmd.Flags().Changed("load") {
			req.Modes = []string{f.load}
		}
		// The reports stay here, in the CLI (they would cost every
		// monitor process of the lean binary ~0.4 MB of pages); each
		// mode's monitor is a unipool-vmm process, measured from here.
		return monitorproc.RunMeasure(cmd.Context(), req, cmd.OutOrStdout(), cmd.ErrOrStderr())
	}
	// The monitor is the lean binary: this process becomes it (execve:
	// the same pid, command line, output, signals and exit status), so
	// that it pays for the lean binary's pages, not the CLI's.
	exe, err := vmmproc.Executable()
	if err != nil {
		// No unipool-vmm beside this executable: the CLI is the monitor.
		if f.opt.Hold > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "unipool: the monitor runs in this process, the whole CLI's binary pages with it: %v\n", err)
		}
		return vmmproc.RunLocal(cmd.Context(), req, cmd.OutOrStdout(), cmd.ErrOrStderr())
	}
	return vmmproc.ExecRun(exe, req)
}

// runHost is `run --host`: the daemon on that socket starts the instances.
func runHost(cmd *cobra.Command, f *runFlags, names []string) error {
	for _, fl := range []string{"pool", "monitor", "image", "measure"} {
		if cmd.Flags().Changed(fl) {
			return fmt.Errorf("--%s does not go with --host: the daemon has its own pool and monitor", fl)
		}
	}
	opt := f.opt
	if f.mem != "" {
		n, err := poolParseSize(f.mem)
		if err != nil {
			return fmt.Errorf("--mem: %w", err)
		}
		opt.MemSize = n
	}
	req := api.StartRequest{Unikernels: names, Count: opt.N, Cmdline: f.cmdline, MemSize: opt.MemSize,
		TimeoutMS: opt.Timeout.Milliseconds(), Load: f.load, ASLR: opt.ASLR, ASLRPerLibrary: opt.ASLRPerLibrary, KSM: opt.KSM, Seed: opt.Seed,
		HoldMS: opt.Hold.Milliseconds(), Snapshot: opt.Snapshot}
	if opt.Timeout > 0 && req.TimeoutMS == 0 {
		req.TimeoutMS = 1
	}
	if opt.Hold > 0 && req.HoldMS == 0 {
		req.HoldMS = 1
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runOnHost(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), f.host, req, f.json)
}
