package bench

// The monitor as a process of its own. `bench memory` used to run the
// process monitor inside the bench process and count that process's PSS
// growth as the monitor's: the growth also held whatever the bench's own
// heap and the Go runtime did meanwhile (the census of the mode before,
// samples, GC timing), and moved by more than 10 MiB between runs of one
// fleet. Now each mode's monitor is a child process (`unipool bench
// monitor-process`) started in the mode's memory cgroup, running the
// fleet as `unipool run --hold` does, and the monitor column is that
// process's whole PSS: what the host pays for it. The bench only reads
// /proc.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/measure"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/monitor/process"
)

// MonitorSpec is what a monitor process runs: one mode's fleet.
type MonitorSpec struct {
	Monitor string `json:"monitor"`
	Mode    Mode   `json:"mode"`
	// Pool is the pool the unikernels are named in; empty for a mode that
	// runs the images of a layout (SpecUnikernel.Image).
	Pool                  string          `json:"pool,omitempty"`
	Unikernels            []SpecUnikernel `json:"unikernels"`
	IgnoreFreePageReports bool            `json:"ignore_free_page_reports,omitempty"`
	Timeout               time.Duration   `json:"timeout_ns"`
	// Churn, if set, runs the fleet under churn (`bench memory
	// --arrivals`) instead of holding it all at once.
	Churn *Churn `json:"churn,omitempty"`
}

// SpecUnikernel is one unikernel of a MonitorSpec.
type SpecUnikernel struct {
	Name    string `json:"name"`
	Image   string `json:"image,omitempty"`
	Cmdline string `json:"cmdline"`
	Expect  string `json:"expect"` // the line it must print
}

// Outcome is what the monitor process tells of one instance.
type Outcome struct {
	Unikernel string        `json:"unikernel"`
	OK        bool          `json:"ok"` // exit code 0, no error, its expected line printed
	Error     string        `json:"error,omitempty"`
	LoadTime  time.Duration `json:"load_time_ns"`
}

// monitorMessage is one line the monitor process writes on its stdout.
type monitorMessage struct {
	Resident []int `json:"resident,omitempty"` // the fleet is held: the instance processes
	// Guests, with Resident, are the guests' ranges in the monitor
	// process, for a monitor that holds its guests in its own memory (kvm:
	// Resident is then the monitor process itself).
	Guests   []measure.GuestRange `json:"guests,omitempty"`
	Outcomes []Outcome            `json:"outcomes,omitempty"`
	// Arrival, under churn, is the arrival Resident (and Guests) are of;
	// Ended is an arrival that has ended.
	Arrival *int `json:"arrival,omitempty"`
	Ended   *int `json:"ended,omitempty"`
	// Arriving, under churn, says the fleet is resolved and the arrivals
	// start.
	Arriving bool   `json:"arriving,omitempty"`
	Done     bool   `json:"done,omitempty"` // the fleet has ended: Outcomes are every instance's
	Error    string `json:"error,omitempty"`
}

// specFor is what mode m's monitor process runs of fleet.
func specFor(fleet *Fleet, m Mode, monitorName string, o MemoryOptions) MonitorSpec {
	s := MonitorSpec{Monitor: monitorName, Mode: m, IgnoreFreePageReports: o.IgnoreFreePageReports, Timeout: 5 * time.Minute}
	if m.Layout == "" {
		s.Pool = fleet.poolFor(m)
	}
	for i, u := range fleet.Corpus.Unikernels {
		su := SpecUnikernel{Name: u.Name, Cmdline: u.Input, Expect: u.Expect}
		if m.Layout == "" {
			su.Name = fleet.Names[i]
		} else {
			su.Image = fleet.Images[m.Layout][i]
		}
		s.Unikernels = append(s.Unikernels, su)
	}
	return s
}

