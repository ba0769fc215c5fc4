// Package measure is the one place unipool measures what a fleet of
// unikernels costs the host: `run --measure` of both monitors and every
// `bench` use it. Memory as the host pays it is three parts, reported apart:
//
//   - instances: the guests' own memory (the sum of PSS over the instance
//     processes; for the kvm monitor, the VMs' guest memory);
//   - monitor: the monitor processes (their PSS; what they keep per
//     instance: layouts, copies, Go heap, vCPU mappings);
//   - kernel: what no PSS shows: page tables (VmPTE), kernel stacks and
//     unreclaimable slab (task and mm structures, KVM's VM and vCPU
//     structures), KVM's second-level page tables. Where the fleet runs
//     in a memory cgroup of its own (cgroup.go), what the kernel charges
//     that group; else the rise of host-wide meminfo fields.
//
// The drop of MemAvailable is reported beside their sum as a cross-check
// (other activity on the host moves it). The page census (census.go)
// reads every present page of the instances and gives the ideals, each
// defined once.
package measure

import (
	"os"
	"runtime"
	"runtime/debug"
)

// Kernel is the kernel memory a fleet costs, in bytes.
type Kernel struct {
	// PageTables is the page tables of the instance and monitor
	// processes (per process: VmPTE and the PGD, which VmPTE leaves out).
	PageTables uint64 `json:"page_tables_bytes"`
	// Stacks is the kernel stacks of their threads, per process (Threads
	// × ThreadStackSize; the monitor's growth since the baseline), where
	// the fleet's processes are known (the process monitor); 0 otherwise.
	Stacks uint64 `json:"kernel_stacks_bytes"`
	// The rise, since the baseline, of the /proc/meminfo fields where the
	// rest of the kernel's per-process and per-VM cost lands: kernel
	// stacks (one per thread), unreclaimable slab (task, mm and VMA
	// structures, fd tables; KVM's VM and vCPU structures) and, for KVM,
	// the second-level page tables (SecPageTables). These are host-wide:
	// anything else running on the host moves them too (another
	// benchmark's processes, a build), which is why stacks and page
	// tables are counted per process where they can be. Negative rises
	// (other activity freed more than the fleet took) count as zero in
	// Total.
	KernelStack   int64 `json:"kernel_stack_rise_bytes"`
	Slab          int64 `json:"slab_unreclaimable_rise_bytes"`
	SecPageTables int64 `json:"sec_page_tables_rise_bytes"`
	// Charged is the kernel memory charged to the fleet's own memory
	// cgroup (CgroupMemory.Kernel + Sock), where it ran in one
	// (FleetGroup): nothing else on the host moves it.
	Charged uint64 `json:"cgroup_charged_bytes"`
	// ChargedRest is Charged less the fleet's page tables and kernel
	// stacks (PageTables, Stacks; 0 if they exceed it): its slab, all of
	// it (reclaimable caches too: /proc inodes and dentries), percpu
	// and the rest. It is the fleet's slab part where the group's
	// memory.stat has no slab lines (cgroup v1); Slab, the host-wide
	// SUnreclaim rise, is moved by everything else on the host and
	// leaves out reclaimable slab the group is charged (300 held
	// packed-naive instances, the same binary twice: Slab 0.86 and 2.44
	// MiB, ChargedRest 4.78 and 4.79; docs/notes/monitor-memory.md,
	// session 16, slab16).
	ChargedRest uint64 `json:"cgroup_charged_rest_bytes"`
	// KSM is the kernel memory KSM keeps for the fleet's processes (its
	// rmap items), which no cgroup is charged.
	KSM uint64 `json:"ksm_metadata_bytes"`
	// Source says where Total comes from: "cgroup" (Charged + KSM) or
	// "host-wide" (PageTables + (Stacks, or else KernelStack) + Slab +
	// SecPageTables, each ≥ 0; KSM is in Slab).
	Source string `json:"source"`
	Total  uint64 `json:"total_bytes"`
}

// Host is what a fleet held resident costs the host.
type Host struct {
	Instances uint64 `json:"instances_bytes"`
	// InstancesAnon is the anonymous part of Instances (Σ Pss_Anon of the
	// instance processes): with the monitor's growth, what a memory
	// cgroup holding the fleet is charged as anonymous pages.
	InstancesAnon uint64 `json:"instances_anon_bytes"`
	Monitor       uint64 `json:"monitor_bytes"`
	// MonitorAnon and MonitorFile split Monitor into its anonymous PSS
	// (heap, stacks, runtime) and its file PSS (the binary's pages it
	// touched, each split among the processes that map it). Guests read
	// from outside (Fleet.Guests) are in neither (their anonymous pages
	// are in InstancesAnon); with Fleet.GuestBytes (a monitor measured
	// in-process) the split is before the guests move to Instances.
	MonitorAnon uint64 `json:"monitor_anon_bytes"`
	MonitorFile uint64 `json:"monitor_file_bytes"`
	// MonitorProcesses says what Monitor is: "own" (the monitor
	// processes' whole PSS: they do nothing but run the fleet) or
	// "growth" (what processes that were there before the fleet grew by:
	// a monitor running inside a measuring harness).
	MonitorProcesses string `json:"monitor_processes,omitempty"`
	Kernel           Kernel `json:"kernel"`
	// Total = Instances + Monitor + Kernel.Total.
	Total uint64 `json:"total_bytes"`
	// AvailDrop is how much MemAvailable fell since the baseline: on a
	// quiet host it should be close to Total.
	AvailDrop int64 `json:"mem_available_drop_bytes"`
	// Cgroup is what the kernel charges the fleet's memory cgroup, where
	// it ran in one: beside the per-process view above (its Anon should
	// be close to the anonymous part of Instances + Monitor; its Kernel
	// is Kernel.Charged).
	Cgroup *CgroupMemory `json:"cgroup,omitempty"`
}

