package process

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/monitor"
)

// verdictOf runs the guest's filter in x/net/bpf's VM on one system
// call. The VM loads words big-endian, so each 32-bit field of the
// seccomp_data is written that way (the value the kernel's load sees).
func verdictOf(t *testing.T, arch uint32, nr uint32, ip uint64, args ...uint64) uint32 {
	t.Helper()
	vm, err := bpf.NewVM(seccompProgram())
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64)
	be := binary.BigEndian
	be.PutUint32(data[seccompNr:], nr)
	be.PutUint32(data[seccompArch:], arch)
	be.PutUint32(data[seccompIP:], uint32(ip))
	be.PutUint32(data[seccompIP+4:], uint32(ip>>32))
	for i, a := range args {
		be.PutUint32(data[seccompArgs+8*i:], uint32(a))
		be.PutUint32(data[seccompArgs+8*i+4:], uint32(a>>32))
	}
	v, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v)
}

// The one filter every instance of a thread shares (installed in the
// zygote) lets through the calls made from the stub's two `syscall`s,
// whatever they are, and madvise(DONTNEED) from a discard page's
// `syscall`; it kills everything else, from anywhere else, of any other
// architecture.
func TestGuestFilterAllowsTheStubAndDiscardPagesOnly(t *testing.T) {
	const kill, allow = unix.SECCOMP_RET_KILL_PROCESS, unix.SECCOMP_RET_ALLOW
	const i386 = 0x40000003
	const page = 0x2001_0000
	dontneed := []uint64{0x2004_0000, 0x1000, unix.MADV_DONTNEED}
	if stubCode[stubBatchSyscallOff] != 0x0f || stubCode[stubBatchSyscallOff+1] != 0x05 || stubCode[0] != 0x0f || stubCode[1] != 0x05 {
		t.Fatalf("the stub's system calls are not at 0 and %#x: % x", stubBatchSyscallOff, stubCode)
	}
	for _, c := range []struct {
		what string
		arch uint32
		nr   uint32
		ip   uint64
		args []uint64
		want uint32
	}{
		{"the stub's munmap of itself", auditArchX8664, unix.SYS_MUNMAP, stubUnmapIP, []uint64{stubAddr, stubSize}, allow},
		{"mmap from the stub", auditArchX8664, unix.SYS_MMAP, stubUnmapIP, []uint64{0x2000_0000, 0x1000, 3, 0x22, ^uint64(0), 0}, allow},
		{"mmap from the stub's batch", auditArchX8664, unix.SYS_MMAP, stubBatchIP, []uint64{0x2000_0000, 0x1000, 3, 0x22, ^uint64(0), 0}, allow},
		{"the zygote's fork from the stub", auditArchX8664, unix.SYS_CLONE, stubUnmapIP, []uint64{unix.CLONE_PTRACE | uint64(unix.SIGCHLD)}, allow},
		{"munmap of the stub from guest code", auditArchX8664, unix.SYS_MUNMAP, 0x1000_0010, []uint64{stubAddr, stubSize}, kill},
		{"munmap from the stub page's other bytes", auditArchX8664, unix.SYS_MUNMAP, stubUnmapIP + 1, []uint64{stubAddr, stubSize}, kill},
		{"mmap from the stub's address in guest memory", auditArchX8664, unix.SYS_MMAP, stubUnmapIP & 0xffffffff, []uint64{0x2000_0000, 0x1000}, kill},
		{"mmap from the stub's address + 4 GiB", auditArchX8664, unix.SYS_MMAP, stubUnmapIP + 1<<32, []uint64{0x2000_0000, 0x1000}, kill},
		{"write from guest code", auditArchX8664, unix.SYS_WRITE, 0x1000_0010, []uint64{1, 0x2000_0000, 1}, kill},
		{"write from a discard page", auditArchX8664, unix.SYS_WRITE, discardIP(page), []uint64{1, 0x2000_0000, 1}, kill},
		{"madvise(DONTNEED) from a discard page", auditArchX8664, unix.SYS_MADVISE, discardIP(page), dontneed, allow},
		{"madvise(DONTNEED) from another discard page", auditArchX8664, unix.SYS_MADVISE, discardIP(0x7_4020_3000), dontneed, allow},
		{"madvise(DONTNEED) from a discard page's batch", auditArchX8664, unix.SYS_MADVISE, page + stubCodeOff + stubBatchSyscallOff + 2, dontneed, kill},
		{"madvise(DONTNEED) from guest code", auditArchX8664, unix.SYS_MADVISE, 0x1000_0010, dontneed, kill},
		{"madvise(REMOVE) from a discard page", auditArchX8664, unix.SYS_MADVISE, discardIP(page), []uint64{0x2004_0000, 0x1000, unix.MADV_REMOVE}, kill},
		{"madvise(MERGEABLE) from a discard page", auditArchX8664, unix.SYS_MADVISE, discardIP(page), []uint64{0x2004_0000, 0x1000, unix.MADV_MERGEABLE}, kill},
		{"madvise with advice's high half set", auditArchX8664, unix.SYS_MADVISE, discardIP(page), []uint64{0x2004_0000, 0x1000, unix.MADV_DONTNEED | 1<<32}, kill},
		{"munmap from a discard page", auditArchX8664, unix.SYS_MUNMAP, discardIP(page), dontneed, kill},
		{"mprotect from a discard page", auditArchX8664, unix.SYS_MPROTECT, discardIP(page), []uint64{0x2004_0000, 0x1000, 7}, kill},
		{"x32 madvise from a discard page", auditArchX8664, unix.SYS_MADVISE | 0x40000000, discardIP(page), dontneed, kill},
		{"i386 madvise from a discard page", i386, unix.SYS_MADVISE, discardIP(page), dontneed, kill},
		{"i386 munmap (91) from the stub", i386, 91, stubUnmapIP, []uint64{stubAddr, stubSize}, kill},
		{"i386 call numbered as x86-64 munmap from the stub", i386, unix.SYS_MUNMAP, stubUnmapIP, []uint64{stubAddr, stubSize}, kill},
		{"i386 call from the batch", i386, unix.SYS_MMAP, stubBatchIP, nil, kill},
	} {
		if got := verdictOf(t, c.arch, c.nr, c.ip, c.args...); got != c.want {
			t.Errorf("%s: verdict %#x, want %#x", c.what, got, c.want)
		}
	}
	if len(seccompFilter()) != 8*len(seccompProgram()) {
		t.Errorf("the encoded filter is %d bytes for %d instructions", len(seccompFilter()), len(seccompProgram()))
	}
}

