package serve

// The jailer mode (serve --vms-per-process N): a start request's instances
// run in jails of at most N instances each (internal/jail): one process
// per jail, the lean monitor binary unipool-vmm (vmmproc.RunJailWorker),
// in its own namespaces and cgroup, whose root holds only the blobs its
// instances map. The daemon talks to each jail over its stdin (the job,
// then stop requests) and stdout (an event per instance start and end),
// one JSON object per line (vmmproc.JailJob, JailStop, JailEvent). A jail
// that dies fails its own instances and no other.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/unipool/unipool/internal/jail"
	"github.com/unipool/unipool/internal/kvm"
	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/vmmproc"
)

var jailSeq atomic.Uint64

// runJailed runs a batch in jails of at most VMsPerProcess instances.
func (d *Daemon) runJailed(b *batch, uks []monitor.Unikernel, opt monitor.Options) {
	defer d.runs.Done()
	defer b.finish()
	defer launch.Close(uks)
	var wg sync.WaitGroup
	for _, js := range jailSlices(len(uks), opt.N, d.cfg.VMsPerProcess) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := b.ids[js.lo:js.hi]
			if err := d.runJail(ids, uks[js.u0:js.u1], js.n, opt); err != nil {
				for _, id := range ids {
					d.onFinished(id, monitor.Result{Unikernel: d.nameOf(id), Instance: d.instanceIndex(id, 0), ExitCode: -1, Error: err.Error()})
				}
			}
		}()
	}
	wg.Wait()
}

// jailSlice is one jail's part of a batch: n instances of each of the
// unikernels [u0, u1), the batch's instances [lo, hi).
type jailSlice struct{ u0, u1, n, lo, hi int }

// jailSlices splits a batch of units unikernels with n instances each
// (instance i is unikernel i/n's) into jails of at most per instances, so
// that a jail prepares each of its unikernels once, not once per
// instance: per/n whole unikernels a jail, or, when n > per, a
// unikernel's instances in jails of at most per.
func jailSlices(units, n, per int) []jailSlice {
	var js []jailSlice
	if n <= per {
		k := per / n
		for u0 := 0; u0 < units; u0 += k {
			u1 := min(u0+k, units)
			js = append(js, jailSlice{u0, u1, n, u0 * n, u1 * n})
		}
		return js
	}
	for u := range units {
		for lo := 0; lo < n; lo += per {
			hi := min(lo+per, n)
			js = append(js, jailSlice{u, u + 1, hi - lo, u*n + lo, u*n + hi})
		}
	}
	return js
}

// instanceIndex is instance id's index among its unikernel's instances
// in its batch (a jail numbers only its own share of them).
func (d *Daemon) instanceIndex(id uint64, def int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if in := d.insts[id]; in != nil {
		return in.Result.Instance
	}
	return def
}

func (d *Daemon) nameOf(id uint64) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if in := d.insts[id]; in != nil {
		return in.Result.Unikernel
	}
	return ""
}

