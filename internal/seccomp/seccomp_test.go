package seccomp

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// verdict runs a filter on one system call in x/net/bpf's VM. The VM
// loads words big-endian, so the test's seccomp_data is written that way:
// each 32-bit field is the value the kernel's native load would see.
func verdict(t *testing.T, rules []Rule, arch uint32, nr uintptr, args ...uint64) uint32 {
	t.Helper()
	raw, err := Assemble(rules)
	if err != nil {
		t.Fatal(err)
	}
	var prog []bpf.Instruction
	for _, r := range raw {
		prog = append(prog, r.Disassemble())
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64)
	be := binary.BigEndian
	be.PutUint32(data[0:], uint32(nr))
	be.PutUint32(data[4:], arch)
	for i, a := range args {
		be.PutUint32(data[16+8*i:], uint32(a))       // low half, as the kernel's offset 16+8i reads
		be.PutUint32(data[16+8*i+4:], uint32(a>>32)) // high half
	}
	v, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v)
}

const allow, eperm = unix.SECCOMP_RET_ALLOW, retErrno

func TestTracerFilterChecksArguments(t *testing.T) {
	rules := Tracer(1234, 99)
	for _, c := range []struct {
		what string
		nr   uintptr
		args []uint64
		want uint32
	}{
		{"ptrace(GETREGSET)", unix.SYS_PTRACE, []uint64{unix.PTRACE_GETREGSET, 7}, allow},
		{"ptrace(CONT)", unix.SYS_PTRACE, []uint64{unix.PTRACE_CONT, 7}, allow},
		{"ptrace(ATTACH)", unix.SYS_PTRACE, []uint64{unix.PTRACE_ATTACH, 1}, eperm},
		{"ptrace(SEIZE)", unix.SYS_PTRACE, []uint64{unix.PTRACE_SEIZE, 1}, eperm},
		{"ptrace(POKEDATA)", unix.SYS_PTRACE, []uint64{unix.PTRACE_POKEDATA, 7}, eperm},
		{"ptrace(CONT) with high bits", unix.SYS_PTRACE, []uint64{1<<32 | unix.PTRACE_CONT, 7}, eperm},
		{"vfork clone", unix.SYS_CLONE, []uint64{unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD)}, allow},
		{"thread clone", unix.SYS_CLONE, []uint64{unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND}, eperm},
		{"clone into a new user namespace", unix.SYS_CLONE, []uint64{unix.CLONE_NEWUSER | uint64(unix.SIGCHLD)}, eperm},
		{"clone3", unix.SYS_CLONE3, nil, eperm},
		{"the zygote's fork of an instance", unix.SYS_CLONE, []uint64{unix.CLONE_PTRACE | uint64(unix.SIGCHLD)}, allow},
		{"a fork into a new PID namespace", unix.SYS_CLONE, []uint64{unix.CLONE_PTRACE | unix.CLONE_NEWPID | uint64(unix.SIGCHLD)}, eperm},
		{"sendmsg on the instances' socket", unix.SYS_SENDMSG, []uint64{99, 0, unix.MSG_DONTWAIT}, allow},
		{"sendmsg on another fd", unix.SYS_SENDMSG, []uint64{98, 0, 0}, eperm},
		{"sendto", unix.SYS_SENDTO, []uint64{99, 0, 0}, eperm},
		{"recvmsg from the zygote's fd 0", unix.SYS_RECVMSG, []uint64{0, 0, unix.MSG_DONTWAIT}, allow},
		{"recvmsg from another fd", unix.SYS_RECVMSG, []uint64{99, 0, 0}, eperm},
		{"open read-only", unix.SYS_OPENAT, []uint64{0, 0, unix.O_RDONLY | unix.O_CLOEXEC}, allow},
		{"open for writing", unix.SYS_OPENAT, []uint64{0, 0, unix.O_WRONLY}, eperm},
		{"open to create", unix.SYS_OPENAT, []uint64{0, 0, unix.O_RDONLY | unix.O_CREAT}, eperm},
		{"kill SIGKILL", unix.SYS_KILL, []uint64{99, uint64(unix.SIGKILL)}, allow},
		{"kill SIGTERM", unix.SYS_KILL, []uint64{99, uint64(unix.SIGTERM)}, eperm},
		{"tgkill own thread", unix.SYS_TGKILL, []uint64{1234, 5, uint64(unix.SIGURG)}, allow},
		{"tgkill another process", unix.SYS_TGKILL, []uint64{1, 1, uint64(unix.SIGURG)}, eperm},
		{"prlimit of itself", unix.SYS_PRLIMIT64, []uint64{0, unix.RLIMIT_CORE}, allow},
		{"prlimit of another", unix.SYS_PRLIMIT64, []uint64{1, unix.RLIMIT_CORE}, eperm},
		{"socket", unix.SYS_SOCKET, []uint64{unix.AF_INET, unix.SOCK_STREAM}, eperm},
		{"connect", unix.SYS_CONNECT, nil, eperm},
		{"mount", unix.SYS_MOUNT, nil, eperm},
		{"unshare", unix.SYS_UNSHARE, nil, eperm},
		{"ioctl", unix.SYS_IOCTL, []uint64{3, 0xae80}, eperm},
		{"bpf", unix.SYS_BPF, nil, eperm},
	} {
		if got := verdict(t, rules, auditArchX8664, c.nr, c.args...); got != c.want {
			t.Errorf("%s: verdict %#x, want %#x", c.what, got, c.want)
		}
	}
}

