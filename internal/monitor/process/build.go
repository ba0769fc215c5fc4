package process

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/loader"
)

// Building an instance: fork the zygote (zygote.go: the stub, stripped to
// its page and confined), make the layout's mappings, unmap the stub,
// enter the guest.

// refork replaces the exec'd stub pid by a fork of it, made from the stub,
// and returns the fork's pid, stopped and traced by this thread: the
// zygote, whose forks, the instances, copy its fd table.
//
// Why: a forked process gets a copy of its parent's fd table sized to the
// parent's highest open fd, and the table never shrinks: neither exec nor
// closing fds frees it. A monitor that runs a thousand unikernels holds
// their ~6,000 verified blob fds open (launch.Resolve), so every instance
// process inherited an 8,192-slot table, 65 KiB of unreclaimable kernel
// memory (a kmalloc'd fd array and bitmaps) for the 3-20 fds it ever has
// open: half of what the kernel paid per shared instance. The stub holds
// only fds 0..n after its exec (all others are close-on-exec), so its
// fork gets the table embedded in its files_struct (64 slots), and the
// stub, with the big table, is killed and reaped here. CLONE_PARENT makes
// the fork this thread's child, CLONE_PTRACE this thread's tracee (with
// the stub's ptrace options); it starts with a SIGSTOP.
func refork(stub, nfds int) (int, error) {
	fail := func(pid int, err error) (int, error) {
		if pid > 0 {
			_ = unix.Kill(pid, unix.SIGKILL)
			reap(pid)
		}
		reap(stub)
		return 0, err
	}
	r, err := newRemote(stub)
	if err != nil {
		return fail(0, err)
	}
	if _, err := r.call(unix.SYS_CLOSE_RANGE, uint64(nfds), uint64(^uint32(0)), 0); err != nil {
		return fail(0, fmt.Errorf("start instance process: close_range: %w", err))
	}
	ret, err := r.call(unix.SYS_CLONE, unix.CLONE_PARENT|unix.CLONE_PTRACE|uint64(unix.SIGCHLD), 0, 0, 0, 0)
	if err != nil {
		return fail(0, fmt.Errorf("start instance process: fork of the stub: %w", err))
	}
	pid := int(ret)
	for {
		_, ws, err := waitPid(pid, false)
		if err != nil {
			return fail(pid, err)
		}
		if ws.Exited() || ws.Signaled() {
			return fail(0, fmt.Errorf("start instance process: fork of the stub died (%s)", describeStatus(ws)))
		}
		if ws.Stopped() && ws.StopSignal() == unix.SIGSTOP {
			break
		}
		if err := cont(pid, 0); err != nil {
			return fail(pid, err)
		}
	}
	if err := unix.PtraceSetOptions(pid, unix.PTRACE_O_EXITKILL|unix.PTRACE_O_TRACEEXIT); err != nil {
		return fail(pid, fmt.Errorf("ptrace(SETOPTIONS, %d): %w", pid, err))
	}
	reap(stub)
	return pid, nil
}

// reap kills a tracee of this thread and waits until it is gone.
func reap(pid int) {
	_ = unix.Kill(pid, unix.SIGKILL)
	for {
		_, ws, err := waitPid(pid, false)
		if err != nil || ws.Exited() || ws.Signaled() {
			return
		}
		_ = cont(pid, 0) // its exit event (PTRACE_O_TRACEEXIT)
	}
}

// buildOptions are the per-run choices build needs.
type buildOptions struct {
	ksm  bool
	name string // the process name (comm), at most 15 bytes
	// scratch, when set, holds build's lists from one build to the next
	// (a tracer's, while it starts its instances).
	scratch *buildScratch
}

// buildScratch is what build lists for one instance, kept for the next:
// the system calls of its two batches, the table they are written
// through, the memory writes and their iovecs. Made per build, these
// were a few slices sized by the instance's mapping count, grown by
// appends, per instance: garbage in as many of the runtime's size
// classes as a fleet has mapping counts (the runtime keeps span-set
// metadata for every size class a process ever used). A tracer keeps one
// while it starts its instances and lets it go after.
type buildScratch struct {
	first, second []batchCall
	writes        []memWrite
	words         []byte // the patched words' bytes (writes point into it)
	table         []byte
	local         []unix.Iovec
	remote        []unix.RemoteIovec
}

