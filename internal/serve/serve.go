// Package serve is the host daemon behind `unipool serve`: it owns one
// monitor, starts instances of pooled unikernels as API requests ask, keeps
// each instance's state, console output and exit status, and answers the
// HTTP/JSON API of internal/api on a Unix socket.
//
// Every start request is one batch, run by the monitor in its own
// goroutine; the monitor reports each instance as it starts (with a stop)
// and as it ends. A guest that faults, loops or is killed ends alone: it
// fails, the daemon and the other instances go on.
//
// Limits that protect the host: each instance's console output is capped,
// and the caps of all live and retained instances count against one
// budget (a start that would overrun it is refused, not cut short); every
// instance has a timeout (the daemon's default when the request gives
// none); the number of live instances is bounded, and finished instances
// beyond the retention count are forgotten oldest first.
//
// A start may ask for its instances to stay resident after they end
// (hold_ms, like a warm pool): the monitor keeps the guests' memory and VMs
// until the hold elapses or a stop of one of them releases its group.
package serve

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/unipool/unipool/internal/api"
	"github.com/unipool/unipool/internal/jail"
	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/measure"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/monitor/process"
	"github.com/unipool/unipool/internal/vmmproc"
)

// Config is the daemon's settings (serve's flags).
type Config struct {
	Monitor        string        // monitor name (process, kvm)
	Pool           string        // pool directory
	Version        string        // reported by GET /
	DefaultTimeout time.Duration // an instance's timeout when the request gives none
	ConsoleCap     int           // console bytes kept per instance
	ConsoleBudget  int64         // console bytes over all live and retained instances
	MaxLive        int           // pending + running instances at once
	Retain         int           // finished instances kept for ps/logs
	// VMsPerProcess > 0 runs instances in jails of at most that many
	// (internal/jail): own namespaces, root, cgroup and host uid each.
	VMsPerProcess int
	JailDir       string // jails' directories (default POOL/.jail: on the pool's file system)
	JailUID       int    // first host uid/gid of the jails (each jail its own)
	JailMemory    int64  // each jail's cgroup memory limit in bytes (0: none)
}

// Defaults fills the zero fields of c.
func (c *Config) Defaults() {
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = 5 * time.Minute
	}
	if c.ConsoleCap <= 0 {
		c.ConsoleCap = 1 << 20
	}
	if c.ConsoleBudget <= 0 {
		c.ConsoleBudget = 1 << 30
	}
	if c.MaxLive <= 0 {
		c.MaxLive = 20000
	}
	if c.Retain <= 0 {
		c.Retain = 20000
	}
	if c.JailDir == "" && c.Pool != "" {
		c.JailDir = filepath.Join(c.Pool, ".jail")
	}
	if c.JailUID <= 0 {
		c.JailUID = 900000
	}
}

// Daemon is the instance table and the monitor that fills it.
type Daemon struct {
	cfg Config
	mon monitor.Monitor

	runCtx context.Context // cancelled to kill every instance
	kill   context.CancelFunc
	runs   sync.WaitGroup // batches still running

	mu       sync.Mutex
	closing  bool
	nextID   uint64
	nextB    uint64
	insts    map[uint64]*instance
	batches  map[uint64]*batch
	finished []uint64 // finished instance ids, oldest first (retention)
	used     int64    // console bytes reserved or kept
	live     int      // pending + running
	started  uint64
	loads    []time.Duration // most recent load times (ring)
	loadPos  int
	jails    []*jail.Cgroup // running jails' groups
	jailView string         // where jails find their directories (jail.Expose)
	jailExe  *os.File       // the lean monitor binary a jail's process runs (vmmproc.Executable)
}

// instance is one row of the table.
type instance struct {
	api.Instance
	stop     func()     // set while running
	hold     *holdGroup // set while resident (ended, held by its monitor)
	stopReq  bool       // stop asked for before it started
	reserved int64      // console bytes held against the budget
}

// batch is one start request.
type batch struct {
	ids  []uint64
	left int           // instances not yet finished
	done chan struct{} // closed when every instance has finished
	once sync.Once
}

// finish closes b.done, once.
func (b *batch) finish() { b.once.Do(func() { close(b.done) }) }

