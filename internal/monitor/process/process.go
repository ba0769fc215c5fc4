// Package process is the process monitor: every instance is a Linux
// process whose address space holds little but the guest. Pool blobs are
// mapped into it read-only and shared, straight from the pool files, so
// all instances use the same physical pages; private parts, the boot info,
// the stack and the heap are private anonymous memory.
//
// The guest runs unchanged in ring 3. Its port I/O, hlt and wrmsr fault,
// and the monitor, the instance's ptrace tracer, emulates them (trap and
// emulate); a seccomp filter kills the process on any system call, since
// the guest ABI has none. No KVM is needed.
package process

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
)

// Name is the monitor's name for `run --monitor`.
const Name = "process"

func init() {
	monitor.Register(Name, func() (monitor.Monitor, error) { return &Monitor{}, nil })
}

// Monitor runs instances as traced processes.
type Monitor struct {
	// Threads is the number of tracer threads (0: one per CPU, at most one
	// per instance).
	Threads int
	// ran, if set, sees the finished instances before their results are
	// made (tests).
	ran func([]*instance)
	// built, if set, sees each instance as its guest is about to run, on
	// its tracer thread (tests).
	built func(*instance)
	// holding, if set, sees the run's state once every instance is held,
	// before opt.Resident (tests).
	holding func(tracers []*tracer, files *runFiles)
}

// job is one instance to run, with its layout still to be planned.
type job struct {
	uk    string
	index int
	plan  func() (*loader.Layout, error)
}

// Run starts opt.N instances of each unikernel and reports on each.
func (m *Monitor) Run(ctx context.Context, uks []monitor.Unikernel, opt monitor.Options) ([]monitor.Result, error) {
	if opt.N <= 0 {
		opt.N = 1
	}
	if opt.Load == "" {
		opt.Load = monitor.LoadShared
	}
	if err := monitor.CheckLoad(opt.Load, true); err != nil {
		return nil, fmt.Errorf("process monitor: %w", err)
	}
	files := &runFiles{m: map[string]int{}, load: opt.Load, snapshot: opt.Snapshot}
	defer files.close()
	var jobs []job
	global := uint64(0)
	tsc := hostTSCKHz()
	var headers loader.HeaderStore // the checked plain images' headers, for their first instances
	// The copied plain images (the naive loads), checked at once, each
	// image parsed once: in a child process when this binary serves image
	// checks (loader.CheckImages), so that debug/elf's garbage, whose
	// size classes follow the images' shapes, is not this process's.
	var checked []*loader.ImageHeaders
	if opt.Load == monitor.LoadNaive {
		var paths []string
		for _, later := range uks {
			if copiedPlain(later) {
				paths = append(paths, later.Image)
			}
		}
		var err error
		if checked, err = loader.CheckImages(paths, &headers); err != nil {
			return nil, fmt.Errorf("process monitor: %w", err)
		}
	}
	for _, later := range uks {
		p := &prepareLater{u: later, naive: opt.Load == monitor.LoadNaive, left: opt.N}
		if later.Checked && later.Config == nil && later.Describe != nil {
			// Checked on the parse that verified its blobs
			// (launch.ResolveLater): read once, when its first
			// instance is planned, and its blobs taken for the run
			// then (a parse of each of 1000 descriptions only to
			// check it was ~1 s of the monitor's CPU to a held fleet).
			p.files = files
		} else {
			// Checked now, so that a bad unikernel fails the run before
			// any instance starts; read again when its first instance is
			// planned (prepareLater). A description the caller lets the
			// monitor read (Describe) is read here for the checks and let
			// go again: held from here to their first instances, 1000 of
			// them were ~25 MB of live heap while the fleet started.
			u, err := later.Described()
			if err != nil {
				return nil, fmt.Errorf("process monitor: %w", err)
			}
			if p.naive && copiedPlain(later) {
				// A copied plain image, checked above: its headers are
				// kept for its first instance (loader.PrepareReadsFrom).
				p.headers, checked = checked[0], checked[1:]
			} else if err := loader.Check(u, opt.Load == monitor.LoadNaive); err != nil {
				return nil, fmt.Errorf("process monitor: %w", err)
			}
			if err := files.take(u); err != nil {
				return nil, fmt.Errorf("process monitor: %w", err)
			}
		}
		for i := 0; i < opt.N; i++ {
			k := global
			lo := loader.Options{
				MemSize:        opt.MemSize,
				Load:           opt.Load,
				ASLR:           opt.ASLR || opt.ASLRPerLibrary,
				ASLRPerLibrary: opt.ASLRPerLibrary,
				InstanceID:     uint64(i),
				Monitor:        abi.MonitorProcess,
				TSCKHz:         tsc,
				Snapshot:       opt.Snapshot,
			}
			// (The closure holds later, not u: u's description goes
			// once the loop is past it.)
			jobs = append(jobs, job{uk: later.Name, index: i, plan: func() (*loader.Layout, error) {
				lo := lo
				if opt.Seed != 0 {
					lo.Rand = loader.SeededRand(opt.Seed, k)
				}
				lay, err := p.plan(lo)
				if err == nil && lay.Boot != "" {
					return nil, fmt.Errorf("%s boots by the %s protocol (a Unikraft image): it needs a machine (--monitor kvm); the process monitor runs the unipool guest ABI only", later.Name, lay.Boot)
				}
				return lay, err
			}})
			global++
		}
	}
	return m.run(ctx, jobs, files, opt), nil
}