// batchAddr is where build maps a scratch area for the tables of system
// calls it injects; it is unmapped before the guest runs. Like the stub, it
// stays clear of every guest address.
const batchAddr = stubAddr + 0x10_0000

// build makes lay's address space in the stopped child pid, a fork of the
// zygote whose fds zygoteFirstFd+i are the files named i in fds (zygote
// passFiles), and leaves it ready to enter
// the guest: regs is the register state to resume with. The system calls
// go in two batches, one round trip each, around the copy of the private
// bytes; a dozen mappings would otherwise cost a hundred round trips.
func build(pid int, lay *loader.Layout, fds map[string]int, opt buildOptions) (*unix.PtraceRegs, error) {
	r, err := newRemote(pid)
	if err != nil {
		return nil, err
	}
	sc := opt.scratch
	if sc == nil {
		sc = &buildScratch{}
	}
	// Room for every call: an mmap per mapping, image read and the
	// discard page; an mprotect and a madvise per mapping, close_range
	// and prctl.
	nreads := 0
	if lay.Reads != nil {
		nreads = len(lay.Reads.Runs)
	}
	first, second := grow(sc.first, len(lay.Mappings)+nreads+1), grow(sc.second, 2*len(lay.Mappings)+2)
	writes, words := sc.writes[:0], sc.words[:0]
	defer func() {
		// Kept without what they point to (mappings, bytes): the next
		// build overwrites them.
		clear(first)
		clear(second)
		clear(writes)
		sc.first, sc.second, sc.writes, sc.words = first[:0], second[:0], writes[:0], words[:0]
	}()
	// A call's what is its mapping's, named only if it fails (batchCall.of).
	add := func(calls *[]batchCall, of *loader.Mapping, what string, ret uint64, nr uintptr, args ...uint64) {
		c := batchCall{nr: nr, of: of, what: what, ret: ret}
		copy(c.args[:], args)
		*calls = append(reserve(*calls, 1), c)
	}
	write := func(w memWrite) { writes = append(reserve(writes, 1), w) }
	fdOf := func(name string) (uint64, bool) {
		i, ok := fds[name]
		return uint64(zygoteFirstFd + i), ok
	}
	for i := 0; i < len(lay.Mappings); i++ {
		m := &lay.Mappings[i]
		if m.File != "" {
			fd, ok := fdOf(m.File)
			if !ok {
				return nil, fmt.Errorf("mapping %s: file %s not passed to the instance", what(*m), m.File)
			}
			if m.COW {
				// A library's tramp table or data from its init blob,
				// copy-on-write: its pages stay the page cache's, shared
				// with every instance of any image using that library,
				// until this instance writes them. Only ASLR patches do
				// so at load time.
				add(&first, m, "", m.Addr, unix.SYS_MMAP, m.Addr, m.Size, unix.PROT_READ|unix.PROT_WRITE,
					unix.MAP_PRIVATE|unix.MAP_FIXED_NOREPLACE, fd, m.Offset)
				for _, pt := range m.Patches {
					words = binary.LittleEndian.AppendUint64(reserve(words, 8), pt.Value)
					write(memWrite{m.Addr + pt.Off, words[len(words)-8:]})
				}
				if m.Prot != unix.PROT_READ|unix.PROT_WRITE {
					add(&second, m, "", 0, unix.SYS_MPROTECT, m.Addr, m.Size, uint64(m.Prot))
				}
				if opt.ksm {
					// The pages the instance writes become anonymous
					// copies: KSM may merge those (the data arena's
					// pages are copy-on-write from the private blob).
					add(&second, m, "", 0, unix.SYS_MADVISE, m.Addr, m.Size, unix.MADV_MERGEABLE)
				}
				continue
			}
			// Shared and read-only, straight from the pool file: every
			// instance maps the same page-cache pages.
			add(&first, m, "", m.Addr, unix.SYS_MMAP, m.Addr, m.Size, uint64(m.Prot),
				unix.MAP_SHARED|unix.MAP_FIXED_NOREPLACE, fd, m.Offset)
			continue
		}
		// Private memory is mapped writable, filled, then given its
		// protection. Mappings the loader joins (a plain image's
		// segments: JoinNext) are one mapping, the gaps between them
		// zero; all-zero pages are not written (DataRuns).
		j := i
		for lay.Mappings[j].JoinNext && j+1 < len(lay.Mappings) {
			j++
		}
		size := lay.Mappings[j].Addr + lay.Mappings[j].Size - m.Addr
		add(&first, m, "", m.Addr, unix.SYS_MMAP, m.Addr, size, unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0)
		for _, x := range lay.Mappings[i : j+1] {
			for _, r := range x.DataRuns() {
				write(memWrite{x.Addr + r[0], x.Data[r[0]:r[1]]})
			}
		}
		if m.Prot != unix.PROT_READ|unix.PROT_WRITE {
			add(&second, m, "", 0, unix.SYS_MPROTECT, m.Addr, size, uint64(m.Prot))
		}
		if opt.ksm {
			add(&second, m, "", 0, unix.SYS_MADVISE, m.Addr, size, unix.MADV_MERGEABLE)
		}
		i = j
	}
	if r := lay.Reads; r != nil && len(r.Runs) > 0 {
		// A copied plain image's bytes: the instance reads them from the
		// image file into its image mappings, made above (the kernel
		// copies them from the page cache; the monitor never holds
		// them). What an error says: the call, the bytes it read and
		// the bytes it had to.
		fd, ok := fdOf(r.From)
		if !ok {
			return nil, fmt.Errorf("image file %s not passed to the instance", r.From)
		}
		for _, rd := range r.Runs {
			add(&first, nil, "read of the image file", rd.Len, unix.SYS_PREAD64, fd, rd.Addr, rd.Len, rd.FileOff)
			first[len(first)-1].file = r.From
		}
	}
	if page := discardPage(lay); page != 0 {
		// The stub's page again, read-only and shared, next to the
		// stack: its `syscall` is where the monitor makes the madvise
		// of the guest's free-page reports (see discard).
		add(&first, nil, "the discard page", page, unix.SYS_MMAP, page, abi.PageSize, unix.PROT_READ|unix.PROT_EXEC,
			unix.MAP_SHARED|unix.MAP_FIXED_NOREPLACE, zygoteStubFd, 0)
	}
	// The blob fds are no longer needed once mapped, and a guest that
	// could make system calls should find none: all go, the zygote's
	// socket and stub among them.
	add(&second, nil, "close_range(0, ~0)", 0, unix.SYS_CLOSE_RANGE, 0, uint64(^uint32(0)), 0)
	// The scratch area: the name, then the call tables. (No core files
	// and no new privileges: the zygote's, inherited.)
	nameAddr, tableAddr := uint64(batchAddr), uint64(batchAddr+64)
	comm := append([]byte(opt.name)[:min(len(opt.name), 15)], 0)
	add(&second, nil, "prctl(PR_SET_NAME)", 0, unix.SYS_PRCTL, unix.PR_SET_NAME, nameAddr)
	tableSize := uint64(max(len(first), len(second))) * batchEntrySize
	size := (tableAddr + tableSize - batchAddr + abi.PageSize - 1) &^ (abi.PageSize - 1)

	if err := r.mmap(batchAddr, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, -1, 0); err != nil {
		return nil, fmt.Errorf("scratch area: %w", err)
	}
	if err := r.batchWith(tableAddr, first, sc); err != nil {
		return nil, err
	}
	write(memWrite{nameAddr, comm})
	if err := writeMemWith(pid, writes, sc); err != nil {
		return nil, err
	}
	if err := r.batchWith(tableAddr, second, sc); err != nil {
		return nil, err
	}
	if _, err := r.call(unix.SYS_MUNMAP, batchAddr, size); err != nil {
		return nil, fmt.Errorf("scratch area: munmap: %w", err)
	}
	// The instance's last system call: under the zygote's filter, which
	// from now on lets nothing through but a discard page's madvise.
	if err := r.unmapStub(); err != nil {
		return nil, err
	}
	// Enter the guest as the ABI says: %rip at the entry, %rsp at the top
	// of the stack (16-byte aligned), %rdi at the boot info, all else zero.
	regs := r.base
	regs.Rax, regs.Rbx, regs.Rcx, regs.Rdx, regs.Rsi, regs.Rbp = 0, 0, 0, 0, 0, 0
	regs.R8, regs.R9, regs.R10, regs.R11, regs.R12, regs.R13, regs.R14, regs.R15 = 0, 0, 0, 0, 0, 0, 0, 0
	regs.Orig_rax = ^uint64(0)
	regs.Rip, regs.Rsp, regs.Rdi = lay.Entry, lay.StackTop, lay.BootInfo
	regs.Fs_base, regs.Gs_base = 0, 0
	regs.Eflags = 0x202 // IF and the always-one bit; DF clear
	if s := lay.Resume; s != nil {
		// From a snapshot: resume at its ready point.
		regs.Rax, regs.Rbx, regs.Rcx, regs.Rdx, regs.Rsi, regs.Rdi, regs.Rsp, regs.Rbp = s.RAX, s.RBX, s.RCX, s.RDX, s.RSI, s.RDI, s.RSP, s.RBP
		regs.R8, regs.R9, regs.R10, regs.R11, regs.R12, regs.R13, regs.R14, regs.R15 = s.R8, s.R9, s.R10, s.R11, s.R12, s.R13, s.R14, s.R15
		regs.Rip, regs.Fs_base, regs.Gs_base = s.RIP, s.FSBase, s.GSBase
		// Only the arithmetic flags and DF are the guest's; IF stays set.
		const userFlags = 0xcd5 | 1<<10
		regs.Eflags = 0x202 | s.RFLAGS&userFlags
	}
	return &regs, nil
}

