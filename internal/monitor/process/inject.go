package process

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/loader"
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
	r.regs.Rdi, r.regs.Rsi, r.regs.Rdx, r.regs.R10, r.regs.R8, r.regs.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
	if err := r.runStub(stubSyscall, stubAfterTrap); err != nil {
		return 0, fmt.Errorf("injected system call %d: %w", nr, err)
	}
	ret := r.regs.Rax
	if int64(ret) < 0 && int64(ret) > -4096 {
		return 0, unix.Errno(-int64(ret))
	}
	return ret, nil
}

// unmapStub makes the child's last system call, under the zygote's seccomp
// filter: munmap of the stub's page, from the stub. Once it is gone no
// call can come from the stub's addresses, the only ones the filter lets
// anything through from but a discard page's madvise. The stub's page
// tables go with it: three page-table pages per
// instance, as it lies far from the guest. The call cannot return into the
// stub: fetching the int3 after it faults, and that SIGSEGV, at the
// address after the `syscall`, is its end. It stays pending and is dropped
// when the guest is entered (cont with no signal).
func (r *remote) unmapStub() error {
	r.regs = r.base
	r.regs.Rax = unix.SYS_MUNMAP
	r.regs.Rdi, r.regs.Rsi = stubAddr, stubSize
	r.regs.Orig_rax = ^uint64(0)
	r.regs.Rip = stubSyscall
	err := r.resume("unmap the stub: instance process died", func(ws unix.WaitStatus) (bool, error) {
		if ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() <= 0 {
			return false, fmt.Errorf("unmap the stub: the child went on in the stub")
		}
		return ws.StopSignal() == unix.SIGSEGV, nil
	})
	if err != nil {
		return err
	}
	if r.regs.Rip != stubUnmapIP {
		return fmt.Errorf("unmap the stub: child stopped at %#x, not after the stub's system call", r.regs.Rip)
	}
	if ret := r.regs.Rax; ret != 0 {
		return fmt.Errorf("unmap the stub: %w", unix.Errno(-int64(ret)))
	}
	return nil
}

// runStub resumes the child at entry with r.regs and waits until it traps
// at done, leaving its registers in r.regs.
func (r *remote) runStub(entry, done uint64) error {
	r.regs.Orig_rax = ^uint64(0) // not in a system call: no restart logic
	r.regs.Rip = entry
	err := r.resume("instance process died while being built", func(ws unix.WaitStatus) (bool, error) {
		return ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() <= 0, nil
	})
	if err != nil {
		return err
	}
	if r.regs.Rip != done {
		return fmt.Errorf("child stopped at %#x, not after the stub", r.regs.Rip)
	}
	return nil
}

// resume sets the child's registers to r.regs, lets it go and waits for
// the stop that until accepts; any other stop (a signal from outside, the
// exit event of a process being killed) is not ours: it is suppressed and
// the child goes on. The registers at that stop are left in r.regs. died
// says what a child that exits or is killed meanwhile means.
func (r *remote) resume(died string, until func(unix.WaitStatus) (bool, error)) error {
	if err := setRegs(r.pid, &r.regs); err != nil {
		return err
	}
	if err := cont(r.pid, 0); err != nil {
		return err
	}
	for {
		_, ws, err := waitPid(r.pid, false)
		if err != nil {
			return err
		}
		if ws.Exited() || ws.Signaled() {
			return &diedError{what: died, ws: ws}
		}
		ours, err := until(ws)
		if err != nil {
			return err
		}
		if ours {
			break
		}
		if err := cont(r.pid, 0); err != nil {
			return err
		}
	}
	return getRegs(r.pid, &r.regs)
}

// diedError is a child's end seen while the monitor waited for a stop of
// its own making: the wait consumed the status the tracer's loop would
// otherwise have seen (tracer.poll takes it from here).
type diedError struct {
	what string
	ws   unix.WaitStatus
}

func (e *diedError) Error() string { return fmt.Sprintf("%s (%s)", e.what, describeStatus(e.ws)) }

