package process

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
)

// state is where an instance is in its life. Only the tracer thread moves
// it forward; timers and cancellation read it (under mu) to decide whether
// the pid may still be signalled.
type state int

const (
	stPending  state = iota // not started
	stBuilding              // process exists, address space being made
	stRunning               // guest running (or stopped in a trap)
	stFinished              // guest done; process killed, or held when --hold
	stReaped                // process gone, pid released
)

// instance is one guest and the process that holds it.
type instance struct {
	uk    string
	index int
	idx   int // in the run's result list
	// plan lays out the instance; it runs on the tracer thread, so the
	// layout's copies are made where the load time is measured.
	plan  func() (*loader.Layout, error)
	files []string // files the layout maps, passed as fds 0..n-1
	hold  bool

	lay      *loader.Layout
	pid      int
	started  time.Time
	entered  time.Time
	loadTime time.Duration
	runTime  time.Duration
	ready    time.Duration // load time + boot to the ready point
	// cpuAtEntry and cpuTime: the process's time on a CPU when the guest
	// was entered, and from then to its end (cpuTime).
	cpuAtEntry, cpuTime time.Duration
	output              []byte
	exitCode            int
	exited              bool                // the guest wrote an exit code
	err                 string              // why the instance failed, if it did
	kgsBase             uint64              // IA32_KERNEL_GS_BASE, kept for rdmsr
	discardPage         uint64              // where the guest's free-page reports are made (build.go), 0: ignored
	discarded           uint64              // bytes given back by free-page reports
	traps               map[uint64]trapInsn // decoded trapping instructions by %rip
	kept                bool                // its layout is kept in its tracer's cache (layouts.go) until it finishes
	timer               *time.Timer
	active              bool // counted in its tracer's active instances
	reported            bool // its tracer has passed on its final result
	// maxOutput caps the console bytes kept.
	maxOutput int

	mu        sync.Mutex
	st        state
	timedOut  time.Duration // set when the timeout killed it
	cancelled bool
	stopped   bool  // stopped through Options.Started's stop
	syscallNr int64 // the system call seccomp killed it for, -1 if none

	capture *Capture // set when the instance is booted to be captured (snapshot.go)
	// dump, if set, gets the guest's memory when it writes its exit code.
	dump func(monitor.MemoryDump)
}

func (in *instance) setState(s state) {
	in.mu.Lock()
	in.st = s
	in.mu.Unlock()
}

func (in *instance) state() state {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.st
}

// kill sends SIGKILL unless the process has been reaped (its pid could
// then belong to someone else). Safe from any goroutine.
func (in *instance) kill() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.pid > 0 && in.st != stReaped && in.st != stPending {
		unix.Kill(in.pid, unix.SIGKILL)
	}
}

// killIf kills a still-running instance and marks why.
func (in *instance) killIf(running func(*instance)) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.pid > 0 && (in.st == stRunning || in.st == stBuilding) {
		running(in)
		unix.Kill(in.pid, unix.SIGKILL)
	}
}

// fail records the first reason the instance failed.
func (in *instance) fail(format string, args ...any) {
	if in.err == "" {
		in.err = fmt.Sprintf(format, args...)
	}
}

// finish ends the guest: it has exited, halted or faulted. A finished
// guest is killed at once, or kept stopped with its memory when held.
func (in *instance) finish() {
	// Once the state says finished, the timeout and cancellation leave
	// the process alone; if one of them got to it first, that is why it
	// ended.
	in.mu.Lock()
	in.st = stFinished
	in.mu.Unlock()
	if in.timer != nil {
		in.timer.Stop()
		in.timer = nil // a held instance keeps no timer
	}
	if !in.entered.IsZero() && in.runTime == 0 {
		in.runTime = time.Since(in.entered)
		if c := cpuTime(in.pid); c > in.cpuAtEntry && in.cpuAtEntry > 0 {
			in.cpuTime = c - in.cpuAtEntry
		}
	}
	if why := in.killReason(); why != "" {
		in.fail("%s", why)
	}
	if !in.hold || in.err != "" {
		in.kill()
	}
}

// killReason says why the monitor killed a running instance, if it did.
func (in *instance) killReason() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case in.syscallNr >= 0:
		return fmt.Sprintf("made system call %d; the seccomp filter killed it (the guest ABI has no system calls)", in.syscallNr)
	case in.timedOut > 0:
		return fmt.Sprintf("still running after the %v timeout: killed", in.timedOut)
	case in.stopped:
		return monitor.StoppedByRequest
	case in.cancelled:
		return "cancelled: killed"
	}
	return ""
}