// discardPage is where an instance's discard page goes: the guard page
// below its stack, whose 2 MiB of page table the stack has anyway (the
// stub's own page lies far away: three page-table pages of its own). 0
// when that page is taken or the layout has no stack: the guest's
// free-page reports are then ignored.
func discardPage(lay *loader.Layout) uint64 {
	st, ok := lay.Areas[loader.PartStack]
	if !ok || st < 2*abi.PageSize || lay.Find(st-abi.PageSize) != nil {
		return 0
	}
	return st - abi.PageSize
}

// discard gives back the pages of the guest's free-page report
// [start, start+size) (abi.PortDiscard) that lay allows, with madvise
// (MADV_DONTNEED) made in the stopped guest from its discard page. regs
// are the guest's registers, restored afterwards. It reports how many
// bytes were given back.
func discard(pid int, lay *loader.Layout, page uint64, regs *unix.PtraceRegs, start, size uint64) (uint64, error) {
	if page == 0 {
		return 0, nil
	}
	var n uint64
	for _, r := range lay.Discardable(start, size) {
		c := remote{pid: pid, base: *regs}
		c.regs = c.base
		c.regs.Rax = unix.SYS_MADVISE
		c.regs.Rdi, c.regs.Rsi, c.regs.Rdx = r[0], r[1]-r[0], unix.MADV_DONTNEED
		if err := c.runStub(page+stubCodeOff, page+stubCodeOff+3); err != nil {
			return n, fmt.Errorf("free-page report %#x-%#x: %w", r[0], r[1], err)
		}
		if ret := c.regs.Rax; ret != 0 {
			return n, fmt.Errorf("free-page report %#x-%#x: madvise: %w", r[0], r[1], unix.Errno(-int64(ret)))
		}
		n += r[1] - r[0]
	}
	return n, nil
}

