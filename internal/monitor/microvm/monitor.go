package microvm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/kvm"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/seccomp"
)

func init() {
	monitor.Register("kvm", func() (monitor.Monitor, error) {
		if err := Usable(); err != nil {
			return nil, fmt.Errorf("%w; use --monitor process, or run the same command inside the emulated KVM host, from unipool's source tree: %s", err, kvmhostCommand(os.Args))
		}
		return Monitor{}, nil
	})
}

// kvmhostCommand is the command line args (this process's) run inside
// scripts/kvmhost, which puts a fresh unipool on PATH, keeps the working
// directory and passes $UNIPOOL_POOL on.
func kvmhostCommand(args []string) string {
	if len(args) < 2 || filepath.Base(args[0]) != "unipool" {
		return "scripts/kvmhost -- unipool run --monitor kvm ..."
	}
	cmd := "scripts/kvmhost -- unipool"
	for _, a := range args[1:] {
		cmd += " " + shellQuote(a)
	}
	return cmd
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Monitor runs every instance of a call as a microVM in this process.
type Monitor struct{}

// instance is one VM to start and what became of it.
type instance struct {
	uk     int
	prep   *loader.Prepared // until the VM is built
	boot   string           // the layout's boot protocol
	result monitor.Result
	m      *machine
	// cancelled is set before the run's cancellation stops the VM.
	cancelled atomic.Bool
}

// Run starts opt.N instances of each unikernel, one vCPU thread each, and
// returns when all have finished (and the hold, if any, is over). A setup
// error of any VM stops the call before any guest runs.
func (Monitor) Run(ctx context.Context, uks []monitor.Unikernel, opt monitor.Options) ([]monitor.Result, error) {
	return run(ctx, uks, opt, nil)
}

// run is Run; held, if set, is called with the finished VMs while they are
// held resident (Measure reads their memory then).
func run(ctx context.Context, uks []monitor.Unikernel, opt monitor.Options, held func([]*instance)) ([]monitor.Result, error) {
	if opt.N <= 0 {
		opt.N = 1
	}
	if opt.Load == "" {
		opt.Load = monitor.LoadShared
	}
	if err := monitor.CheckLoad(opt.Load, true); err != nil {
		return nil, fmt.Errorf("kvm monitor: %w", err)
	}
	h, err := openHost(opt.KSM)
	if err != nil {
		return nil, err
	}
	h.ignoreReports = opt.IgnoreFreePageReports
	defer h.close()

	// Read every description and check every blob before any VM exists.
	var insts []*instance
	h.verified = map[string]func() (*os.File, error){}
	for _, u := range uks {
		if u.Config == nil || u.BlobPath == nil {
			continue
		}
		for _, d := range u.Config.BlobDigests() {
			h.verified[u.BlobPath(d)] = func() (*os.File, error) { return u.OpenBlob(d) }
		}
	}
	for i, u := range uks {
		p, err := loader.Prepare(u, opt.Load == monitor.LoadNaive)
		if err != nil {
			return nil, fmt.Errorf("kvm monitor: %w", err)
		}
		if opt.Load == monitor.LoadShared && u.Config != nil {
			lo := loader.Options{MemSize: opt.MemSize, Load: opt.Load, Monitor: abi.MonitorKVM, Snapshot: opt.Snapshot}
			if err := h.prepareBlobs(p, lo); err != nil {
				return nil, fmt.Errorf("kvm monitor: %w", err)
			}
		}
		for n := 0; n < opt.N; n++ {
			insts = append(insts, &instance{uk: i, prep: p,
				result: monitor.Result{Unikernel: u.Name, Instance: n, PID: os.Getpid()}})
		}
	}

	if err := roomFor(len(insts)); err != nil {
		return nil, fmt.Errorf("kvm monitor: %w", err)
	}

	// Build the VMs a few at a time per CPU, then start them together,
	// each on a locked thread of its own. Building all at once, a thread
	// each, only added threads, memory and waiting: every build's time
	// was mostly the others' (a VM's load time is its own build now).
	los := make([]loader.Options, len(insts))
	for k, in := range insts {
		// Every secret (bases, canary, guest seed) is drawn from the host
		// CSPRNG; a --seed run follows the process monitor's rule, so a
		// given --seed gives the same guests under both monitors.
		los[k] = loader.Options{MemSize: opt.MemSize, Load: opt.Load, ASLR: opt.ASLR || opt.ASLRPerLibrary, ASLRPerLibrary: opt.ASLRPerLibrary,
			InstanceID: uint64(in.result.Instance), Monitor: abi.MonitorKVM, Snapshot: opt.Snapshot}
		if opt.Seed != 0 {
			los[k].Rand = loader.SeededRand(opt.Seed, uint64(k))
		}
	}
	if err := h.buildAll(ctx, insts, los, opt); err != nil {
		closeAll(insts)
		return nil, err
	}
	var done sync.WaitGroup
	for k, in := range insts {
		done.Add(1)
		go func() {
			defer done.Done()
			// The thread stays locked until the goroutine ends, so it exits
			// with it and a held VM keeps no thread.
			runtime.LockOSThread()
			in.m.mu.Lock()
			in.m.tid = unix.Gettid()
			in.m.mu.Unlock()
			// From here on the thread only runs the guest: confine it
			// (its VM is built; Run's fds stay open, no new ones come).
			ioctls := kvm.RunIoctls()
			if in.boot == loader.BootMultiboot && stepsEntry() {
				// stepEntry's guest stops being single-stepped.
				ioctls = append(ioctls, kvm.DebugIoctls()...)
			}
			if err := seccomp.ConfineThread(seccomp.VCPU(os.Getpid(), ioctls...)); err != nil {
				in.result.ExitCode, in.result.Error = -1, fmt.Sprintf("kvm monitor: confine the vCPU thread: %v", err)
				if opt.Finished != nil {
					opt.Finished(k, in.result)
				}
				return
			}
			if opt.Started != nil {
				opt.Started(k, in.result.PID, func() { in.m.stop(monitor.StoppedByRequest) })
			}
			in.run(opt.Timeout)
			if opt.Finished != nil {
				opt.Finished(k, in.result)
				if opt.DropResults {
					in.result.Output = ""
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
		for _, in := range insts {
			in.cancelled.Store(true)
			in.m.stop(fmt.Sprintf("stopped: %v", ctx.Err()))
		}
		<-finished
	}

	if held != nil {
		held(insts)
	}
	if opt.Guests != nil && opt.Hold > 0 {
		opt.Guests(heldVMs(insts))
	}
	hold(ctx, opt)
	closeAll(insts)
	if opt.DropResults && opt.Finished != nil {
		return nil, nil
	}
	results := make([]monitor.Result, len(insts))
	for i, in := range insts {
		results[i] = in.result
	}
	return results, nil
}

// buildWorkers is how many VMs are built at once per CPU: a build waits
// in KVM (a memory slot's change waits for an SRCU grace period) as well
// as it computes.
const buildWorkers = 4

// buildAll builds every instance's VM, buildWorkers per CPU at a time. At
// the first setup error (or once ctx is done) it builds no more and
// returns the errors; the caller closes what was built.
//
// Every VM is created first (createVMs), then built.
func (h *host) buildAll(ctx context.Context, insts []*instance, los []loader.Options, opt monitor.Options) error {
	vms, took, err := h.createVMs(ctx, len(insts))
	if err != nil {
		return err
	}
	// A VM handed to a build is the build's (its machine's, or closed
	// with it when the build fails); the rest are closed here.
	defer func() {
		for _, vm := range vms {
			if vm != nil {
				vm.Close()
			}
		}
	}()
	jobs := make(chan int)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []error
		failed atomic.Bool
	)
	workers := min(len(insts), buildWorkers*runtime.GOMAXPROCS(0))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				if failed.Load() {
					continue
				}
				vm := vms[k]
				vms[k] = nil
				if err := h.build(vm, took[k], insts[k], los[k], opt); err != nil {
					failed.Store(true)
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for k := range insts {
		if failed.Load() {
			break
		}
		if err := ctx.Err(); err != nil {
			failed.Store(true)
			errs = append(errs, fmt.Errorf("kvm monitor: %w before every VM was built", err))
			break
		}
		jobs <- k
	}
	close(jobs)
	wg.Wait()
	return errors.Join(errs...)
}

// createVMs creates n VMs (KVM_CREATE_VM) one after the other, before
// any of them is built. KVM_CREATE_VM registers an MMU notifier on the
// process, and the kernel (mm_take_all_locks, Linux 6.1) walks and locks
// every mapping of the process to do it: a VM created after k others were
// built (each with its kvm_run and guest-memory mappings) costs O(k), a
// fleet O(n²). Created first, every VM sees the few mappings the process
// has before any build (docs/notes/issue-16.md, Session 7: in the
// emulated host, 2 ms each instead of 2 ms + ~6.5 µs per VM already
// built). took is each creation's time.
func (h *host) createVMs(ctx context.Context, n int) (vms []*kvm.VM, took []time.Duration, _ error) {
	vms, took = make([]*kvm.VM, 0, n), make([]time.Duration, 0, n)
	fail := func(err error) ([]*kvm.VM, []time.Duration, error) {
		for _, vm := range vms {
			vm.Close()
		}
		return nil, nil, err
	}
	for k := range n {
		if k%64 == 0 {
			if err := ctx.Err(); err != nil {
				return fail(fmt.Errorf("kvm monitor: %w before every VM was created", err))
			}
		}
		t0 := time.Now()
		vm, err := h.sys.CreateVM()
		if err != nil {
			return fail(fmt.Errorf("kvm monitor: VM %d of %d: %w", k+1, n, err))
		}
		vms, took = append(vms, vm), append(took, time.Since(t0))
	}
	return vms, took, nil
}

// build builds one instance's VM in vm (created by createVMs in
// created; the machine owns it, or it is closed when the build fails);
// its load time is its creation's and its build's.
func (h *host) build(vm *kvm.VM, created time.Duration, in *instance, lo loader.Options, opt monitor.Options) error {
	t0 := time.Now().Add(-created)
	in.boot = in.prep.Boot()
	m, err := h.newMachine(vm, in.result.Unikernel, in.result.Instance, in.boot, func(tsc uint64) (*loader.Layout, error) {
		lo.TSCKHz = tsc
		return in.prep.Plan(lo)
	})
	// Built: the unikernel's prepared files (a plain image's bytes, the
	// blobs a naive load copies) are no longer this VM's to keep for the
	// rest of the run.
	in.prep = nil
	if err != nil {
		return fmt.Errorf("kvm monitor: %s instance %d: %w", in.result.Unikernel, in.result.Instance, err)
	}
	in.m = m
	if opt.MaxOutput > 0 {
		m.console.max = opt.MaxOutput
	}
	in.result.LoadTime = time.Since(t0)
	m.layout.Report(&in.result)
	return nil
}

// run runs the VM to its end, stopping it at the timeout.
func (in *instance) run(timeout time.Duration) {
	if timeout > 0 {
		t := time.AfterFunc(timeout, func() {
			in.m.stop(fmt.Sprintf("timeout: still running after %v", timeout))
		})
		defer t.Stop()
	}
	t0 := time.Now()
	o := in.m.run()
	in.result.RunTime = time.Since(t0)
	switch {
	case in.m.layout != nil && in.m.layout.Resume != nil:
		in.result.ReadyTime = in.result.LoadTime // resumed at its ready point
	case !in.m.readyAt.IsZero():
		in.result.ReadyTime = in.result.LoadTime + in.m.readyAt.Sub(t0)
	}
	in.result.ExitCode = o.exitCode
	in.result.Error = o.err
	in.result.Shutdown = o.shutdown
	in.result.Cancelled = o.err != "" && in.cancelled.Load()
	in.result.Output = string(in.m.console.buf)
	in.m.console.buf = nil
	in.m.forgetLayout()
	if in.m.console.truncated {
		in.result.Output += fmt.Sprintf("\n[kvm monitor: console output cut at %d bytes]\n", in.m.console.max)
	}
}

// hold keeps the finished VMs resident for opt.Hold, or until
// opt.Resident returns: their memory stays mapped, their threads are gone.
func hold(ctx context.Context, opt monitor.Options) {
	if opt.Hold <= 0 {
		return
	}
	// What the run allocated that held VMs no longer need (build
	// buffers, vCPU threads' stacks) goes back to the host now, not when
	// the runtime's scavenger gets to it, and the threads the runtime
	// keeps idle end, as the process monitor's hold does: a held fleet is
	// all this process has left to do.
	defer monitor.HoldIdle()()
	t := time.NewTimer(opt.Hold)
	defer t.Stop()
	measured := make(chan struct{})
	if opt.Resident != nil {
		go func() { opt.Resident([]int{os.Getpid()}); close(measured) }()
	}
	select {
	case <-t.C:
	case <-measured:
	case <-ctx.Done():
	}
}

// closeAll closes every VM, several at a time: a VM's teardown waits
// for grace periods in KVM (its MMU notifier, its memory slots), which
// overlap when closes run side by side; one after the other, thousands
// of VMs took minutes.
//
// First every VM's KVM part goes (its notifier with it), then the guest
// memory: each munmap is an MMU-notifier invalidation, which the kernel
// hands to every VM still in the process, so unmapping a VM's memory
// while the others live cost O(VMs) each, O(VMs²) in all (Session 7);
// unmapped after, it meets no notifier.
func closeAll(insts []*instance) {
	each(insts, (*machine).closeKVM)
	each(insts, func(m *machine) error { m.unmapMemory(); return nil })
}

// each calls f on every built VM, buildWorkers per CPU at a time.
func each(insts []*instance, f func(*machine) error) {
	next := make(chan *machine)
	var wg sync.WaitGroup
	for range min(len(insts), buildWorkers*runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range next {
				f(m)
			}
		}()
	}
	for _, in := range insts {
		if in.m != nil {
			next <- in.m
		}
	}
	close(next)
	wg.Wait()
}

// roomFor makes room in this process for n VMs built at once, each on a
// locked thread of its own with a VM and a vCPU descriptor: Go's limit of
// 10,000 threads is raised above n, and RLIMIT_NOFILE (soft, and hard
// where the process may) to 2n plus a margin. A limit it cannot raise is
// an error naming it, before any VM exists.
func roomFor(n int) error {
	if threads := n + 1000; threads > 10000 {
		if prev := debug.SetMaxThreads(threads); prev > threads {
			debug.SetMaxThreads(prev)
		}
	}
	need := uint64(2*n + 1024)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	want := lim
	want.Cur = need
	want.Max = max(lim.Max, need)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("%d VMs need about %d file descriptors (2 each); RLIMIT_NOFILE is %d (hard %d) and raising it failed: %v", n, need, lim.Cur, lim.Max, err)
	}
	return nil
}

// openHost opens /dev/kvm and reads what every VM of the call shares.
func openHost(ksm bool) (*host, error) {
	sys, err := kvm.Open()
	if err != nil {
		return nil, fmt.Errorf("kvm monitor: %w", err)
	}
	h := &host{sys: sys, blobs: newBlobSets(), inits: map[string]initBlob{}, ksm: ksm}
	fail := func(err error) (*host, error) { sys.Close(); return nil, fmt.Errorf("kvm monitor: %w", err) }
	if h.runSize, err = sys.VCPUMmapSize(); err != nil {
		return fail(err)
	}
	if h.cpuid, err = sys.SupportedCPUID(); err != nil {
		return fail(err)
	}
	ro, err := sys.CheckExtension(kvm.CapReadonlyMem)
	if err != nil {
		return fail(err)
	}
	h.readonly = ro > 0
	return h, nil
}

func (h *host) close() {
	h.blobs.close()
	for _, b := range h.inits {
		b.f.Close()
	}
	h.sys.Close()
}