// reaped records the end of the process.
func (in *instance) reaped(ws unix.WaitStatus) {
	in.mu.Lock()
	prev := in.st
	in.st = stReaped
	in.mu.Unlock()
	if in.timer != nil {
		in.timer.Stop()
		in.timer = nil
	}
	if prev == stFinished {
		return
	}
	if !in.entered.IsZero() && in.runTime == 0 {
		in.runTime = time.Since(in.entered)
		if c := cpuTime(in.pid); c > in.cpuAtEntry && in.cpuAtEntry > 0 {
			in.cpuTime = c - in.cpuAtEntry
		}
	}
	if why := in.killReason(); why != "" {
		in.fail("%s", why)
	}
	in.fail("instance process %s", describeStatus(ws))
}

// result reports the instance.
func (in *instance) result() monitor.Result {
	r := monitor.Result{
		Unikernel: in.uk,
		Instance:  in.index,
		ExitCode:  in.exitCode,
		Output:    string(in.output),
		LoadTime:  in.loadTime,
		RunTime:   in.runTime,
		CPUTime:   in.cpuTime,
		ReadyTime: in.ready,
		PID:       in.pid,
		Error:     in.err,
	}
	if in.lay != nil {
		in.lay.Report(&r)
	}
	if !in.exited {
		r.ExitCode = -1
	}
	in.mu.Lock()
	r.Cancelled = in.cancelled
	in.mu.Unlock()
	return r
}

// onStop handles a stop of the running guest: a trapped instruction to
// emulate, a fault to report, or a signal to swallow.
func (in *instance) onStop(ws unix.WaitStatus) error {
	pid := in.pid
	if ws.TrapCause() == unix.PTRACE_EVENT_EXIT {
		return in.onExitEvent()
	}
	sig := ws.StopSignal()
	if sig == unix.SIGSEGV {
		if done, err := in.fastTrap(); done || err != nil {
			return err
		}
	}
	switch sig {
	case unix.SIGSEGV, unix.SIGBUS, unix.SIGILL, unix.SIGFPE, unix.SIGTRAP:
		si, err := getSiginfo(pid)
		if err != nil {
			return err
		}
		// A signal with si_code <= 0 was sent by a process (kill, tgkill):
		// it is no fault of the guest's, swallow it like any other.
		if si.Code > 0 {
			return in.onFault(sig, si)
		}
	}
	return cont(pid, 0)
}

// onExitEvent is the last stop of a dying process. When seccomp killed it,
// the registers still hold the system call it made.
func (in *instance) onExitEvent() error {
	msg, err := unix.PtraceGetEventMsg(in.pid)
	if err == nil {
		ws := unix.WaitStatus(msg)
		if ws.Signaled() && ws.Signal() == unix.SIGSYS {
			var regs unix.PtraceRegs
			if getRegs(in.pid, &regs) == nil {
				in.mu.Lock()
				in.syscallNr = int64(regs.Orig_rax)
				in.mu.Unlock()
				in.fail("made system call %d at %#x (%s); the seccomp filter killed it (the guest ABI has no system calls)",
					int64(regs.Orig_rax), regs.Rip-2, in.lay.Describe(regs.Rip-2))
			}
		}
	}
	return cont(in.pid, 0)
}

// onFault emulates a trapped privileged instruction, or reports a fault
// and kills the instance.
func (in *instance) onFault(sig unix.Signal, si siginfo) error {
	var regs unix.PtraceRegs
	if err := getRegs(in.pid, &regs); err != nil {
		return err
	}
	code := in.code(regs.Rip)
	if sig == unix.SIGSEGV && si.Code == siKernel {
		if insn, ok := decodeTrap(code); ok {
			in.remember(regs.Rip, insn)
			return in.emulate(&regs, insn)
		}
		in.fail("general protection fault: %s at %#x (%s)", disasm(code), regs.Rip, in.lay.Describe(regs.Rip))
		in.finish()
		return nil
	}
	in.fail("%s", in.faultReport(sig, si, regs.Rip, code))
	in.finish()
	return nil
}

// Console output traps once per byte, so the common trap takes a short
// path: an instruction already decoded at a %rip in memory the guest cannot
// write (it has no system call to change that) is emulated again without
// reading the signal info or the code. Only instructions without a memory
// operand qualify, so the SIGSEGV can only be their #GP.

// remember caches insn at rip if the code there cannot change.
func (in *instance) remember(rip uint64, insn trapInsn) {
	if insn.kind == opOuts {
		return
	}
	m := in.lay.Find(rip)
	if m == nil || m.Prot&unix.PROT_WRITE != 0 {
		return
	}
	if end := m.Addr + m.Size; rip+uint64(insn.len) > end {
		return
	}
	if in.traps == nil {
		in.traps = map[uint64]trapInsn{}
	}
	in.traps[rip] = insn
}

