package process

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
)

// Hand-made guests: a few instructions assembled with the system's `as`,
// laid out the way the loader lays out a plain image, so the machinery is
// tested without the toolchain or the pool.

const (
	testCodeAddr  = abi.PackedBase
	testStackSize = 64 << 10
)

// assemble turns AT&T assembly into the raw bytes of its .text.
func assemble(t testing.TB, src string) []byte {
	t.Helper()
	for _, tool := range []string{"as", "objcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (binutils): %v", tool, err)
		}
	}
	dir := t.TempDir()
	s, o, bin := filepath.Join(dir, "g.s"), filepath.Join(dir, "g.o"), filepath.Join(dir, "g.bin")
	if err := os.WriteFile(s, []byte(".code64\n.text\n"+src+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("as", "--64", "-o", o, s).CombinedOutput(); err != nil {
		t.Fatalf("as: %v\n%s", err, out)
	}
	if out, err := exec.Command("objcopy", "-O", "binary", "-j", ".text", o, bin).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	code, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func pageUp(n uint64) uint64 { return (n + abi.PageSize - 1) &^ (abi.PageSize - 1) }

// codeLayout places code at testCodeAddr (read-only, executable) with a
// boot-info page and a stack, entering at the code's first byte.
func codeLayout(code []byte) *loader.Layout {
	boot := uint64(abi.LegacyPrivateBase)
	stack := boot + 2*abi.PageSize
	bi := abi.BootInfo{Magic: abi.BootInfoMagic, Version: abi.BootInfoVersion, Monitor: abi.MonitorProcess}
	return &loader.Layout{
		Mappings: []loader.Mapping{
			{Addr: testCodeAddr, Size: pageUp(uint64(len(code))), Prot: loader.ProtRead | loader.ProtExec,
				Data: code, Part: loader.PartImage},
			{Addr: boot, Size: abi.PageSize, Prot: loader.ProtRead | loader.ProtWrite, Data: bi.Marshal(), Part: loader.PartBootInfo},
			{Addr: stack, Size: testStackSize, Prot: loader.ProtRead | loader.ProtWrite, Part: loader.PartStack},
		},
		Entry:    testCodeAddr,
		StackTop: stack + testStackSize,
		BootInfo: boot,
	}
}

// runLayouts runs one instance per layout and returns their results.
func runLayouts(t testing.TB, opt monitor.Options, lays ...*loader.Layout) []monitor.Result {
	t.Helper()
	if opt.Timeout == 0 {
		opt.Timeout = guestTimeout
	}
	// Raw descriptors, as Run holds them; the run closes them once every
	// instance is built.
	files := map[string]int{}
	var jobs []job
	for i, lay := range lays {
		for _, m := range lay.Mappings {
			if _, ok := files[m.File]; m.File != "" && !ok {
				f, err := unix.Open(m.File, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				files[m.File] = f
			}
		}
		jobs = append(jobs, job{uk: "test", index: i, plan: func() (*loader.Layout, error) { return lay, nil }})
	}
	return (&Monitor{}).run(context.Background(), jobs, &runFiles{m: files}, opt)
}

// runCode runs one guest made of src.
func runCode(t testing.TB, src string, opt monitor.Options) monitor.Result {
	t.Helper()
	return runLayouts(t, opt, codeLayout(assemble(t, src)))[0]
}

// exitWith is guest code that exits with code.
const exitSeven = `
	mov $0x501, %dx
	mov $7, %eax
	out %eax, %dx
	hlt
`

func TestGuestPrintsAndExitsWithItsCode(t *testing.T) {
	r := runCode(t, `
	mov $0x3f8, %dx
	mov $'h', %al
	out %al, %dx
	mov $'i', %al
	out %al, %dx
`+exitSeven, monitor.Options{})
	if r.Error != "" || r.ExitCode != 7 || r.Output != "hi" {
		t.Fatalf("got exit %d output %q error %q, want 7 \"hi\" \"\"", r.ExitCode, r.Output, r.Error)
	}
	if r.PID <= 0 || r.LoadTime <= 0 {
		t.Errorf("pid %d load time %v: want both positive", r.PID, r.LoadTime)
	}
}

// The guest exercises every trapped form the ABI allows and exits 7 only
// if each behaved; any mismatch exits 99.
func TestEveryTrappedInstructionFormIsEmulated(t *testing.T) {
	r := runCode(t, `
	mov $0x3f8, %dx
	mov $'a', %al
	out %al, %dx            # outb %dx
	mov $'b', %ax
	out %ax, %dx            # outw %dx
	mov $'c', %eax
	out %eax, %dx           # outl %dx
	lea msg(%rip), %rsi
	mov $3, %ecx
	rep outsb               # "def"
	cmp $0, %ecx
	jne fail
	mov $0x3fd, %dx
	in %dx, %al             # line status: ready to send
	cmp $0x60, %al
	jne fail
	in %dx, %eax            # only the status register is there
	cmp $0xffffff60, %eax
	jne fail
	mov $0x12345678, %eax
	in $0x80, %al           # no device: reads all ones, low byte only
	cmp $0x123456ff, %eax
	jne fail
	in $0x80, %eax
	cmp $0xffffffff, %eax
	jne fail
	out %al, $0x80          # a port nobody owns: ignored
	cli
	sti
	mov $0xc0000100, %ecx
	mov $0x20000000, %eax
	xor %edx, %edx
	wrmsr                   # FS base: the boot info page
	mov %fs:8, %eax         # BootInfo.Version
	cmp $2, %eax
	jne fail
	xor %eax, %eax
	rdmsr
	cmp $0x20000000, %eax
	jne fail
	test %edx, %edx
	jne fail
	mov $0x3f8, %dx
	mov $'g', %al
	out %al, %dx
`+exitSeven+`
fail:
	mov $0x501, %dx
	mov $99, %eax
	out %eax, %dx
msg:
	.ascii "def"
`, monitor.Options{})
	if r.Error != "" || r.ExitCode != 7 || r.Output != "abcdefg" {
		t.Fatalf("got exit %d output %q error %q, want 7 \"abcdefg\" \"\"", r.ExitCode, r.Output, r.Error)
	}
}

func TestExitCodeIsTheValueWrittenToTheExitPort(t *testing.T) {
	for _, c := range []struct {
		src  string
		want int
	}{{"mov $0, %al\nout %al, %dx", 0}, {"mov $255, %al\nout %al, %dx", 255},
		{"mov $-1, %ax\nout %ax, %dx", 0xffff}, {"mov $-1, %eax\nout %eax, %dx", -1}} {
		code := c.want
		r := runCode(t, "mov $0x501, %dx\n"+c.src+"\nhlt", monitor.Options{})
		if r.Error != "" || r.ExitCode != code {
			t.Errorf("outb %d: got exit %d error %q", code, r.ExitCode, r.Error)
		}
	}
}

func TestHaltWithoutExitCodeIsReported(t *testing.T) {
	r := runCode(t, "hlt", monitor.Options{})
	if !strings.Contains(r.Error, "halted at 0x400000") || r.ExitCode != -1 {
		t.Fatalf("got exit %d error %q, want a halt report", r.ExitCode, r.Error)
	}
}

func TestSeccompKillsAGuestSystemCall(t *testing.T) {
	r := runCode(t, `
	mov $39, %eax           # getpid
	syscall
`+exitSeven, monitor.Options{})
	if !strings.Contains(r.Error, "system call 39") || !strings.Contains(r.Error, "seccomp") || r.ExitCode != -1 {
		t.Fatalf("got exit %d error %q, want a seccomp kill of system call 39", r.ExitCode, r.Error)
	}
}

func TestOutputIsKeptPerInstance(t *testing.T) {
	var lays []*loader.Layout
	for _, c := range []string{"x", "y", "z"} {
		lays = append(lays, codeLayout(assemble(t, "mov $0x3f8, %dx\nmov $'"+c+"', %al\nout %al, %dx\nout %al, %dx\n"+exitSeven)))
	}
	rs := runLayouts(t, monitor.Options{}, lays...)
	for i, want := range []string{"xx", "yy", "zz"} {
		if rs[i].Output != want || rs[i].ExitCode != 7 {
			t.Errorf("instance %d: output %q exit %d, want %q 7", i, rs[i].Output, rs[i].ExitCode, want)
		}
	}
}

func TestRunawayInstanceDiesAtItsTimeoutAndOthersFinish(t *testing.T) {
	spin := codeLayout(assemble(t, "1: jmp 1b"))
	ok := codeLayout(assemble(t, exitSeven))
	start := time.Now()
	rs := runLayouts(t, monitor.Options{Timeout: 300 * time.Millisecond}, spin, ok)
	if !strings.Contains(rs[0].Error, "timeout") || rs[0].ExitCode != -1 {
		t.Errorf("runaway: exit %d error %q, want a timeout", rs[0].ExitCode, rs[0].Error)
	}
	if rs[1].Error != "" || rs[1].ExitCode != 7 {
		t.Errorf("other: exit %d error %q, want 7", rs[1].ExitCode, rs[1].Error)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 10*time.Second {
		t.Errorf("run took %v, want about the timeout", d)
	}
}

func TestFaultsNameTheAddressAndWhatHoldsIt(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"movb $1, 0x400000", "write to read-only code at 0x400000 (image)"},
		{"mov 0x30000000, %rax", "access to unmapped memory at 0x30000000"},
		{"ud2", "invalid instruction by `ud2` at 0x400000"},
		{"int3", "breakpoint"},
		{"mov %cr0, %rax", "general protection fault: mov %cr0,%rax at 0x400000"},
		{"mov $0xc0000080, %ecx\nwrmsr", "wrmsr to unsupported MSR 0xc0000080"},
		{"lea -8(%rsp), %rax\njmp *%rax", "execution of non-executable memory at 0x20011ff8 (stack)"},
	} {
		r := runCode(t, c.src+"\n"+exitSeven, monitor.Options{})
		if !strings.Contains(r.Error, c.want) || r.ExitCode != -1 {
			t.Errorf("%q: got exit %d error %q, want it to contain %q", c.src, r.ExitCode, r.Error, c.want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestRepeatedTrapAtOneSiteIsEmulatedEveryTime(t *testing.T) {
	r := runCode(t, `
	mov $0x3f8, %dx
	mov $1000, %ecx
1:	mov %cl, %al
	and $7, %al
	add $'0', %al
	out %al, %dx
	loop 1b
`+exitSeven, monitor.Options{})
	var want strings.Builder
	for c := 1000; c > 0; c-- {
		want.WriteByte(byte('0' + c&7))
	}
	if r.Error != "" || r.ExitCode != 7 || r.Output != want.String() {
		t.Fatalf("exit %d error %q output %d bytes (want 1000 in order)", r.ExitCode, r.Error, len(r.Output))
	}
}

func TestHostTSCRateIsMeasuredWhenConstant(t *testing.T) {
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil || !strings.Contains(string(info), " constant_tsc") {
		t.Skip("no constant TSC here: the boot info says 0 (unknown)")
	}
	// Any x86 host of the last 20 years ticks between 500 MHz and 10 GHz.
	if khz := hostTSCKHz(); khz < 500_000 || khz > 10_000_000 {
		t.Fatalf("TSC measured at %d kHz", khz)
	}
}

// A `rep outsb` longer than one trap's chunk runs to its end: %rcx reaches
// zero and %rsi moves past the whole string, while the console keeps only
// its cap.
func TestLongRepOutsIsDoneCompletelyAndTheConsoleCapped(t *testing.T) {
	const n = 3*outsChunk + 123
	lay := codeLayout(assemble(t, `
	mov $0x3f8, %dx
	mov $0x20100000, %rsi
	mov $`+itoa(n)+`, %rcx
	rep outsb
	test %rcx, %rcx
	jnz 1f
	cmp $0x20100000+`+itoa(n)+`, %rsi
	jne 1f
`+exitSeven+`
1:	mov $0x501, %dx
	mov $99, %eax
	out %eax, %dx
	hlt`))
	lay.Mappings = append(lay.Mappings, loader.Mapping{Addr: 0x20100000, Size: pageUp(n),
		Prot: loader.ProtRead | loader.ProtWrite, Data: []byte(strings.Repeat("abcd", n/4)), Part: loader.PartHeap})
	r := runLayouts(t, monitor.Options{MaxOutput: 1000}, lay)[0]
	if r.Error != "" || r.ExitCode != 7 || r.Output != strings.Repeat("abcd", 250) {
		t.Fatalf("exit %d error %q output %d bytes, want 7 and the first 1000 bytes", r.ExitCode, r.Error, len(r.Output))
	}
}

// Started hands out a stop for each instance, Finished reports each one
// as it ends: stopping the spinning guest ends it alone.
func TestStartedStopsOneInstanceAndFinishedReportsEach(t *testing.T) {
	spin := codeLayout(assemble(t, "1: jmp 1b"))
	ok := codeLayout(assemble(t, exitSeven))
	var mu sync.Mutex
	pids := map[int]int{}
	finished := map[int]monitor.Result{}
	opt := monitor.Options{
		Started: func(i, pid int, stop func()) {
			mu.Lock()
			pids[i] = pid
			mu.Unlock()
			if i == 0 {
				time.AfterFunc(100*time.Millisecond, stop)
			}
		},
		Finished: func(i int, r monitor.Result) {
			mu.Lock()
			finished[i] = r
			mu.Unlock()
		},
	}
	rs := runLayouts(t, opt, spin, ok)
	if rs[0].Error != monitor.StoppedByRequest || rs[1].ExitCode != 7 || rs[1].Error != "" {
		t.Fatalf("results %+v", rs)
	}
	for i := range rs {
		if pids[i] != rs[i].PID || finished[i].Error != rs[i].Error || finished[i].ExitCode != rs[i].ExitCode {
			t.Errorf("instance %d: started pid %d, finished %+v, result %+v", i, pids[i], finished[i], rs[i])
		}
	}
}

// The thread that serves a guest's traps runs under the tracer filter:
// whatever a guest drives it to do, a call outside the filter (here a
// socket, an open for writing, attaching to another process) fails with
// EPERM there, while the guest is served as usual.
func TestTracerThreadServingTheGuestIsConfinedWithoutCapabilities(t *testing.T) {
	type probe struct {
		seccomp, capEff, capBnd, guestCapPrm string
		socket, create, attach               error
	}
	var p probe
	dir := t.TempDir()
	opt := monitor.Options{Started: func(i, pid int, stop func()) {
		// Started runs on the tracer thread that serves this guest.
		field := func(file, name string) string {
			status, _ := os.ReadFile(file)
			for _, l := range strings.Split(string(status), "\n") {
				if v, ok := strings.CutPrefix(l, name+":"); ok {
					return strings.TrimSpace(v)
				}
			}
			return ""
		}
		p.seccomp = field("/proc/thread-self/status", "Seccomp")
		p.capEff = field("/proc/thread-self/status", "CapEff")
		p.capBnd = field("/proc/thread-self/status", "CapBnd")
		p.guestCapPrm = field("/proc/"+itoa(pid)+"/status", "CapPrm")
		_, p.socket = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		_, p.create = unix.Open(filepath.Join(dir, "x"), unix.O_WRONLY|unix.O_CREAT, 0o644)
		p.attach = unix.PtraceAttach(os.Getppid())
	}}
	r := runLayouts(t, opt, codeLayout(assemble(t, `
	mov $0x3f8, %dx
	lea msg(%rip), %rsi
	mov $2, %ecx
	rep outsb
`+exitSeven+`
msg: .ascii "ok"`)))[0]
	if r.Error != "" || r.ExitCode != 7 || r.Output != "ok" {
		t.Fatalf("guest under a confined tracer: exit %d error %q output %q", r.ExitCode, r.Error, r.Output)
	}
	if p.seccomp != "2" || p.socket != unix.EPERM || p.create != unix.EPERM || p.attach != unix.EPERM {
		t.Fatalf("tracer thread: Seccomp %q, socket %v, open for writing %v, ptrace(ATTACH) %v; want 2 and EPERM each",
			p.seccomp, p.socket, p.create, p.attach)
	}
	const none = "0000000000000000"
	if p.capEff != none || p.capBnd != none || p.guestCapPrm != none {
		t.Fatalf("capabilities: tracer thread CapEff %s CapBnd %s, instance process CapPrm %s; want none", p.capEff, p.capBnd, p.guestCapPrm)
	}
}

// Free-page reporting (abi.PortDiscard): the guest's whole heap pages in
// the range it names come back as fresh zero pages, a partial page at the
// edge keeps its bytes, and a range outside the heap and stack (its boot
// info) is left alone; the guest's registers are as before the report.
func TestFreePageReportGivesBackOnlyWholeHeapPages(t *testing.T) {
	lay := codeLayout(assemble(t, fmt.Sprintf(`
	mov $%#[1]x, %%rbx
	movq $0x1234, (%%rbx)
	movq $0x1234, 0x1000(%%rbx)
	movq $0x1234, 0x2ff8(%%rbx)
	mov $%#[2]x, %%rcx
	movq $0x55, 0x800(%%rcx)
	lea 8(%%rbx), %%rdi
	mov $0x2ff4, %%rsi
	mov $0x503, %%dx
	xor %%eax, %%eax
	out %%eax, %%dx
	mov $91, %%r15
	cmp $0x2ff4, %%rsi
	jne bad
	mov %%rcx, %%rdi
	mov $0x1000, %%rsi
	out %%eax, %%dx
	mov $92, %%r15
	cmpq $0x1234, (%%rbx)
	jne bad
	mov $93, %%r15
	cmpq $0, 0x1000(%%rbx)
	jne bad
	mov $94, %%r15
	cmpq $0x1234, 0x2ff8(%%rbx)
	jne bad
	mov $95, %%r15
	cmpq $0x55, 0x800(%%rcx)
	jne bad
`, testHeapAddr, abi.LegacyPrivateBase)+exitSeven+`
bad:
	mov $0x501, %dx
	mov %r15d, %eax
	out %eax, %dx
	hlt
`))
	stack := lay.StackTop - testStackSize
	lay.Mappings = append(lay.Mappings, loader.Mapping{Addr: testHeapAddr, Size: 4 * abi.PageSize,
		Prot: loader.ProtRead | loader.ProtWrite, Part: loader.PartHeap})
	lay.Areas = map[string]uint64{loader.PartStack: stack, loader.PartHeap: testHeapAddr}
	r := runLayouts(t, monitor.Options{}, lay)[0]
	if r.Error != "" || r.ExitCode != 7 {
		t.Fatalf("exit %d error %q: want 7 (91..95: the check that failed)", r.ExitCode, r.Error)
	}
	// Told to ignore them, the monitor leaves the page as it was (93).
	r = runLayouts(t, monitor.Options{IgnoreFreePageReports: true}, lay)[0]
	if r.Error != "" || r.ExitCode != 93 {
		t.Fatalf("reports ignored: exit %d error %q: want 93 (the page given back kept its bytes)", r.ExitCode, r.Error)
	}
}

// testHeapAddr is a heap for tests that need one, above codeLayout's stack.
const testHeapAddr = abi.LegacyPrivateBase + 0x10_0000
