package process

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/seccomp"
)

// tracer is one OS thread that forks and traces a set of instances. Linux
// ties a tracee to the thread that traced it, so each tracer locks its
// goroutine to its thread for good and makes every fork, ptrace and wait
// call of its instances there.
type tracer struct {
	insts   []*instance
	files   *runFiles  // the pool blobs' descriptors, opened once per run
	pages   *pageFiles // snapshot page blobs, held open for the run
	timeout time.Duration
	ksm     bool
	// ignoreReports: free-page reports change nothing (Options.IgnoreFreePageReports).
	ignoreReports bool
	hold          bool
	stopped       func() bool // reports cancellation: start no more instances

	live   map[int]*instance // processes not yet reaped, by pid
	active int               // instances building or running

	idle    chan<- struct{} // hold: told once no instance is active
	release <-chan struct{} // hold: closed when held instances may go

	layouts layoutCache // the shapes of the instances' layouts, shared
	zyg     zygote      // forks this thread's instances (zygote.go)

	startedAll func()        // called once this tracer has started all its instances
	scratch    *buildScratch // build's lists, while it starts its instances

	started  func(i, pid int, stop func()) // Options.Started
	finished func(i int, r monitor.Result) // Options.Finished
	drop     bool                          // Options.DropResults
	built    func(*instance)               // Monitor.built
}

// report passes an instance's final result on, once.
func (t *tracer) report(in *instance) {
	if in.reported {
		return
	}
	in.reported = true
	if t.finished != nil {
		t.finished(in.idx, in.result())
		if t.drop {
			in.output, in.lay, in.traps = nil, nil, nil
		}
	}
}

func (t *tracer) run() {
	// Never unlocked: when the goroutine ends the thread ends with it, and
	// with it any ptrace link that a bug might have left behind.
	runtime.LockOSThread()
	t.live = map[int]*instance{}
	// Confine the thread before it serves any guest: whatever a guest
	// makes the tracer do happens under the filter. The stub is made
	// first (memfd_create is not in it).
	// The socketpair that passes each instance its files (zygote
	// passFiles) is made first too: the filter names the monitor's end.
	_, err := stubExecutable()
	if err == nil {
		var sp [2]int
		if sp, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
			t.zyg.sock, t.zyg.peer = sp[0], sp[1]
			defer unix.Close(sp[0])
			defer unix.Close(sp[1])
		}
	}
	if err == nil {
		err = seccomp.ConfineThread(seccomp.Tracer(os.Getpid(), t.zyg.sock))
	}
	if err != nil {
		for _, in := range t.insts {
			in.fail("process monitor: confine the tracer thread: %v", err)
			in.setState(stReaped)
			t.report(in)
		}
		return
	}
	uks := make([]string, len(t.insts))
	for i, in := range t.insts {
		uks[i] = in.uk
	}
	t.layouts.expect(uks)
	for _, in := range t.insts {
		t.layouts.starting(in.uk)
		if t.stopped() {
			in.fail("cancelled before it started")
			in.mu.Lock()
			in.cancelled = true
			in.mu.Unlock()
			in.setState(stReaped)
			t.report(in)
			continue
		}
		t.start(in)
		if t.stopped() {
			// Cancelled while it was being started: the cancellation may
			// have looked at it while it was still pending.
			in.killIf(func(in *instance) { in.cancelled = true })
		}
		// Serve the running instances between starts, so that an early
		// instance's run time does not include later instances' loading.
		for t.poll(true) {
		}
	}
	t.layouts.settle()
	// Every instance of this thread is built: no descriptor is asked for
	// again (the run closes the files once every thread is here).
	t.files = nil
	t.scratch = nil // (build's lists: no more builds)
	if t.startedAll != nil {
		t.startedAll()
	}
	for t.active > 0 && t.poll(false) {
	}
	if t.hold {
		t.idle <- struct{}{}
		<-t.release
	}
	for _, in := range t.live {
		in.kill()
	}
	for len(t.live) > 0 && t.poll(false) {
	}
	t.zyg.stop()
	for _, in := range t.insts {
		t.report(in)
	}
}