// fastTrap emulates a remembered instruction; it reports false when %rip
// holds none, and the stop takes the full path.
func (in *instance) fastTrap() (bool, error) {
	if len(in.traps) == 0 {
		return false, nil
	}
	var regs unix.PtraceRegs
	if err := getRegs(in.pid, &regs); err != nil {
		return false, err
	}
	insn, ok := in.traps[regs.Rip]
	if !ok {
		return false, nil
	}
	return true, in.emulate(&regs, insn)
}

// faultReport says what the guest did wrong and where, naming the library
// (and part) of the address and of the instruction.
func (in *instance) faultReport(sig unix.Signal, si siginfo, rip uint64, code []byte) string {
	at := fmt.Sprintf("by `%s` at %#x (%s)", disasm(code), rip, in.lay.Describe(rip))
	switch sig {
	case unix.SIGSEGV:
		m := in.lay.Find(si.Addr)
		switch {
		case si.Code == segvMapErr || m == nil:
			return fmt.Sprintf("access to unmapped memory at %#x %s", si.Addr, at)
		case m.Prot&unix.PROT_EXEC == 0 && si.Addr >= rip && si.Addr < rip+maxInsnLen:
			// An instruction fetch: the fault address is where it began,
			// or the page it ran into.
			return fmt.Sprintf("execution of non-executable memory at %#x (%s)", si.Addr, in.lay.Describe(si.Addr))
		case m.Prot&unix.PROT_WRITE == 0:
			kind := "read-only data"
			if m.Prot&unix.PROT_EXEC != 0 {
				kind = "code"
			}
			if m.Part == loader.PartShared || m.Part == loader.PartTramp {
				kind = "library " + kind
			}
			return fmt.Sprintf("write to read-only %s at %#x (%s) %s", kind, si.Addr, in.lay.Describe(si.Addr), at)
		default:
			return fmt.Sprintf("access denied at %#x (%s) %s", si.Addr, in.lay.Describe(si.Addr), at)
		}
	case unix.SIGBUS:
		return fmt.Sprintf("bus error at %#x (%s; a mapped blob shorter than its mapping?) %s", si.Addr, in.lay.Describe(si.Addr), at)
	case unix.SIGILL:
		return fmt.Sprintf("invalid instruction %s", at)
	case unix.SIGFPE:
		return fmt.Sprintf("arithmetic exception %s", at)
	case unix.SIGTRAP:
		return fmt.Sprintf("breakpoint or debug trap %s", at)
	}
	return fmt.Sprintf("signal %v %s", sig, at)
}

// code reads up to maxInsnLen bytes at rip, fewer at the end of a mapping.
func (in *instance) code(rip uint64) []byte {
	buf := make([]byte, maxInsnLen)
	// process_vm_readv stops at the first unreadable page; a page-split
	// read returns what precedes it.
	n, _ := readMem(in.pid, rip, buf)
	if n < 0 {
		n = 0
	}
	return buf[:n]
}

