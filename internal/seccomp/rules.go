package seccomp

import (
	"golang.org/x/sys/unix"
)

// Runtime is what Go's runtime may ask of any thread it runs on: memory,
// futexes, signals (preemption sends SIGURG to the process's own
// threads), sleeping, time, randomness, writes (the netpoller's wakeup
// and a crash report), exiting the thread.
func Runtime(pid int) []Rule {
	rs := Allow(unix.SYS_FUTEX, unix.SYS_MMAP, unix.SYS_MUNMAP, unix.SYS_MADVISE, unix.SYS_MPROTECT,
		unix.SYS_RT_SIGRETURN, unix.SYS_RT_SIGPROCMASK, unix.SYS_SIGALTSTACK, unix.SYS_NANOSLEEP,
		unix.SYS_SCHED_YIELD, unix.SYS_GETPID, unix.SYS_GETTID, unix.SYS_CLOCK_GETTIME, unix.SYS_GETRANDOM,
		unix.SYS_WRITE, unix.SYS_EXIT, unix.SYS_EXIT_GROUP, unix.SYS_SCHED_GETAFFINITY, unix.SYS_RESTART_SYSCALL,
		unix.SYS_READ, unix.SYS_CLOSE, unix.SYS_EPOLL_PWAIT, unix.SYS_EPOLL_CTL)
	// Signals only to this process's own threads.
	rs = append(rs, Rule{Nr: unix.SYS_TGKILL, Args: []Arg{Eq(0, uint32(pid))}})
	return rs
}

// Tracer is the process monitor's tracer thread: it forks and execs the
// instance stub (vfork-style clone, and the stub's one fork of itself:
// no new threads, no namespaces), the thread's zygote, which forks the
// instances (process/zygote.go), and
// traces them with a handful of ptrace requests (never ATTACH or SEIZE, nor
// POKE), reads and writes their memory, reads /proc files (opened read-only,
// never created), kills with SIGKILL, and sends the instances their files
// over the socket sock (its end of a socketpair whose other end the
// zygote holds as its fd 0). The zygote and the instances inherit the
// filter, so the calls injected into them (mmap of the pool fds, pread64
// of a copied plain image's file into the guest's memory, mprotect,
// madvise, close, close_range, recvmsg of their files from fd 0, the
// zygote's fork, prlimit of itself, prctl name and no_new_privs, SIGCHLD
// ignored, seccomp's own filter) are allowed too; then the guest filter
// refuses everything. (pread64 reads no more than read and a read-only
// openat already do; recvmsg from fd 0 receives nothing the monitor did
// not send, and in the monitor fd 0 is stdin.)
func Tracer(pid, sock int) []Rule {
	rs := Runtime(pid)
	rs = append(rs, Allow(unix.SYS_WAIT4, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_PREAD64,
		unix.SYS_FSTAT, unix.SYS_NEWFSTATAT, unix.SYS_PIPE2, unix.SYS_DUP3, unix.SYS_DUP2, unix.SYS_CHDIR,
		unix.SYS_EXECVE, unix.SYS_RT_SIGACTION, unix.SYS_CLOSE_RANGE)...)
	const vfork = unix.CLONE_VM | unix.CLONE_VFORK | uint32(unix.SIGCHLD)
	rs = append(rs, Rule{Nr: unix.SYS_CLONE, Args: []Arg{Eq(0, vfork)}})
	// The exec'd stub forks itself once, a traced sibling that becomes the
	// zygote, so that it gets a small fd table of its own
	// (process.refork): a plain fork, no new thread, no namespace.
	const refork = unix.CLONE_PARENT | unix.CLONE_PTRACE | uint32(unix.SIGCHLD)
	rs = append(rs, Rule{Nr: unix.SYS_CLONE, Args: []Arg{Eq(0, refork)}})
	// The zygote forks each instance: its traced child.
	const instance = unix.CLONE_PTRACE | uint32(unix.SIGCHLD)
	rs = append(rs, Rule{Nr: unix.SYS_CLONE, Args: []Arg{Eq(0, instance)}})
	rs = append(rs, Rule{Nr: unix.SYS_SENDMSG, Args: []Arg{Eq(0, uint32(sock))}},
		Rule{Nr: unix.SYS_RECVMSG, Args: []Arg{Eq(0, 0)}})
	for _, req := range []uint32{unix.PTRACE_TRACEME, unix.PTRACE_CONT, unix.PTRACE_GETREGS, unix.PTRACE_SETREGS,
		unix.PTRACE_GETREGSET, unix.PTRACE_SETREGSET, unix.PTRACE_GETSIGINFO, unix.PTRACE_SETOPTIONS, unix.PTRACE_GETEVENTMSG} {
		rs = append(rs, Rule{Nr: unix.SYS_PTRACE, Args: []Arg{Eq(0, req)}})
	}
	rs = append(rs, Rule{Nr: unix.SYS_KILL, Args: []Arg{{Index: 1, Value: uint32(unix.SIGKILL), AnyHigh: true}}})
	// Read-only opens: no write access, no create, truncate or append.
	rs = append(rs, Rule{Nr: unix.SYS_OPENAT, Args: []Arg{{Index: 2,
		Mask: unix.O_ACCMODE | unix.O_CREAT | unix.O_TRUNC | unix.O_APPEND | unix.O_TMPFILE, AnyHigh: true}}})
	rs = append(rs, Rule{Nr: unix.SYS_FCNTL, Args: []Arg{Eq(1, unix.F_GETFD)}},
		Rule{Nr: unix.SYS_FCNTL, Args: []Arg{Eq(1, unix.F_SETFD)}},
		Rule{Nr: unix.SYS_FCNTL, Args: []Arg{Eq(1, unix.F_GETFL)}},
		Rule{Nr: unix.SYS_FCNTL, Args: []Arg{Eq(1, unix.F_DUPFD_CLOEXEC)}})
	// In the stub, about itself only.
	rs = append(rs, Rule{Nr: unix.SYS_PRLIMIT64, Args: []Arg{Eq(0, 0)}},
		Rule{Nr: unix.SYS_PRCTL, Args: []Arg{Eq(0, unix.PR_SET_NAME)}},
		Rule{Nr: unix.SYS_PRCTL, Args: []Arg{Eq(0, unix.PR_SET_NO_NEW_PRIVS)}},
		Rule{Nr: unix.SYS_SECCOMP, Args: []Arg{Eq(0, unix.SECCOMP_SET_MODE_FILTER)}})
	return rs
}

