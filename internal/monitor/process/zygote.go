package process

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/abi"
)

// A tracer thread's instances are forks of one process, its zygote: the
// stub, exec'd, stripped to its page and confined once by the guest
// filter (seccomp.go). A seccomp filter a process installs itself is
// kernel memory of its own (6-10 KiB per process, measured with 1000
// forks); one inherited through fork is shared, refcounted. So the filter
// is installed in the zygote, and every instance is a fork of it under
// that same filter. What the zygote sets up once (no core files, no new
// privileges, SIGCHLD ignored, the stub page alone in its address space)
// every fork inherits.
//
// An instance is the zygote's child (so that its ancestry says which
// zygote made it), traced by the tracer thread through CLONE_PTRACE. The
// zygote ignores SIGCHLD: once the tracer has reaped an instance, the
// kernel releases it instead of leaving a zombie for the zygote to wait
// for.

const (
	// zygoteSockFd is the zygote's end of its tracer's socketpair, which
	// every fork inherits: an instance receives its files over it
	// (passFiles).
	zygoteSockFd = 0
	// zygoteStubFd is the stub's memfd: an instance's discard page maps it.
	zygoteStubFd = 1
	// zygoteFirstFd is an instance's first file: its files arrive, in
	// order, at the lowest free descriptors.
	zygoteFirstFd = 2
)

// zygote is a tracer thread's zygote process.
type zygote struct {
	pid  int    // 0: none (not made yet, or it died)
	sock int    // the monitor's end of the socketpair
	peer int    // the zygote's end, as the monitor holds it (to make another zygote)
	seq  uint64 // of the last message of files sent
	buf  []byte // passFiles' copy of the received message, reused
}

// start makes the zygote. It must run on the tracer thread.
func (z *zygote) start() error {
	stub, err := stubExecutable()
	if err != nil {
		return err
	}
	path := fmt.Sprintf("/proc/self/fd/%d", zygoteStubFd)
	pid, err := syscall.ForkExec(path, []string{"unipool-zygote"}, &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{},
		Files: []uintptr{uintptr(z.peer), stub}, // zygoteSockFd, zygoteStubFd
		Sys:   &syscall.SysProcAttr{Ptrace: true},
	})
	if err != nil {
		return fmt.Errorf("start the zygote: %w", err)
	}
	_, ws, err := waitPid(pid, false)
	if err == nil && (!ws.Stopped() || ws.StopSignal() != unix.SIGTRAP) {
		err = fmt.Errorf("zygote %d: expected the exec stop, got %s", pid, describeStatus(ws))
	}
	// EXITKILL: if the monitor dies, the zygote and its instances die
	// with it rather than run on untraced (their traps would then kill
	// them anyway, but a runaway loop would not). TRACEEXIT: a process
	// killed by seccomp stops once more, so the report can say which
	// system call it made. Forks made with CLONE_PTRACE inherit both.
	if err == nil {
		err = unix.PtraceSetOptions(pid, unix.PTRACE_O_EXITKILL|unix.PTRACE_O_TRACEEXIT)
	}
	if err != nil {
		reap(pid)
		return err
	}
	// The exec'd stub has the monitor's big fd table; its refork has the
	// small one, and the forks of the refork copy that (refork).
	pid, err = refork(pid, zygoteFirstFd)
	if err != nil {
		return err
	}
	if err := prepareZygote(pid); err != nil {
		reap(pid)
		return fmt.Errorf("zygote: %w", err)
	}
	z.pid = pid
	return nil
}

