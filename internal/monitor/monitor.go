// Package monitor is what `unipool run` asks of a monitor: start instances
// of pooled unikernels (or plain images) and report on each. The process
// and kvm monitors implement it in their own packages and register here.
package monitor

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/desc"
)

// Load modes.
const (
	LoadShared = "shared" // map pool blobs read-only, shared (the product)
	LoadNaive  = "naive"  // copy every blob into private memory (the baseline)
	// LoadStock maps a plain image's file MAP_PRIVATE, demand-paged, the
	// way Linux's ELF loader does (plain images only): the baseline that
	// pays nothing for pages an instance never touches.
	LoadStock = "stock"
)

// CheckLoad says whether load is a load mode, and one a unikernel of this
// kind (a plain image, or a pooled description) can be loaded with.
func CheckLoad(load string, plainImage bool) error {
	switch load {
	case LoadShared, LoadNaive:
		return nil
	case LoadStock:
		if !plainImage {
			return fmt.Errorf("load mode %s maps a plain image's file; pooled unikernels load %s or %s", LoadStock, LoadShared, LoadNaive)
		}
		return nil
	}
	return fmt.Errorf("unknown load mode %q (want %s, %s or %s)", load, LoadShared, LoadNaive, LoadStock)
}

// Unikernel is one thing to run: a pooled description whose blobs are files
// (BlobPath), or, when Image is set, a plain ELF image loaded naively
// segment by segment (packed/dce baselines).
type Unikernel struct {
	Name   string
	Config *desc.Config
	// BlobPath returns the file of a blob digest ("sha256:..."); the monitor
	// maps it. Verified by the caller before the monitor sees it.
	BlobPath func(digest string) string
	// Blobs, when set, holds every blob the description names, opened
	// read-only and verified on that descriptor (launch.Resolve): monitors
	// map and read these (OpenBlob), never the path again.
	Blobs map[string]*os.File
	// BlobFds is Blobs as raw descriptors (launch.ResolveLater): an
	// os.File per verified blob, ~3,000 for a fleet of 1000, cost ~190
	// bytes each of runtime memory (its cleanup special and per-file
	// state) that the Go runtime never gives back to the host.
	BlobFds map[string]int
	// Image is the path of a plain ELF image (instead of Config).
	Image   string
	Cmdline string // the guest's command line
	// Describe, when Config is nil, reads the description again
	// (launch.ResolveLater: its blobs verified, as Resolve's are): a
	// monitor that takes it calls it when it needs the description and
	// holds that no longer, so a fleet's descriptions are not all in its
	// heap at once. Monitors that take none use Config only (Described
	// gives them one).
	Describe func() (*desc.Config, error)
	// Checked says the description Describe returns has passed
	// loader.Check already, on the parse that verified its blobs
	// (launch.ResolveLater): a monitor that would read it only to check
	// it reads it once, when its first instance is planned. Describe
	// returns the same description or an error (pool.Describe checks
	// its bytes against their digests).
	Checked bool
}

// Described returns u with its description read (Config set), u itself if
// it has one or is a plain image.
func (u Unikernel) Described() (Unikernel, error) {
	if u.Config != nil || u.Describe == nil {
		return u, nil
	}
	c, err := u.Describe()
	if err != nil {
		return u, fmt.Errorf("unikernel %q: %w", u.Name, err)
	}
	u.Config = c
	return u, nil
}

