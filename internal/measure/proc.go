package measure

// What Linux says a set of processes costs: PSS from /proc/PID/smaps_rollup,
// page tables from /proc/PID/status, /proc/meminfo, a task's CPU time.
// PSS splits every shared page among its sharers, so summing it over a
// mode's processes gives that mode's physical memory without counting a
// shared library page twice.

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Rollup is the part of smaps_rollup unipool reports, in bytes.
type Rollup struct {
	RSS          uint64
	PSS          uint64
	PSSAnon      uint64
	PSSFile      uint64
	SharedClean  uint64
	SharedDirty  uint64
	PrivateDirty uint64
}

// ReadRollup reads /proc/PID/smaps_rollup.
func ReadRollup(pid int) (Rollup, error) {
	path := fmt.Sprintf("/proc/%d/smaps_rollup", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return Rollup{}, fmt.Errorf("measure: %w", err)
	}
	return parseRollup(data, path)
}

func parseRollup(data []byte, path string) (Rollup, error) {
	var r Rollup
	fields := map[string]*uint64{
		"Rss:": &r.RSS, "Pss:": &r.PSS, "Pss_Anon:": &r.PSSAnon, "Pss_File:": &r.PSSFile,
		"Shared_Clean:": &r.SharedClean, "Shared_Dirty:": &r.SharedDirty, "Private_Dirty:": &r.PrivateDirty,
	}
	found := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		if p, ok := fields[f[0]]; ok {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return r, fmt.Errorf("measure: %s: field %s: %w", path, f[0], err)
			}
			*p = kb << 10
			found = found || f[0] == "Pss:"
		}
	}
	if !found {
		return r, fmt.Errorf("measure: %s: no Pss line", path)
	}
	return r, nil
}

// SumPSS adds the PSS of pids; processes that have gone are skipped and
// counted in missing.
func SumPSS(pids []int) (total uint64, missing int) {
	for _, pid := range pids {
		r, err := ReadRollup(pid)
		if err != nil {
			missing++
			continue
		}
		total += r.PSS
	}
	return total, missing
}

// SumShared adds, over pids, the resident bytes each shares with another
// process (Shared_Clean + Shared_Dirty): pool pages and copy-on-write
// pages nobody has written yet.
func SumShared(pids []int) uint64 {
	var total uint64
	for _, pid := range pids {
		if r, err := ReadRollup(pid); err == nil {
			total += r.SharedClean + r.SharedDirty
		}
	}
	return total
}

// SharedMappingRSS returns the resident bytes of pid's MAP_SHARED file
// mappings (perms "...s"): for a unikernel instance, its pool blobs.
func SharedMappingRSS(pid int) (uint64, error) {
	path := fmt.Sprintf("/proc/%d/smaps", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("measure: %w", err)
	}
	var total uint64
	shared := false
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") { // a mapping's header: "lo-hi perms offset dev inode path"
			shared = len(f) >= 6 && len(f[1]) == 4 && f[1][3] == 's'
			continue
		}
		if shared && f[0] == "Rss:" && len(f) > 1 {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("measure: %s: %q: %w", path, line, err)
			}
			total += kb << 10
		}
	}
	return total, nil
}

// PageTables returns the kernel memory of pid's page tables, which no PSS
// shows: its VmPTE (/proc/PID/status: the PTE, PMD and PUD pages) and its
// top-level table (PGD), which VmPTE leaves out.
func PageTables(pid int) (uint64, error) {
	pt, _, err := ProcessKernel(pid)
	return pt, err
}

// ThreadStackSize is the kernel stack of a thread on x86-64 (THREAD_SIZE):
// KernelStack in /proc/meminfo grows by it for every thread.
const ThreadStackSize = 16 << 10

// PGDSize is the top-level page table of a process: one page, two (a user
// and a kernel copy) under page-table isolation (PTI, the Meltdown
// mitigation).
var PGDSize = sync.OnceValue(func() uint64 {
	b, _ := os.ReadFile("/sys/devices/system/cpu/vulnerabilities/meltdown")
	if strings.Contains(string(b), "PTI") {
		return 8 << 10
	}
	return 4 << 10
})

// ProcessKernel returns what the kernel holds for pid alone and says so
// per process, unaffected by whatever else runs on the host: its page
// tables (VmPTE + the PGD) and its threads' kernel stacks (Threads ×
// ThreadStackSize).
func ProcessKernel(pid int) (pageTables, stacks uint64, err error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("measure: %w", err)
	}
	pte, err := parseStatusField(data, "VmPTE:", path)
	if err != nil {
		return 0, 0, err
	}
	threads, err := parseStatusCount(data, "Threads:", path)
	if err != nil {
		return 0, 0, err
	}
	return pte + PGDSize(), threads * ThreadStackSize, nil
}

func parseStatusCount(data []byte, name, path string) (uint64, error) {
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("measure: %s: %s %w", path, name, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("measure: %s: no %s line", path, name)
}

func parseStatusField(data []byte, name, path string) (uint64, error) {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == name {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("measure: %s: %s: %w", path, name, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("measure: %s has no %s line", path, name)
}

// Meminfo reads every /proc/meminfo field, in bytes.
func Meminfo() (map[string]int64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return nil, fmt.Errorf("measure: %w", err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		out[strings.TrimSuffix(f[0], ":")] = kb << 10
	}
	if _, ok := out["MemAvailable"]; !ok {
		return nil, fmt.Errorf("measure: /proc/meminfo has no MemAvailable")
	}
	return out, nil
}

// MemAvailable returns /proc/meminfo's MemAvailable in bytes. Its drop over
// a run also holds kernel-side costs (page tables, KVM's structures) that
// no process's PSS shows.
func MemAvailable() (uint64, error) {
	return meminfoField("MemAvailable:")
}

func meminfoField(name string) (uint64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("measure: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == name {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("measure: /proc/meminfo %s: %w", name, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("measure: /proc/meminfo has no %s", name)
}

// CPUTime returns the user+system CPU time of a task in clock ticks
// converted to seconds (USER_HZ is 100 on Linux/x86-64).
func CPUTime(pid int) (float64, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("measure: %w", err)
	}
	return parseStatCPU(data, path)
}

func parseStatCPU(data []byte, path string) (float64, error) {
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("measure: %s: malformed", path)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("measure: %s: too few fields", path)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("measure: %s: bad utime/stime", path)
	}
	return float64(utime+stime) / 100, nil
}

// FindTask returns the PID of the first task whose comm is name (e.g. "ksmd").
func FindTask(name string) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("measure: %w", err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && strings.TrimSpace(string(comm)) == name {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("measure: no task named %q", name)
}
