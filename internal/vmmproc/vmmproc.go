// Package vmmproc is the monitor process of `bench memory` / `bench tlb`:
// one mode's fleet run held (or under churn) by a process of its own,
// which tells the bench what it holds in JSON lines on its stdout. It is
// what the lean monitor binary `unipool-vmm` (cmd/unipool-vmm) runs: its
// import graph holds the monitors and what they need to load a pooled
// unikernel (launch, loader, desc, measure's guest ranges), none of the
// CLI's (cobra, plots, the corpus and its embedded guest sources, the
// daemon, the registry), so the pages of its binary that a host pays for
// each monitor process are the monitor's own. Package bench starts it and
// reads its messages; this package never imports bench.
package vmmproc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/measure"
	"github.com/unipool/unipool/internal/monitor"
	_ "github.com/unipool/unipool/internal/monitor/microvm" // monitor "kvm"
	"github.com/unipool/unipool/internal/monitor/process"
)

// Spec is what a monitor process runs: one mode's fleet.
type Spec struct {
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
	// N, MemSize and Seed are `unipool run`'s -n, --mem and --seed (`run
	// --measure` runs its fleets by specs): 0, one instance of each
	// unikernel, the descriptions' memory size and the host CSPRNG's
	// secrets.
	N       int    `json:"n,omitempty"`
	MemSize uint64 `json:"mem_size,omitempty"`
	Seed    uint64 `json:"seed,omitempty"`
}

// Mode is how a mode of the bench runs its instances (the fields of
// bench.Mode a monitor needs, under the same JSON names).
type Mode struct {
	Name           string
	Load           string // monitor.LoadShared / LoadNaive / LoadStock
	KSM            bool
	ASLR           bool
	ASLRPerLibrary bool
	Snapshot       bool
}

// SpecUnikernel is one unikernel of a Spec.
type SpecUnikernel struct {
	Name    string `json:"name"`
	Image   string `json:"image,omitempty"`
	Cmdline string `json:"cmdline"`
	Expect  string `json:"expect"` // the line it must print
}

// Churn says how instances came and went in `bench memory --arrivals`:
// arrivals at Rate per second (a Poisson process) for Duration seconds,
// each instance running its request, then staying resident (warm) for
// Lifetime seconds before it ends, as a FaaS host keeps a finished
// function instance around for the next request.
type Churn struct {
	Rate     float64 `json:"arrivals_per_s"`
	Lifetime float64 `json:"lifetime_s"`
	Duration float64 `json:"duration_s"`
}

// Outcome is what the monitor process tells of one instance.
type Outcome struct {
	Unikernel string        `json:"unikernel"`
	OK        bool          `json:"ok"` // exit code 0, no error, its expected line printed
	Error     string        `json:"error,omitempty"`
	LoadTime  time.Duration `json:"load_time_ns"`
}

