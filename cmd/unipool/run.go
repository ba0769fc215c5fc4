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
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipool/unipool/internal/api"
	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/measure"
	"github.com/unipool/unipool/internal/monitor"
	_ "github.com/unipool/unipool/internal/monitor/microvm"
	"github.com/unipool/unipool/internal/monitor/process"
	"github.com/unipool/unipool/internal/pool"
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
its own random page, 24; boot info with TLS and the stack each at its own
page of one random 2 MiB chunk, 24, of which ~9 are left to whoever knows
the other; JSON: entropy_bits, entropy_bits_given_another_base,
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
host pays for them (internal/measure): the instances, the monitor process and
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
	monitor.LeanGC() // this process is the monitor from here on
	uks, opt, err := f.unikernels(names)
	if err != nil {
		return err
	}
	// The blob files stay open until every instance is built (the
	// instances' mappings keep them then; opt.Built below) or the run
	// ends; the descriptions go once the monitor has planned their
	// instances.
	closeBlobs := sync.OnceFunc(launch.Closer(uks))
	defer closeBlobs()
	mon, err := monitor.Open(f.monitor)
	if err != nil {
		return err
	}
	p := &runPrinter{out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr(), json: f.json, total: len(uks) * max(opt.N, 1)}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	defer runInterrupts(cancel, p)()
	if f.measure {
		modes := []string{monitor.LoadShared, monitor.LoadNaive}
		if cmd.Flags().Changed("load") {
			modes = []string{f.load}
		}
		return runMeasure(ctx, cmd.OutOrStdout(), f.monitor, uks, opt, f.json, modes)
	}
	if opt.Hold > 0 {
		// Say what is held, so other tools can measure it meanwhile.
		hold := opt.Hold
		opt.Resident = func(pids []int) {
			p.line(fmt.Sprintf("unipool: holding %d finished instances resident for %v (pids %s)", len(pids), hold, pidList(pids)))
			select {
			case <-time.After(hold):
			case <-ctx.Done():
			}
		}
	}
	opt.Finished = func(_ int, r monitor.Result) { p.result(r) }
	opt.DropResults = true
	opt.Built = closeBlobs
	if _, err := mon.Run(ctx, uks, opt); err != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.opened {
			p.closeList()
		}
		return err
	}
	return p.close()
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

// unikernels resolves the names and images to run, and the options.
func (f *runFlags) unikernels(names []string) ([]monitor.Unikernel, monitor.Options, error) {
	opt := f.opt
	if len(names) == 0 && len(f.images) == 0 {
		return nil, opt, fmt.Errorf("name a unikernel (`unipool pool ls` lists them) or give --image FILE")
	}
	if f.mem != "" {
		n, err := poolParseSize(f.mem)
		if err != nil {
			return nil, opt, fmt.Errorf("--mem: %w", err)
		}
		opt.MemSize = n
	}
	opt.Load = f.load
	var uks []monitor.Unikernel
	if len(names) > 0 {
		d := f.dir
		if d == "" {
			var err error
			if d, err = pool.DefaultDir(); err != nil {
				return nil, opt, err
			}
		}
		resolve := launch.Resolve
		if opt.Snapshot {
			resolve = launch.ResolveSnapshots
		}
		if f.monitor == process.Name && !f.measure {
			// Every check made now, each description read again when the
			// monitor needs it (monitor.Unikernel.Describe): a fleet's
			// descriptions are never all in the monitor at once.
			resolve = func(dir string, names []string, cmdline string) ([]monitor.Unikernel, error) {
				return launch.ResolveLater(dir, names, cmdline, opt.Snapshot)
			}
		}
		var err error
		if uks, err = resolve(d, names, f.cmdline); err != nil {
			return nil, opt, err
		}
	}
	for _, img := range f.images {
		uks = append(uks, monitor.Unikernel{Name: filepath.Base(img), Image: img, Cmdline: f.cmdline})
	}
	return uks, opt, nil
}