func TestVCPUFilterAllowsOnlyItsIoctls(t *testing.T) {
	rules := VCPU(1234, 0xae80, 0x8090ae81)
	for _, c := range []struct {
		what string
		nr   uintptr
		args []uint64
		want uint32
	}{
		{"KVM_RUN", unix.SYS_IOCTL, []uint64{9, 0xae80}, allow},
		{"KVM_GET_REGS", unix.SYS_IOCTL, []uint64{9, 0x8090ae81}, allow},
		{"KVM_SET_USER_MEMORY_REGION", unix.SYS_IOCTL, []uint64{9, 0x4020ae46}, eperm},
		{"KVM_CREATE_VM", unix.SYS_IOCTL, []uint64{9, 0xae01}, eperm},
		{"openat", unix.SYS_OPENAT, []uint64{0, 0, 0}, eperm},
		{"ptrace", unix.SYS_PTRACE, []uint64{unix.PTRACE_CONT}, eperm},
		{"execve", unix.SYS_EXECVE, nil, eperm},
		{"clone", unix.SYS_CLONE, []uint64{unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD)}, eperm},
		{"futex", unix.SYS_FUTEX, nil, allow},
	} {
		if got := verdict(t, rules, auditArchX8664, c.nr, c.args...); got != c.want {
			t.Errorf("%s: verdict %#x, want %#x", c.what, got, c.want)
		}
	}
}

func TestOtherArchitecturesAndX32AreKilled(t *testing.T) {
	const auditArchI386 = 0x40000003
	if got := verdict(t, Tracer(1, 99), auditArchI386, unix.SYS_GETPID); got != unix.SECCOMP_RET_KILL_PROCESS {
		t.Errorf("i386: %#x", got)
	}
	if got := verdict(t, Tracer(1, 99), auditArchX8664, 0x40000000|unix.SYS_GETPID); got != unix.SECCOMP_RET_KILL_PROCESS {
		t.Errorf("x32: %#x", got)
	}
}

// The filter, installed for real on a thread: what it refuses fails with
// EPERM on that thread, what it allows works, and the thread's other
// goroutines' threads are not confined.
func TestInstalledTracerFilterRefusesOnItsThreadOnly(t *testing.T) {
	dir := t.TempDir()
	type probe struct {
		seccomp                      string
		socket, create, attach, kill error
		getpid                       int
		readOnly                     error
	}
	ch := make(chan probe)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		var p probe
		if err := InstallThread(Tracer(os.Getpid(), 99)); err != nil {
			p.seccomp = "install: " + err.Error()
			ch <- p
			return
		}
		status, _ := os.ReadFile("/proc/thread-self/status")
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "Seccomp:") {
				p.seccomp = strings.TrimSpace(strings.TrimPrefix(l, "Seccomp:"))
			}
		}
		_, p.socket = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		_, p.create = unix.Open(filepath.Join(dir, "x"), unix.O_WRONLY|unix.O_CREAT, 0o644)
		p.attach = unix.PtraceAttach(os.Getppid())
		p.kill = unix.Kill(os.Getppid(), 0)
		p.getpid = unix.Getpid()
		var fd int
		fd, p.readOnly = unix.Open("/proc/self/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		ch <- p
	}()
	p := <-ch
	if p.seccomp != "2" {
		t.Fatalf("thread's Seccomp: %q, want 2 (filter mode)", p.seccomp)
	}
	for what, err := range map[string]error{"socket": p.socket, "open O_WRONLY|O_CREAT": p.create,
		"ptrace(ATTACH)": p.attach, "kill(signal 0)": p.kill} {
		if err != unix.EPERM {
			t.Errorf("%s under the filter: %v, want EPERM", what, err)
		}
	}
	if p.getpid != os.Getpid() || p.readOnly != nil {
		t.Errorf("allowed calls: getpid %d, read-only open %v", p.getpid, p.readOnly)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(err) {
		t.Errorf("the refused open created the file: %v", err)
	}
	// This goroutine's thread is not the filtered one.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("socket on an unfiltered thread: %v", err)
	}
	unix.Close(fd)
}
