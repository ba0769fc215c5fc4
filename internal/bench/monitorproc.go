package bench

// The monitor as a process of its own. `bench memory` used to run the
// process monitor inside the bench process and count that process's PSS
// growth as the monitor's: the growth also held whatever the bench's own
// heap and the Go runtime did meanwhile (the census of the mode before,
// samples, GC timing), and moved by more than 10 MiB between runs of one
// fleet. Now each mode's monitor is a child process started in the mode's
// memory cgroup, running the fleet as `unipool run --hold` does, and the
// monitor column is that process's whole PSS: what the host pays for it.
// The bench only reads /proc. The child is the lean monitor binary
// unipool-vmm (internal/vmmproc: the spec, the monitor's side and its
// JSON-lines messages), copied: the pages of its binary are the monitor
// column's too, and a monitor pays for none of the CLI's.

import (
	"fmt"
	"io"
	"os/exec"
	"time"

	"github.com/unipool/unipool/internal/monitorproc"
	"github.com/unipool/unipool/internal/vmmproc"
)

// Churn says how instances came and went in `bench memory --arrivals`
// (vmmproc.Churn).
type Churn = vmmproc.Churn

// specFor is what mode m's monitor process runs of fleet.
func specFor(fleet *Fleet, m Mode, monitorName string, o MemoryOptions) vmmproc.Spec {
	s := vmmproc.Spec{Monitor: monitorName, Mode: m.run(), IgnoreFreePageReports: o.IgnoreFreePageReports, Timeout: 5 * time.Minute}
	if m.Layout == "" {
		s.Pool = fleet.poolFor(m)
	}
	for i, u := range fleet.Corpus.Unikernels {
		su := vmmproc.SpecUnikernel{Name: u.Name, Cmdline: u.Input, Expect: u.Expect}
		if m.Layout == "" {
			su.Name = fleet.Names[i]
		} else {
			su.Image = fleet.Images[m.Layout][i]
		}
		s.Unikernels = append(s.Unikernels, su)
	}
	return s
}

// run is what m's monitor needs of it.
func (m Mode) run() vmmproc.Mode {
	return vmmproc.Mode{Name: m.Name, Load: m.Load, KSM: m.KSM, ASLR: m.ASLR, ASLRPerLibrary: m.ASLRPerLibrary, Snapshot: m.Snapshot}
}

// startMonitorProcess starts exe (a copy of the lean monitor binary:
// monitorExecutable) on spec, written to specPath
// (internal/monitorproc: the parent's side, shared with `run
// --measure`); start starts the command (in the mode's memory cgroup).
func startMonitorProcess(exe, specPath string, spec vmmproc.Spec, log io.Writer, start func(*exec.Cmd) error) (*monitorproc.Process, error) {
	p, err := monitorproc.Start(exe, specPath, spec, log, start)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return p, nil
}

// monitorExecutable copies the lean monitor binary (unipool-vmm, next to
// the running executable) into dir for the monitor processes to run. A
// copy, so that no page of the monitor's binary is shared with another
// process that maps the original: its PSS is then what a host that runs
// only the monitor pays for it (the file pages of a binary are split
// among the processes that map them). The caller removes it.
func monitorExecutable(dir string) (string, error) {
	exe, err := monitorproc.CopyExecutable(dir)
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return exe, nil
}