// copiedPlain says whether Run checks u, under a naive load, as a copied
// plain image (loader.CheckImages).
func copiedPlain(u monitor.Unikernel) bool {
	return u.Image != "" && !(u.Checked && u.Config == nil && u.Describe != nil)
}

// prepareLater is a unikernel's prepared files (loader.Prepare: a plain
// image's bytes, a description's private blob), read when its first
// instance is planned and dropped once its last is. Prepared for every
// unikernel before the first start, a fleet's files were all in the
// monitor's heap at once (200 MB for 1000 plain images, 30 MB for 1000
// snapshot descriptions' private blobs), a peak whose spans and GC
// metadata the monitor keeps, partly, for the whole run.
type prepareLater struct {
	mu    sync.Mutex
	u     monitor.Unikernel
	naive bool
	p     *loader.Prepared
	left  int // instances not planned yet
	// files, when set, takes the blobs u's instances map for the run
	// once its description is read (a unikernel checked before the run:
	// monitor.Unikernel.Checked).
	files *runFiles
	// headers, when set, are a copied plain image's headers as checked
	// before the run: its instances are laid out from them.
	headers *loader.ImageHeaders
}

func (l *prepareLater) plan(lo loader.Options) (*loader.Layout, error) {
	l.mu.Lock()
	if l.p == nil {
		// Not on the calling tracer thread: its seccomp filter lets it
		// read no file (tracer.run). A goroutine of its own runs on
		// another thread.
		type prepared struct {
			p   *loader.Prepared
			err error
		}
		ch := make(chan prepared)
		go func() {
			u, err := l.u.Described()
			if err != nil {
				ch <- prepared{nil, err}
				return
			}
			if l.files != nil {
				if err := l.files.take(u); err != nil {
					ch <- prepared{nil, err}
					return
				}
			}
			prepare := loader.Prepare
			if l.naive {
				// A copied plain image: its instances read its bytes
				// from the file (build), the monitor holds none.
				prepare = loader.PrepareReads
			}
			if l.files != nil {
				// Checked on the parse that verified its blobs:
				// Describe returned the same description.
				prepare = loader.PrepareChecked
				if lo.Snapshot {
					// Every instance starts from the snapshot, whose
					// pages replace the private ranges: their bytes
					// are not made (loader.PrepareSnapshot).
					prepare = func(u monitor.Unikernel, _ bool) (*loader.Prepared, error) { return loader.PrepareSnapshot(u) }
				}
			}
			var p *loader.Prepared
			if l.headers != nil {
				p, err = loader.PrepareReadsFrom(u, l.headers)
			} else {
				p, err = prepare(u, l.naive)
			}
			ch <- prepared{p, err}
		}()
		r := <-ch
		if r.err != nil {
			l.mu.Unlock()
			return nil, r.err
		}
		l.p, l.headers = r.p, nil
	}
	p := l.p
	last := false
	if l.left--; l.left <= 0 {
		l.p, last = nil, true
	}
	l.mu.Unlock()
	if last {
		return p.PlanLast(lo)
	}
	return p.Plan(lo)
}