// Message is one line the monitor process writes on its stdout.
type Message struct {
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

// Passed says whether an instance's result is a pass: exit code 0, no
// error, and expect among what it printed.
func Passed(r monitor.Result, expect string) bool {
	return r.ExitCode == 0 && r.Error == "" && strings.Contains(r.Output, expect)
}

// Run is the monitor process's side: resolve the spec's unikernels (their
// descriptions and verified blobs are the monitor's memory), run them
// held, write {"resident": pids} on out once they are (the kvm monitor:
// its own pid and "guests", the guests' ranges in its address space),
// keep them until in says anything or ends (or, with hold > 0, for hold),
// then write the outcomes. Like `unipool run`, it keeps no instance's
// output once its outcome is known.
func Run(ctx context.Context, spec Spec, hold time.Duration, in io.Reader, out io.Writer) error {
	monitor.LeanGC() // as `unipool run`'s monitor does
	enc := json.NewEncoder(out)
	fail := func(err error) error {
		enc.Encode(Message{Error: err.Error()})
		return err
	}
	var uks []monitor.Unikernel
	closeBlobs := func() {}
	// The named unikernels from the pool, each unikernel with an Image
	// from that file (`run --measure` may give both).
	var names []string
	for _, u := range spec.Unikernels {
		if u.Image == "" {
			names = append(names, u.Name)
		}
	}
	var named []monitor.Unikernel
	if len(names) > 0 {
		if spec.Pool == "" {
			return fail(fmt.Errorf("spec: unikernels named without a pool"))
		}
		resolve := launch.Resolve
		if spec.Mode.Snapshot {
			resolve = launch.ResolveSnapshots
		}
		if spec.Monitor == process.Name {
			// The process monitor reads each description when it needs
			// it (monitor.Unikernel.Describe), as `unipool run` does;
			// unipool-vmm starts its fleet afresh after resolving it
			// (ReexecAfterResolve).
			resolve = func(dir string, names []string, cmdline string) ([]monitor.Unikernel, error) {
				return resolveNamed(spec, names)
			}
		}
		var err error
		if named, err = resolve(spec.Pool, names, ""); err != nil {
			return fail(err)
		}
		// The verified blob files go once every instance is built (the
		// instances' mappings keep them), as under `unipool run`.
		closeBlobs = sync.OnceFunc(launch.Closer(named))
		defer closeBlobs()
	}
	for _, u := range spec.Unikernels {
		if u.Image == "" {
			uk := named[0]
			named = named[1:]
			uk.Cmdline = u.Cmdline
			uks = append(uks, uk)
		} else {
			uks = append(uks, monitor.Unikernel{Name: u.Name, Image: u.Image, Cmdline: u.Cmdline})
		}
	}
	mon, err := monitor.Open(spec.Monitor)
	if err != nil {
		return fail(err)
	}
	m := spec.Mode
	if spec.Churn != nil && spec.Churn.Rate > 0 {
		return runChurn(ctx, spec, mon, uks, enc)
	}
	var mu sync.Mutex
	n := max(spec.N, 1)
	outcomes := make([]Outcome, len(uks)*n)
	var encErr error
	var guests []measure.GuestRange
	opt := monitor.Options{N: n, Load: m.Load, KSM: m.KSM, ASLR: m.ASLR, ASLRPerLibrary: m.ASLRPerLibrary, Snapshot: m.Snapshot,
		Hold: 24 * time.Hour, Timeout: spec.Timeout, IgnoreFreePageReports: spec.IgnoreFreePageReports, MemSize: spec.MemSize, Seed: spec.Seed,
		DropResults: true,
		Built:       func() { closeBlobs() },
		Finished: func(i int, r monitor.Result) {
			ok := Passed(r, spec.Unikernels[i/n].Expect) // instance i%n of unikernel i/n
			mu.Lock()
			outcomes[i] = Outcome{Unikernel: r.Unikernel, OK: ok, Error: r.Error, LoadTime: r.LoadTime}
			mu.Unlock()
		},
		Guests: func(g monitor.HeldGuests) { guests = measure.GuestRanges(g) },
		Resident: func(pids []int) {
			mu.Lock()
			encErr = enc.Encode(Message{Resident: pids, Guests: guests})
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
	return enc.Encode(Message{Outcomes: outcomes, Done: true})
}

// runChurn runs the spec's churn (ChurnArrivals): it says {"arriving":
// true} as the arrivals start, then tells of every arrival as it becomes
// resident ({"arrival": i, "resident": pids, "guests": ranges}) and ends
// ({"ended": i}), then the outcomes.
func runChurn(ctx context.Context, spec Spec, mon monitor.Monitor, uks []monitor.Unikernel, enc *json.Encoder) error {
	var mu sync.Mutex
	var encErr error
	send := func(msg Message) {
		mu.Lock()
		defer mu.Unlock()
		if err := enc.Encode(msg); err != nil && encErr == nil {
			encErr = err
		}
	}
	var outcomes []Outcome
	// The fleet is resolved: the arrivals start now (the bench's clock).
	send(Message{Arriving: true})
	ChurnArrivals(ctx, mon, uks, spec.Mode, *spec.Churn, spec.Timeout, spec.IgnoreFreePageReports, ChurnEvents{
		Resident: func(id int, pids []int, g monitor.HeldGuests) {
			var ranges []measure.GuestRange
			if g != nil {
				ranges = measure.GuestRanges(g)
			}
			send(Message{Arrival: &id, Resident: pids, Guests: ranges})
		},
		Ended: func(id int) { send(Message{Ended: &id}) },
		Finished: func(id int, rs []monitor.Result, err error) {
			u := spec.Unikernels[id%len(spec.Unikernels)]
			o := Outcome{Unikernel: u.Name}
			switch {
			case err != nil:
				o.Error = err.Error()
			case len(rs) == 0:
				o.Error = "no result"
			default:
				r := rs[0]
				o.OK, o.Error, o.LoadTime = Passed(r, u.Expect), r.Error, r.LoadTime
			}
			mu.Lock()
			outcomes = append(outcomes, o)
			mu.Unlock()
		}})
	if encErr != nil {
		return encErr
	}
	return enc.Encode(Message{Outcomes: outcomes, Done: true})
}

// ReadSpec reads a spec file (WriteSpec's).
func ReadSpec(path string) (Spec, error) {
	var s Spec
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, &s)
	}
	if err != nil {
		return s, fmt.Errorf("spec %s: %w", path, err)
	}
	return s, nil
}

// WriteSpec writes spec to path (its directory made if need be).
func WriteSpec(path string, spec Spec) error {
	data, err := json.MarshalIndent(spec, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