// start builds one instance and enters its guest.
func (t *tracer) start(in *instance) {
	in.started = time.Now()
	lay, err := in.plan()
	in.plan = nil // the unikernel's prepared files go once its instances are planned
	if err != nil {
		in.fail("load: %v", err)
		in.setState(stReaped)
		t.report(in)
		return
	}
	in.lay = lay
	in.output = append(in.output, lay.Console...)
	var fds []uintptr
	sizes := map[string]uint64{} // of the files mapped, by fstat of their descriptors
	fdOf := map[string]int{}
	refuse := func(err error) {
		in.fail("load: unikernel %q: %v", in.uk, err)
		in.setState(stReaped)
		t.report(in)
	}
	if r := lay.Reads; r != nil {
		// A copied plain image's file, which the instance reads (build).
		fd, ok := t.files.fd(r.From)
		if !ok {
			in.fail("load: image file %s was not opened for this run", r.From)
			in.setState(stReaped)
			t.report(in)
			return
		}
		fdOf[r.From] = len(fds)
		fds = append(fds, fd)
	}
	for _, m := range lay.Mappings {
		if m.File == "" {
			continue
		}
		i, ok := fdOf[m.File]
		if !ok {
			fd, ok := t.files.fd(m.File)
			if !ok && lay.Resume != nil && m.COW {
				// Snapshot pages: held open for the run, shared by the
				// instances that map them (pagefiles.go); past the bound
				// each instance opens its own and closes it once mapped.
				var err error
				if t.pages != nil {
					fd, ok, err = t.pages.fd(m.File)
				}
				if !ok && err == nil {
					var f *os.File
					if f, err = os.Open(m.File); err == nil {
						defer f.Close()
						fd, ok = f.Fd(), true
					}
				}
				if err != nil {
					refuse(fmt.Errorf("snapshot page at %#x: %w", m.Addr, err))
					return
				}
			}
			if !ok {
				in.fail("load: blob file %s was not opened for this run", m.File)
				in.setState(stReaped)
				t.report(in)
				return
			}
			i = len(fds)
			fdOf[m.File] = i
			fds = append(fds, fd)
		}
		// Every mapping inside its file, by the size of the descriptor
		// mapped (fstat once per file and instance): a blob shorter than
		// its description says is refused here, not a SIGBUS where the
		// guest touches the page.
		size, ok := sizes[m.File]
		if !ok {
			var st unix.Stat_t
			if err := unix.Fstat(int(fds[i]), &st); err != nil {
				refuse(fmt.Errorf("%s: fstat: %w", m.File, err))
				return
			}
			size = uint64(st.Size)
			sizes[m.File] = size
		}
		if err := m.CheckFileRange(size); err != nil {
			refuse(err)
			return
		}
	}
	pid, err := t.zyg.fork(fds)
	if pid > 0 {
		in.mu.Lock()
		in.pid, in.st = pid, stBuilding
		in.mu.Unlock()
		t.live[pid] = in
		in.active = true
		t.active++
	}
	if err != nil {
		in.fail("load: %v", err)
		t.end(in, err)
		return
	}
	if t.scratch == nil {
		t.scratch = &buildScratch{}
	}
	regs, err := build(pid, lay, fdOf, buildOptions{ksm: t.ksm, name: "uk:" + in.uk, scratch: t.scratch})
	// The instance holds its bytes now; of the layout the monitor keeps
	// only its shape, shared with the unikernel's other instances
	// (layouts.go). A monitor that kept every instance's copies would pay
	// for each instance twice.
	if !t.ignoreReports {
		in.discardPage = discardPage(lay)
	}
	in.lay = t.layouts.keep(in.uk, lay)
	in.kept = true
	in.traps = t.layouts.trapsOf(in.uk, in.lay)
	if err == nil {
		in.entered = time.Now()
		in.cpuAtEntry = cpuTime(in.pid)
		in.loadTime = in.entered.Sub(in.started)
		if lay.Resume != nil {
			in.ready = in.loadTime // resumed at its ready point
		}
		in.setState(stRunning)
		if t.timeout > 0 {
			d := t.timeout
			in.timer = time.AfterFunc(d, func() { in.killIf(func(in *instance) { in.timedOut = d }) })
		}
		err = setRegs(pid, regs)
		if err == nil && t.built != nil {
			t.built(in)
		}
		if err == nil && t.started != nil {
			t.started(in.idx, pid, func() { in.killIf(func(in *instance) { in.stopped = true }) })
		}
		if err == nil {
			err = cont(pid, 0)
		}
	}
	if err != nil {
		if !in.killed() {
			in.fail("load: %v", err)
		}
		t.end(in, err)
	}
}