// runInterrupts makes the first SIGINT or SIGTERM cancel the run (the
// monitor stops every instance and reports each), and a second one end
// unipool at once, between two of the printer's lines. It returns the
// function that stops listening.
func runInterrupts(cancel context.CancelFunc, p *runPrinter) (stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	finished := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			p.interrupted()
			cancel()
		case <-finished:
			return
		}
		select {
		case <-sigs:
			p.abort()
		case <-finished:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(finished)
	}
}

// runPrinter streams run's results as the monitor hands them over: every
// write is whole lines, made under one lock, so an interrupt never cuts a
// line, and nothing of an instance is kept once it is printed.
type runPrinter struct {
	mu    sync.Mutex
	out   io.Writer // console output, or the JSON list
	errw  io.Writer // failures and summaries
	json  bool
	total int // instances the run starts

	opened    bool // --json: the list's "[" is out
	closed    bool
	intr      bool // an interrupt cancelled the run
	ended     int
	failed    int
	nonzero   int
	cancelled int // ended by the interrupt ...
	unstarted int // ... of which before they started
}

// result prints one instance's output (or JSON element) and, unless the
// interrupt explains it, its failure.
func (p *runPrinter) result(r monitor.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.ended++
	if p.json {
		p.element(r)
	} else {
		io.WriteString(p.out, runOutput(r, p.total > 1))
	}
	switch {
	case r.Cancelled:
		p.cancelled++
		if r.PID == 0 {
			p.unstarted++
		}
	case r.Error != "":
		p.failed++
		fmt.Fprintf(p.errw, "unipool: instance %d of %s: %s\n", r.Instance, r.Unikernel, r.Error)
	case r.ExitCode != 0:
		p.nonzero++
		fmt.Fprintf(p.errw, "unipool: instance %d of %s: exit code %d\n", r.Instance, r.Unikernel, r.ExitCode)
	}
}

// element writes r as the next element of the JSON list, in the layout
// the whole list would have had with two-space indents.
func (p *runPrinter) element(r monitor.Result) {
	js, err := json.MarshalIndent(r, "  ", "  ")
	if err != nil {
		js = []byte(fmt.Sprintf("{\"error\": %q}", err.Error()))
	}
	sep := ",\n  "
	if !p.opened {
		sep, p.opened = "[\n  ", true
	}
	p.out.Write(append([]byte(sep), js...))
}

// runOutput is an instance's console output, every line prefixed with
// NAME/I when several instances run.
// An instance stopped mid-line (cancelled, killed, failed) has its last
// line ended, marked when the interrupt cut it, so the next line starts on
// a line of its own.
func runOutput(r monitor.Result, prefixed bool) string {
	out := r.Output
	if out != "" && !strings.HasSuffix(out, "\n") && (prefixed || r.Error != "" || r.ExitCode != 0) {
		if r.Cancelled {
			out += " [cut: cancelled]"
		}
		out += "\n"
	}
	if !prefixed || out == "" {
		return out
	}
	// A guest's serial line ends may be "\r\n" (Unikraft's); prefixed
	// lines end in "\n" alone.
	out = strings.ReplaceAll(out, "\r\n", "\n")
	prefix := fmt.Sprintf("%s/%d: ", r.Unikernel, r.Instance)
	return prefix + strings.ReplaceAll(strings.TrimSuffix(out, "\n"), "\n", "\n"+prefix) + "\n"
}

// line writes one line to stderr between results.
func (p *runPrinter) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.errw, s)
}

func (p *runPrinter) interrupted() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.intr = true
}

// close ends the JSON list and returns the run's summary as an error (exit
// status 1) if any instance failed, exited non-zero or was cancelled.
func (p *runPrinter) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeList()
	return p.summary()
}

