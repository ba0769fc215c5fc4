package vmmproc

// `unipool run` without --host: the CLI parses and checks its flags, then
// becomes the lean binary (ExecRun: execve, the same process and command
// line, its output, signals and exit status) so that the monitor process
// pays for the lean binary's pages, not the CLI's. RunLocal is what it
// runs (and what the CLI runs itself when no unipool-vmm sits beside it).

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
	"time"

	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/monitor/process"
	"github.com/unipool/unipool/internal/pool"
)

// RunRequestEnv names the descriptor ExecRun hands the lean binary its
// RunRequest in (JSON in a memfd: no limit on its size, unlike an
// argument's 128 KiB).
const RunRequestEnv = "UNIPOOL_RUN_REQUEST_FD"

// ExecRun makes this process the lean binary exe running req (RunLocal),
// with this process's command line and environment (RunRequestEnv added):
// the same pid, output, signals and exit status. It returns only if the
// exec failed.
func ExecRun(exe string, req RunRequest) error {
	return fmt.Errorf("exec %s: %w", exe, execWithJSON(exe, "unipool-run-request", RunRequestEnv, req))
}

// TakeRunRequest is the RunRequest ExecRun handed this process, if any
// (ok): read from its descriptor, which it closes, and RunRequestEnv
// unset.
func TakeRunRequest() (req RunRequest, ok bool, err error) {
	ok, err = takeJSON(RunRequestEnv, "run request", &req)
	return req, ok, err
}

// RunRequest is a `unipool run` without --host, its flags parsed and
// checked by the CLI.
type RunRequest struct {
	Pool           string        `json:"pool,omitempty"` // "" : pool.DefaultDir
	Monitor        string        `json:"monitor"`
	Names          []string      `json:"names,omitempty"`
	Images         []string      `json:"images,omitempty"`
	Cmdline        string        `json:"cmdline,omitempty"`
	Load           string        `json:"load"`
	N              int           `json:"n"`
	MemSize        uint64        `json:"mem_size,omitempty"`
	Timeout        time.Duration `json:"timeout_ns,omitempty"`
	Hold           time.Duration `json:"hold_ns,omitempty"`
	KSM            bool          `json:"ksm,omitempty"`
	ASLR           bool          `json:"aslr,omitempty"`
	ASLRPerLibrary bool          `json:"aslr_per_library,omitempty"`
	Snapshot       bool          `json:"snapshot,omitempty"`
	Seed           uint64        `json:"seed,omitempty"`
	JSON           bool          `json:"json,omitempty"`
	// Measure (--measure) runs the instances loaded in each of Modes.
	Measure bool     `json:"measure,omitempty"`
	Modes   []string `json:"modes,omitempty"`
}

// RunLocal is `unipool run` without --host: this process is the monitor.
func RunLocal(parent context.Context, req RunRequest, stdout, stderr io.Writer) error {
	monitor.LeanGC() // this process is the monitor from here on
	uks, opt, err := req.Unikernels()
	if err != nil {
		return err
	}
	// The blob files stay open until every instance is built (the
	// instances' mappings keep them then; opt.Built below) or the run
	// ends; the descriptions go once the monitor has planned their
	// instances.
	closeBlobs := sync.OnceFunc(launch.Closer(uks))
	defer closeBlobs()
	mon, err := monitor.Open(req.Monitor)
	if err != nil {
		return err
	}
	p := NewPrinter(stdout, stderr, req.JSON, len(uks)*max(opt.N, 1))
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	defer runInterrupts(cancel, p)()
	if req.Measure {
		// The measure reports stay out of the lean binary.
		return fmt.Errorf("--measure: unipool measures (internal/monitorproc), not %s", Binary)
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

// Unikernels resolves the names and images to run, and the options.
// Under Measure every description is read now, every blob held open
// (launch.Resolve): the caller closes them (launch.Closer).
func (req RunRequest) Unikernels() ([]monitor.Unikernel, monitor.Options, error) {
	opt := monitor.Options{N: req.N, MemSize: req.MemSize, Timeout: req.Timeout, Hold: req.Hold, Load: req.Load, KSM: req.KSM,
		ASLR: req.ASLR, ASLRPerLibrary: req.ASLRPerLibrary, Snapshot: req.Snapshot, Seed: req.Seed}
	if len(req.Names) == 0 && len(req.Images) == 0 {
		return nil, opt, fmt.Errorf("name a unikernel (`unipool pool ls` lists them) or give --image FILE")
	}
	var uks []monitor.Unikernel
	if len(req.Names) > 0 {
		d := req.Pool
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
		if req.Monitor == process.Name && !req.Measure {
			// Every check made now, each description read again when the
			// monitor needs it (monitor.Unikernel.Describe): a fleet's
			// descriptions are never all in the monitor at once.
			resolve = func(dir string, names []string, cmdline string) ([]monitor.Unikernel, error) {
				return launch.ResolveLater(dir, names, cmdline, opt.Snapshot)
			}
		}
		var err error
		if uks, err = resolve(d, req.Names, req.Cmdline); err != nil {
			return nil, opt, err
		}
	}
	for _, img := range req.Images {
		uks = append(uks, monitor.Unikernel{Name: filepath.Base(img), Image: img, Cmdline: req.Cmdline})
	}
	return uks, opt, nil
}

// NewPrinter is a Printer of total instances' results to out (console
// output, or with asJSON a JSON list) and errw (failures, summaries).
func NewPrinter(out, errw io.Writer, asJSON bool, total int) *Printer {
	return &Printer{out: out, errw: errw, json: asJSON, total: total}
}

// Result prints one instance's result (Printer.result).
func (p *Printer) Result(r monitor.Result) { p.result(r) }

// Close ends the output (Printer.close): the run's summary as an error
// if any instance failed, exited non-zero or was cancelled.
func (p *Printer) Close() error { return p.close() }

// runInterrupts makes the first SIGINT or SIGTERM cancel the run (the
// monitor stops every instance and reports each), and a second one end
// unipool at once, between two of the printer's lines. It returns the
// function that stops listening.
func runInterrupts(cancel context.CancelFunc, p *Printer) (stop func()) {
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

// Printer streams run's results as the monitor hands them over: every
// write is whole lines, made under one lock, so an interrupt never cuts a
// line, and nothing of an instance is kept once it is printed. `run
// --host` prints the daemon's results with it too.
type Printer struct {
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
func (p *Printer) result(r monitor.Result) {
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
func (p *Printer) element(r monitor.Result) {
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
func (p *Printer) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.errw, s)
}

func (p *Printer) interrupted() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.intr = true
}

// close ends the JSON list and returns the run's summary as an error (exit
// status 1) if any instance failed, exited non-zero or was cancelled.
func (p *Printer) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeList()
	return p.summary()
}

func (p *Printer) closeList() {
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

func (p *Printer) summary() error {
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
func (p *Printer) abort() {
	p.mu.Lock() // held until the exit: no line after this one
	p.closeList()
	fmt.Fprintf(p.errw, "unipool: interrupted twice: stopped at once; %d of %d instances had been reported\n", p.ended, p.total)
	os.Exit(130)
}

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
