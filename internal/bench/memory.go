package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/unipool/unipool/internal/ksm"
	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/link"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/measure"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/tlbtrace"
	"github.com/unipool/unipool/internal/vmmproc"
)

// Mode is one way of running the fleet.
type Mode struct {
	Name   string
	Layout string // image layout; "" means the pool
	Load   string // monitor.LoadShared / LoadNaive
	KSM    bool
	ASLR   bool
	// ASLRPerLibrary: each library at a base of its own (with ASLR).
	ASLRPerLibrary bool
	// Snapshot starts every instance from its pooled boot snapshot
	// (`unipool snapshot`): the pages boot wrote are shared too.
	Snapshot bool
	// NoPacks runs the fleet's second pool: its aligned images linked with
	// link.Options.NoPacks (every library on pages of its own: the layout
	// before packs) against a map of their own (Fleet.NoPacksPoolDir), so
	// one run measures the layout with and without packs side by side.
	NoPacks bool `json:",omitempty"`
}

// source names what a mode's instances are made of: a layout's images,
// the pool, or the no-packs pool. Modes of one source share a census of
// the pages their images hold as loaded.
func (m Mode) source() string {
	if m.NoPacks {
		return LayoutAlignedNoPacks
	}
	return m.Layout
}

// LayoutAlignedNoPacks names the fleet's aligned images linked without
// packs (images/aligned-no-packs, pooled in pool-no-packs).
const LayoutAlignedNoPacks = "aligned-no-packs"

// Modes are the approaches compared, in the order they run.
//
// A new mode is one entry here (and, if it needs one, a load mode in
// internal/monitor): the bench measures every mode the same way.
var Modes = []Mode{
	// Stock images loaded as Linux loads an ELF executable: the file
	// mapped private, demand-paged. packed-naive copies every byte
	// eagerly instead, as a copying unikernel loader does.
	{Name: "packed-stock", Layout: link.LayoutPacked, Load: monitor.LoadStock},
	{Name: "packed-naive", Layout: link.LayoutPacked, Load: monitor.LoadNaive},
	{Name: "packed-ksm", Layout: link.LayoutPacked, Load: monitor.LoadNaive, KSM: true},
	{Name: "dce-ksm", Layout: link.LayoutDCE, Load: monitor.LoadNaive, KSM: true},
	{Name: "aligned-ksm", Layout: link.LayoutAligned, Load: monitor.LoadNaive, KSM: true},
	{Name: "shared", Load: monitor.LoadShared},
	{Name: "shared-aslr", Load: monitor.LoadShared, ASLR: true},
	// ASLR with every library at a base of its own: what independence
	// between libraries costs.
	{Name: "shared-aslr-library", Load: monitor.LoadShared, ASLR: true, ASLRPerLibrary: true},
	// Load-time sharing for the libraries, KSM only for what instances
	// write at run time: ksmd scans a fraction of what the other KSM modes
	// give it.
	{Name: "shared-ksm", Load: monitor.LoadShared, KSM: true},
	// Load-time sharing of what boot wrote as well: instances start from
	// their snapshots, whose pages are content-addressed across the pool.
	{Name: "shared-snapshot", Load: monitor.LoadShared, Snapshot: true},
}

// NaiveMode loads the pooled (aligned) unikernels by copying every blob:
// the same images as "shared", without sharing. The demo compares the two.
var NaiveMode = Mode{Name: "naive", Load: monitor.LoadNaive}

// NoPacksMode is "shared" on the aligned layout before packs (the fleet's
// no-packs pool): not run by default (it costs a second aligned link and
// pool); `--modes shared,shared-no-packs` measures both in one run.
var NoPacksMode = Mode{Name: "shared-no-packs", Load: monitor.LoadShared, NoPacks: true}

// ExtraModes can be named in --modes but do not run by default.
var ExtraModes = []Mode{NaiveMode, NoPacksMode}

// ModeByName finds a mode.
func ModeByName(name string) (Mode, error) {
	var names []string
	for _, m := range append(slices.Clone(Modes), ExtraModes...) {
		if m.Name == name {
			return m, nil
		}
		names = append(names, m.Name)
	}
	return Mode{}, fmt.Errorf("unknown mode %q (have %s)", name, strings.Join(names, ", "))
}

