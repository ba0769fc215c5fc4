package vmmproc

// A jail's process (serve --vms-per-process): the daemon starts the lean
// binary in a jail's namespaces (jail.Command), hands it its job on stdin
// and reads an event per instance start and end on its stdout, one JSON
// object per line. It lives here, not in package serve, so that a jail,
// which is a monitor process, pays only for the lean binary's pages.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/jail"
	"github.com/unipool/unipool/internal/kvm"
	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/pool"
)

// JailWorkerCommand is the argument of the lean binary (unipool-vmm)
// that makes it a jail's process (RunJailWorker): `unipool-vmm
// jail-worker ROOT`, started by `serve --vms-per-process` through
// jail.Command.
const JailWorkerCommand = "jail-worker"

// JailJob is what the daemon (serve) hands a jail: its unikernels, N instances of
// each (instance i is unikernel i/N's), and the run's options.
type JailJob struct {
	Monitor        string          `json:"monitor"`
	KVMFD          int             `json:"kvm_fd,omitempty"` // an open /dev/kvm, for the kvm monitor
	Unikernels     []JailUnikernel `json:"unikernels"`
	N              int             `json:"n"`
	MemSize        uint64          `json:"mem_size,omitempty"`
	Load           string          `json:"load,omitempty"`
	ASLR           bool            `json:"aslr,omitempty"`
	ASLRPerLibrary bool            `json:"aslr_per_library,omitempty"`
	KSM            bool            `json:"ksm,omitempty"`
	Seed           uint64          `json:"seed,omitempty"`
	Snapshot       bool            `json:"snapshot,omitempty"` // from each unikernel's snapshot
	TimeoutNS      int64           `json:"timeout_ns,omitempty"`
	HoldNS         int64           `json:"hold_ns,omitempty"` // keep the ended instances resident
	MaxOutput      int             `json:"max_output,omitempty"`
}

type JailUnikernel struct {
	Name    string       `json:"name"`
	Config  *desc.Config `json:"config"`
	Cmdline string       `json:"cmdline,omitempty"`
}

// JailEvent is one line a jail writes: an instance started (with the pid
// that holds it, in the jail's PID namespace) or finished.
type JailEvent struct {
	Event  string          `json:"event"` // "started", "finished", "resident" (all ended, held)
	I      int             `json:"i"`
	PID    int             `json:"pid,omitempty"`
	Result *monitor.Result `json:"result,omitempty"`
}

// JailStop is what the daemon writes to stop instance I of a jail, or,
// with Release, to end the jail's hold.
type JailStop struct {
	Stop    int  `json:"stop"`
	Release bool `json:"release,omitempty"`
}

// maxJailInstances bounds the instances a jail's job may ask for.
const maxJailInstances = 1 << 20

// RunJailWorker is a jail's process (`unipool-vmm jail-worker ROOT`): it
// enters the jail at root, reads its job from in, runs the instances with
// the job's monitor and reports each on out. Stop requests arrive on in;
// in closing (the daemon gone) stops everything.
func RunJailWorker(root string, in io.Reader, out io.Writer) error {
	if err := jail.Enter(root); err != nil {
		return err
	}
	r := bufio.NewReaderSize(in, 1<<20)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("jail %s: reading the job: %w", root, err)
	}
	var job JailJob
	if err := json.Unmarshal(line, &job); err != nil {
		return fmt.Errorf("jail %s: the job: %w", root, err)
	}
	if job.KVMFD > 0 {
		kvm.UseDevice(job.KVMFD)
	}
	// Every blob is checked again here, on the descriptor the monitor
	// maps: the jail trusts no check made outside it.
	verified := map[string]*os.File{}
	open := func(dgst string) (*os.File, error) {
		return pool.OpenBlobFile("jail "+root, jail.BlobPath(dgst), dgst)
	}
	verify := func(dgst string) error {
		f, err := open(dgst)
		if err != nil {
			return err
		}
		return f.Close()
	}
	snapOK := map[string]bool{}
	uks := make([]monitor.Unikernel, 0, len(job.Unikernels))
	for _, u := range job.Unikernels {
		if u.Config == nil {
			return fmt.Errorf("jail %s: unikernel %q without a description", root, u.Name)
		}
		if err := launch.OpenBlobs(u.Name, u.Config, open, verified); err != nil {
			return err
		}
		if job.Snapshot {
			if u.Config.Snapshot == nil {
				return fmt.Errorf("jail %s: unikernel %q has no snapshot", root, u.Name)
			}
			if err := launch.VerifySnapshot(u.Name, u.Config, verify, snapOK); err != nil {
				return err
			}
		}
		uks = append(uks, monitor.Unikernel{Name: u.Name, Config: u.Config, BlobPath: jail.BlobPath, Blobs: verified, Cmdline: u.Cmdline})
	}
	defer launch.Close(uks)
	if job.N < 1 || len(uks)*job.N > maxJailInstances {
		return fmt.Errorf("jail %s: %d instances of %d unikernels: want 1 to %d in all", root, job.N, len(uks), maxJailInstances)
	}
	total := len(uks) * job.N
	mon, err := monitor.Open(job.Monitor)
	if err != nil {
		return err
	}
	monitor.LeanGC() // a jail is a monitor process, as `unipool run` is

	var outMu sync.Mutex
	enc := json.NewEncoder(out)
	emit := func(ev JailEvent) {
		outMu.Lock()
		defer outMu.Unlock()
		enc.Encode(ev)
	}
	var stopMu sync.Mutex
	stops := make([]func(), total)
	stopAsked := make([]bool, total)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	var releaseOnce sync.Once
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var s JailStop
			if json.Unmarshal(sc.Bytes(), &s) != nil {
				continue
			}
			if s.Release {
				releaseOnce.Do(func() { close(release) })
				continue
			}
			if s.Stop < 0 || s.Stop >= total {
				continue
			}
			stopMu.Lock()
			stop := stops[s.Stop]
			stopAsked[s.Stop] = true
			stopMu.Unlock()
			if stop != nil {
				stop()
			}
		}
		cancel() // the daemon is gone
	}()
	opt := monitor.Options{N: job.N, MemSize: job.MemSize, Load: job.Load, ASLR: job.ASLR, ASLRPerLibrary: job.ASLRPerLibrary, KSM: job.KSM, Seed: job.Seed, Snapshot: job.Snapshot,
		Timeout: time.Duration(job.TimeoutNS), MaxOutput: job.MaxOutput, DropResults: true,
		Started: func(i, pid int, stop func()) {
			stopMu.Lock()
			stops[i] = stop
			asked := stopAsked[i]
			stopMu.Unlock()
			emit(JailEvent{Event: "started", I: i, PID: pid})
			if asked {
				stop()
			}
		},
		Finished: func(i int, res monitor.Result) {
			emit(JailEvent{Event: "finished", I: i, Result: &res})
		},
	}
	if job.HoldNS > 0 {
		// Every instance has ended; the monitor holds them until the
		// daemon releases the jail, the hold elapses or the daemon goes.
		opt.Hold = time.Duration(job.HoldNS)
		opt.Resident = func([]int) {
			emit(JailEvent{Event: "resident"})
			t := time.NewTimer(opt.Hold)
			defer t.Stop()
			select {
			case <-release:
			case <-t.C:
			case <-ctx.Done():
			}
		}
	}
	_, err = mon.Run(ctx, uks, opt)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