// holdGroup is instances held resident together: a monitor run's (the
// batch's, or a jail's share of it) once all of them have ended.
type holdGroup struct {
	once    sync.Once
	release func() // ends the hold
}

// Release ends the group's hold (the monitor then closes its VMs).
func (g *holdGroup) Release() { g.once.Do(g.release) }

// loadWindow is how many recent load times the metrics summarise.
const loadWindow = 10000

// New opens the monitor and returns an idle daemon.
func New(cfg Config) (*Daemon, error) {
	cfg.Defaults()
	mon, err := monitor.Open(cfg.Monitor)
	if err != nil {
		return nil, err
	}
	var view string
	var exe *os.File
	if cfg.VMsPerProcess > 0 {
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("--vms-per-process: jails need root (namespaces, cgroups, host uids)")
		}
		// A jail's process is the lean monitor binary, opened here once:
		// each jail runs it from this descriptor (jail.Command).
		path, err := vmmproc.Executable()
		if err != nil {
			return nil, fmt.Errorf("--vms-per-process: %w", err)
		}
		if exe, err = os.Open(path); err != nil {
			return nil, fmt.Errorf("--vms-per-process: %w", err)
		}
		if err := os.MkdirAll(cfg.JailDir, 0o711); err != nil {
			exe.Close()
			return nil, fmt.Errorf("--jail-dir: %w", err)
		}
		if view, err = jail.Expose(cfg.JailDir); err != nil {
			exe.Close()
			return nil, fmt.Errorf("--jail-dir: %w", err)
		}
	}
	ctx, kill := context.WithCancel(context.Background())
	return &Daemon{cfg: cfg, mon: mon, runCtx: ctx, kill: kill, jailView: view, jailExe: exe,
		insts: map[uint64]*instance{}, batches: map[uint64]*batch{}}, nil
}

// Error is an API error with its HTTP status.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// Start starts a batch: req.Count instances of each named unikernel.
func (d *Daemon) Start(req api.StartRequest) (api.StartResponse, error) {
	n := len(req.Unikernels) * req.Count
	d.mu.Lock()
	closing, live := d.closing, d.live
	d.mu.Unlock()
	if closing {
		return api.StartResponse{}, errorf(503, "the daemon is shutting down")
	}
	if live+n > d.cfg.MaxLive {
		return api.StartResponse{}, errorf(503, "%d instances asked for, %d live, at most %d at once (serve --max-instances)", n, live, d.cfg.MaxLive)
	}
	if err := d.budgetFor(n); err != nil {
		return api.StartResponse{}, err
	}
	resolve := launch.Resolve
	if req.Snapshot {
		resolve = launch.ResolveSnapshots
	}
	if d.cfg.Monitor == process.Name && d.cfg.VMsPerProcess == 0 {
		// Every check made now, each description read again when the
		// monitor plans its first instance (monitor.Unikernel.Describe),
		// as under `unipool run`: a batch's descriptions are never all in
		// the daemon at once. (A jail's job carries the descriptions.)
		resolve = func(dir string, names []string, cmdline string) ([]monitor.Unikernel, error) {
			return launch.ResolveLater(dir, names, cmdline, req.Snapshot)
		}
	}
	uks, err := resolve(d.cfg.Pool, req.Unikernels, req.Cmdline)
	if err != nil {
		return api.StartResponse{}, errorf(400, "%v", err)
	}
	opt := monitor.Options{
		N: req.Count, MemSize: req.MemSize, Load: req.Load, ASLR: req.ASLR || req.ASLRPerLibrary, ASLRPerLibrary: req.ASLRPerLibrary, KSM: req.KSM, Seed: req.Seed,
		Snapshot: req.Snapshot, Timeout: time.Duration(req.TimeoutMS) * time.Millisecond, MaxOutput: d.cfg.ConsoleCap,
	}
	if opt.Timeout == 0 {
		opt.Timeout = d.cfg.DefaultTimeout
	}
	opt.Hold = time.Duration(req.HoldMS) * time.Millisecond

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return api.StartResponse{}, errorf(503, "the daemon is shutting down")
	}
	if d.live+n > d.cfg.MaxLive {
		return api.StartResponse{}, errorf(503, "%d instances asked for, %d live, at most %d at once (serve --max-instances)", n, d.live, d.cfg.MaxLive)
	}
	if err := d.reserve(n); err != nil {
		return api.StartResponse{}, err
	}
	d.nextB++
	b := &batch{done: make(chan struct{}), left: n}
	bid := d.nextB
	for _, u := range uks {
		for i := range req.Count {
			d.nextID++
			in := &instance{reserved: int64(d.cfg.ConsoleCap)}
			in.ID, in.Batch, in.State = d.nextID, bid, api.StatePending
			in.Result.Unikernel, in.Result.Instance, in.Result.ExitCode = u.Name, i, -1
			d.insts[in.ID] = in
			b.ids = append(b.ids, in.ID)
		}
	}
	d.batches[bid] = b
	d.live += n
	d.started += uint64(n)
	opt.Started = func(i, pid int, stop func()) { d.onStarted(b.ids[i], pid, stop) }
	opt.Finished = func(i int, r monitor.Result) { d.onFinished(b.ids[i], r) }
	d.runs.Add(1)
	if d.cfg.VMsPerProcess > 0 {
		go d.runJailed(b, uks, opt)
	} else {
		go d.run(b, uks, opt)
	}
	return api.StartResponse{Batch: bid, Instances: slices.Clone(b.ids)}, nil
}