// end finishes an instance the tracer gave up on. err is why: if it is
// the process's end, seen by a wait of the build (a *diedError), that
// wait reaped it, and no later wait will report it (the zygote, a child
// of this thread, keeps wait(-1) from ever failing with ECHILD).
func (t *tracer) end(in *instance, err error) {
	in.finish()
	var died *diedError
	if errors.As(err, &died) {
		delete(t.live, in.pid)
		in.reaped(died.ws)
		t.report(in)
	}
	t.settle(in)
}

// settle keeps the count of active instances.
func (t *tracer) settle(in *instance) {
	if in.active && in.state() >= stFinished {
		in.active = false
		t.active--
	}
	if in.kept && in.state() >= stFinished {
		// Its guest is done: nothing names its addresses or decodes its
		// code any more (layouts.go).
		in.kept = false
		t.layouts.release(in.uk, in.lay)
		in.traps = nil
	}
	if in.hold && in.err == "" && in.state() == stFinished {
		// Held: its result is final now (reaping it at the hold's end
		// changes nothing), so it is reported now, not after the hold.
		t.report(in)
	}
}

// poll handles one event of any of this thread's tracees. It reports
// false when there was none (nohang) or nothing is left to wait for.
func (t *tracer) poll(nohang bool) bool {
	pid, ws, err := waitPid(-1, nohang)
	if errors.Is(err, unix.ECHILD) {
		// Nothing left to wait for: whatever is still listed is lost.
		for pid, in := range t.live {
			in.fail("monitor lost track of process %d", pid)
			in.setState(stReaped)
			delete(t.live, pid)
			t.settle(in)
			t.report(in)
		}
		return false
	}
	if err != nil || pid == 0 {
		return false
	}
	in := t.live[pid]
	if in == nil {
		if pid == t.zyg.pid && (ws.Exited() || ws.Signaled()) {
			t.zyg.pid = 0 // killed from outside: the next fork makes another
		}
		return true
	}
	switch {
	case ws.Exited() || ws.Signaled():
		delete(t.live, pid)
		in.reaped(ws)
		t.report(in)
	case ws.Stopped():
		if st := in.state(); st != stRunning {
			// Held, or killed and on its way out: only let a dying
			// process finish dying.
			if ws.TrapCause() == unix.PTRACE_EVENT_EXIT {
				cont(pid, 0)
			}
			break
		}
		if err := in.onStop(ws); err != nil {
			var died *diedError
			if errors.As(err, &died) {
				// It ended while the monitor made a system call in it
				// (a free-page report): that wait took its status.
				if !in.killed() {
					in.fail("monitor: %v", err)
				}
				in.finish()
				delete(t.live, pid)
				in.reaped(died.ws)
				t.report(in)
				break
			}
			// A failing ptrace call usually means the process was just
			// killed (timeout, cancellation); its exit tells why.
			if !in.killed() {
				in.fail("monitor: %v", err)
				in.finish()
			}
		}
	}
	t.settle(in)
	return true
}

// killed reports whether the timeout or a cancellation killed in.
func (in *instance) killed() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.timedOut > 0 || in.cancelled
}

// tracerThreads picks how many tracer threads serve n instances.
func tracerThreads(n int) int {
	t := runtime.GOMAXPROCS(0)
	return max(1, min(n, t))
}