// MemoryOptions are `bench memory`'s flags.
type MemoryOptions struct {
	Count       int
	Seed        uint64
	Inputs      string // corpus inputs: distinct (default) or repeated
	Monitor     string
	Modes       []Mode
	KSMWait     time.Duration // longest a KSM mode waits for convergence
	PagesToScan int           // ksmd pages_to_scan (0: the kernel's setting)
	Out         string
	Work        string // corpus, images and pool (default Out/work)
	Jobs        int
	Log         io.Writer
	// Churn, if its Rate is set, runs every mode under churn instead of
	// holding the whole fleet at once (`--arrivals`, `--lifetime`).
	Churn Churn
	// Reuse takes the fleet already built in Work (LoadFleet).
	Reuse bool
	// Fleet, if set, is used as built (its layouts must cover the modes'),
	// instead of building one.
	Fleet *Fleet
	// Flavor and Configs say what fleet to build (FleetOptions).
	Flavor        string
	Configs       int
	AppsPerConfig int
	// IgnoreFreePageReports has the monitor ignore the guests' free-page
	// reports (abi.PortDiscard): the same fleet measured as without them.
	IgnoreFreePageReports bool
	// ModesLayoutsOnly links only the layouts the modes run (packed and
	// dce images of a fleet whose modes are all aligned cost two thirds of
	// its build); the page analysis then compares those only.
	ModesLayoutsOnly bool
	// FleetOnly stops after building the fleet in Work: for a later
	// --reuse run on the emulated KVM host, where building is slow.
	FleetOnly bool
	// HostWideKernel measures the kernel part by host-wide meminfo rises
	// even where a memory cgroup per mode could be made (`--cgroup=false`).
	HostWideKernel bool
	// InProcessMonitor runs the monitor (process or kvm) inside the bench process
	// and counts that process's growth as the monitor's, as bench memory
	// did before it ran the monitor as a process of its own
	// (`--monitor-in-process`: the old figure, side by side).
	InProcessMonitor bool
}

// enterGroup moves this process (the monitor) into a memory cgroup of
// mode m's own, so that the kernel part is what the kernel charges the
// fleet; nil (and a line in the log saying why) where there is none.
func enterGroup(m Mode, hostWide bool, log io.Writer) *measure.FleetGroup {
	if hostWide {
		return nil
	}
	g, err := measure.EnterFleetGroup(m.Name)
	if err != nil {
		fmt.Fprintf(log, "mode %s: the kernel part is host-wide meminfo rises (other processes move them): %v\n", m.Name, err)
		return nil
	}
	return g
}

// startTLBTrace starts counting TLB flushes for mode m; nil, and a line in
// the log saying why, where they cannot be counted.
func startTLBTrace(m Mode, log io.Writer) *tlbtrace.Tracer {
	tr, err := tlbtrace.Start()
	if err != nil {
		fmt.Fprintf(log, "mode %s: TLB flushes not counted: %v\n", m.Name, err)
		return nil
	}
	return tr
}

// leaveGroup removes mode m's group (moving this process back out first
// if it entered it), saying in the log why it could not.
func leaveGroup(g *measure.FleetGroup, m Mode, log io.Writer) {
	if err := g.Close(); err != nil {
		fmt.Fprintf(log, "mode %s: %v\n", m.Name, err)
	}
}