// prepareZygote strips the zygote to its stub page and sets up what every
// fork of it inherits, the guest filter last.
func prepareZygote(pid int) error {
	r, err := newRemote(pid)
	if err != nil {
		return err
	}
	// Drop everything exec left besides the stub page: the initial stack,
	// the vDSO and its data pages. The guest has no use for them and the
	// measurements should not count them.
	extra, err := foreignMappings(pid)
	if err != nil {
		return err
	}
	for _, m := range extra {
		if _, err := r.call(unix.SYS_MUNMAP, m[0], m[1]-m[0]); err != nil {
			return fmt.Errorf("munmap %#x-%#x: %w", m[0], m[1], err)
		}
	}
	// A scratch page: struct sigaction (SIG_IGN), a zero rlimit, the
	// sock_fprog, the filter.
	const scratch = batchAddr
	sigAddr, rlimAddr, fprogAddr, filterAddr := uint64(scratch), uint64(scratch+32), uint64(scratch+48), uint64(scratch+64)
	filter := seccompFilter()
	if err := r.mmap(scratch, abi.PageSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, -1, 0); err != nil {
		return fmt.Errorf("scratch page: %w", err)
	}
	act := make([]byte, 32)               // handler, flags, restorer, mask
	binary.LittleEndian.PutUint64(act, 1) // SIG_IGN
	if err := writeMem(pid, []memWrite{
		{sigAddr, act},
		{rlimAddr, make([]byte, 16)},
		{fprogAddr, sockFprog(len(filter)/8, filterAddr)},
		{filterAddr, filter},
	}); err != nil {
		return err
	}
	for _, c := range []struct {
		what string
		nr   uintptr
		args []uint64
	}{
		{"rt_sigaction(SIGCHLD, SIG_IGN)", unix.SYS_RT_SIGACTION, []uint64{uint64(unix.SIGCHLD), sigAddr, 0, 8}},
		// No core files: a guest killed by seccomp would otherwise dump
		// its whole memory into the monitor's working directory.
		{"prlimit(RLIMIT_CORE)", unix.SYS_PRLIMIT64, []uint64{0, unix.RLIMIT_CORE, rlimAddr, 0}},
		{"prctl(PR_SET_NO_NEW_PRIVS)", unix.SYS_PRCTL, []uint64{unix.PR_SET_NO_NEW_PRIVS, 1}},
		{"seccomp", unix.SYS_SECCOMP, []uint64{unix.SECCOMP_SET_MODE_FILTER, 0, fprogAddr}},
		// From here on under the guest filter: the stub's calls only.
		{"munmap of the scratch page", unix.SYS_MUNMAP, []uint64{scratch, abi.PageSize}},
	} {
		if _, err := r.call(c.nr, c.args...); err != nil {
			return fmt.Errorf("%s: %w", c.what, err)
		}
	}
	return nil
}

// fork makes an instance process: a fork of the zygote, made from the
// stub, stopped and traced by this thread, with files as its fds
// zygoteFirstFd.. (passFiles). It must run on the tracer thread. A zygote
// that died is made again (once per fork).
func (z *zygote) fork(files []uintptr) (int, error) {
	if z.pid != 0 {
		pid, err := z.forkOnce()
		if err == nil {
			return pid, z.passFiles(pid, files)
		}
		var died *diedError
		if !errors.As(err, &died) {
			return pid, err
		}
		z.pid = 0 // it was killed: make another
	}
	if err := z.start(); err != nil {
		return 0, err
	}
	pid, err := z.forkOnce()
	if err != nil {
		return pid, err
	}
	return pid, z.passFiles(pid, files)
}

// forkOnce is one fork of the zygote; a *diedError if the zygote is gone.
func (z *zygote) forkOnce() (int, error) {
	r, err := newRemote(z.pid)
	if err != nil {
		// Not stopped for this thread: it is gone, reaped by the tracer's
		// wait (poll forgets it then: its pid may be reused).
		return 0, &diedError{what: fmt.Sprintf("zygote %d: %v", z.pid, err)}
	}
	ret, err := r.call(unix.SYS_CLONE, unix.CLONE_PTRACE|uint64(unix.SIGCHLD), 0, 0, 0, 0)
	if err != nil {
		var died *diedError
		if errors.As(err, &died) {
			return 0, died
		}
		return 0, fmt.Errorf("start instance process: fork of the zygote: %w", err)
	}
	pid := int(ret)
	for {
		_, ws, err := waitPid(pid, false)
		if err != nil {
			return 0, err
		}
		if ws.Exited() || ws.Signaled() {
			return 0, fmt.Errorf("start instance process: fork of the zygote died (%s)", describeStatus(ws))
		}
		if ws.Stopped() && ws.StopSignal() == unix.SIGSTOP {
			break
		}
		if err := cont(pid, 0); err != nil {
			return pid, err
		}
	}
	if err := unix.PtraceSetOptions(pid, unix.PTRACE_O_EXITKILL|unix.PTRACE_O_TRACEEXIT); err != nil {
		return pid, fmt.Errorf("ptrace(SETOPTIONS, %d): %w", pid, err)
	}
	return pid, nil
}

// stop kills the zygote and waits until it is gone.
func (z *zygote) stop() {
	if z.pid != 0 {
		reap(z.pid)
		z.pid = 0
	}
}

// maxFdsPerMessage is SCM_MAX_FD: the most descriptors one SCM_RIGHTS
// message carries.
const maxFdsPerMessage = 253