// VCPU is a KVM vCPU thread once its VM is built: the given ioctl
// requests only (internal/kvm.RunIoctls: KVM_RUN and reading registers for
// a fault report), and the Go runtime's calls. It opens, maps, creates and
// forks nothing.
func VCPU(pid int, ioctls ...uintptr) []Rule {
	rs := Runtime(pid)
	for _, req := range ioctls {
		rs = append(rs, Rule{Nr: unix.SYS_IOCTL, Args: []Arg{{Index: 1, Value: uint32(req), AnyHigh: true}}})
	}
	return rs
}

// ImageChecker is the image checker process's thread (loader.CheckImages:
// a monitor binary re-executed to parse untrusted ELF headers with
// debug/elf): it opens files read-only (no create, truncate or append),
// stats and reads them, reads its request from stdin and writes its answer
// to stdout; it forks, execs, sends and connects nothing.
func ImageChecker(pid int) []Rule {
	rs := Runtime(pid)
	// (os.Open makes the runtime's poller: epoll and its wakeup eventfd.)
	rs = append(rs, Allow(unix.SYS_PREAD64, unix.SYS_FSTAT, unix.SYS_NEWFSTATAT, unix.SYS_LSEEK,
		unix.SYS_EPOLL_CREATE1, unix.SYS_EVENTFD2)...)
	rs = append(rs, Rule{Nr: unix.SYS_OPENAT, Args: []Arg{{Index: 2,
		Mask: unix.O_ACCMODE | unix.O_CREAT | unix.O_TRUNC | unix.O_APPEND | unix.O_TMPFILE, AnyHigh: true}}})
	rs = append(rs, Rule{Nr: unix.SYS_FCNTL, Args: []Arg{Eq(1, unix.F_GETFL)}},
		Rule{Nr: unix.SYS_FCNTL, Args: []Arg{Eq(1, unix.F_SETFL)}})
	return rs
}
