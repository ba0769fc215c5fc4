// Package monitorproc is the parent's side of a monitor process: it
// starts the lean monitor binary unipool-vmm on a spec (internal/vmmproc:
// the spec, the monitor's side and its JSON-lines messages), reads what it
// holds, ends the hold and collects the outcomes. `bench memory` / `bench
// tlb` start one per mode, and so does `unipool run --measure` (Measure):
// each measures the child from outside, with internal/measure, so that
// the monitor it reports is the process a real run pays for. The lean
// binary never imports this package (vmmproc's import-graph test says
// so): the reports stay in the CLI.
package monitorproc

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/unipool/unipool/internal/vmmproc"
)

// Process is a running monitor process, seen from its parent.
type Process struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *json.Decoder
}

// Pid is the monitor process.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Start writes spec to specPath (kept: `unipool-vmm --spec FILE --hold D`
// runs the same monitor again, e.g. under an independent cross-check) and
// starts exe (the lean monitor binary, or a copy of it) on it, its stderr
// to log; start starts the command (e.g. in a memory cgroup:
// measure.FleetGroup.Start).
func Start(exe, specPath string, spec vmmproc.Spec, log io.Writer, start func(*exec.Cmd) error) (*Process, error) {
	if err := vmmproc.WriteSpec(specPath, spec); err != nil {
		return nil, err
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
		return nil, fmt.Errorf("start the monitor process: %w", err)
	}
	return &Process{cmd: cmd, in: in, out: json.NewDecoder(out)}, nil
}

// Next reads the monitor process's next message.
func (p *Process) Next() (vmmproc.Message, error) {
	var msg vmmproc.Message
	if err := p.out.Decode(&msg); err != nil {
		return msg, fmt.Errorf("the monitor process (pid %d): %w", p.Pid(), err)
	}
	if msg.Error != "" {
		return msg, fmt.Errorf("the monitor process: %s", msg.Error)
	}
	return msg, nil
}

// Release ends the hold.
func (p *Process) Release() { p.in.Write([]byte("release\n")) }

// Finish waits for the outcomes and the process's end (a process that
// held nothing, every instance failed, sends them at once).
func (p *Process) Finish() ([]vmmproc.Outcome, error) {
	p.in.Close()
	msg, err := p.Next()
	for err == nil && !msg.Done {
		msg, err = p.Next()
	}
	werr := p.cmd.Wait()
	if err != nil {
		return nil, err
	}
	if werr != nil {
		return nil, fmt.Errorf("the monitor process: %w", werr)
	}
	return msg.Outcomes, nil
}

// Kill ends the monitor process (and with it its instances) after a
// failure.
func (p *Process) Kill() {
	p.cmd.Process.Kill()
	p.in.Close()
	p.cmd.Wait()
}

// Interrupt asks the monitor process to stop early (SIGINT: it ends its
// instances and reports what it has).
func (p *Process) Interrupt() { p.cmd.Process.Signal(os.Interrupt) }

// Wait closes its input and waits for the process's end, after its
// messages were read (under churn, where the last message is its own).
func (p *Process) Wait() error {
	p.in.Close()
	return p.cmd.Wait()
}