func (p *runPrinter) closeList() {
	if p.closed {
		return
	}
	p.closed = true
	switch {
	case p.json && p.opened:
		io.WriteString(p.out, "\n]\n")
	case p.json:
		io.WriteString(p.out, "[]\n")
	}
}

func (p *runPrinter) summary() error {
	if p.cancelled > 0 || p.intr {
		return fmt.Errorf("interrupted: %d of %d instances cancelled (%d before they started, %d while running); of the %d that ended before, %d failed, %d exited non-zero",
			p.cancelled, p.total, p.unstarted, p.cancelled-p.unstarted, p.ended-p.cancelled, p.failed, p.nonzero)
	}
	if p.failed+p.nonzero == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d instances failed, %d exited non-zero", p.failed, p.ended, p.nonzero)
}

// abort ends unipool at once (a second interrupt), after the line being
// written, with the summary so far. The process monitor's instances die
// with it (PTRACE_O_EXITKILL); the kvm monitor's VMs are in this process.
func (p *runPrinter) abort() {
	p.mu.Lock() // held until the exit: no line after this one
	p.closeList()
	fmt.Fprintf(p.errw, "unipool: interrupted twice: stopped at once; %d of %d instances had been reported\n", p.ended, p.total)
	os.Exit(130)
}

// runMeasure prints the memory and load time of the instances loaded
// shared and naive, side by side.
func runMeasure(ctx context.Context, w io.Writer, monName string, uks []monitor.Unikernel, opt monitor.Options, asJSON bool, modes []string) error {
	switch monName {
	case process.Name:
	case "kvm":
		return runKVMMeasure(ctx, w, uks, opt, asJSON, modes)
	default:
		return fmt.Errorf("--measure: monitor %q cannot be measured", monName)
	}
	rep, err := (&process.Monitor{}).Measure(ctx, uks, opt, modes)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "load\tinstances\tfailed\texited non-zero\thost total\tinstances PSS\tmonitor\tkernel\tof which page tables\tMemAvailable drop\tzero pages\tload mean\tload median\t")
	for _, m := range rep.Modes {
		h := m.Host
		zero := "-"
		if m.Ideals != nil {
			zero = mib(m.Ideals.Zero)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\t%v\t\n", m.Load, m.Instances, m.Failed, m.NonZero,
			mib(h.Total), mib(h.Instances), mib(h.Monitor), mib(h.Kernel.Total), mib(h.Kernel.PageTables),
			mib(uint64(max(h.AvailDrop, 0))), zero, m.LoadMean.Round(time.Microsecond), m.LoadMedian.Round(time.Microsecond))
	}
	fmt.Fprintf(tw, "ideal, load-time sharing\t\t\t\t%s\t\t\t\t\t\t\t\t\t\n", mib(rep.IdealLoadTime))
	fmt.Fprintf(tw, "ideal\t\t\t\t%s\t\t\t\t\t\t\t\t\t\n", mib(rep.Ideal))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "host total = instances PSS + the monitor process's PSS + kernel (page tables, kernel stacks, slab);")
	for _, m := range rep.Modes {
		fmt.Fprintln(w, kernelSource(m.Load, m.Host, m.CgroupError))
	}
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

// kernelSource says where a mode's kernel part comes from: what the
// kernel charged the fleet's own memory cgroup, or (where there was none,
// and why) host-wide rises.
func kernelSource(mode string, h measure.Host, cgroupErr string) string {
	if c := h.Cgroup; c != nil {
		return fmt.Sprintf("%s: kernel = charged to the fleet's memory cgroup (v%d) %s + KSM's rmap items %s; the cgroup's anonymous pages %s, page cache it brought in first %s (in no total)",
			mode, c.Version, mib(h.Kernel.Charged), mib(h.Kernel.KSM), mib(c.Anon), mib(c.File))
	}
	return fmt.Sprintf("%s: kernel = host-wide meminfo rises (other processes move them): %s", mode, cgroupErr)
}
