package microvm

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/kvm"
)

// run runs the vCPU until the guest exits, faults or is stopped. It must
// be called on the thread recorded in m.tid (the caller locked it).
func (m *machine) run() outcome {
	m.mu.Lock()
	if m.stopped != "" {
		m.mu.Unlock()
		return outcome{exitCode: -1, err: m.stopped}
	}
	m.running = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.running = false
		m.mu.Unlock()
	}()
	runData := m.cpu.RunData()
	for {
		err := m.cpu.Run()
		if errors.Is(err, unix.EINTR) {
			// A signal: ours (stop) or the Go runtime's (preemption).
			m.mu.Lock()
			why := m.stopped
			m.mu.Unlock()
			if why != "" {
				return outcome{exitCode: -1, err: why}
			}
			continue
		}
		if errors.Is(err, unix.EFAULT) && m.slots != nil {
			// A Linux-boot VM's slots span holes mapped without access.
			return outcome{exitCode: -1, err: fmt.Sprintf("KVM_RUN: %v: the guest touched unbacked memory (a hole between its mappings) at %s", err, m.ripString())}
		}
		if err != nil {
			return outcome{exitCode: -1, err: fmt.Sprintf("KVM_RUN: %v", err)}
		}
		if o := m.handleExit(runData); o != nil {
			return *o
		}
	}
}

// handleExit dispatches one VM exit; nil means "resume the guest".
func (m *machine) handleExit(r *kvm.Run) *outcome {
	switch r.ExitReason {
	case kvm.ExitIO:
		io := r.IO()
		data := m.cpu.IOData(int(io.Size) * int(io.Count))
		if io.Direction == kvm.ExitIOOut {
			return m.out(io.Port, int(io.Size), data)
		}
		m.in(io.Port, int(io.Size), data)
		return nil
	case kvm.ExitHLT:
		// Interrupts are off and there is no interrupt controller:
		// nothing can ever wake the guest.
		return &outcome{exitCode: -1, err: fmt.Sprintf("guest halted (hlt with interrupts off) at %s without writing an exit code to port %#x",
			m.ripString(), 0x501)}
	case kvm.ExitMMIO:
		mmio := r.MMIO()
		if mmio.IsWrite != 0 {
			return &outcome{exitCode: -1, err: m.readOnlyWrite(mmio.PhysAddr)}
		}
		return &outcome{exitCode: -1, err: fmt.Sprintf("read of unbacked guest-physical address %#x at %s", mmio.PhysAddr, m.ripString())}
	case kvm.ExitShutdown:
		return &outcome{exitCode: -1, err: fmt.Sprintf("guest triple fault (shutdown) at %s", m.ripString())}
	case kvm.ExitFailEntry:
		return &outcome{exitCode: -1, err: fmt.Sprintf("KVM could not enter the guest: hardware entry failure reason %#x",
			r.FailEntry().HardwareEntryFailureReason)}
	case kvm.ExitInternalError:
		in := r.Internal()
		detail := ""
		if n := min(int(in.NData), len(in.Data)); n > 0 {
			detail = fmt.Sprintf(" (data %#x)", in.Data[:n])
		}
		if regs, err := m.cpu.Regs(); err == nil {
			detail += fmt.Sprintf(" rax %#x rbx %#x rcx %#x rdx %#x rsi %#x rdi %#x rsp %#x", regs.RAX, regs.RBX, regs.RCX, regs.RDX, regs.RSI, regs.RDI, regs.RSP)
		}
		return &outcome{exitCode: -1, err: fmt.Sprintf("KVM internal error, suberror %d, at %s%s", in.Suberror, m.ripString(), detail)}
	case kvm.ExitIntr:
		return nil
	case kvm.ExitDebug:
		return m.entryStepped()
	default:
		return &outcome{exitCode: -1, err: fmt.Sprintf("unexpected KVM exit reason %d at %s", r.ExitReason, m.ripString())}
	}
}

func (m *machine) ripString() string {
	r, err := m.cpu.Regs()
	if err != nil {
		return "rip unknown"
	}
	return fmt.Sprintf("rip %#x (%s)", r.RIP, m.layout.Describe(r.RIP))
}

// stop makes the vCPU leave the guest and the run loop end with why: it
// sets immediate_exit (for a vCPU about to enter) and signals the vCPU's
// thread (for one inside KVM_RUN). SIGURG is the Go runtime's own
// preemption signal, so the runtime's handler takes it harmlessly.
func (m *machine) stop(why string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped == "" {
		m.stopped = why
	}
	if m.cpu != nil {
		m.cpu.RunData().ImmediateExit = 1
	}
	if m.running {
		unix.Tgkill(unix.Getpid(), m.tid, unix.SIGURG)
	}
}