// UseCgroup makes the fleet's cgroup the source of h's kernel part and
// recomputes the totals.
func (h *Host) UseCgroup(m CgroupMemory) {
	h.Cgroup = &m
	h.Kernel.Charged = m.Kernel + m.Sock
	h.Kernel.ChargedRest = h.Kernel.Charged - min(h.Kernel.Charged, h.Kernel.PageTables+h.Kernel.Stacks)
	h.Kernel.Source = "cgroup"
	h.Kernel.sum()
	h.Total = h.Instances + h.Monitor + h.Kernel.Total
}

// Baseline is the state before a fleet starts.
type Baseline struct {
	Meminfo map[string]int64
	// MonitorPSS is the PSS of the monitor processes that existed before
	// the fleet (in-process monitors: the bench itself); Host counts only
	// their growth when MonitorGrowth is set.
	MonitorPSS, MonitorPTE, MonitorStacks uint64
	MonitorAnon, MonitorFile              uint64
}

// TakeBaseline settles this process's heap and reads meminfo and the
// monitors' PSS.
func TakeBaseline(monitors []int) (Baseline, error) {
	Settle()
	mi, err := Meminfo()
	if err != nil {
		return Baseline{}, err
	}
	b := Baseline{Meminfo: mi}
	for _, pid := range monitors {
		if r, err := ReadRollup(pid); err == nil {
			b.MonitorPSS += r.PSS
			b.MonitorAnon += r.PSSAnon
			b.MonitorFile += r.PSSFile
		}
		if pt, st, err := ProcessKernel(pid); err == nil {
			b.MonitorPTE += pt
			b.MonitorStacks += st
		}
	}
	return b, nil
}

// Settle returns the Go heap's garbage to the OS, so this process's PSS
// shows what is live.
func Settle() {
	runtime.GC()
	debug.FreeOSMemory()
}

// Fleet names the processes of a fleet held resident.
type Fleet struct {
	Instances []int // instance processes (empty for the kvm monitor)
	Monitors  []int // monitor processes
	// MonitorGrowth counts only what the monitors grew by since the
	// baseline: for a monitor that runs inside the measuring process (the
	// kvm monitor under bench), whose harness memory is not the
	// monitor's. The growth is only as good as the harness is still: its
	// own heap (census, samples, fleet bookkeeping) and the Go runtime's
	// state move it. Where it can, a measurement runs the monitor as a
	// process of its own and counts its whole PSS (MonitorGrowth unset).
	MonitorGrowth bool
	// GuestBytes, for monitors that hold guests in their own memory (kvm),
	// is the guests' memory: it moves from Monitor to Instances.
	GuestBytes uint64
	// Guests, for such monitors measured from another process, are the
	// guests' ranges in the monitor processes: TakeHost reads their
	// resident memory (GuestSet.Bytes) and adds it to GuestBytes.
	Guests []GuestSet
	// Group, if the fleet runs in a memory cgroup of its own, gives the
	// kernel part (else the host-wide rises do).
	Group *FleetGroup
}

