package measure

// The fleet's own memory cgroup. The kernel's part of a fleet (slab,
// kernel stacks, page tables, percpu, vmalloc, socket buffers) has no
// per-process figure and its host-wide rise is moved by every other
// process on the host; a memory cgroup holding the fleet and nothing else
// is charged exactly what the kernel allocates for it. FleetGroup makes
// one, moves this process (the monitor: the fleet's instance processes
// are its children and start in it) into it, and reads what it is
// charged; Close moves the process back and removes the group.
//
// What a group is charged, and what it is not:
//   - memory charged before the move stays with the group the process
//     came from: the group holds what the fleet allocated since, as the
//     monitor's PSS growth does;
//   - a page-cache page is charged to the group of whoever first brought
//     it in, whoever maps it later: the pool's blobs and the images are
//     read (verified, planned) before the fleet starts, outside its
//     group, so one mode is not charged for page cache another brought
//     in. The file pages the group is charged anyway are reported apart
//     (CgroupMemory.File) and are in no total: the fleet's file pages
//     are in the instances' PSS, each split among its mappers;
//   - kernel memory allocated without accounting is in no group; the one
//     large such part here is KSM's (ksmd allocates its rmap items), so
//     it is read per process (/proc/PID/ksm_stat) and added apart.
//
// The charges are per-CPU batched: a reading can be up to 64 pages per
// CPU (256 KiB) above what is in use.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/unipool/unipool/internal/cgroup"
)

// CgroupMemory is what the kernel charges a fleet's memory cgroup, in
// bytes.
type CgroupMemory struct {
	Group   string `json:"group"`
	Version int    `json:"version"` // 1 or 2
	// Current is memory.current (v2) or memory.usage_in_bytes (v1):
	// everything below.
	Current uint64 `json:"current_bytes"`
	Anon    uint64 `json:"anon_bytes"`
	// File is page cache charged to the group: pages the fleet read or
	// faulted in first. Counted in no total (see the package comment).
	File uint64 `json:"file_bytes"`
	// Kernel is the kernel memory charged to the group: v2's "kernel"
	// (slab, kernel stacks, page tables, percpu, vmalloc, ...), v1's
	// memory.kmem.usage_in_bytes. Sock (network buffers) is apart.
	Kernel uint64 `json:"kernel_bytes"`
	Sock   uint64 `json:"sock_bytes"`
	// The parts of Kernel, where the kernel reports them (v2 only; v1's
	// memory.stat has no kernel lines, and these are 0).
	KernelStack       uint64 `json:"kernel_stack_bytes"`
	PageTables        uint64 `json:"pagetables_bytes"`
	SecPageTables     uint64 `json:"sec_pagetables_bytes"`
	Slab              uint64 `json:"slab_bytes"`
	SlabUnreclaimable uint64 `json:"slab_unreclaimable_bytes"`
	Percpu            uint64 `json:"percpu_bytes"`
	Vmalloc           uint64 `json:"vmalloc_bytes"`
	Shmem             uint64 `json:"shmem_bytes"`
	FileMapped        uint64 `json:"file_mapped_bytes"`
}

// CgroupFromStat interprets a memory.stat (ParseStat's map) of a group on
// cgroup v1 or v2; current is the group's memory.current or
// memory.usage_in_bytes, kmem and tcp v1's kernel files (0 on v2).
func CgroupFromStat(st map[string]uint64, v2 bool, current, kmem, tcp uint64) CgroupMemory {
	m := CgroupMemory{Current: current, Version: 1}
	if !v2 {
		// v1: rss is anonymous memory (and swap cache, transparent huge
		// pages included), cache the page cache (shmem included).
		m.Anon, m.File, m.Shmem, m.FileMapped = st["rss"], st["cache"], st["shmem"], st["mapped_file"]
		m.Kernel, m.Sock = kmem, tcp
		return m
	}
	m.Version = 2
	m.Anon, m.File, m.Shmem, m.FileMapped = st["anon"], st["file"], st["shmem"], st["file_mapped"]
	m.KernelStack, m.PageTables, m.SecPageTables = st["kernel_stack"], st["pagetables"], st["sec_pagetables"]
	m.Slab, m.SlabUnreclaimable, m.Percpu, m.Vmalloc, m.Sock = st["slab"], st["slab_unreclaimable"], st["percpu"], st["vmalloc"], st["sock"]
	if m.Slab == 0 {
		m.Slab = st["slab_reclaimable"] + st["slab_unreclaimable"]
	}
	if k, ok := st["kernel"]; ok {
		m.Kernel = k
	} else { // kernels before 5.18 have no "kernel" line
		m.Kernel = m.KernelStack + m.PageTables + m.SecPageTables + m.Slab + m.Percpu + m.Vmalloc
	}
	return m
}

// FleetGroup is a memory cgroup that holds one measured fleet: this
// process (the monitor) and the instance processes it starts.
type FleetGroup struct {
	g    *cgroup.Group
	from string // the group this process came from
	pid  int
	// entered: this process is in the group (EnterFleetGroup) and goes
	// back on Close; a group made by NewFleetGroup holds only the
	// processes started in it (Start).
	entered bool
}

