package process

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A thin, typed layer over the ptrace and wait calls the tracer makes, so
// the rest of the package never builds a request by hand. Every function
// here must run on the OS thread that forked the tracee (see tracer).

// wnothread is Linux's __WNOTHREAD: wait only for this thread's children.
// Each tracer thread owns its tracees; without it one tracer's wait4(-1)
// could swallow another tracer's events.
const wnothread = 0x20000000

// siginfo is the part of the kernel's siginfo_t the monitor reads.
type siginfo struct {
	Signo int32
	Errno int32
	Code  int32
	// Addr is si_addr for SIGSEGV/SIGBUS/SIGILL/SIGFPE, si_call_addr for SIGSYS.
	Addr uint64
	// Syscall is si_syscall for SIGSYS.
	Syscall int32
}

// si_code values the fault handler distinguishes.
const (
	siKernel   = 0x80 // SI_KERNEL: a #GP, as privileged instructions raise in ring 3
	segvMapErr = 1    // SEGV_MAPERR: no mapping at the address
	segvAccErr = 2    // SEGV_ACCERR: the mapping forbids the access
)

func getSiginfo(pid int) (siginfo, error) {
	var raw [128]byte
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETSIGINFO, uintptr(pid), 0,
		uintptr(unsafe.Pointer(&raw[0])), 0, 0)
	if errno != 0 {
		return siginfo{}, fmt.Errorf("ptrace(GETSIGINFO, %d): %w", pid, errno)
	}
	le := binary.LittleEndian
	// x86-64 layout: three ints, padding to 16, then the union.
	return siginfo{
		Signo:   int32(le.Uint32(raw[0:])),
		Errno:   int32(le.Uint32(raw[4:])),
		Code:    int32(le.Uint32(raw[8:])),
		Addr:    le.Uint64(raw[16:]),
		Syscall: int32(le.Uint32(raw[24:])),
	}, nil
}

func getRegs(pid int, r *unix.PtraceRegs) error {
	if err := unix.PtraceGetRegs(pid, r); err != nil {
		return fmt.Errorf("ptrace(GETREGS, %d): %w", pid, err)
	}
	return nil
}

func setRegs(pid int, r *unix.PtraceRegs) error {
	if err := unix.PtraceSetRegs(pid, r); err != nil {
		return fmt.Errorf("ptrace(SETREGS, %d): %w", pid, err)
	}
	return nil
}

func cont(pid int, sig unix.Signal) error {
	if err := unix.PtraceCont(pid, int(sig)); err != nil {
		return fmt.Errorf("ptrace(CONT, %d): %w", pid, err)
	}
	return nil
}

// waitPid waits for an event of one tracee (wpid > 0) or of any tracee of
// this thread (wpid == -1). With nohang it returns pid 0 when none is ready.
func waitPid(wpid int, nohang bool) (int, unix.WaitStatus, error) {
	opts := unix.WALL | wnothread
	if nohang {
		opts |= unix.WNOHANG
	}
	var ws unix.WaitStatus
	for {
		pid, err := unix.Wait4(wpid, &ws, opts, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, 0, fmt.Errorf("wait4(%d): %w", wpid, err)
		}
		return pid, ws, nil
	}
}

// readMem reads guest memory. It goes through process_vm_readv, which
// needs no fd per instance (a thousand instances would otherwise hold a
// thousand /proc/PID/mem files open).
func readMem(pid int, addr uint64, buf []byte) (int, error) {
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(len(buf))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	n, err := unix.ProcessVMReadv(pid, local, remote, 0)
	if err != nil {
		return n, fmt.Errorf("read guest memory at %#x: %w", addr, err)
	}
	return n, nil
}

// memWrite is one piece of guest memory to fill.
type memWrite struct {
	addr uint64
	data []byte
}

// iovMax is Linux's IOV_MAX, the most iovecs one process_vm_writev takes.
const iovMax = 1024

// writeMem fills guest memory in as few process_vm_writev calls as the
// kernel allows. The target pages must be writable: the monitor maps
// private memory read-write, fills it, then sets its final protection.
func writeMem(pid int, ws []memWrite) error {
	return writeMemWith(pid, ws, nil)
}

// writeMemWith is writeMem, its iovecs made in sc's (if sc is not nil).
func writeMemWith(pid int, ws []memWrite, sc *buildScratch) error {
	n := min(len(ws), iovMax)
	var local []unix.Iovec
	var remote []unix.RemoteIovec
	if sc != nil {
		local, remote = grow(sc.local, n), grow(sc.remote, n)
		defer func() {
			clear(local[:cap(local)]) // (no bytes kept through them)
			sc.local, sc.remote = local[:0], remote[:0]
		}()
	} else {
		local, remote = make([]unix.Iovec, 0, n), make([]unix.RemoteIovec, 0, n)
	}
	for len(ws) > 0 {
		batch := ws[:min(len(ws), iovMax)]
		ws = ws[len(batch):]
		local, remote = local[:0], remote[:0]
		total := 0
		for _, w := range batch {
			if len(w.data) == 0 {
				continue
			}
			iov := unix.Iovec{Base: &w.data[0]}
			iov.SetLen(len(w.data))
			local = append(local, iov)
			remote = append(remote, unix.RemoteIovec{Base: uintptr(w.addr), Len: len(w.data)})
			total += len(w.data)
		}
		if total == 0 {
			continue
		}
		n, err := unix.ProcessVMWritev(pid, local, remote, 0)
		if err != nil {
			return fmt.Errorf("write guest memory at %#x: %w", remote[0].Base, err)
		}
		if n != total {
			// A short write means a remote range was not mapped writable;
			// find which one to say so.
			return fmt.Errorf("write guest memory: wrote %d of %d bytes (first range %#x)", n, total, remote[0].Base)
		}
	}
	return nil
}