// budgetFor checks that n instances' console caps fit the budget.
func (d *Daemon) budgetFor(n int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fits(n)
}

// fits is budgetFor with d.mu held; it may evict retained instances.
func (d *Daemon) fits(n int) error {
	need := int64(n) * int64(d.cfg.ConsoleCap)
	d.evict(need)
	if d.used+need > d.cfg.ConsoleBudget {
		return errorf(503, "console budget exhausted: %d instances need %d bytes (%d each), %d of %d in use; delete finished instances or start fewer",
			n, need, d.cfg.ConsoleCap, d.used, d.cfg.ConsoleBudget)
	}
	return nil
}

// reserve takes n instances' console caps from the budget. d.mu is held.
func (d *Daemon) reserve(n int) error {
	if err := d.fits(n); err != nil {
		return err
	}
	d.used += int64(n) * int64(d.cfg.ConsoleCap)
	return nil
}

// run runs a batch to its end (the end of its hold, if any).
func (d *Daemon) run(b *batch, uks []monitor.Unikernel, opt monitor.Options) {
	defer d.runs.Done()
	defer b.finish()
	// The batch holds the blob files and the names to its end, not the
	// descriptions: those go once the monitor has planned the instances.
	closeBlobs := launch.Closer(uks)
	names := make([]string, len(uks))
	for i, u := range uks {
		names[i] = u.Name
	}
	ids := slices.Clone(b.ids)
	if opt.Hold > 0 {
		opt.Resident = func([]int) {
			release := make(chan struct{})
			d.setResident(ids, &holdGroup{release: func() { close(release) }})
			t := time.NewTimer(opt.Hold)
			defer t.Stop()
			select {
			case <-release:
			case <-t.C:
			case <-d.runCtx.Done():
			}
		}
	}
	results, err := d.mon.Run(d.runCtx, uks, opt)
	d.clearResident(ids)
	closeBlobs()
	for i, id := range b.ids {
		switch {
		case err != nil:
			d.onFinished(id, monitor.Result{Unikernel: names[i/opt.N], Instance: i % opt.N, ExitCode: -1, Error: err.Error()})
		case i < len(results):
			d.onFinished(id, results[i]) // a no-op for those already reported
		}
	}
}

func (d *Daemon) onStarted(id uint64, pid int, stop func()) {
	d.mu.Lock()
	in := d.insts[id]
	if in == nil || in.State != api.StatePending {
		d.mu.Unlock()
		return
	}
	in.State, in.PID, in.stop = api.StateRunning, pid, stop
	stopNow := in.stopReq
	d.mu.Unlock()
	if stopNow {
		stop()
	}
}