// TakeHost measures f against the baseline. Processes that have gone are
// skipped (their count is returned).
func TakeHost(f Fleet, base Baseline) (Host, int, error) {
	var h Host
	missing := 0
	// The monitors first: reading a thousand instances' files allocates
	// megabytes of garbage, and where a monitor is this process (its
	// growth counted: the kvm monitor under bench), whether a GC has
	// collected that garbage before its own PSS is read moved the
	// reading by up to its live heap (GOGC's 100%).
	var mon, monAnon, monFile, monPTE, monStacks uint64
	for _, pid := range f.Monitors {
		r, err := ReadRollup(pid)
		if err != nil {
			missing++
			continue
		}
		mon += r.PSS
		monAnon += r.PSSAnon
		monFile += r.PSSFile
		if pt, st, err := ProcessKernel(pid); err == nil {
			monPTE += pt
			monStacks += st
		}
	}
	for _, pid := range f.Instances {
		r, err := ReadRollup(pid)
		if err != nil {
			missing++
			continue
		}
		h.Instances += r.PSS
		h.InstancesAnon += r.PSSAnon
		if pt, st, err := ProcessKernel(pid); err == nil {
			h.Kernel.PageTables += pt
			h.Kernel.Stacks += st
		}
	}
	h.MonitorProcesses = "own"
	if f.MonitorGrowth {
		h.MonitorProcesses = "growth"
		mon -= min(mon, base.MonitorPSS)
		monAnon -= min(monAnon, base.MonitorAnon)
		monFile -= min(monFile, base.MonitorFile)
		monPTE -= min(monPTE, base.MonitorPTE)
		monStacks -= min(monStacks, base.MonitorStacks)
	}
	h.Kernel.PageTables += monPTE
	if len(f.Instances) > 0 {
		h.Kernel.Stacks += monStacks
	}
	// Guests read from outside leave the monitor's anonymous and file
	// parts with their own pages; GuestBytes (in-process) is not split.
	guests := f.GuestBytes
	for _, s := range f.Guests {
		m, err := s.Read()
		if err != nil {
			missing++
			continue
		}
		a, fl := min(m.Anon, monAnon), min(m.File, monFile)
		monAnon, monFile = monAnon-a, monFile-fl
		h.InstancesAnon += a
		guests += m.Anon + m.File
	}
	g := min(guests, mon)
	h.Instances += g
	h.Monitor = mon - g
	h.MonitorAnon, h.MonitorFile = monAnon, monFile
	mi, err := Meminfo()
	if err != nil {
		return h, missing, err
	}
	rise := func(k string) int64 { return mi[k] - base.Meminfo[k] }
	h.Kernel.KernelStack, h.Kernel.Slab, h.Kernel.SecPageTables = rise("KernelStack"), rise("SUnreclaim"), rise("SecPageTables")
	h.AvailDrop = base.Meminfo["MemAvailable"] - mi["MemAvailable"]
	h.Kernel.KSM = KSMMetadata(append(append([]int(nil), f.Instances...), f.Monitors...))
	h.Kernel.sum()
	h.Total = h.Instances + h.Monitor + h.Kernel.Total
	if f.Group != nil {
		m, err := f.Group.Read()
		if err != nil {
			return h, missing, err
		}
		h.UseCgroup(m)
	}
	return h, missing, nil
}

func pos(v int64) uint64 { return uint64(max(v, 0)) }

// sum sets k.Total: kernel stacks per process where known, else their
// host-wide rise.
func (k *Kernel) sum() {
	if k.Source == "cgroup" {
		k.Total = k.Charged + k.KSM
		return
	}
	k.Source = "host-wide"
	stacks := k.Stacks
	if stacks == 0 {
		stacks = pos(k.KernelStack)
	}
	// KSM's rmap items are slab: in the Slab rise already.
	k.Total = k.PageTables + stacks + pos(k.Slab) + pos(k.SecPageTables)
}

// Self is this process's pid.
var Self = os.Getpid()

// HostOf is the split for a monitor that holds its guests in its own
// memory (kvm), measured against a baseline with the guests gone: guest
// bytes, what else the monitor grew by, its page tables' rise, and the
// meminfo of the two states.
func HostOf(guest, monitor, pageTables uint64, held, after map[string]int64) Host {
	h := Host{Instances: guest, Monitor: monitor}
	rise := func(k string) int64 { return held[k] - after[k] }
	h.Kernel = Kernel{PageTables: pageTables, KernelStack: rise("KernelStack"), Slab: rise("SUnreclaim"), SecPageTables: rise("SecPageTables")}
	h.Kernel.sum()
	h.Total = h.Instances + h.Monitor + h.Kernel.Total
	h.AvailDrop = after["MemAvailable"] - held["MemAvailable"]
	return h
}

// GoRuntime is what this process's Go runtime holds, in bytes
// (runtime.MemStats): for a monitor running inside a measuring process,
// where its growth comes from.
type GoRuntime struct {
	// HeapLive is the live heap (HeapAlloc, read right after a GC).
	HeapLive uint64 `json:"heap_live_bytes"`
	// HeapInuse is the heap's spans in use: the live objects and the
	// free slots of those spans (fragmentation).
	HeapInuse uint64 `json:"heap_inuse_bytes"`
	// HeapRetained is free heap not yet returned to the OS.
	HeapRetained uint64 `json:"heap_retained_bytes"`
	StackInuse   uint64 `json:"stack_inuse_bytes"`
	// Metadata is the runtime's own structures: GC metadata, spans,
	// mcaches, buckets, other.
	Metadata uint64 `json:"metadata_bytes"`
	// Sys is everything the runtime obtained from the OS (mapped, not
	// necessarily resident).
	Sys        uint64 `json:"sys_bytes"`
	Goroutines int    `json:"goroutines"`
	NumGC      uint32 `json:"num_gc"`
}

// ReadGoRuntime reads this process's Go runtime figures (call Settle
// first for a live heap).
func ReadGoRuntime() GoRuntime {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	return GoRuntime{HeapLive: s.HeapAlloc, HeapInuse: s.HeapInuse, HeapRetained: s.HeapIdle - s.HeapReleased,
		StackInuse: s.StackInuse, Metadata: s.GCSys + s.MSpanInuse + s.MCacheInuse + s.BuckHashSys + s.OtherSys,
		Sys: s.Sys, Goroutines: runtime.NumGoroutine(), NumGC: s.NumGC}
}
