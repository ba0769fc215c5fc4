package microvm

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/unipool/unipool/internal/measure"
	"github.com/unipool/unipool/internal/monitor"
)

// Measurement is the memory of one load mode's VMs, all held resident at
// once in this one loader process, and what each VM costs beyond its
// guest's own pages.
type Measurement struct {
	Load   string `json:"load"`
	VMs    int    `json:"vms"`
	Failed int    `json:"failed"`
	// NonZero counts the VMs that ran and were measured but whose guest
	// exited with a non-zero code.
	NonZero int `json:"exited_nonzero"`
	// Errors are the first failed VMs' reports.
	Errors []string `json:"errors,omitempty"`
	// LoaderPSS is this process's PSS with every VM held, LoaderPSSAfter
	// once they are closed again: the difference is what the VMs held
	// (the baseline is taken after, so the Go runtime, the binary's
	// pages and the caches are warm in both).
	LoaderPSS      uint64 `json:"loader_pss_bytes"`
	LoaderPSSAfter uint64 `json:"loader_pss_after_bytes"`
	// MemAvailableDrop is how much MemAvailable is lower with the VMs held
	// than after they are closed: the loader's part plus the kernel's
	// (KVM's structures, the guests' second-level page tables). Other
	// activity on the host adds noise.
	MemAvailableDrop int64 `json:"mem_available_drop_bytes"`
	// GuestPrivate is the resident bytes of every VM's private guest
	// memory (tramp tables, data, boot info, stack, heap; and, loaded
	// naive, the copies of the libraries).
	GuestPrivate uint64 `json:"guest_private_bytes"`
	// Shared is the resident bytes of the blob mappings: one copy, mapped
	// once in this process, read by every VM.
	Shared uint64 `json:"shared_bytes"`
	// PageTables is the resident bytes of the guests' page tables and
	// system pages over all VMs: the loader builds them, so they are
	// counted in the loader's share, not the guest's.
	PageTables uint64 `json:"page_tables_bytes"`
	// LoaderPerVM is (LoaderPSS - LoaderPSSAfter - GuestPrivate - Shared)
	// / VMs: the loader's own cost of a VM (page tables, kvm_run, Go
	// structures).
	LoaderPerVM int64 `json:"loader_per_vm_bytes"`
	// VCPUMaps is the PSS of the vCPUs' kvm_run mappings, all VMs; GoHeap
	// is how much more the Go runtime's live objects and goroutine stacks
	// take with the VMs than after.
	VCPUMaps uint64 `json:"vcpu_maps_bytes"`
	GoHeap   int64  `json:"go_heap_bytes"`
	// LoaderAccountedPerVM is (PageTables + VCPUMaps + GoHeap) / VMs: the
	// loader's share added up from its parts, a cross-check of
	// LoaderPerVM that other noise in the process's PSS cannot move.
	LoaderAccountedPerVM int64 `json:"loader_accounted_per_vm_bytes"`
	// KernelPerVM is (MemAvailableDrop - (LoaderPSS - LoaderPSSAfter)) /
	// VMs: what the kernel spends per VM, outside this process.
	KernelPerVM int64 `json:"kernel_per_vm_bytes"`
	// Kernel is how much higher the /proc/meminfo fields where KVM's cost
	// shows are with the VMs held than after, in bytes.
	Kernel map[string]int64 `json:"kernel_delta_bytes"`
	// Host is what the host pays, split as internal/measure splits it:
	// instances = the guests' memory (GuestPrivate + Shared), monitor =
	// what else the loader grew by, kernel = page tables (the loader's
	// VmPTE rise) and the rise of kernel stacks, slab and KVM's
	// second-level page tables. All against the baseline with the VMs
	// closed.
	Host measure.Host `json:"host"`
	// CgroupError says why the mode's VMs did not run in a memory cgroup
	// of their own (Host's kernel part is then host-wide rises).
	CgroupError string `json:"cgroup_error,omitempty"`
	// Census and Ideals are the page census of the guests' memory.
	Census *measure.Counts `json:"census,omitempty"`
	Ideals *measure.Ideals `json:"ideals,omitempty"`
	// LoadMean and LoadMedian are the time to build one VM: create it,
	// plan its layout, map and fill its memory, set up its vCPU.
	LoadMean   time.Duration `json:"load_mean_ns"`
	LoadMedian time.Duration `json:"load_median_ns"`
	LoadP99    time.Duration `json:"load_p99_ns"`
}

// Report compares load modes.
type Report struct {
	Modes []Measurement `json:"modes"`
	// Ideal and IdealLoadTime are measure.Ideals from the census of the
	// shared run (else the first).
	Ideal         uint64 `json:"ideal_bytes"`
	IdealLoadTime uint64 `json:"ideal_load_time_bytes"`
}