// emulate performs insn for the guest and resumes it after the instruction.
func (in *instance) emulate(regs *unix.PtraceRegs, insn trapInsn) error {
	port := insn.port
	if port < 0 {
		port = int(regs.Rdx & 0xffff)
	}
	mask := uint64(1)<<(8*insn.size) - 1
	switch insn.kind {
	case opOut:
		if port == abi.PortReady && in.capture != nil {
			in.takeCapture(regs, insn)
			in.finish()
			return nil
		}
		if port == abi.PortDiscard && in.capture == nil {
			n, err := discard(in.pid, in.lay, in.discardPage, regs, regs.Rdi, regs.Rsi)
			in.discarded += n
			if err != nil {
				return err
			}
		}
		if in.portOut(port, uint32(regs.Rax&mask)) {
			if in.dump != nil {
				in.dump(in.dumpMemory())
			}
			in.finish()
			return nil
		}
	case opOuts:
		done, more, err := in.outs(regs, port, insn)
		if err != nil {
			in.fail("%v", err)
			in.finish()
			return nil
		}
		if done {
			in.finish()
			return nil
		}
		if more {
			// The rest of a long `rep outs`: run the instruction again
			// with what is left in %rcx, as the CPU would after an
			// interrupt.
			if err := setRegs(in.pid, regs); err != nil {
				return err
			}
			return cont(in.pid, 0)
		}
	case opIn:
		v := uint64(portIn(port)) & mask
		if insn.size == 4 {
			regs.Rax = v // a 32-bit result clears the upper half
		} else {
			regs.Rax = regs.Rax&^mask | v
		}
	case opHlt:
		if !in.exited {
			// Nothing ever interrupts a halted guest here: it is done.
			in.fail("halted at %#x (%s) without writing an exit code to port %#x",
				regs.Rip, in.lay.Describe(regs.Rip), abi.PortExit)
		}
		in.finish()
		return nil
	case opWrmsr:
		msr, val := uint32(regs.Rcx), regs.Rdx<<32|regs.Rax&0xffffffff
		switch msr {
		case msrFSBase:
			regs.Fs_base = val
		case msrGSBase:
			regs.Gs_base = val
		case msrKernelGSBase:
			in.kgsBase = val
		default:
			in.fail("wrmsr to unsupported MSR %#x at %#x (%s)", msr, regs.Rip, in.lay.Describe(regs.Rip))
			in.finish()
			return nil
		}
	case opRdmsr:
		var val uint64
		switch msr := uint32(regs.Rcx); msr {
		case msrFSBase:
			val = regs.Fs_base
		case msrGSBase:
			val = regs.Gs_base
		case msrKernelGSBase:
			val = in.kgsBase
		default:
			in.fail("rdmsr of unsupported MSR %#x at %#x (%s)", msr, regs.Rip, in.lay.Describe(regs.Rip))
			in.finish()
			return nil
		}
		regs.Rax, regs.Rdx = val&0xffffffff, val>>32
	case opNop:
	}
	regs.Rip += uint64(insn.len)
	if err := setRegs(in.pid, regs); err != nil {
		if insn.kind == opWrmsr {
			// The kernel refuses FS/GS bases outside user space.
			in.fail("wrmsr %#x: base %#x not usable: %v", uint32(regs.Rcx), regs.Rdx<<32|regs.Rax&0xffffffff, err)
			in.finish()
			return nil
		}
		return err
	}
	return cont(in.pid, 0)
}

// portOut handles one value written to a port; it reports whether the
// guest has exited.
func (in *instance) portOut(port int, val uint32) bool {
	switch port {
	case abi.PortCOM1:
		if len(in.output) < in.maxOutput {
			in.output = append(in.output, byte(val))
		}
	case abi.PortReady:
		if in.ready == 0 && !in.entered.IsZero() {
			in.ready = in.loadTime + time.Since(in.entered)
		}
	case abi.PortExit:
		// A 32-bit write is a C int: -1 stays -1 (as under kvm); byte
		// and word writes are masked to their width, so stay unsigned.
		in.exitCode, in.exited = int(int32(val)), true
		return true
	}
	// Writes to other ports (the UART's setup registers) change nothing.
	return false
}

// maxOutput bounds the console output kept per instance by default, so a
// guest that prints forever cannot exhaust the monitor's memory before its
// timeout (Options.MaxOutput sets another cap).
const maxOutput = 16 << 20

// outs emulates [rep] outs{b,w,d}: the values come from guest memory at
// %rsi. A `rep outs` is done completely, at most outsChunk bytes per trap:
// more reports that %rcx still counts some, and the instruction is to run
// again (it traps again), so a huge count costs the monitor no memory and
// the guest's timeout still applies.
func (in *instance) outs(regs *unix.PtraceRegs, port int, insn trapInsn) (exited, more bool, err error) {
	count := uint64(1)
	if insn.rep {
		count = regs.Rcx
	}
	if count == 0 {
		return false, false, nil
	}
	if max := uint64(outsChunk / insn.size); count > max {
		count, more = max, true
	}
	n := count * uint64(insn.size)
	src := regs.Rsi
	down := regs.Eflags&(1<<10) != 0 // DF: the string runs downwards
	if down {
		src -= n - uint64(insn.size)
	}
	buf := make([]byte, n)
	if got, err := readMem(in.pid, src, buf); err != nil || uint64(got) != n {
		return false, false, fmt.Errorf("outs from unreadable memory at %#x (%s)", src, in.lay.Describe(src))
	}
	for i := uint64(0); i < count; i++ {
		k := i
		if down {
			k = count - 1 - i
		}
		var v uint32
		for b := 0; b < insn.size; b++ {
			v |= uint32(buf[k*uint64(insn.size)+uint64(b)]) << (8 * b)
		}
		if in.portOut(port, v) {
			// The exit port ends the guest: the rest is never written.
			return true, false, nil
		}
	}
	if down {
		regs.Rsi -= n
	} else {
		regs.Rsi += n
	}
	if insn.rep {
		regs.Rcx -= count
	}
	return false, more, nil
}

// outsChunk is the most bytes one trap of `rep outs` emulates.
const outsChunk = 64 << 10