// run executes jobs on the tracer threads and returns their results in
// job order (none with opt.DropResults: they went to opt.Finished).
func (m *Monitor) run(ctx context.Context, jobs []job, files *runFiles, opt monitor.Options) []monitor.Result {
	insts := m.runWith(ctx, jobs, files, opt, nil)
	if m.ran != nil {
		m.ran(insts)
	}
	if opt.DropResults && opt.Finished != nil {
		return nil
	}
	results := make([]monitor.Result, len(insts))
	for i, in := range insts {
		results[i] = in.result()
	}
	return results
}

// runWith runs jobs, setup (if not nil) adjusting each instance first, and
// returns the finished instances in job order.
func (m *Monitor) runWith(ctx context.Context, jobs []job, files *runFiles, opt monitor.Options, setup func(*instance)) []*instance {
	insts := make([]*instance, len(jobs))
	for i, j := range jobs {
		insts[i] = &instance{uk: j.uk, index: j.index, idx: i, plan: j.plan, hold: opt.Hold > 0, syscallNr: -1,
			maxOutput: opt.MaxOutput}
		// The instance holds its plan until it is started, then drops it;
		// the job must not keep it (and with it the unikernel's prepared
		// files: a plain image's bytes) for the rest of the run.
		jobs[i].plan = nil
		if insts[i].maxOutput <= 0 {
			insts[i].maxOutput = maxOutput
		}
		if opt.Dump != nil {
			i := i
			insts[i].dump = func(d monitor.MemoryDump) { opt.Dump(i, d) }
		}
		if setup != nil {
			setup(insts[i])
		}
	}
	n := m.Threads
	if n <= 0 {
		n = tracerThreads(len(insts))
	}
	n = max(1, min(n, len(insts)))
	idle := make(chan struct{}, n)
	release := make(chan struct{})
	pages := newPageFiles()
	defer pages.close()
	tracers := make([]*tracer, n)
	for i := range tracers {
		tracers[i] = &tracer{
			files: files, pages: pages, timeout: opt.Timeout, ksm: opt.KSM, ignoreReports: opt.IgnoreFreePageReports, hold: opt.Hold > 0,
			stopped: func() bool { return ctx.Err() != nil },
			idle:    idle, release: release,
			started: opt.Started, finished: opt.Finished, drop: opt.DropResults && opt.Finished != nil,
			built: m.built,
		}
	}
	for i, in := range insts {
		t := tracers[i%n]
		t.insts = append(t.insts, in)
	}
	// Once every tracer has started its instances, what starting them
	// allocated (plans, copies of library data, decoder buffers) is
	// garbage: give it back to the host instead of keeping a heap twice
	// the live size for the rest of the run.
	var starting atomic.Int32
	starting.Store(int32(n))
	for _, t := range tracers {
		t.startedAll = func() {
			if starting.Add(-1) == 0 {
				// Every instance is built: the blob and snapshot page
				// files they map stay open through their mappings, and
				// no instance will ask for one again.
				pages.close()
				files.close()
				if opt.Built != nil {
					opt.Built()
				}
				go monitor.ReturnStartGarbage()
			}
		}
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			for _, in := range insts {
				in.killIf(func(in *instance) { in.cancelled = true })
			}
		case <-done:
		}
	}()
	var wg sync.WaitGroup
	for _, t := range tracers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.run()
		}()
	}
	if opt.Hold > 0 {
		for range tracers {
			<-idle
		}
		if m.holding != nil {
			m.holding(tracers, files)
		}
		holdResident(ctx, insts, opt)
		close(release)
	}
	wg.Wait()
	close(done)
	return insts
}