// moving serialises moves of this process between groups (Start).
var moving sync.Mutex

var fleetGroups atomic.Int64

const fleetGroupPrefix = "unipool-measure-"

// EnterFleetGroup makes a fresh memory cgroup nested under the one this
// process is in (internal/cgroup.NewNested) and moves this process into
// it: everything it and its children allocate from now on is charged
// there. label names the fleet in the group's name. It fails, saying
// why, where the host has no memory cgroup or this process may not make
// one (not root).
func EnterFleetGroup(label string) (*FleetGroup, error) {
	fg, err := NewFleetGroup(label)
	if err != nil {
		return nil, err
	}
	if err := fg.g.Add(fg.pid); err != nil {
		fg.g.Remove()
		return nil, fmt.Errorf("measure: %w", err)
	}
	fg.entered = true
	return fg, nil
}

// NewFleetGroup makes a fresh memory cgroup for a fleet whose monitor is
// a process of its own (Start), nested under the one this process is in;
// this process stays where it is, so nothing the measuring process
// allocates is charged to the fleet.
func NewFleetGroup(label string) (*FleetGroup, error) {
	pid := os.Getpid()
	name := fmt.Sprintf("%s%d-%d-%s", fleetGroupPrefix, pid, fleetGroups.Add(1), sanitize(label))
	g, own, err := cgroup.NewNested(name)
	if err != nil {
		return nil, fmt.Errorf("measure: no memory cgroup for the fleet: %w", err)
	}
	removeStale(filepath.Dir(g.Dir))
	return &FleetGroup{g: g, from: own, pid: pid}, nil
}

// Start starts cmd in the group: from its fork on, everything the new
// process and its children allocate (its task, kernel stack, page
// tables, pages) is charged to the group. This process moves into the
// group for the fork only (the one way that also works on cgroup v1) and
// back at once.
func (f *FleetGroup) Start(cmd *exec.Cmd) error {
	moving.Lock()
	defer moving.Unlock()
	if !f.entered {
		if err := f.g.Add(f.pid); err != nil {
			return fmt.Errorf("measure: %w", err)
		}
	}
	err := cmd.Start()
	if !f.entered {
		if berr := cgroup.Move(f.from, f.pid); berr != nil && err == nil {
			err = fmt.Errorf("measure: back from the fleet's group: %w", berr)
		}
	}
	return err
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// removeStale removes the empty fleet groups of processes that are gone
// (a measurement killed before it could remove its group).
func removeStale(parent string) {
	ents, _ := os.ReadDir(parent)
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), fleetGroupPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		p, _, _ := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(p); err == nil {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
				os.Remove(filepath.Join(parent, e.Name())) // fails if not empty: left alone
			}
		}
	}
}

// Dir is the group's directory.
func (f *FleetGroup) Dir() string { return f.g.Dir }

// Procs lists the processes in the group.
func (f *FleetGroup) Procs() ([]int, error) { return f.g.Procs() }

// Read reads what the group is charged now.
func (f *FleetGroup) Read() (CgroupMemory, error) {
	st, err := f.g.Stat()
	if err != nil {
		return CgroupMemory{}, err
	}
	cur, err := f.g.Memory()
	if err != nil {
		return CgroupMemory{}, err
	}
	var kmem, tcp uint64
	if !f.g.V2 {
		if kmem, tcp, err = f.g.Kmem(); err != nil {
			return CgroupMemory{}, err
		}
	}
	m := CgroupFromStat(st, f.g.V2, cur, kmem, tcp)
	m.Group = f.g.Dir
	return m, nil
}

// Close moves this process back to the group it came from and removes
// the fleet's group; the fleet's other processes must have ended.
func (f *FleetGroup) Close() error {
	if f == nil {
		return nil
	}
	if f.entered {
		if err := cgroup.Move(f.from, f.pid); err != nil {
			return fmt.Errorf("measure: back from the fleet's group: %w", err)
		}
	}
	if err := f.g.Remove(); err != nil {
		return fmt.Errorf("measure: %w", err)
	}
	return nil
}

// GroupsUnavailable says whether err (from EnterFleetGroup) comes from
// the host, not from unipool: no memory controller, a read-only or
// delegated-elsewhere cgroup file system, no permission, or a group that
// cannot hand the controller down (a container's namespace root holding
// processes).
func GroupsUnavailable(err error) bool {
	return errors.Is(err, cgroup.ErrNoMemoryController) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) ||
		errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EOPNOTSUPP)
}

// KSMRmapItemSize is the size of the kernel's struct ksm_rmap_item on
// 64-bit Linux: one per page KSM tracks (the size the kernel's
// general_profit uses).
const KSMRmapItemSize = 64

// KSMMetadata is the kernel memory KSM keeps for pids (its rmap items,
// from /proc/PID/ksm_stat): ksmd allocates it, charged to no group.
func KSMMetadata(pids []int) uint64 {
	var items uint64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/ksm_stat", pid))
		if err != nil {
			continue
		}
		if n, err := parseStatusCount(b, "ksm_rmap_items", "ksm_stat"); err == nil {
			items += n
		}
	}
	return items * KSMRmapItemSize
}