// batchCall is one system call of a batch. In the child's table each is
// 64 bytes: the number, six arguments, and the result the stub stores.
type batchCall struct {
	nr   uintptr
	args [6]uint64
	// For errors, what the call was for: the mapping of, else what
	// (named only when the call fails: not a string per mapping and
	// instance).
	of   *loader.Mapping
	what string
	file string // what names a read of this file
	// ret, if not zero, is the result the call must return (mmap's
	// address: a kernel older than MAP_FIXED_NOREPLACE ignores the flag).
	ret uint64
}

const batchEntrySize = 64

// batch runs calls in the child in one round trip, from a table written at
// table (writable child memory, len(calls)*batchEntrySize bytes). It stops
// at the first call that fails and says which.
func (r *remote) batch(table uint64, calls []batchCall) error {
	return r.batchWith(table, calls, nil)
}

// grow is s emptied, with room for n elements: s itself if it has it,
// else a new slice (reserve).
func grow[T any](s []T, n int) []T {
	return reserve(s[:0], n)
}

// reserve is s with room for extra more elements: s itself if it has
// it, else a copy in a new slice of scratchSmall bytes or, if that is too
// small, of more than scratchLarge bytes, twice s's capacity at least.
//
// Why: a scratch list made or grown per instance by appends falls in as
// many of the Go runtime's size classes as a fleet has sizes of instance
// (mapping counts), and the runtime keeps span-set metadata for every
// size class a process ever used: an aligned image's instance has ~7
// times the mappings of a DCE one, so its monitor used classes the other
// did not. Sized so, any list is in one small class or a large object
// (one span class for every size).
func reserve[T any](s []T, extra int) []T {
	n := len(s) + extra
	if cap(s) >= n {
		return s
	}
	size := int(unsafe.Sizeof(*new(T)))
	c := max(n, scratchSmall/size)
	if c*size > scratchSmall {
		c = max(n, 2*cap(s), scratchLarge/size+1)
	}
	return append(make([]T, 0, c), s...)
}

const (
	scratchSmall = 8 << 10  // bytes: enough for most instances (an aligned image's ~80 calls)
	scratchLarge = 32 << 10 // the Go runtime's largest small-object size
)

// describe says what c was for.
func (c *batchCall) describe() string {
	if c.of != nil {
		return "mapping " + what(*c.of)
	}
	if c.file != "" {
		return c.what + " " + c.file
	}
	return c.what
}

// batchWith is batch, the table's bytes made in sc's buffer (if sc is
// not nil).
func (r *remote) batchWith(table uint64, calls []batchCall, sc *buildScratch) error {
	if len(calls) == 0 {
		return nil
	}
	var buf []byte
	if sc != nil {
		sc.table = grow(sc.table, len(calls)*batchEntrySize)
		buf = sc.table[:len(calls)*batchEntrySize]
	} else {
		buf = make([]byte, len(calls)*batchEntrySize)
	}
	for i, c := range calls {
		e := buf[i*batchEntrySize:]
		binary.LittleEndian.PutUint64(e, uint64(c.nr))
		for j, a := range c.args {
			binary.LittleEndian.PutUint64(e[8+8*j:], a)
		}
	}
	if err := writeMem(r.pid, []memWrite{{table, buf}}); err != nil {
		return err
	}
	r.regs = r.base
	r.regs.Rbx, r.regs.R12 = table, uint64(len(calls))
	if err := r.runStub(stubBatch, stubBatchDone); err != nil {
		return fmt.Errorf("injected system calls: %w", err)
	}
	if left := r.regs.R12; left != 0 {
		c := calls[len(calls)-int(left)]
		return fmt.Errorf("%s: system call %d: %w", c.describe(), c.nr, unix.Errno(-int64(r.regs.Rax)))
	}
	if n, err := readMem(r.pid, table, buf); err != nil || n != len(buf) {
		return fmt.Errorf("injected system calls: read their results: %v", err)
	}
	for i, c := range calls {
		if got := binary.LittleEndian.Uint64(buf[i*batchEntrySize+56:]); c.ret != 0 && got != c.ret {
			return fmt.Errorf("%s: system call %d returned %#x, want %#x", c.describe(), c.nr, got, c.ret)
		}
	}
	return nil
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