// passFiles gives the stopped instance pid (a fork of the zygote, holding
// fds 0..zygoteFirstFd-1) the descriptors files, as its fds zygoteFirstFd
// onwards in order: the monitor sends them over its end of the
// socketpair, the instance receives them with recvmsg made from the stub,
// in messages of at most maxFdsPerMessage. Each message carries a sequence
// number: one left over by an instance that died before it took its
// files is taken and closed, never mistaken for this instance's.
func (z *zygote) passFiles(pid int, files []uintptr) error {
	if len(files) == 0 {
		return nil
	}
	r, err := newRemote(pid)
	if err != nil {
		return err
	}
	// The scratch page: struct msghdr at 0, its iovec at 64, the sequence
	// number it receives at 80, the control buffer at 128.
	const scratch = batchAddr
	const msgAddr, iovAddr, seqAddr, ctlAddr = scratch, scratch + 64, scratch + 80, scratch + 128
	ctlLen := unix.CmsgSpace(4 * maxFdsPerMessage)
	if err := r.mmap(scratch, abi.PageSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, -1, 0); err != nil {
		return fmt.Errorf("pass files: scratch page: %w", err)
	}
	hdr := make([]byte, 80)
	le := binary.LittleEndian
	le.PutUint64(hdr[16:], iovAddr) // msg_iov
	le.PutUint64(hdr[24:], 1)       // msg_iovlen
	le.PutUint64(hdr[32:], ctlAddr) // msg_control
	le.PutUint64(hdr[40:], uint64(ctlLen))
	le.PutUint64(hdr[64:], seqAddr) // iov_base
	le.PutUint64(hdr[72:], 8)       // iov_len
	next := zygoteFirstFd
	for len(files) > 0 {
		n := min(len(files), maxFdsPerMessage)
		fds := make([]int, n)
		for i, f := range files[:n] {
			fds[i] = int(f)
		}
		z.seq++
		if err := unix.Sendmsg(z.sock, le.AppendUint64(nil, z.seq), unix.UnixRights(fds...), nil, unix.MSG_DONTWAIT); err != nil {
			return fmt.Errorf("pass files: sendmsg: %w", err)
		}
		for {
			if err := writeMem(pid, []memWrite{{msgAddr, hdr}}); err != nil {
				return err
			}
			if _, err := r.call(unix.SYS_RECVMSG, zygoteSockFd, msgAddr, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC); err != nil {
				return fmt.Errorf("pass files: recvmsg: %w", err)
			}
			if len(z.buf) != 128+ctlLen {
				z.buf = make([]byte, 128+ctlLen)
			}
			buf := z.buf
			if m, err := readMem(pid, scratch, buf); err != nil || m != len(buf) {
				return fmt.Errorf("pass files: read the message: %v", err)
			}
			got, err := receivedFds(buf[:128], buf[128:])
			if err != nil {
				return fmt.Errorf("pass files: %w", err)
			}
			if seq := le.Uint64(buf[80:]); seq != z.seq {
				// An earlier instance's, left over: close what it brought.
				for _, fd := range got {
					if _, err := r.call(unix.SYS_CLOSE, uint64(fd)); err != nil {
						return fmt.Errorf("pass files: close a stale fd: %w", err)
					}
				}
				continue
			}
			for i, fd := range got {
				if fd != next+i || len(got) != n {
					return fmt.Errorf("pass files: received fds %v, want %d from %d", got, n, next)
				}
			}
			break
		}
		next += n
		files = files[n:]
	}
	if _, err := r.call(unix.SYS_MUNMAP, scratch, abi.PageSize); err != nil {
		return fmt.Errorf("pass files: munmap: %w", err)
	}
	return nil
}

// receivedFds reads the descriptors a recvmsg received from the msghdr it
// filled (hdr) and its control buffer.
func receivedFds(hdr, ctl []byte) ([]int, error) {
	le := binary.LittleEndian
	if flags := le.Uint32(hdr[48:]); flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 {
		return nil, fmt.Errorf("recvmsg: message truncated (flags %#x)", flags)
	}
	clen := le.Uint64(hdr[40:])
	if clen > uint64(len(ctl)) {
		return nil, fmt.Errorf("recvmsg: control length %d", clen)
	}
	msgs, err := unix.ParseSocketControlMessage(ctl[:clen])
	if err != nil {
		return nil, fmt.Errorf("recvmsg: %w", err)
	}
	var fds []int
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			return nil, fmt.Errorf("recvmsg: %w", err)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}
