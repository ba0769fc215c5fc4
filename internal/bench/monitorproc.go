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
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"time"

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

// monitorProcess is a running monitor process, seen from the bench.
type monitorProcess struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *json.Decoder
}

// Pid is the monitor process.
func (p *monitorProcess) Pid() int { return p.cmd.Process.Pid }

// startMonitorProcess writes spec to specPath (kept: `unipool-vmm --spec
// FILE --hold D` runs the same monitor again, e.g. under an independent
// cross-check) and starts exe (a copy of the lean monitor binary:
// monitorExecutable) on it; start starts the command (in the mode's
// memory cgroup).
func startMonitorProcess(exe, specPath string, spec vmmproc.Spec, log io.Writer, start func(*exec.Cmd) error) (*monitorProcess, error) {
	if err := vmmproc.WriteSpec(specPath, spec); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cmd := exec.Command(exe, "--spec", specPath)
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
func (p *monitorProcess) next() (vmmproc.Message, error) {
	var msg vmmproc.Message
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

func (p *monitorProcess) finish() ([]vmmproc.Outcome, error) {
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

// monitorExecutable copies the lean monitor binary (unipool-vmm, next to
// the running executable) into dir for the monitor processes to run. A
// copy, so that no page of the monitor's binary is shared with another
// process that maps the original: its PSS is then what a host that runs
// only the monitor pays for it (the file pages of a binary are split
// among the processes that map them). The caller removes it.
func monitorExecutable(dir string) (string, error) {
	exe, err := vmmproc.CopyExecutable(dir)
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return exe, nil
}