// Memory runs the memory benchmark: build the fleet, then for each mode
// start all N unikernels, hold them resident and sample their memory
// until it is stable, with ksmd's CPU, TLB flushes per issuer and load
// times; then compute the ideal and write results, CSV and plots.
func Memory(ctx context.Context, o MemoryOptions) (*Results, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Work == "" {
		o.Work = filepath.Join(o.Out, "work")
	}
	if o.Monitor == "" {
		o.Monitor = "process"
	}
	if len(o.Modes) == 0 {
		o.Modes = Modes
	}
	layouts := map[string]bool{}
	needKSM, noPacks := false, false
	for _, m := range o.Modes {
		if m.Layout != "" {
			layouts[m.Layout] = true
		}
		needKSM = needKSM || m.KSM
		noPacks = noPacks || m.NoPacks
	}
	var session *ksm.Session
	if needKSM {
		var err error
		if session, err = ksm.Start(o.PagesToScan, 0); err != nil {
			return nil, fmt.Errorf("bench: the KSM modes need KSM: %w (or leave them out with --modes)", err)
		}
		defer session.Restore()
		// Off until a KSM mode runs: the others must not be merged.
		os.WriteFile(filepath.Join(ksm.Dir, "run"), []byte("2"), 0)
	}
	fleet := o.Fleet
	if fleet == nil && o.Reuse {
		var lay []string
		for l := range layouts {
			lay = append(lay, l)
		}
		// The page analysis compares every layout the fleet was linked
		// in, not only the modes' (a --fleet-only build links all three).
		for _, l := range []string{link.LayoutPacked, link.LayoutDCE} {
			if _, err := os.Stat(filepath.Join(o.Work, "images", l)); err == nil && !layouts[l] {
				lay = append(lay, l)
			}
		}
		var err error
		if fleet, err = LoadFleet(o.Work, lay, o.Inputs); err != nil {
			return nil, err
		}
		if noPacks && fleet.NoPacksPoolDir == "" {
			return nil, fmt.Errorf("bench: mode %s needs the fleet's no-packs pool, and the fleet in %s has none: build it with that mode in --modes", NoPacksMode.Name, o.Work)
		}
		fleet.truncate(o.Count)
	}
	if fleet == nil {
		var lay []string
		if !o.ModesLayoutsOnly {
			lay = []string{link.LayoutPacked, link.LayoutDCE} // the page analysis compares all three
		}
		for l := range layouts {
			if !slices.Contains(lay, l) {
				lay = append(lay, l)
			}
		}
		var err error
		fleet, err = BuildFleet(ctx, FleetOptions{Count: o.Count, Seed: o.Seed, Inputs: o.Inputs, Work: o.Work, Layouts: lay, Jobs: o.Jobs, Log: o.Log,
			Flavor: o.Flavor, Configs: o.Configs, AppsPerConfig: o.AppsPerConfig, NoPacks: noPacks})
		if err != nil {
			return nil, err
		}
	}
	if o.FleetOnly {
		fmt.Fprintf(o.Log, "the fleet is in %s (run again with --reuse)\n", o.Work)
		return nil, nil
	}
	for l := range layouts {
		if fleet.Images[l] == nil {
			return nil, fmt.Errorf("bench: the fleet has no %s images", l)
		}
	}
	for _, m := range o.Modes {
		if m.Snapshot {
			if err := snapshotFleet(ctx, fleet, o.Log); err != nil {
				return nil, err
			}
			break
		}
	}
	apps := map[string]bool{}
	for _, u := range fleet.Corpus.Unikernels {
		apps[u.App] = true
	}
	res := &Results{Count: len(fleet.Names), Apps: len(apps), Seed: o.Seed, Monitor: o.Monitor, Inputs: fleet.Corpus.Inputs,
		FreePageReportsIgnored: o.IgnoreFreePageReports}
	for _, l := range []string{link.LayoutPacked, link.LayoutDCE, link.LayoutAligned, LayoutAlignedNoPacks} {
		if fleet.Images[l] == nil {
			continue
		}
		fmt.Fprintf(o.Log, "analysing the pages of the %s images\n", l)
		lp, err := AnalyzeImages(l, fleet.Images[l])
		if err != nil {
			return nil, err
		}
		res.Layouts = append(res.Layouts, lp)
	}
	mon, err := monitor.Open(o.Monitor)
	if err != nil {
		return nil, err
	}
	expect := map[string]string{}
	for _, u := range fleet.Corpus.Unikernels {
		expect[u.Name] = u.Expect
	}
	loaded := map[string]*measure.Census{} // layout ("" the pool) -> contents its images have at load
	// The monitor runs as a process of its own (monitorproc.go), from a
	// copy of this binary; the kvm monitor's guests live in that process,
	// which names their ranges for the bench to read.
	var exe string
	if !o.InProcessMonitor {
		if exe, err = monitorExecutable(filepath.Join(o.Work, "monitor")); err != nil {
			return nil, err
		}
		defer os.Remove(exe)
	}
	for _, m := range o.Modes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "mode %s: starting %d unikernels\n", m.Name, len(fleet.Names))
		// Resolved by the mode once it is measured: the descriptions the
		// monitor holds and the blob descriptors it keeps open are the
		// monitor's memory (and the kernel's, in the mode's group).
		resolve := func() ([]monitor.Unikernel, error) { return fleetUnikernels(fleet, m) }
		if loaded[m.source()] == nil {
			// What the images hold as loaded, cold (a snapshot's pages are
			// run-time pages, not an image's).
			cold, err := fleetUnikernels(fleet, Mode{Layout: m.Layout, NoPacks: m.NoPacks})
			if err != nil {
				return nil, err
			}
			if loaded[m.source()], err = loadedContents(cold); err != nil {
				return nil, err
			}
		}
		ld := loaded[m.source()]
		if m.Snapshot && ld != nil {
			// The repeats census also knows what the snapshots store.
			if ld, err = storedContents(ld, resolve); err != nil {
				return nil, err
			}
		}
		var mr *ModeResult
		if o.Churn.Rate > 0 {
			if session != nil {
				os.WriteFile(filepath.Join(ksm.Dir, "run"), []byte("2"), 0)
				if m.KSM {
					os.WriteFile(filepath.Join(ksm.Dir, "run"), []byte("1"), 0)
				}
			}
			if exe != "" {
				mr, err = runChurnProcess(ctx, fleet, exe, m, o)
			} else {
				mr, err = runChurn(ctx, mon, resolve, m, o.Churn, expect, o.HostWideKernel, o.Log)
			}
		} else if exe != "" {
			mr, err = runModeProcess(ctx, fleet, exe, m, o, session, ld)
		} else {
			mr, err = runMode(ctx, mon, resolve, m, o, session, ld, expect)
		}
		if err != nil {
			return nil, fmt.Errorf("bench: mode %s: %w", m.Name, err)
		}
		res.Modes = append(res.Modes, *mr)
		fmt.Fprintf(o.Log, "mode %s: %.1f MiB final (instances %.1f, monitor %.1f, kernel %.1f), %.1f MiB first sample, stable after %.0f s, %d failed\n",
			m.Name, mib(mr.FinalBytes), mib(mr.Final.Instances), mib(mr.Final.Monitor), mib(mr.Final.Kernel.Total),
			mib(mr.FirstBytes), mr.TimeToStable, mr.Failed)
	}
	if o.Churn.Rate > 0 {
		res.Churn = &o.Churn
	}
	res.setIdeals()
	if err := res.Write(o.Out); err != nil {
		return nil, err
	}
	if _, err := res.Plots(o.Out); err != nil {
		return nil, err
	}
	return res, nil
}