// The stub lies far from the guest (0x7f00_0000_0000), so it would cost
// every instance three page-table pages of its own; once built, an
// instance holds only the guest's mappings.
func TestBuiltInstanceHoldsNoStubAndIsConfined(t *testing.T) {
	uk := pooled(t, t.TempDir(), "app", callLibc+exitSeven)
	maps, status, _ := heldMapsAndStatus(t, uk)
	got, err := parseMaps([]byte(maps), "maps")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(maps, fmt.Sprintf("%x-", uint64(stubAddr))) {
		t.Errorf("the stub is still mapped:\n%s", maps)
	}
	// Its page is mapped once more, read-only, as the discard page: the
	// guard page below the stack, at abi.PrivateBase (the boot info lies
	// in the stack's top page).
	discard := fmt.Sprintf("%x-%x r-xs ", uint64(abi.PrivateBase), uint64(abi.PrivateBase+abi.PageSize))
	for _, line := range strings.Split(maps, "\n") {
		if strings.Contains(line, "unipool-stub") && !strings.HasPrefix(line, discard) {
			t.Errorf("the stub's page mapped other than as the discard page below the stack: %s", line)
		}
	}
	for _, m := range got {
		if m[0] >= 0x11_0000_0000 {
			t.Errorf("a mapping outside the guest's addresses: %#x-%#x\n%s", m[0], m[1], maps)
		}
	}
	if !strings.Contains(status, "Seccomp:\t2") {
		t.Errorf("instance not under its seccomp filter:\n%s", status)
	}
}

// A forked process inherits a copy of its parent's fd table sized to the
// parent's highest open fd, and it never shrinks; a monitor holding a
// thousand unikernels' blob fds made every instance pay 65 KiB of kernel
// memory for it. The instance process must get the small embedded table
// (64 slots) however many fds the monitor holds.
func TestInstanceProcessHasASmallFdTableWhateverTheMonitorHolds(t *testing.T) {
	uk := pooled(t, t.TempDir(), "app", callLibc+exitSeven)
	var held []*os.File
	for range 600 {
		f, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, f)
	}
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	var status, self string
	rs := runPooled(t, []monitor.Unikernel{uk}, monitor.Options{N: 2, Hold: time.Minute, Resident: func(p []int) {
		s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p[1]))
		m, err2 := os.ReadFile("/proc/self/status")
		if err != nil || err2 != nil {
			t.Error(err, err2)
		}
		status, self = string(s), string(m)
	}})
	if rs[0].Error != "" || rs[0].ExitCode != 7 || rs[1].Error != "" || rs[1].ExitCode != 7 {
		t.Fatalf("results %+v", rs)
	}
	if !strings.Contains(self, "FDSize:\t1024") && !strings.Contains(self, "FDSize:\t2048") {
		t.Fatalf("the test's own fd table is not large:\n%s", self)
	}
	if !strings.Contains(status, "FDSize:\t64\n") {
		t.Errorf("instance process fd table not the small one:\n%s", status)
	}
}