// RunMonitorProcess is the monitor process's side (`unipool bench
// monitor-process`): resolve the spec's unikernels (their descriptions
// and verified blobs are the monitor's memory), run them held, write
// {"resident": pids} on out once they are (the kvm monitor: its own pid
// and "guests", the guests' ranges in its address space), keep them until in says
// anything or ends (or, with hold > 0, for hold), then write the
// outcomes. Like `unipool run`, it keeps no instance's output once its
// outcome is known.
func RunMonitorProcess(ctx context.Context, spec MonitorSpec, hold time.Duration, in io.Reader, out io.Writer) error {
	monitor.LeanGC() // as `unipool run`'s monitor does
	enc := json.NewEncoder(out)
	fail := func(err error) error {
		enc.Encode(monitorMessage{Error: err.Error()})
		return err
	}
	var uks []monitor.Unikernel
	closeBlobs := func() {}
	if spec.Pool != "" {
		resolve := launch.Resolve
		if spec.Mode.Snapshot {
			resolve = launch.ResolveSnapshots
		}
		if spec.Monitor == process.Name {
			// The process monitor reads each description when it needs
			// it (monitor.Unikernel.Describe), as `unipool run` does.
			resolve = func(dir string, names []string, cmdline string) ([]monitor.Unikernel, error) {
				return launch.ResolveLater(dir, names, cmdline, spec.Mode.Snapshot)
			}
		}
		names := make([]string, len(spec.Unikernels))
		for i, u := range spec.Unikernels {
			names[i] = u.Name
		}
		var err error
		if uks, err = resolve(spec.Pool, names, ""); err != nil {
			return fail(err)
		}
		for i := range uks {
			uks[i].Cmdline = spec.Unikernels[i].Cmdline
		}
		// The verified blob files go once every instance is built (the
		// instances' mappings keep them), as under `unipool run`.
		closeBlobs = sync.OnceFunc(launch.Closer(uks))
		defer closeBlobs()
	} else {
		for _, u := range spec.Unikernels {
			uks = append(uks, monitor.Unikernel{Name: u.Name, Image: u.Image, Cmdline: u.Cmdline})
		}
	}
	mon, err := monitor.Open(spec.Monitor)
	if err != nil {
		return fail(err)
	}
	m := spec.Mode
	if spec.Churn != nil && spec.Churn.Rate > 0 {
		return churnMonitorProcess(ctx, spec, mon, uks, enc)
	}
	var mu sync.Mutex
	outcomes := make([]Outcome, len(uks))
	var encErr error
	var guests []measure.GuestRange
	opt := monitor.Options{N: 1, Load: m.Load, KSM: m.KSM, ASLR: m.ASLR, ASLRPerLibrary: m.ASLRPerLibrary, Snapshot: m.Snapshot,
		Hold: 24 * time.Hour, Timeout: spec.Timeout, IgnoreFreePageReports: spec.IgnoreFreePageReports,
		DropResults: true,
		Built:       func() { closeBlobs() },
		Finished: func(i int, r monitor.Result) {
			ok := r.ExitCode == 0 && r.Error == "" && containsLine(r.Output, spec.Unikernels[i].Expect)
			mu.Lock()
			outcomes[i] = Outcome{Unikernel: r.Unikernel, OK: ok, Error: r.Error, LoadTime: r.LoadTime}
			mu.Unlock()
		},
		Guests: func(g monitor.HeldGuests) { guests = measure.GuestRanges(g) },
		Resident: func(pids []int) {
			mu.Lock()
			encErr = enc.Encode(monitorMessage{Resident: pids, Guests: guests})
			mu.Unlock()
			if hold > 0 {
				select {
				case <-time.After(hold):
				case <-ctx.Done():
				}
				return
			}
			// Any line, or the end of the input (the bench went away),
			// ends the hold.
			bufio.NewReader(in).ReadString('\n')
		}}
	if _, err := mon.Run(ctx, uks, opt); err != nil {
		return fail(err)
	}
	if encErr != nil {
		return encErr
	}
	return enc.Encode(monitorMessage{Outcomes: outcomes, Done: true})
}

