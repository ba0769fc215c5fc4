package process

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/monitor"
)

// statusField reads one field of /proc/PID/status (any goroutine).
func statusField(t *testing.T, pid int, field string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Error(err)
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Errorf("/proc/%d/status has no %s:\n%s", pid, field, data)
	return ""
}

// A run's instances are forks of its tracer threads' zygotes, one per
// thread, and hold no seccomp filter of their own: the filters they are
// under are the zygote's, inherited (shared), not one installed in each.
func TestInstancesAreForksOfOneZygotePerThreadUnderItsFilters(t *testing.T) {
	uk := pooled(t, t.TempDir(), "app", callLibc+exitSeven)
	type proc struct{ ppid, filters, zygFilters, zygTracer string } // zygTracer: its TracerPid
	var got []proc
	rs, err := (&Monitor{Threads: 2}).Run(context.Background(), []monitor.Unikernel{uk}, monitor.Options{N: 6,
		Timeout: guestTimeout, Hold: time.Minute, Resident: func(pids []int) {
			for _, pid := range pids {
				p := proc{ppid: statusField(t, pid, "PPid"), filters: statusField(t, pid, "Seccomp_filters")}
				var zyg int
				fmt.Sscan(p.ppid, &zyg)
				p.zygFilters = statusField(t, zyg, "Seccomp_filters")
				p.zygTracer = statusField(t, zyg, "TracerPid")
				if _, err := os.Stat("/proc/self/task/" + p.zygTracer); err != nil || p.zygTracer == "0" {
					p.zygTracer = "not a thread of the monitor: " + p.zygTracer
				}
				got = append(got, p)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Error != "" || r.ExitCode != 7 {
			t.Fatalf("results %+v", rs)
		}
	}
	self := fmt.Sprint(os.Getpid())
	parents := map[string]int{}
	for i, p := range got {
		parents[p.ppid]++
		if p.ppid == self {
			t.Errorf("instance %d is the monitor's child, not a zygote's", i)
		}
		if strings.HasPrefix(p.zygTracer, "not") {
			t.Errorf("instance %d: its parent %s is traced by %s (monitor %s)", i, p.ppid, p.zygTracer, self)
		}
		// The tracer thread's filter and the guest filter, both the
		// zygote's.
		if p.filters != "2" || p.zygFilters != p.filters {
			t.Errorf("instance %d under %s seccomp filters, its zygote %s: want 2, both inherited", i, p.filters, p.zygFilters)
		}
	}
	if len(got) != 6 || len(parents) != 2 {
		t.Errorf("%d instances, their parents %v: want 6 instances forked by 2 zygotes", len(got), parents)
	}
}

// Once the stub is unmapped its addresses hold nothing: a guest that
// jumps there faults. A guest's own `syscall` at the stub's page offset
// (where a discard page's is) is killed for anything but madvise
// (MADV_DONTNEED).
func TestGuestDiesOnSystemCallsFromTheStubsAddresses(t *testing.T) {
	r := runCode(t, fmt.Sprintf(`
	mov $%#x, %%rax
	jmp *%%rax
`, uint64(stubSyscall)), monitor.Options{})
	if want := fmt.Sprintf("%#x", uint64(stubSyscall)); !strings.Contains(r.Error, want) || strings.Contains(r.Error, "seccomp") || r.ExitCode != -1 {
		t.Errorf("jump to the stub: exit %d error %q, want a fault at %s", r.ExitCode, r.Error, want)
	}
	for _, c := range []struct {
		what, setup string
		nr          int
	}{
		{"getpid", "mov $39, %eax", 39},
		{"madvise(MERGEABLE)", "mov $28, %eax; mov $0x400000, %rdi; mov $4096, %rsi; mov $12, %rdx", 28},
		{"mmap", "mov $9, %eax; xor %edi, %edi; mov $4096, %rsi; mov $7, %rdx; mov $0x22, %r10; mov $-1, %r8; xor %r9, %r9", 9},
	} {
		r := runCode(t, c.setup+fmt.Sprintf(`
	jmp 1f
	.org %#x
1:	syscall
`, stubCodeOff)+exitSeven, monitor.Options{})
		if want := fmt.Sprintf("system call %d", c.nr); !strings.Contains(r.Error, want) || !strings.Contains(r.Error, "seccomp") || r.ExitCode != -1 {
			t.Errorf("%s at the stub's page offset: exit %d error %q, want a seccomp kill of %s", c.what, r.ExitCode, r.Error, want)
		}
	}
}

// The zygote gives each fork the files it is passed as fds
// zygoteFirstFd.., in order, past SCM_RIGHTS's 253 per message, and a
// message an earlier fork left untaken is closed, not taken for its own.
func TestZygotePassesEachForkItsOwnFilesPastAStaleMessage(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	var files []uintptr
	for i := range 300 {
		p := filepath.Join(dir, fmt.Sprintf("f%03d", i))
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		paths, files = append(paths, p), append(files, f.Fd())
	}
	stale, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sp[0])
	defer unix.Close(sp[1])
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with its tracees' links
		z := zygote{sock: sp[0], peer: sp[1]}
		if err := z.start(); err != nil {
			t.Error(err)
			return
		}
		defer z.stop()
		// What an instance that died before taking its files leaves.
		if err := unix.Sendmsg(z.sock, binary.LittleEndian.AppendUint64(nil, 77), unix.UnixRights(int(stale.Fd())), nil, 0); err != nil {
			t.Error(err)
			return
		}
		for round := range 2 {
			pid, err := z.fork(files[:300-round*290])
			if err != nil {
				t.Error(err)
				if pid > 0 {
					reap(pid)
				}
				return
			}
			n := 300 - round*290
			for i := range n + 2 {
				link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, zygoteFirstFd+i))
				switch {
				case i < n && link != paths[i]:
					t.Errorf("fork %d: fd %d is %q (%v), want %s", round, zygoteFirstFd+i, link, err, paths[i])
				case i >= n && err == nil:
					t.Errorf("fork %d: fd %d is open (%s), past its %d files", round, zygoteFirstFd+i, link, n)
				}
			}
			if got := statusField(t, pid, "PPid"); got != fmt.Sprint(z.pid) {
				t.Errorf("fork %d: parent %s, not the zygote %d", round, got, z.pid)
			}
			reap(pid)
		}
	}()
	<-done
}
