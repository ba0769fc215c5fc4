package process

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// remote makes system calls inside a stopped tracee: it points %rip at the
// stub's `syscall`, lets the child run until the `int3` after it, and reads
// the result. The child never runs code of its own while it is built.
type remote struct {
	pid  int
	base unix.PtraceRegs // the registers at the exec stop
	regs unix.PtraceRegs
}

func newRemote(pid int) (*remote, error) {
	r := &remote{pid: pid}
	if err := getRegs(pid, &r.base); err != nil {
		return nil, err
	}
	return r, nil
}

// call runs system call nr with args in the child and returns its result,
// or the errno it failed with.
func (r *remote) call(nr uintptr, args ...uint64) (uint64, error) {
	var a [6]uint64
	copy(a[:], args)
	r.regs = r.base
	r.regs.Rax = uint64(nr)
	r.regs.Orig_rax = ^uint64(0) // not in a system call: no restart logic
	r.regs.Rdi, r.regs.Rsi, r.regs.Rdx, r.regs.R10, r.regs.R8, r.regs.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
	r.regs.Rip = stubSyscall
	if err := setRegs(r.pid, &r.regs); err != nil {
		return 0, err
	}
	if err := cont(r.pid, 0); err != nil {
		return 0, err
	}
	for {
		_, ws, err := waitPid(r.pid, false)
		if err != nil {
			return 0, err
		}
		if ws.Exited() || ws.Signaled() {
			return 0, fmt.Errorf("instance process died while being built (%s)", describeStatus(ws))
		}
		if ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() <= 0 {
			break
		}
		// Any other stop (a signal from outside, the exit event of a
		// process being killed) is not ours: suppress it and go on.
		if err := cont(r.pid, 0); err != nil {
			return 0, err
		}
	}
	if err := getRegs(r.pid, &r.regs); err != nil {
		return 0, err
	}
	if r.regs.Rip != stubAfterTrap {
		return 0, fmt.Errorf("injected syscall %d: child stopped at %#x, not after the stub", nr, r.regs.Rip)
	}
	ret := r.regs.Rax
	if int64(ret) < 0 && int64(ret) > -4096 {
		return 0, unix.Errno(-int64(ret))
	}
	return ret, nil
}

func (r *remote) mmap(addr, size uint64, prot, flags int, fd int, off uint64) error {
	got, err := r.call(unix.SYS_MMAP, addr, size, uint64(prot), uint64(flags), uint64(int64(fd)), off)
	if err != nil {
		return fmt.Errorf("mmap %#x+%#x: %w", addr, size, err)
	}
	if got != addr {
		return fmt.Errorf("mmap %#x+%#x: landed at %#x", addr, size, got)
	}
	return nil
}

func (r *remote) mprotect(addr, size uint64, prot int) error {
	if _, err := r.call(unix.SYS_MPROTECT, addr, size, uint64(prot)); err != nil {
		return fmt.Errorf("mprotect %#x+%#x: %w", addr, size, err)
	}
	return nil
}

func (r *remote) madvise(addr, size uint64, advice int) error {
	if _, err := r.call(unix.SYS_MADVISE, addr, size, uint64(advice)); err != nil {
		return fmt.Errorf("madvise %#x+%#x %d: %w", addr, size, advice, err)
	}
	return nil
}

func (r *remote) munmap(addr, size uint64) error {
	if _, err := r.call(unix.SYS_MUNMAP, addr, size); err != nil {
		return fmt.Errorf("munmap %#x+%#x: %w", addr, size, err)
	}
	return nil
}

// closeAll closes every fd of the child: the blob fds are no longer needed
// once mapped, and a guest that could make system calls should find none.
func (r *remote) closeAll(nfds int) error {
	_, err := r.call(unix.SYS_CLOSE_RANGE, 0, ^uint64(0)>>32, 0)
	if err == unix.ENOSYS { // before Linux 5.9
		for fd := 0; fd < nfds; fd++ {
			if _, err := r.call(unix.SYS_CLOSE, uint64(fd)); err != nil && err != unix.EBADF {
				return fmt.Errorf("close %d: %w", fd, err)
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	return nil
}