// churnMonitorProcess runs the spec's churn (churnArrivals): it says
// {"arriving": true} as the arrivals start, then tells of every arrival as it becomes resident ({"arrival": i, "resident":
// pids, "guests": ranges}) and ends ({"ended": i}), then the outcomes.
func churnMonitorProcess(ctx context.Context, spec MonitorSpec, mon monitor.Monitor, uks []monitor.Unikernel, enc *json.Encoder) error {
	var mu sync.Mutex
	var encErr error
	send := func(msg monitorMessage) {
		mu.Lock()
		defer mu.Unlock()
		if err := enc.Encode(msg); err != nil && encErr == nil {
			encErr = err
		}
	}
	var outcomes []Outcome
	// The fleet is resolved: the arrivals start now (the bench's clock).
	send(monitorMessage{Arriving: true})
	churnArrivals(ctx, mon, uks, spec.Mode, *spec.Churn, spec.Timeout, spec.IgnoreFreePageReports, churnEvents{
		resident: func(id int, pids []int, g monitor.HeldGuests) {
			var ranges []measure.GuestRange
			if g != nil {
				ranges = measure.GuestRanges(g)
			}
			send(monitorMessage{Arrival: &id, Resident: pids, Guests: ranges})
		},
		ended: func(id int) { send(monitorMessage{Ended: &id}) },
		finished: func(id int, rs []monitor.Result, err error) {
			u := spec.Unikernels[id%len(spec.Unikernels)]
			o := Outcome{Unikernel: u.Name}
			switch {
			case err != nil:
				o.Error = err.Error()
			case len(rs) == 0:
				o.Error = "no result"
			default:
				r := rs[0]
				o.OK, o.Error, o.LoadTime = r.ExitCode == 0 && r.Error == "" && containsLine(r.Output, u.Expect), r.Error, r.LoadTime
			}
			mu.Lock()
			outcomes = append(outcomes, o)
			mu.Unlock()
		}})
	if encErr != nil {
		return encErr
	}
	return enc.Encode(monitorMessage{Outcomes: outcomes, Done: true})
}

// monitorProcess is a running monitor process, seen from the bench.
type monitorProcess struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *json.Decoder
}

// Pid is the monitor process.
func (p *monitorProcess) Pid() int { return p.cmd.Process.Pid }

// startMonitorProcess writes spec to specPath (kept: `unipool bench
// monitor-process --spec FILE --hold D` runs the same monitor again, e.g.
// under an independent cross-check) and starts exe (a copy of this
// binary: monitorExecutable) on it; start starts the command (in the
// mode's memory cgroup).
func startMonitorProcess(exe, specPath string, spec MonitorSpec, log io.Writer, start func(*exec.Cmd) error) (*monitorProcess, error) {
	data, err := json.MarshalIndent(spec, "", " ")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(specPath), 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := os.WriteFile(specPath, data, 0o644); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cmd := exec.Command(exe, "bench", "monitor-process", "--spec", specPath)
	cmd.Stderr = log
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := start(cmd); err != nil {
		return nil, fmt.Errorf("bench: start the monitor process: %w", err)
	}
	return &monitorProcess{cmd: cmd, in: in, out: json.NewDecoder(out)}, nil
}

// next reads the monitor process's next message.
func (p *monitorProcess) next() (monitorMessage, error) {
	var msg monitorMessage
	if err := p.out.Decode(&msg); err != nil {
		return msg, fmt.Errorf("bench: the monitor process (pid %d): %w", p.Pid(), err)
	}
	if msg.Error != "" {
		return msg, fmt.Errorf("bench: the monitor process: %s", msg.Error)
	}
	return msg, nil
}

// release ends the hold; finish waits for the outcomes and the process's
// end (a process that held nothing, every instance failed, sends them at
// once).
func (p *monitorProcess) release() { p.in.Write([]byte("release\n")) }

func (p *monitorProcess) finish() ([]Outcome, error) {
	p.in.Close()
	msg, err := p.next()
	for err == nil && !msg.Done {
		msg, err = p.next()
	}
	werr := p.cmd.Wait()
	if err != nil {
		return nil, err
	}
	if werr != nil {
		return nil, fmt.Errorf("bench: the monitor process: %w", werr)
	}
	return msg.Outcomes, nil
}

// kill ends the monitor process (and with it its instances) after a
// failure.
func (p *monitorProcess) kill() {
	p.cmd.Process.Kill()
	p.in.Close()
	p.cmd.Wait()
}

// monitorExecutable copies this binary into dir for the monitor
// processes to run. A copy, so that no page of the monitor's binary is
// shared with the bench process (which maps the original): its PSS is
// then what a host that runs only the monitor pays for it, as `unipool
// run` alone would (the file pages of a binary are split among the
// processes that map them). The caller removes it.
func monitorExecutable(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	src, err := os.Open(self)
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	defer src.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	dst, err := os.CreateTemp(dir, "monitor-"+strings.TrimSuffix(filepath.Base(self), ".test")+"-*")
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	_, err = io.Copy(dst, src)
	if err == nil {
		err = dst.Chmod(0o755)
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst.Name())
		return "", fmt.Errorf("bench: copy %s: %w", self, err)
	}
	return dst.Name(), nil
}