// foreignMappings lists the child's mappings other than the stub page,
// from /proc/PID/maps, as [start, end) pairs. [vsyscall] is not a real
// mapping and cannot be unmapped; seccomp stops any use of it.
func foreignMappings(pid int) ([][2]uint64, error) {
	path := fmt.Sprintf("/proc/%d/maps", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return parseMaps(data, path)
}

func parseMaps(data []byte, path string) ([][2]uint64, error) {
	var out [][2]uint64
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasSuffix(line, "[vsyscall]") {
			continue
		}
		rng, _, _ := strings.Cut(line, " ")
		lo, hi, ok := strings.Cut(rng, "-")
		if !ok {
			return nil, fmt.Errorf("%s: bad line %q", path, line)
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("%s: bad range in %q", path, line)
		}
		if start <= stubAddr && stubAddr < end {
			continue
		}
		out = append(out, [2]uint64{start, end})
	}
	return out, nil
}

// what names a mapping in messages.
func what(m loader.Mapping) string {
	if m.Library != "" {
		return fmt.Sprintf("%s/%s at %#x", m.Library, m.Part, m.Addr)
	}
	return fmt.Sprintf("%s at %#x", m.Part, m.Addr)
}

// describeStatus renders a wait status for messages.
func describeStatus(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exited with status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by %s", signalName(ws.Signal()))
	case ws.Stopped():
		return fmt.Sprintf("stopped by %s", signalName(ws.StopSignal()))
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

// signalName names a signal as kill(1) does: SIGKILL, not "killed".
func signalName(s unix.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
}