func (d *Daemon) onFinished(id uint64, r monitor.Result) {
	d.mu.Lock()
	defer d.mu.Unlock()
	in := d.insts[id]
	if in == nil || in.Finished() {
		return
	}
	in.Result = r
	in.stop = nil
	switch {
	case r.Error == monitor.StoppedByRequest || (in.stopReq && r.Error != ""):
		in.State = api.StateStopped
	case r.Error != "":
		in.State = api.StateFailed
	default:
		in.State = api.StateExited
	}
	d.live--
	if b := d.batches[in.Batch]; b != nil {
		if b.left--; b.left == 0 {
			b.finish()
		}
	}
	kept := int64(len(r.Output))
	d.used -= in.reserved - kept
	in.reserved = kept
	d.finished = append(d.finished, id)
	if r.LoadTime > 0 {
		if len(d.loads) < loadWindow {
			d.loads = append(d.loads, r.LoadTime)
		} else {
			d.loads[d.loadPos] = r.LoadTime
			d.loadPos = (d.loadPos + 1) % loadWindow
		}
	}
	d.evict(0)
}

// evict forgets the oldest finished instances while more than Retain are
// kept, or while need more console bytes would overrun the budget.
// d.mu is held.
func (d *Daemon) evict(need int64) {
	for len(d.finished) > 0 && (len(d.finished) > d.cfg.Retain || d.used+need > d.cfg.ConsoleBudget) {
		id := d.finished[0]
		d.finished = d.finished[1:]
		d.forget(id)
	}
}

// forget drops a finished instance. d.mu is held.
func (d *Daemon) forget(id uint64) {
	in := d.insts[id]
	if in == nil {
		return
	}
	d.used -= in.reserved
	delete(d.insts, id)
	if b := d.batches[in.Batch]; b != nil {
		b.ids = slices.DeleteFunc(b.ids, func(x uint64) bool { return x == id })
		if len(b.ids) == 0 {
			delete(d.batches, in.Batch)
		}
	}
}

// setResident marks the ended instances among ids resident, held by g.
func (d *Daemon) setResident(ids []uint64, g *holdGroup) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		if in := d.insts[id]; in != nil && in.State == api.StateExited {
			in.Resident, in.hold = true, g
		}
	}
}

// clearResident marks ids no longer resident: their monitor let them go.
func (d *Daemon) clearResident(ids []uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		if in := d.insts[id]; in != nil {
			in.Resident, in.hold = false, nil
		}
	}
}

// Stop stops a pending or running instance, or releases a resident one
// (with every instance held with it).
func (d *Daemon) Stop(id uint64) error {
	d.mu.Lock()
	in := d.insts[id]
	if in == nil {
		d.mu.Unlock()
		return errorf(404, "no instance %d", id)
	}
	if g := in.hold; g != nil {
		d.mu.Unlock()
		g.Release()
		return nil
	}
	if in.Finished() {
		st := in.State
		d.mu.Unlock()
		return errorf(409, "instance %d has already finished (%s)", id, st)
	}
	in.stopReq = true
	stop := in.stop
	d.mu.Unlock()
	if stop != nil {
		stop()
	}
	return nil
}

// Delete forgets a finished instance.
func (d *Daemon) Delete(id uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	in := d.insts[id]
	if in == nil {
		return errorf(404, "no instance %d", id)
	}
	if !in.Finished() || in.Resident {
		st := in.State
		if in.Resident {
			st = "resident"
		}
		return errorf(409, "instance %d is %s: stop it first", id, st)
	}
	d.finished = slices.DeleteFunc(d.finished, func(x uint64) bool { return x == id })
	d.forget(id)
	return nil
}

// Get returns one instance with its output.
func (d *Daemon) Get(id uint64) (api.Instance, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	in := d.insts[id]
	if in == nil {
		return api.Instance{}, errorf(404, "no instance %d", id)
	}
	return in.Instance, nil
}