// kernelFields are the /proc/meminfo lines where a VM's kernel-side cost
// lands: KVM's vCPU and VM structures (slab), its second-level page tables
// (SecPageTables, Linux 6.0+), host page tables, thread stacks.
var kernelFields = []string{"SUnreclaim", "SecPageTables", "PageTables", "KernelStack", "VmallocUsed", "Percpu"}

// Measure runs opt.N VMs of each unikernel once per load mode, one mode
// after the other, in this process; it measures each mode while its VMs
// are held resident, then ends them.
func (Monitor) Measure(ctx context.Context, uks []monitor.Unikernel, opt monitor.Options, modes []string) (*Report, error) {
	loaded, err := measure.LoadedContents(uks)
	if err != nil {
		return nil, err
	}
	rep := &Report{}
	for _, mode := range modes {
		o := opt
		o.Load = mode
		o.Hold = 0 // measuring happens while held; no need to wait after
		meas := Measurement{Load: mode, Kernel: map[string]int64{}}
		var held map[string]int64
		var heldPTE, ksmHeld uint64
		var merr error
		// The mode's own memory cgroup: what the kernel charges these VMs
		// (KVM's structures, second-level page tables, the loader's page
		// tables) apart from the rest of the host.
		group, gerr := measure.EnterFleetGroup("kvm-" + mode)
		if gerr != nil {
			meas.CgroupError = gerr.Error()
		}
		var charged *measure.CgroupMemory
		results, err := run(ctx, uks, o, func(insts []*instance) {
			settle()
			if group != nil {
				c, err := group.Read()
				if err != nil {
					merr = err
					return
				}
				charged = &c
			}
			if held, merr = readMeminfo(); merr != nil {
				return
			}
			r, err := measure.ReadRollup(os.Getpid())
			if err != nil {
				merr = err
				return
			}
			meas.LoaderPSS = r.PSS
			heldPTE, _ = measure.PageTables(os.Getpid())
			ksmHeld = measure.KSMMetadata([]int{os.Getpid()})
			c := loaded.Fork()
			for _, in := range insts {
				in.m.census(c)
			}
			id := c.Ideals()
			meas.Census, meas.Ideals = &c.Counts, &id
			meas.VCPUMaps = mappingPSS("anon_inode:kvm-vcpu")
			meas.GoHeap = goHeld()
			// A file page (a blob's, or an init blob's page not yet
			// copied) is one page-cache page however many VMs map it:
			// count each once.
			filePages := map[string]bool{}
			seenSet := map[*blobSet]bool{}
			for _, in := range insts {
				g, pt := in.m.residentPrivate(filePages)
				meas.GuestPrivate += g
				meas.PageTables += pt
				if set := in.m.set; set != nil && !seenSet[set] {
					seenSet[set] = true
					for _, p := range set.parts {
						filePresent(set.mem[p.off:p.off+p.size], p.path, 0, filePages)
					}
				}
			}
			meas.Shared = uint64(len(filePages)) * pageSize
		})
		if cerr := group.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		if merr != nil {
			return nil, fmt.Errorf("kvm monitor: measuring %s: %w", mode, merr)
		}
		// The baseline: the same process with the VMs gone. KVM frees a
		// VM's memory via RCU; give it a moment.
		time.Sleep(200 * time.Millisecond)
		settle()
		after, err := readMeminfo()
		if err != nil {
			return nil, err
		}
		r, err := measure.ReadRollup(os.Getpid())
		if err != nil {
			return nil, err
		}
		meas.LoaderPSSAfter = r.PSS
		afterPTE, _ := measure.PageTables(os.Getpid())
		meas.GoHeap -= goHeld()
		meas.MemAvailableDrop = after["MemAvailable"] - held["MemAvailable"]
		for _, f := range kernelFields {
			meas.Kernel[f] = held[f] - after[f]
		}
		var loads []time.Duration
		for _, r := range results {
			meas.VMs++
			if r.Error != "" {
				meas.Failed++
				if len(meas.Errors) < 3 {
					meas.Errors = append(meas.Errors, fmt.Sprintf("%s/%d: %s", r.Unikernel, r.Instance, r.Error))
				}
			} else if r.ExitCode != 0 {
				meas.NonZero++
			}
			loads = append(loads, r.LoadTime)
		}
		if meas.VMs > 0 {
			n := int64(meas.VMs)
			grew := int64(meas.LoaderPSS) - int64(meas.LoaderPSSAfter)
			meas.LoaderPerVM = (grew - int64(meas.GuestPrivate) - int64(meas.Shared)) / n
			meas.KernelPerVM = (meas.MemAvailableDrop - grew) / n
			meas.LoaderAccountedPerVM = (int64(meas.PageTables+meas.VCPUMaps) + meas.GoHeap) / n
			sort.Slice(loads, func(i, j int) bool { return loads[i] < loads[j] })
			var sum time.Duration
			for _, l := range loads {
				sum += l
			}
			meas.LoadMean, meas.LoadMedian = sum/time.Duration(len(loads)), loads[len(loads)/2]
			meas.LoadP99 = loads[min(len(loads)-1, len(loads)*99/100)]
		}
		guest := meas.GuestPrivate + meas.Shared
		grew := meas.LoaderPSS - min(meas.LoaderPSS, meas.LoaderPSSAfter)
		meas.Host = measure.HostOf(guest, grew-min(grew, guest), heldPTE-min(heldPTE, afterPTE), held, after)
		if charged != nil {
			meas.Host.Kernel.KSM = ksmHeld
			meas.Host.UseCgroup(*charged)
		}
		if meas.Ideals != nil && (mode == monitor.LoadShared || rep.Ideal == 0) {
			rep.Ideal, rep.IdealLoadTime = meas.Ideals.Ideal, meas.Ideals.LoadTime
		}
		rep.Modes = append(rep.Modes, meas)
	}
	return rep, nil
}