// runJail runs one jail to its end. An error means it never ran; an
// instance left unfinished by a jail that died is failed here.
func (d *Daemon) runJail(ids []uint64, members []monitor.Unikernel, n int, opt monitor.Options) error {
	seq := jailSeq.Add(1)
	id := d.cfg.JailUID + int(seq%65536)
	name := fmt.Sprintf("%d-%d", os.Getpid(), seq)
	root := filepath.Join(d.cfg.JailDir, name)

	job := vmmproc.JailJob{Monitor: d.cfg.Monitor, MemSize: opt.MemSize, Load: opt.Load, ASLR: opt.ASLR, ASLRPerLibrary: opt.ASLRPerLibrary, KSM: opt.KSM,
		Seed: opt.Seed, Snapshot: opt.Snapshot, TimeoutNS: int64(opt.Timeout), HoldNS: int64(opt.Hold), MaxOutput: opt.MaxOutput, N: n}
	blobs := map[string]string{}
	for _, u := range members {
		job.Unikernels = append(job.Unikernels, vmmproc.JailUnikernel{Name: u.Name, Config: u.Config, Cmdline: u.Cmdline})
		for dgst := range launch.Blobs(u.Config) {
			blobs[dgst] = u.BlobPath(dgst)
		}
		if opt.Snapshot {
			for dgst := range launch.SnapshotBlobs(u.Config) {
				blobs[dgst] = u.BlobPath(dgst)
			}
		}
	}
	defer jail.Cleanup(root)
	if err := jail.Prepare(root, blobs); err != nil {
		return err
	}
	cg, err := jail.NewCgroup("jail-"+name, d.cfg.JailMemory)
	if err != nil {
		return fmt.Errorf("jail %s: %w", root, err)
	}
	defer cg.Remove()

	cmd := jail.Command(d.jailExe, id, vmmproc.JailWorkerCommand, filepath.Join(d.jailView, name))
	cmd.Stderr = os.Stderr
	if d.cfg.Monitor == "kvm" {
		dev, err := os.OpenFile(kvm.DevicePath, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("jail %s: %w", root, err)
		}
		defer dev.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, dev)
		job.KVMFD = 2 + len(cmd.ExtraFiles)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("jail %s: start its process: %w", root, err)
	}
	jpid := cmd.Process.Pid
	// Nothing of the job runs before the process is in its group: it
	// waits for the job on stdin.
	if err := cg.Add(jpid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return err
	}
	d.addJail(cg)
	defer d.dropJail(cg)
	// The daemon stopping (its run context) kills the jail: its process
	// is PID 1 of its namespace, so every instance process goes with it.
	stopKill := context.AfterFunc(d.runCtx, func() { cmd.Process.Kill() })
	defer stopKill()

	var inMu sync.Mutex
	send := func(v any) {
		b, _ := json.Marshal(v)
		inMu.Lock()
		defer inMu.Unlock()
		stdin.Write(append(b, '\n'))
	}
	send(job)

	done := make([]bool, len(ids))
	pids := newNSPids(cg, jpid)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var ev vmmproc.JailEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.I < 0 || ev.I >= len(ids) {
			continue
		}
		switch ev.Event {
		case "started":
			i := ev.I
			d.onStarted(ids[i], pids.host(ev.PID), func() { send(vmmproc.JailStop{Stop: i}) })
		case "resident":
			d.setResident(ids, &holdGroup{release: func() { send(vmmproc.JailStop{Release: true}) }})
		case "finished":
			if ev.Result != nil && !done[ev.I] {
				done[ev.I] = true
				r := *ev.Result
				r.PID = pids.host(r.PID)
				r.Instance = d.instanceIndex(ids[ev.I], r.Instance)
				d.onFinished(ids[ev.I], r)
			}
		}
	}
	stdin.Close()
	werr := cmd.Wait()
	d.clearResident(ids)
	for i, ok := range done {
		if !ok {
			d.onFinished(ids[i], monitor.Result{Unikernel: members[i/n].Name, Instance: d.instanceIndex(ids[i], 0), ExitCode: -1,
				Error: fmt.Sprintf("its jail's process (pid %d) ended before it did: %v", jpid, werr)})
		}
	}
	return nil
}

// nsPids translates pids of a jail's PID namespace to the host's.
type nsPids struct {
	cg   *jail.Cgroup
	init int // the jail's process: pid 1 inside
	m    map[int]int
}

func newNSPids(cg *jail.Cgroup, init int) *nsPids {
	return &nsPids{cg: cg, init: init, m: map[int]int{}}
}

func (p *nsPids) host(ns int) int {
	switch {
	case ns <= 0:
		return 0
	case ns == 1:
		return p.init
	}
	if h, ok := p.m[ns]; ok {
		return h
	}
	procs, _ := p.cg.Procs()
	for _, h := range procs {
		if _, seen := p.m[nsPid(h)]; !seen {
			p.m[nsPid(h)] = h
		}
	}
	return p.m[ns]
}

// nsPid is the innermost pid of host process h (the last NSpid field).
func nsPid(h int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[len(f)-1])
				return n
			}
		}
	}
	return -1
}

func (d *Daemon) addJail(cg *jail.Cgroup) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.jails = append(d.jails, cg)
}

func (d *Daemon) dropJail(cg *jail.Cgroup) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, c := range d.jails {
		if c == cg {
			d.jails = append(d.jails[:i], d.jails[i+1:]...)
			return
		}
	}
}