// IdealModes are the modes whose census gives the fleet's ideals, in order
// of preference: load-time sharing maps pages on demand, so its instances
// hold the pages they used, and no copies.
var IdealModes = []string{"shared", "shared-ksm", "packed-stock"}

// setIdeals takes the fleet's ideals from the first census of IdealModes
// (else of any mode).
func (r *Results) setIdeals() {
	pick := -1
	for _, name := range IdealModes {
		for i, m := range r.Modes {
			if pick < 0 && m.Mode == name && m.Ideals != nil {
				pick = i
			}
		}
	}
	for i, m := range r.Modes {
		if pick < 0 && m.Ideals != nil {
			pick = i
		}
	}
	if pick < 0 {
		return
	}
	m := r.Modes[pick]
	c := m.Census
	r.IdealBytes, r.IdealLoadBytes, r.ZeroBytes, r.IdealMode = m.Ideals.Ideal, m.Ideals.LoadTime, m.Ideals.Zero, m.Mode
	r.IdealNote = fmt.Sprintf("ideals from the page census of mode %s (%d present pages: %d all-zero, counted in neither ideal; "+
		"%d image pages as loaded, %d distinct; %d image pages written; %d run-time pages). "+
		"ideal = every distinct non-zero content once (%d pages); "+
		"ideal, load-time sharing = the distinct as-loaded image contents once, every written and run-time page in full (%d pages)",
		m.Mode, c.Pages, c.ZeroPages, c.ImageLoaded, c.LoadedDistinct, c.ImageWritten, c.Runtime,
		c.Distinct, c.LoadedDistinct+c.ImageWritten+c.Runtime)
}

// fleetUnikernels is what the monitor runs in mode m: the pooled names, or
// the images of m's layout.
func fleetUnikernels(fleet *Fleet, m Mode) ([]monitor.Unikernel, error) {
	if m.Layout == "" {
		resolve := launch.Resolve
		if m.Snapshot {
			// A snapshot reads no request before its ready point: each
			// instance gets its own in a fresh boot info, as a cold boot.
			resolve = launch.ResolveSnapshots
		}
		uks, err := resolve(fleet.poolFor(m), fleet.Names, "")
		if err != nil {
			return nil, err
		}
		// The corpus's request, which a reused fleet may have changed.
		for i := range uks {
			uks[i].Cmdline = fleet.Corpus.Unikernels[i].Input
		}
		return uks, nil
	}
	var uks []monitor.Unikernel
	for i, u := range fleet.Corpus.Unikernels {
		uks = append(uks, monitor.Unikernel{Name: u.Name, Image: fleet.Images[m.Layout][i], Cmdline: u.Input})
	}
	return uks, nil
}