// settle returns the Go heap's garbage to the OS, so PSS shows what is
// live.
func settle() { measure.Settle() }

// census adds the VM's guest memory to c.
func (m *machine) census(c *measure.Census) {
	m.ranges(func(b []byte, runtime bool) { c.AddMemory(b, measure.AreaOf(runtime)) })
}

// ranges calls f with the VM's private ranges (image parts and run-time
// parts apart) and the blobs it maps.
func (m *machine) ranges(f func(b []byte, runtime bool)) {
	for _, p := range m.placed {
		if !p.blob {
			f(m.priv.mem[p.gpa:p.gpa+p.size], p.runtime)
		}
	}
	if set := m.set; set != nil {
		for _, p := range set.parts {
			f(set.mem[p.off:p.off+p.size], false)
		}
	}
}

// goHeld is the memory the Go runtime's live objects and goroutine stacks
// take (after a GC): what the VMs keep alive on the Go side.
func goHeld() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc + ms.StackInuse)
}

// mappingPSS sums the PSS of this process's mappings whose name starts
// with prefix, from /proc/self/smaps.
func mappingPSS(prefix string) uint64 {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0
	}
	defer f.Close()
	var total uint64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if strings.Contains(fields[0], "-") && len(fields) >= 5 {
			in = len(fields) >= 6 && strings.HasPrefix(fields[5], prefix)
			continue
		}
		if in && fields[0] == "Pss:" && len(fields) >= 2 {
			kb, _ := strconv.ParseUint(fields[1], 10, 64)
			total += kb << 10
		}
	}
	return total
}

// residentPrivate adds up the VM's private slot: the guest's own pages
// (anonymous, present) and the loader-built page tables and system area;
// file pages still shared with the init blobs go to filePages.
func (m *machine) residentPrivate(filePages map[string]bool) (guest, tables uint64) {
	for _, p := range m.placed {
		if p.blob {
			continue
		}
		r := m.priv.mem[p.gpa : p.gpa+p.size]
		guest += anonPresent(r)
		if p.cowFile != "" {
			filePresent(r, p.cowFile, p.cowOff, filePages)
		}
	}
	tables = anonPresent(m.priv.mem[:gpaPrivateData]) + anonPresent(m.priv.mem[m.ptBase:])
	return guest, tables
}

const (
	pagemapPresent   = measure.PagemapPresent
	pagemapFile      = measure.PagemapFile
	pagemapExclusive = measure.PagemapExclusive
)

func pagemap(b []byte) []uint64 { return measure.SelfPagemap(b) }

// anonPresent counts the bytes of b's present private (anonymous) pages.
// Pages a guest only read are the kernel's one zero page: not counted.
func anonPresent(b []byte) uint64 {
	var n uint64
	for _, e := range pagemap(b) {
		if e&pagemapPresent != 0 && e&pagemapFile == 0 && e&pagemapExclusive != 0 {
			n += pageSize
		}
	}
	return n
}

// filePresent records b's present file pages, b mapping path from off.
func filePresent(b []byte, path string, off uint64, pages map[string]bool) {
	for i, e := range pagemap(b) {
		if e&pagemapPresent != 0 && e&pagemapFile != 0 {
			pages[fmt.Sprintf("%s:%d", path, off/pageSize+uint64(i))] = true
		}
	}
}

// readMeminfo reads /proc/meminfo in bytes.
func readMeminfo() (map[string]int64, error) { return measure.Meminfo() }

// heldVMs are the held VMs as monitor.HeldGuests.
type heldVMs []*instance

// GuestBytes is what Measure calls GuestPrivate + Shared, read by the
// reader a measurement in another process uses (measure.GuestSet).
func (h heldVMs) GuestBytes() uint64 {
	b, _ := measure.GuestSet{Pid: os.Getpid(), Ranges: measure.GuestRanges(h)}.Bytes()
	return b
}

// Ranges walks every VM's private ranges and the blobs it maps.
func (h heldVMs) Ranges(f func(b []byte, runtime bool)) {
	for _, in := range h {
		if in.m != nil {
			in.m.ranges(f)
		}
	}
}
