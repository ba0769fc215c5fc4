package process

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
)

// cpuTime is how long pid has run on a CPU (in ns: the guest's own
// instructions and the kernel's work for it, such as its page faults; not
// the monitor's emulation of its traps). 0 if unknown (the process is
// gone).
//
// It is the process's CPU clock (clock_gettime of processCPUClock(pid)):
// the scheduler's sum_exec_runtime, the figure /proc/PID/schedstat starts
// with, read without a path. Reading /proc/PID/schedstat instead makes the
// kernel instantiate /proc/PID and /proc/PID/schedstat (two proc inodes,
// two dentries), which stay cached as long as the process lives, charged
// to the monitor's memory cgroup: 1.9 KiB of slab per held instance
// (docs/notes/monitor-memory.md, session 16, slab16).
func cpuTime(pid int) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(processCPUClock(pid), &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// processCPUClock is the clock id of pid's process CPU clock
// (MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) of the kernel's
// posix-timers.h): any process's, readable by any other.
func processCPUClock(pid int) int32 {
	const cpuclockSched = 2
	return ^int32(pid)<<3 | cpuclockSched
}

// dumpMemory reads every range of the stopped guest's address space (all
// its process maps: the layout's mappings, the stub, the vdso) for
// Options.Dump, with the secrets the loader handed it.
func (in *instance) dumpMemory() monitor.MemoryDump {
	d := monitor.MemoryDump{Bases: in.lay.Bases, Areas: in.lay.Areas, Canary: in.lay.Canary, Seed: in.lay.Seed,
		Extents: map[string][2]uint64{}}
	for _, m := range in.lay.AllMappings() {
		name := m.Library
		if name == "" {
			name = m.Part
		} else if m.Part == loader.PartPrivate {
			// A dense library's private part lies apart from its
			// code (in the data arena): an extent of its own, not
			// one spanning the hundreds of MiB between them.
			name += " private part"
		}
		e, ok := d.Extents[name]
		if !ok {
			e = [2]uint64{m.Addr, m.Addr + m.Size}
		}
		d.Extents[name] = [2]uint64{min(e[0], m.Addr), max(e[1], m.Addr+m.Size)}
	}
	if tls, ok := in.lay.Areas[loader.PartTLS]; ok && in.lay.TLSSize > 0 {
		// The TLS area lies inside the stack mapping (a legacy
		// snapshot's under --aslr: the boot-info area): an extent of
		// its own all the same.
		d.Extents[loader.PartTLS] = [2]uint64{tls, tls + in.lay.TLSSize}
	}
	if in.lay.BootEnd != 0 {
		// So does the boot area, at the stack's top.
		d.Extents[loader.PartBootInfo] = [2]uint64{in.lay.BootInfo, in.lay.BootEnd}
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", in.pid))
	if err != nil {
		return d
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || b <= a {
			continue
		}
		r := monitor.DumpRange{Addr: a, Size: b - a, Writable: fields[1][1] == 'w'}
		if len(fields) > 5 {
			r.What = fields[5]
		}
		if m := in.lay.Find(a); m != nil {
			r.What = in.lay.Describe(a)
		}
		if fields[1][0] == 'r' {
			buf := make([]byte, r.Size)
			if n, err := readMem(in.pid, a, buf); err == nil && uint64(n) == r.Size {
				r.Data = buf
			}
		}
		d.Ranges = append(d.Ranges, r)
	}
	return d
}