// loadedContents records every image page of uks as a loader lays it out
// (no ASLR): the census calls an instance's image page "as loaded" when an
// image had its content.
func loadedContents(uks []monitor.Unikernel) (*measure.Census, error) {
	c := measure.NewCensus()
	for _, u := range uks {
		lay, err := loader.Plan(u, loader.Options{Load: monitor.LoadNaive})
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if err := c.AddLoadedLayout(lay); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// storedContents is a census that knows loaded's contents and every page
// the snapshots of resolve's unikernels store (their stack and heap
// pages too), for the repeats census.
func storedContents(loaded *measure.Census, resolve func() ([]monitor.Unikernel, error)) (*measure.Census, error) {
	uks, err := resolve()
	if err != nil {
		return nil, err
	}
	c := loaded.Fork()
	for _, u := range uks {
		lay, err := loader.Plan(u, loader.Options{Load: monitor.LoadShared, Snapshot: true})
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if err := c.AddStoredLayout(lay); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// runMode starts the fleet (resolve gives it, after the baseline and
// inside the mode's group) in one mode and measures what the host pays while
// they are held: samples until stable, then the page census.
func runMode(ctx context.Context, mon monitor.Monitor, resolve func() ([]monitor.Unikernel, error), m Mode, o MemoryOptions, session *ksm.Session,
	loaded *measure.Census, expect map[string]string) (*ModeResult, error) {
	ksmdPID, ksmdCPU0, err := ksmFor(m, session)
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	base, err := measure.TakeBaseline([]int{self})
	if err != nil {
		return nil, err
	}
	benchRuntime := &BenchRuntime{Baseline: measure.ReadGoRuntime()} // TakeBaseline settled
	tr := startTLBTrace(m, o.Log)
	// After the tracer: its tracefs instance (files, buffers) is not
	// the fleet's.
	group := enterGroup(m, o.HostWideKernel, o.Log)
	defer leaveGroup(group, m, o.Log)
	t0 := time.Now()
	mr := &ModeResult{Mode: m.Name, MonitorMeasured: "growth"}
	if m.KSM {
		mr.ksmOthers([]int{self})
	}
	if group != nil {
		mr.Cgroup = group.Dir()
	}
	uks, err := resolve()
	if err != nil {
		return nil, err
	}
	var pids []int
	var guests monitor.HeldGuests
	maxWait := 10 * time.Second
	if m.KSM {
		maxWait = o.KSMWait
	}
	opt := monitor.Options{N: 1, Load: m.Load, KSM: m.KSM, ASLR: m.ASLR, ASLRPerLibrary: m.ASLRPerLibrary, Snapshot: m.Snapshot, Hold: 24 * time.Hour, Timeout: 5 * time.Minute,
		IgnoreFreePageReports: o.IgnoreFreePageReports,
		Guests:                func(g monitor.HeldGuests) { guests = g },
		Resident: func(p []int) {
			pids = p
			fl := measure.Fleet{Instances: p, Monitors: []int{self}, MonitorGrowth: true, Group: group}
			if len(p) == 1 && p[0] == self { // the kvm monitor: the VMs live in this process
				fl.Instances = nil
			}
			if group != nil {
				mr.OutsideGroup = outside(group, fl.Instances)
			}
			s := Sampler{Period: time.Second, Window: 5, Tolerance: 0.01, MinTime: 3 * time.Second, MaxTime: maxWait,
				KSM: m.KSM, MinScans: ksmMinScans}
			mr.Samples, mr.TimeToStable = s.Run(ctx, func() (measure.Host, int) {
				// The monitor's garbage is not what it holds: a GC first,
				// as at the baseline.
				measure.Settle()
				if guests != nil {
					fl.GuestBytes = guests.GuestBytes()
				}
				h, missing, _ := measure.TakeHost(fl, base)
				benchRuntime.Final = measure.ReadGoRuntime()
				return h, missing
			})
			mr.BenchRuntime = benchRuntime
			if m.KSM {
				mr.ksmOthers(append([]int{self}, p...))
			}
			mr.SharedBytes = measure.SumShared(fl.Instances)
			for _, pid := range fl.Instances {
				if b, err := measure.SharedMappingRSS(pid); err == nil {
					mr.PoolBytes += b
				}
			}
			if loaded != nil {
				c := loaded.Fork()
				for _, pid := range fl.Instances {
					if err := c.AddProcess(pid, measure.InstanceArea); err != nil {
						fmt.Fprintf(o.Log, "mode %s: census of %d: %v\n", m.Name, pid, err)
					}
				}
				if guests != nil {
					guests.Ranges(func(b []byte, runtime bool) { c.AddMemory(b, measure.AreaOf(runtime)) })
				}
				id := c.Ideals()
				mr.Census, mr.Ideals, mr.Private, mr.Repeats, mr.Tables = &c.Counts, &id, c.Private, c.Repeats(), c.Tables
				c.Close()
			}
		}}
	results, err := mon.Run(ctx, uks, opt)
	mr.Seconds = time.Since(t0).Seconds()
	if tr != nil {
		mr.TLB = classifyFlushes(tr.Stop(), ksmdPID, self, pids, mr.Seconds)
	}
	if err != nil {
		return nil, err
	}
	if ksmdPID > 0 && m.KSM {
		ksmdCPU1, _ := measure.CPUTime(ksmdPID)
		mr.KsmdCPU = ksmdCPU1 - ksmdCPU0
	}
	mr.Instances = len(results)
	var loads []float64
	for _, r := range results {
		if r.ExitCode != 0 || r.Error != "" || !containsLine(r.Output, expect[r.Unikernel]) {
			mr.Failed++
		}
		loads = append(loads, float64(r.LoadTime)/1e6)
	}
	mr.tally(loads)
	mr.ksmVerdict(m, o.KSMWait, o.Log)
	return mr, nil
}

// ksmMinScans is how many full scans a KSM mode waits for (within
// --ksm-wait) before its memory may be called stable: KSM merges a page
// only once it has seen it unchanged over two scans.
const ksmMinScans = 3

// ksmOthers adds the processes, other than fleet, whose memory ksmd scans
// (ksm.Mergeable) to mr.KSMOthers, each once.
func (mr *ModeResult) ksmOthers(fleet []int) {
	skip := map[int]bool{os.Getpid(): true}
	for _, p := range fleet {
		skip[p] = true
	}
	others, _ := ksm.Mergeable(skip)
	for _, o := range others {
		if !slices.ContainsFunc(mr.KSMOthers, func(x ksm.Process) bool { return x.Pid == o.Pid }) {
			mr.KSMOthers = append(mr.KSMOthers, o)
		}
	}
}

// ksmVerdict sets how many full scans ksmd finished while mode m was
// sampled and whether it converged, and says in log what would make its
// merged figures partial or not the fleet's alone.
func (mr *ModeResult) ksmVerdict(m Mode, wait time.Duration, log io.Writer) {
	if !m.KSM || len(mr.Samples) == 0 {
		return
	}
	first, last := mr.Samples[0].KSM, mr.Samples[len(mr.Samples)-1].KSM
	if first != nil && last != nil && last.FullScans >= first.FullScans {
		mr.KSMFullScans = last.FullScans - first.FullScans
	}
	if mr.KSMFullScans+1 < ksmMinScans { // the first sample may fall in a scan
		mr.KSMNotConverged = true
		fmt.Fprintf(log, "mode %s: KSM NOT CONVERGED: ksmd finished %d full scans in --ksm-wait %s (merging takes %d): its merged figures are partial; raise --ksm-wait or --ksm-pages-to-scan\n",
			m.Name, mr.KSMFullScans, wait, ksmMinScans)
	}
	if len(mr.KSMOthers) > 0 {
		var names []string
		for _, o := range mr.KSMOthers {
			names = append(names, fmt.Sprintf("%s (pid %d, %d rmap items)", o.Command, o.Pid, o.RmapItems))
		}
		fmt.Fprintf(log, "mode %s: ksmd also scanned the memory of %d other processes: %s; they lengthen every full scan and the fleet's pages can merge with theirs (an emulated KVM host's QEMU with mem-merge on is one)\n",
			m.Name, len(mr.KSMOthers), strings.Join(names, ", "))
	}
}

// tally sets the load times from loads (ms) and the figures the samples
// give.
func (mr *ModeResult) tally(loads []float64) {
	sort.Float64s(loads)
	if n := len(loads); n > 0 {
		var sum float64
		for _, v := range loads {
			sum += v
		}
		mr.LoadMeanMs, mr.LoadP95Ms = sum/float64(n), loads[min(n-1, n*95/100)]
	}
	if n := len(mr.Samples); n > 0 {
		mr.FirstBytes, mr.FinalBytes = mr.Samples[0].Bytes(), mr.Samples[n-1].Bytes()
		mr.Final = mr.Samples[n-1].Host
		mr.AvailDelta = mr.Samples[n-1].AvailDelta
		for _, s := range mr.Samples {
			mr.PeakBytes = max(mr.PeakBytes, s.Bytes())
		}
		mr.FinalKSM = mr.Samples[n-1].KSM
	}
	if mr.Instances > 0 {
		mr.MonitorPerInstance = mr.Final.Monitor / uint64(mr.Instances)
		mr.KernelPerInstance = mr.Final.Kernel.Total / uint64(mr.Instances)
		mr.BeyondGuestPerInstance = mr.MonitorPerInstance + mr.KernelPerInstance
	}
}

// ksmFor switches ksmd on for a KSM mode only (after unmerging what an
// earlier mode merged) and returns ksmd's pid (-1: none) and CPU time.
func ksmFor(m Mode, session *ksm.Session) (int, float64, error) {
	if session != nil {
		// A clean slate: unmerge what an earlier mode merged, then run
		// ksmd only for KSM modes.
		os.WriteFile(filepath.Join(ksm.Dir, "run"), []byte("2"), 0)
		if m.KSM {
			os.WriteFile(filepath.Join(ksm.Dir, "run"), []byte("1"), 0)
		}
	}
	if m.KSM {
		pid, err := measure.FindTask("ksmd")
		if err != nil {
			return -1, 0, fmt.Errorf("a KSM mode without ksmd: %w", err)
		}
		cpu, _ := measure.CPUTime(pid)
		return pid, cpu, nil
	}
	if pid, err := measure.FindTask("ksmd"); err == nil {
		return pid, 0, nil // charged to ksmd even where ksmd should be idle
	}
	return -1, 0, nil
}

// runModeProcess is runMode with the monitor as a process of its own
// (monitorproc.go), started in the mode's memory cgroup: the monitor
// column is its whole PSS, and nothing the bench holds (the fleet, the
// census, the samples) is in any column.
func runModeProcess(ctx context.Context, fleet *Fleet, exe string, m Mode, o MemoryOptions, session *ksm.Session, loaded *measure.Census) (*ModeResult, error) {
	ksmdPID, ksmdCPU0, err := ksmFor(m, session)
	if err != nil {
		return nil, err
	}
	base, err := measure.TakeBaseline(nil)
	if err != nil {
		return nil, err
	}
	group, start := modeGroup(m, o)
	defer leaveGroup(group, m, o.Log)
	mr := &ModeResult{Mode: m.Name, MonitorMeasured: "process"}
	if m.KSM {
		mr.ksmOthers(nil)
	}
	if group != nil {
		mr.Cgroup = group.Dir()
	}
	tr := startTLBTrace(m, o.Log)
	t0 := time.Now()
	p, err := startMonitorProcess(exe, filepath.Join(o.Out, "monitor-"+m.Name+".json"), specFor(fleet, m, o.Monitor, o), o.Log, start)
	if err != nil {
		if tr != nil {
			tr.Stop()
		}
		return nil, err
	}
	msg, err := p.Next()
	if err != nil {
		p.Kill()
		if tr != nil {
			tr.Stop()
		}
		return nil, err
	}
	var pids []int
	var guests []measure.GuestSet
	if msg.Resident != nil {
		pids = msg.Resident
		if msg.Guests != nil || (len(pids) == 1 && pids[0] == p.Pid()) {
			// The kvm monitor: its VMs live in the monitor process.
			guests, pids = []measure.GuestSet{{Pid: p.Pid(), Ranges: msg.Guests}}, nil
		}
		// What starting the fleet cost the monitor on a CPU (its
		// threads', the kernel's work for them included).
		mr.MonitorCPU, _ = measure.CPUTime(p.Pid())
		maxWait := 10 * time.Second
		if m.KSM {
			maxWait = o.KSMWait
		}
		fl := measure.Fleet{Instances: pids, Monitors: []int{p.Pid()}, Guests: guests, Group: group}
		if group != nil {
			mr.OutsideGroup = outside(group, append([]int{p.Pid()}, pids...))
		}
		s := Sampler{Period: time.Second, Window: 5, Tolerance: 0.01, MinTime: 3 * time.Second, MaxTime: maxWait, KSM: m.KSM, MinScans: ksmMinScans}
		mr.Samples, mr.TimeToStable = s.Run(ctx, func() (measure.Host, int) {
			h, missing, _ := measure.TakeHost(fl, base)
			return h, missing
		})
		if m.KSM {
			mr.ksmOthers(append([]int{p.Pid()}, pids...))
		}
		mr.SharedBytes = measure.SumShared(pids)
		for _, pid := range pids {
			if b, err := measure.SharedMappingRSS(pid); err == nil {
				mr.PoolBytes += b
			}
		}
		if loaded != nil {
			c := loaded.Fork()
			for _, pid := range pids {
				if err := c.AddProcess(pid, measure.InstanceArea); err != nil {
					fmt.Fprintf(o.Log, "mode %s: census of %d: %v\n", m.Name, pid, err)
				}
			}
			for _, g := range guests {
				if err := c.AddGuests(g); err != nil {
					fmt.Fprintf(o.Log, "mode %s: census of the guests in %d: %v\n", m.Name, g.Pid, err)
				}
			}
			id := c.Ideals()
			mr.Census, mr.Ideals, mr.Private, mr.Repeats, mr.Tables = &c.Counts, &id, c.Private, c.Repeats(), c.Tables
			c.Close()
		}
		p.Release()
	}
	monitorPID := p.Pid()
	outcomes, err := p.Finish()
	mr.Seconds = time.Since(t0).Seconds()
	if tr != nil {
		mr.TLB = classifyFlushes(tr.Stop(), ksmdPID, monitorPID, pids, mr.Seconds)
	}
	if err != nil {
		return nil, err
	}
	if ksmdPID > 0 && m.KSM {
		ksmdCPU1, _ := measure.CPUTime(ksmdPID)
		mr.KsmdCPU = ksmdCPU1 - ksmdCPU0
	}
	mr.Instances = len(outcomes)
	var loads []float64
	for _, r := range outcomes {
		if !r.OK {
			mr.Failed++
		}
		loads = append(loads, float64(r.LoadTime)/1e6)
	}
	mr.tally(loads)
	mr.ksmVerdict(m, o.KSMWait, o.Log)
	return mr, nil
}

// modeGroup makes mode m's memory cgroup for its monitor process (nil,
// and a line in the log saying why, where there is none) and says how to
// start a process in it.
func modeGroup(m Mode, o MemoryOptions) (*measure.FleetGroup, func(*exec.Cmd) error) {
	start := func(cmd *exec.Cmd) error { return cmd.Start() }
	if o.HostWideKernel {
		return nil, start
	}
	group, err := measure.NewFleetGroup(m.Name)
	if err != nil {
		fmt.Fprintf(o.Log, "mode %s: the kernel part is host-wide meminfo rises (other processes move them): %v\n", m.Name, err)
		return nil, start
	}
	return group, group.Start
}

// runChurnProcess is runChurn with the monitor as a process of its own
// (monitorproc.go), started in the mode's memory cgroup: it runs the
// arrivals and tells the bench of each arrival resident (its instance
// processes, or its guests' ranges in the kvm monitor) and ended; the
// bench samples what is resident once a second, the monitor column the
// monitor process's whole PSS (less its guests').
func runChurnProcess(ctx context.Context, fleet *Fleet, exe string, m Mode, o MemoryOptions) (*ModeResult, error) {
	base, err := measure.TakeBaseline(nil)
	if err != nil {
		return nil, err
	}
	group, start := modeGroup(m, o)
	defer leaveGroup(group, m, o.Log)
	mr := &ModeResult{Mode: m.Name, MonitorMeasured: "process"}
	if group != nil {
		mr.Cgroup = group.Dir()
	}
	tr := startTLBTrace(m, o.Log)
	spec := specFor(fleet, m, o.Monitor, o)
	c := o.Churn
	spec.Churn = &c
	p, err := startMonitorProcess(exe, filepath.Join(o.Out, "monitor-"+m.Name+".json"), spec, o.Log, start)
	if err != nil {
		if tr != nil {
			tr.Stop()
		}
		return nil, err
	}
	// The monitor resolves the fleet first: the clock (and the steady
	// state's window) starts with the arrivals, as in-process.
	if msg, err := p.Next(); err != nil || !msg.Arriving {
		p.Kill()
		if tr != nil {
			tr.Stop()
		}
		if err == nil {
			err = fmt.Errorf("bench: the monitor process said %+v before its arrivals", msg)
		}
		return nil, err
	}
	t0 := time.Now()
	st := newChurnState(p.Pid())
	finished := make(chan struct{})
	var outcomes []vmmproc.Outcome
	var readErr error
	go func() {
		defer close(finished)
		for {
			msg, err := p.Next()
			switch {
			case err != nil:
				readErr = err
				return
			case msg.Done:
				outcomes = msg.Outcomes
				return
			case msg.Arrival != nil:
				st.arrived(*msg.Arrival, msg.Resident, msg.Guests)
			case msg.Ended != nil:
				st.ended(*msg.Ended)
			}
		}
	}()
	go func() { // an interrupted bench ends the arrivals
		select {
		case <-ctx.Done():
			p.Interrupt()
		case <-finished:
		}
	}()
	mr.Samples = st.sample(ctx, finished, t0, base, group, false)
	mr.Seconds = time.Since(t0).Seconds()
	werr := p.Wait()
	if tr != nil {
		mr.TLB = classifyFlushes(tr.Stop(), ksmdPID(), p.Pid(), st.ever, mr.Seconds)
	}
	if readErr != nil {
		return nil, readErr
	}
	if werr != nil {
		return nil, fmt.Errorf("bench: the monitor process: %w", werr)
	}
	if group != nil {
		mr.OutsideGroup = outside(group, []int{p.Pid()})
	}
	var loads []float64
	for _, r := range outcomes {
		mr.Instances++
		if !r.OK {
			mr.Failed++
		}
		if r.Error == "" {
			loads = append(loads, float64(r.LoadTime)/1e6)
		}
	}
	return mr, mr.churnTally(c, loads)
}

// outside counts the pids not in g: the fleet's processes the group's
// figures would miss (0 unless something moved them).
func outside(g *measure.FleetGroup, pids []int) int {
	in, err := g.Procs()
	if err != nil {
		return len(pids)
	}
	set := map[int]bool{}
	for _, p := range in {
		set[p] = true
	}
	n := 0
	for _, p := range pids {
		if !set[p] {
			n++
		}
	}
	return n
}

// containsLine: the instance printed its expected line.
func containsLine(out, expect string) bool { return strings.Contains(out, expect) }

// classifyFlushes charges TLB flushes to ksmd, the monitor (this
// process, every thread of it: the kernel recorded each flush's thread
// group), the instances, or anything else on the machine. Remote
// shootdowns are counted in the task that issued them ("remote IPI
// send"); the flushes other CPUs then make are counted as received,
// without an issuer, and task-switch flushes apart.
func classifyFlushes(c tlbtrace.Counts, ksmdPID, self int, instances []int, seconds float64) TLB {
	inst := map[int]bool{}
	for _, p := range instances {
		if p != self {
			inst[p] = true
		}
	}
	t := TLB{Remote: map[string]uint64{"ksmd": 0, "monitor": 0, "instances": 0, "other": 0},
		Local: map[string]uint64{"ksmd": 0, "monitor": 0, "instances": 0, "other": 0}, RemotePerSecond: map[string]float64{}}
	for tgid, reasons := range c.ByTGID {
		who := "other"
		switch {
		case tgid == ksmdPID:
			who = "ksmd"
		case tgid == self:
			who = "monitor"
		case inst[tgid]:
			who = "instances"
		}
		for reason, n := range reasons {
			switch tlbtrace.Kind(reason) {
			case "remote":
				t.Remote[who] += n
			case "local":
				t.Local[who] += n
			case "received":
				t.Received += n
			default:
				t.TaskSwitch += n
			}
		}
	}
	for k, v := range t.Remote {
		if seconds > 0 {
			t.RemotePerSecond[k] = float64(v) / seconds
		}
	}
	return t
}