// List returns instances in id order, of one batch when batch is not 0;
// wait (with a batch) first waits for it to finish, at most maxWait.
func (d *Daemon) List(ctx context.Context, batchID uint64, wait bool, output bool, maxWait time.Duration) ([]api.Instance, error) {
	if batchID != 0 {
		d.mu.Lock()
		b := d.batches[batchID]
		d.mu.Unlock()
		if b == nil {
			return nil, errorf(404, "no batch %d", batchID)
		}
		if wait {
			t := time.NewTimer(maxWait)
			select {
			case <-b.done:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
	} else if wait {
		return nil, errorf(400, "wait=true needs batch=N")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []uint64
	if batchID != 0 {
		if b := d.batches[batchID]; b != nil {
			ids = slices.Clone(b.ids)
		}
	} else {
		for id := range d.insts {
			ids = append(ids, id)
		}
		slices.Sort(ids)
	}
	out := make([]api.Instance, 0, len(ids))
	for _, id := range ids {
		in := d.insts[id]
		if in == nil {
			continue
		}
		x := in.Instance
		if !output {
			x.Output = ""
		}
		out = append(out, x)
	}
	return out, nil
}

// Info describes the daemon.
func (d *Daemon) Info() api.Info {
	return api.Info{ID: "unipool", Version: d.cfg.Version, Monitor: d.cfg.Monitor, Pool: d.cfg.Pool}
}

// Metrics counts the instances and measures what they cost the host.
func (d *Daemon) Metrics() api.Metrics {
	m := api.Metrics{Monitor: d.cfg.Monitor}
	var pids []int
	var loads []time.Duration
	d.mu.Lock()
	for _, in := range d.insts {
		switch in.State {
		case api.StatePending:
			m.Instances.Pending++
		case api.StateRunning:
			m.Instances.Running++
			if in.PID > 0 && in.PID != os.Getpid() {
				pids = append(pids, in.PID)
			}
		case api.StateExited:
			m.Instances.Exited++
			if in.Resident {
				m.Instances.Resident++
				if in.PID > 0 && in.PID != os.Getpid() {
					pids = append(pids, in.PID)
				}
			}
		case api.StateFailed:
			m.Instances.Failed++
		case api.StateStopped:
			m.Instances.Stopped++
		}
	}
	m.Instances.Started = d.started
	m.Instances.Retained = len(d.finished)
	m.Console = api.Budget{CapBytes: d.cfg.ConsoleCap, BudgetBytes: d.cfg.ConsoleBudget, UsedBytes: d.used}
	loads = slices.Clone(d.loads)
	jails := slices.Clone(d.jails)
	d.mu.Unlock()

	// Under kvm (and in a kvm jail) several instances share one pid:
	// each process is measured once.
	slices.Sort(pids)
	pids = slices.Compact(pids)
	m.Jails.Processes = len(jails)
	for _, cg := range jails {
		if b, err := cg.Memory(); err == nil {
			m.Jails.MemoryBytes += b
		}
	}

	if r, err := measure.ReadRollup(os.Getpid()); err == nil {
		m.Memory.DaemonPSS = r.PSS
	}
	total, missing := measure.SumPSS(pids)
	m.Memory.InstancesPSS, m.Memory.InstancesRead = total, len(pids)-missing
	if m.Memory.InstancesRead > 0 {
		m.Memory.PerInstancePSS = total / uint64(m.Memory.InstancesRead)
	}
	if avail, err := measure.MemAvailable(); err == nil {
		m.Memory.MemAvailable = avail
	}
	if len(loads) > 0 {
		sort.Slice(loads, func(i, j int) bool { return loads[i] < loads[j] })
		var sum time.Duration
		for _, l := range loads {
			sum += l
		}
		m.LoadTime = api.TimeMetrics{Count: len(loads), MeanNS: int64(sum) / int64(len(loads)),
			P50NS: int64(loads[len(loads)/2]), P99NS: int64(loads[min(len(loads)-1, len(loads)*99/100)])}
	}
	return m
}

// Shutdown refuses new starts, lets running instances finish for at most
// grace, then stops the rest and waits for every batch to end.
func (d *Daemon) Shutdown(grace time.Duration) {
	d.mu.Lock()
	d.closing = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.runs.Wait(); close(done) }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		d.kill()
		<-done
	}
	d.kill()
	if d.jailView != "" {
		if err := jail.Unexpose(d.jailView); err != nil {
			fmt.Fprintf(os.Stderr, "unipool: %v\n", err)
		}
	}
	if d.jailExe != nil {
		d.jailExe.Close()
	}
}