// OpenBlob returns the file of a blob: a new descriptor of the verified
// file (u.BlobFds, u.Blobs) when there is one, else the path opened
// read-only (OpenBlobFd, as an os.File). The caller closes it.
func (u Unikernel) OpenBlob(digest string) (*os.File, error) {
	fd, err := u.OpenBlobFd(digest)
	if err != nil {
		return nil, err
	}
	name := digest
	if _, raw := u.BlobFds[digest]; !raw && u.Blobs[digest] != nil {
		name = u.Blobs[digest].Name()
	} else if u.BlobPath != nil {
		name = u.BlobPath(digest)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// OpenBlobFd is OpenBlob as a raw descriptor (close-on-exec), with no
// os.File: for a monitor that holds thousands of them.
func (u Unikernel) OpenBlobFd(digest string) (int, error) {
	var from uintptr
	if fd, ok := u.BlobFds[digest]; ok {
		from = uintptr(fd)
	} else if f := u.Blobs[digest]; f != nil {
		from = f.Fd()
	} else {
		if u.BlobPath == nil {
			return -1, fmt.Errorf("unikernel %q: no file for blob %s", u.Name, digest)
		}
		path := u.BlobPath(digest)
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
	fd, err := unix.FcntlInt(from, unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("unikernel %q: blob %s: %w", u.Name, digest, err)
	}
	return fd, nil
}

// SnapshotFixesLayout is why instances from a snapshot cannot use ASLR,
// said by every front end that refuses the combination (run, the daemon).
const SnapshotFixesLayout = "a snapshot fixes the layout it was taken with (its pointers hold the map's addresses), " +
	"so its instances cannot be re-randomised; start them either cold with ASLR or from the snapshot without it"

// Options are run's flags.
type Options struct {
	N       int           // instances per unikernel
	MemSize uint64        // guest heap+stack bytes (0: the description's)
	Timeout time.Duration // kill an instance running longer (0: none)
	Hold    time.Duration // keep instances resident this long after they finish
	Load    string        // LoadShared or LoadNaive
	KSM     bool          // madvise(MADV_MERGEABLE) private/naive memory
	// IgnoreFreePageReports: the guest's free-page reports
	// (abi.PortDiscard) change nothing, as a monitor without them would
	// (measurements with and without them, side by side).
	IgnoreFreePageReports bool
	ASLR                  bool // random layout per instance (loader: image slide, heap, area chunk)
	// ASLRPerLibrary (with ASLR): a base of its own for each library and
	// the app instead of one slide for the image.
	ASLRPerLibrary bool
	Seed           uint64 // base of per-instance seeds (0: random)
	// Snapshot starts every instance from its description's snapshot
	// (`unipool snapshot`) instead of booting it.
	Snapshot bool
	// Resident, if set, is called once every instance has finished and is
	// being held (Hold > 0), with the PIDs that hold their memory; the bench
	// measures then. Returning ends the hold early.
	Resident func(pids []int)
	// MaxOutput caps the console bytes kept per instance (0: the
	// monitor's default). Bytes past it are consumed and dropped.
	MaxOutput int
	// Started, if set, hears of each instance as its guest is about to
	// run: its index in the result list, the pid that holds it, and a
	// function that stops it (safe from any goroutine, any number of
	// times; the instance then fails with "stopped by request").
	// It is called on the monitor's thread: it must return quickly.
	Started func(i int, pid int, stop func())
	// Finished, if set, hears of each instance's result as soon as it is
	// final, before Run returns; like Started, it must return quickly.
	Finished func(i int, r Result)
	// Guests, if set, is called by a monitor that holds its guests in its
	// own memory (kvm) once they are all held, before Resident: a
	// measurement reads the guests' memory through it.
	Guests func(HeldGuests)
	// Built, if set, is called once every instance has been built (its
	// memory mapped), before any is held or has necessarily ended (process
	// monitor; the kvm monitor does not call it). The blob files the
	// caller verified (Unikernel.Blobs) may be closed then: the
	// instances' mappings keep them, and the monitor opens none again.
	// A caller that holds them to the run's end holds a descriptor and
	// a kernel file object per blob for every held instance's life.
	Built func()
	// Dump, if set, is handed each instance's whole memory as its guest
	// sees it, read the moment the guest writes its exit code, with the
	// secrets it was given (process monitor; for tests that look for
	// what a guest could learn). It runs on the monitor's thread.
	Dump func(i int, d MemoryDump)
	// DropResults: with Finished set, each instance's result is dropped
	// once Finished has it, and Run returns none, so a long run's memory
	// does not grow with its instances' output (run streams them).
	DropResults bool
}

// HeldGuests is what a monitor that keeps its guests in its own process
// tells a measurement about them while they are held.
type HeldGuests interface {
	// GuestBytes is the guests' own resident memory: every guest's
	// private pages, and each page of the blobs they map once.
	GuestBytes() uint64
	// Ranges calls f with each range of each guest's memory, saying
	// whether it is run-time memory (boot info, stack, heap) rather than
	// an image's.
	Ranges(f func(b []byte, runtime bool))
}

// MemoryDump is an instance's address space at its exit (Options.Dump).
type MemoryDump struct {
	// Ranges: every range mapped in the guest's address space (the
	// layout's, and whatever else its process has: the monitor's stub,
	// the kernel's vdso), with its bytes where they could be read.
	Ranges []DumpRange
	// What the loader placed and handed the guest.
	Bases, Areas map[string]uint64
	Canary, Seed uint64
	// Extents: each region's [start, end) by name (a library, or an
	// area: bootinfo, stack, heap, tls).
	Extents map[string][2]uint64
}

// DumpRange is one mapped range of a MemoryDump.
type DumpRange struct {
	Addr, Size uint64
	What       string // library and part, or the process mapping's name
	Writable   bool
	Data       []byte // nil if it could not be read
}

// StoppedByRequest is the error of an instance stopped through
// Options.Started's stop function.
const StoppedByRequest = "stopped by request"

// Result is one instance's report (run --json prints a list of these).
type Result struct {
	Unikernel string        `json:"unikernel"`
	Instance  int           `json:"instance"`
	ExitCode  int           `json:"exit_code"`
	Output    string        `json:"output"`
	LoadTime  time.Duration `json:"load_time_ns"`
	RunTime   time.Duration `json:"run_time_ns"`
	// CPUTime is the guest's time on a CPU from its entry to its end
	// (process monitor: its process's, with the kernel's work for it such
	// as page faults, without the monitor's emulation of its traps); 0
	// if unknown. Unlike RunTime it does not grow with the host's load.
	CPUTime time.Duration `json:"cpu_time_ns,omitempty"`
	// ReadyTime is the load time plus the guest's boot up to its ready
	// point (abi.PortReady): when it starts reading its own request. An
	// instance from a snapshot is at its ready point when it enters. 0 if
	// the guest never got there.
	ReadyTime time.Duration     `json:"ready_time_ns,omitempty"`
	Bases     map[string]uint64 `json:"bases,omitempty"` // library name -> region base
	// Areas: where the per-instance areas start (bootinfo, stack, heap,
	// and tls under --aslr).
	Areas map[string]uint64 `json:"areas,omitempty"`
	// EntropyBits: bits of randomness of each region's base (libraries
	// by name, the Areas by theirs; 0: at a fixed address), of the stack
	// "canary" and of the guest's "seed".
	EntropyBits map[string]float64 `json:"entropy_bits,omitempty"`
	// EntropyBitsGivenAnother (--aslr): what is left of each region's
	// bits to someone who knows another region's base of the instance,
	// whichever (the least): all of an instance's regions lie in one
	// random span of the window (abi.ASLRSpan), and the regions of one
	// group (ASLRGroups) are not independent: 0 for a library of an
	// image with others (one slide), the bits within the area chunk for
	// boot info and stack, 0 for TLS (in the boot-info area).
	EntropyBitsGivenAnother map[string]float64 `json:"entropy_bits_given_another_base,omitempty"`
	// EntropyBitsGivenAnotherGroup (--aslr): what is left of each
	// region's bits to someone who knows the base of a region outside
	// its group: its bits within the span.
	EntropyBitsGivenAnotherGroup map[string]float64 `json:"entropy_bits_given_another_group,omitempty"`
	// ASLRGroups (--aslr): the regions placed together, by group:
	// "image" (every library and the app, one slide: private parts stay
	// dense), "areas" (boot info with TLS, and stack, each at its own
	// page of one 2 MiB chunk), "heap".
	ASLRGroups map[string][]string `json:"aslr_groups,omitempty"`
	// InsecureSeed, when set, says that the run's --seed made every
	// secret of the instance predictable (loader.SeededWarning).
	InsecureSeed string `json:"insecure_seed,omitempty"`
	PID          int    `json:"pid,omitempty"`
	Error        string `json:"error,omitempty"` // fault, timeout, ...
	// Shutdown says the guest powered off or reset (a Unikraft guest's
	// clean end: it reports no exit code, ExitCode is 0).
	Shutdown string `json:"shutdown,omitempty"`
	// Cancelled: the run was interrupted (its context cancelled) before
	// this instance ended; Error says whether it had started.
	Cancelled bool `json:"cancelled,omitempty"`
}

// Monitor runs unikernels.
type Monitor interface {
	Run(ctx context.Context, uks []Unikernel, opt Options) ([]Result, error)
}

var registry = map[string]func() (Monitor, error){}

// Register makes a monitor available to `run --monitor NAME`.
func Register(name string, open func() (Monitor, error)) { registry[name] = open }

// Open returns the named monitor.
func Open(name string) (Monitor, error) {
	open, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown monitor %q (have %v)", name, Names())
	}
	return open()
}

// Names lists the registered monitors.
func Names() []string {
	var n []string
	for k := range registry {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// ReturnStartGarbage runs the garbage collector and returns the freed
// heap to the host at once. A monitor calls it when a fleet has started:
// what starting it took (plans, copies of library data, decoder buffers)
// is garbage then, and Go's runtime would otherwise keep a heap of up to
// twice the live size, and return the rest only slowly — memory the host
// pays per instance for the whole run.
//
// A daemon starting many small fleets calls it often; a forced collection
// is a pass over the whole heap, so it runs at most once a second (the
// runtime's own scavenger returns what a skipped call would have).
func ReturnStartGarbage() {
	now := time.Now().UnixNano()
	last := lastReturn.Load()
	if now-last < int64(time.Second) || !lastReturn.CompareAndSwap(last, now) {
		return
	}
	debug.FreeOSMemory()
}

var lastReturn atomic.Int64

// ownProcess says this process is a monitor of its own (LeanGC).
var ownProcess atomic.Bool

// MonitorGCPercent is the Go GC target of a process that runs a fleet
// (LeanGC): collecting at 25% growth instead of the runtime's 100% keeps
// the heap's peak while the fleet is resolved and started lower, and with
// it the fragmentation and GC metadata the monitor keeps for the whole
// run: 1000 held unikernels, process monitor, the monitor's anonymous PSS
// 12.1-12.7 -> 10.3-10.6 MiB, its CPU time to the held fleet within the
// noise of a shared machine (8.0-8.6 s either way in one pair of runs,
// 12.2 -> 13.0 s in a busier one; docs/notes/monitor-memory.md, Session 8).
const MonitorGCPercent = 25

// LeanGC sets this process's GC target to MonitorGCPercent, unless GOGC
// is set in the environment (the user's choice stands), and marks the
// process as a monitor of its own, whose held fleet is all it does
// (HoldIdle). A process that runs a fleet (`unipool run`, bench's monitor
// process, a jail) calls it first; the daemon, which serves more than one
// fleet, does not.
func LeanGC() {
	ownProcess.Store(true)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(MonitorGCPercent)
	}
}