// runFiles are the files a run's instances map (pool blobs, plain images
// loaded stock), opened once and passed to every instance as descriptors:
// raw ones, not os.Files (each of which costs the Go runtime memory it
// keeps: ~190 bytes for each of a fleet's thousands of blobs).
type runFiles struct {
	mu sync.Mutex
	m  map[string]int // path -> descriptor
	// What the run loads: which of a unikernel's files its instances map.
	load     string
	snapshot bool
}

// take opens the files u's instances map, those not held yet: a plain
// image's file (stock loading), or a description's shared and init blobs
// and, for its data-arena pages, its private blob (shared loading).
func (r *runFiles) take(u monitor.Unikernel) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		return fmt.Errorf("unikernel %q: the run's files are closed (every instance was built)", u.Name)
	}
	if _, ok := r.m[u.Image]; (r.load == monitor.LoadStock || r.load == monitor.LoadNaive) && u.Image != "" && !ok {
		// Stock loading maps the image file itself, as Linux does; a
		// copying (naive) load has the instance read it
		// (loader.PrepareReads).
		f, err := unix.Open(u.Image, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("unikernel %q: %w", u.Name, &os.PathError{Op: "open", Path: u.Image, Err: err})
		}
		r.m[u.Image] = f
	}
	if r.load != monitor.LoadShared || u.Config == nil {
		return nil
	}
	open := func(d, what string) error {
		path := u.BlobPath(d)
		if _, ok := r.m[path]; ok {
			return nil
		}
		f, err := u.OpenBlobFd(d)
		if err != nil {
			return fmt.Errorf("unikernel %q: %s: %w", u.Name, what, err)
		}
		r.m[path] = f
		return nil
	}
	for _, l := range u.Config.Libraries {
		if l.Shared.Size > 0 && !l.InPack() { // (a pack member: its pack's pages)
			if err := open(l.Shared.Digest, fmt.Sprintf("library %q", l.Name)); err != nil {
				return err
			}
		}
		if l.Init != nil && !r.snapshot {
			if err := open(l.Init.Digest, fmt.Sprintf("library %q", l.Name)); err != nil {
				return err
			}
		}
	}
	if c := u.Config; len(c.Arena) > 0 && c.Private != nil && !r.snapshot {
		// The data-arena pages are mapped from it (desc.Config.Arena).
		if err := open(c.Private.Digest, "private blob"); err != nil {
			return err
		}
	}
	return nil
}

// fd returns the descriptor held for path.
func (r *runFiles) fd(path string) (uintptr, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.m[path]
	return uintptr(f), ok
}

// close closes them; the instances' mappings keep their files. The map
// goes too: its table is ~100 KiB for the blobs of 1000 unikernels, which
// the monitor would otherwise keep for the whole run.
func (r *runFiles) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.m {
		unix.Close(f)
	}
	r.m = nil
}

// holdResident keeps the finished instances stopped, memory intact, for
// opt.Hold, or until opt.Resident has measured them.
func holdResident(ctx context.Context, insts []*instance, opt monitor.Options) {
	var pids []int
	for _, in := range insts {
		if in.state() == stFinished && in.err == "" {
			pids = append(pids, in.pid)
		}
	}
	if len(pids) == 0 {
		return
	}
	sort.Ints(pids)
	// What the run allocated that a held fleet no longer needs (the
	// finished instances' layouts, layouts.go) goes back to the host now,
	// not when the runtime's scavenger gets to it, and so do the threads
	// the runtime made while the fleet started and keeps idle: holding is
	// how a fleet is measured, and a held fleet is all the monitor has
	// left to do (monitor.HoldIdle).
	defer monitor.HoldIdle()()
	measured := make(chan struct{})
	if opt.Resident != nil {
		go func() {
			defer close(measured)
			opt.Resident(pids)
		}()
	}
	timer := time.NewTimer(opt.Hold)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-measured:
	case <-ctx.Done():
	}
}
