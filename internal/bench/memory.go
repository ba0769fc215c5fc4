package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/ksm"
	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/link"
	"github.com/unipool/unipool/internal/memstat"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/tlbtrace"
)

// Mode is one way of running the fleet.
type Mode struct {
	Name   string
	Layout string // image layout; "" means the pool
	Load   string // monitor.LoadShared / LoadNaive
	KSM    bool
	ASLR   bool
	// Snapshot starts every instance from its pooled boot snapshot
	// (`unipool snapshot`): the pages boot wrote are shared too.
	Snapshot bool
}

// Modes are the approaches compared, in the order they run.
var Modes = []Mode{
	{Name: "packed-naive", Layout: link.LayoutPacked, Load: monitor.LoadNaive},
	{Name: "packed-ksm", Layout: link.LayoutPacked, Load: monitor.LoadNaive, KSM: true},
	{Name: "dce-ksm", Layout: link.LayoutDCE, Load: monitor.LoadNaive, KSM: true},
	{Name: "aligned-ksm", Layout: link.LayoutAligned, Load: monitor.LoadNaive, KSM: true},
	{Name: "shared", Load: monitor.LoadShared},
	{Name: "shared-aslr", Load: monitor.LoadShared, ASLR: true},
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

// ModeByName finds a mode.
func ModeByName(name string) (Mode, error) {
	var names []string
	for _, m := range append(Modes, NaiveMode) {
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
	Monitor     string
	Modes       []Mode
	KSMWait     time.Duration // longest a KSM mode waits for convergence
	PagesToScan int           // ksmd pages_to_scan (0: the kernel's setting)
	Out         string
	Work        string // corpus, images and pool (default Out/work)
	Jobs        int
	Log         io.Writer
	// Fleet, if set, is used as built (its layouts must cover the modes'),
	// instead of building one.
	Fleet *Fleet
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
	needKSM := false
	for _, m := range o.Modes {
		if m.Layout != "" {
			layouts[m.Layout] = true
		}
		needKSM = needKSM || m.KSM
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
	if fleet == nil {
		lay := []string{link.LayoutPacked, link.LayoutDCE} // the page analysis compares all three
		for l := range layouts {
			lay = append(lay, l)
		}
		var err error
		fleet, err = BuildFleet(ctx, FleetOptions{Count: o.Count, Seed: o.Seed, Work: o.Work, Layouts: lay, Jobs: o.Jobs, Log: o.Log})
		if err != nil {
			return nil, err
		}
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
	res := &Results{Count: len(fleet.Names), Apps: len(apps), Seed: o.Seed, Monitor: o.Monitor}
	for _, l := range []string{link.LayoutPacked, link.LayoutDCE, link.LayoutAligned} {
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
	for _, m := range o.Modes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "mode %s: starting %d unikernels\n", m.Name, len(fleet.Names))
		mr, _, err := runMode(ctx, mon, fleet, m, o, session)
		if err != nil {
			return nil, fmt.Errorf("bench: mode %s: %w", m.Name, err)
		}
		if c := mr.census; c != nil {
			res.IdealBytes = (c.imageDistinct + c.runtimeDistinct) * 4096
			res.IdealLoadBytes = c.imageDistinct*4096 + c.anonBytes
			res.IdealNote = fmt.Sprintf("ideal: distinct contents of the %d present pages of all instances in mode %s "+
				"(%d image pages, %d distinct; %d run-time pages, %d distinct); ideal_load_time: every image page content once "+
				"plus all memory the instances wrote (Pss_Anon %d bytes), which no load-time approach can share",
				c.imagePages+c.runtimePages, m.Name, c.imagePages, c.imageDistinct, c.runtimePages, c.runtimeDistinct, c.anonBytes)
		}
		res.Modes = append(res.Modes, *mr)
		fmt.Fprintf(o.Log, "mode %s: %.1f MiB final, %.1f MiB first sample, stable after %.0f s, %d failed\n",
			m.Name, mib(mr.FinalBytes), mib(mr.FirstBytes), mr.TimeToStable, mr.Failed)
	}
	if err := res.Write(o.Out); err != nil {
		return nil, err
	}
	if _, err := res.Plots(o.Out); err != nil {
		return nil, err
	}
	return res, nil
}

// runMode starts the fleet in one mode and measures it while it is held.
func runMode(ctx context.Context, mon monitor.Monitor, fleet *Fleet, m Mode, o MemoryOptions, session *ksm.Session) (*ModeResult, *PageCensus, error) {
	var uks []monitor.Unikernel
	if m.Layout == "" {
		resolve := launch.Resolve
		if m.Snapshot {
			resolve = launch.ResolveSnapshots
		}
		var err error
		if uks, err = resolve(fleet.PoolDir, fleet.Names, ""); err != nil {
			return nil, nil, err
		}
	} else {
		for i, u := range fleet.Corpus.Unikernels {
			uks = append(uks, monitor.Unikernel{Name: u.Name, Image: fleet.Images[m.Layout][i], Cmdline: u.Input})
		}
	}
	if session != nil {
		// A clean slate: unmerge what an earlier mode merged, then run
		// ksmd only for KSM modes.
		os.WriteFile(filepath.Join(ksm.Dir, "run"), []byte("2"), 0)
		if m.KSM {
			os.WriteFile(filepath.Join(ksm.Dir, "run"), []byte("1"), 0)
		}
	}
	ksmdPID, _ := memstat.FindTask("ksmd")
	ksmdCPU0, _ := memstat.CPUTime(ksmdPID)
	selfPSS0, _ := memstat.ReadRollup(os.Getpid())
	avail0, _ := memstat.MemAvailable()
	tr, trErr := tlbtrace.Start()
	if trErr != nil {
		fmt.Fprintf(o.Log, "mode %s: TLB flushes not counted: %v\n", m.Name, trErr)
	}
	mr := &ModeResult{Mode: m.Name}
	var census *PageCensus
	var runtimePages, runtimeDistinct, anon uint64
	var pids []int
	maxWait := 10 * time.Second
	if m.KSM {
		maxWait = o.KSMWait
	}
	opt := monitor.Options{N: 1, Load: m.Load, KSM: m.KSM, ASLR: m.ASLR, Snapshot: m.Snapshot, Hold: 24 * time.Hour, Timeout: 5 * time.Minute,
		Resident: func(p []int) {
			pids = p
			s := Sampler{Period: time.Second, Window: 5, Tolerance: 0.01, MinTime: 3 * time.Second, MaxTime: maxWait,
				KSM: m.KSM, MinScans: 3, Baseline: avail0}
			self := os.Getpid()
			samples, stableAt := s.Run(ctx, func() []int { return p })
			for i := range samples {
				for _, pid := range p {
					if pid == self { // the kvm monitor's VMs live in this process
						samples[i].PSS -= min(samples[i].PSS, selfPSS0.PSS)
					}
				}
			}
			mr.Samples, mr.TimeToStable = samples, stableAt
			mr.SharedBytes = memstat.SumShared(p)
			for _, pid := range p {
				if b, err := memstat.SharedMappingRSS(pid); err == nil {
					mr.PoolBytes += b
				}
			}
			if m.Name == "shared" && o.Monitor == "process" {
				// Image pages (libraries, apps, the stub) apart from
				// run-time pages (boot info, stack, heap): the latter no
				// load-time approach can share, whatever their content.
				census = NewPageCensus()
				runtime := NewPageCensus()
				for _, pid := range p {
					census.AddProcess(pid, abi.AppRegionBase, abi.PrivateBase)
					census.AddProcess(pid, abi.MapBase, 1<<47)
					runtime.AddProcess(pid, abi.PrivateBase, abi.MapBase)
					// What the instance wrote (anonymous memory, including
					// copied-on-write init pages): pagemap also calls pages
					// that only map the shared zero page present, PSS does not.
					if r, err := memstat.ReadRollup(pid); err == nil {
						anon += r.PSSAnon
					}
				}
				runtimePages, runtimeDistinct = runtime.Pages, runtime.Distinct
			}
		}}
	results, err := mon.Run(ctx, uks, opt)
	if tr != nil {
		counts := tr.Stop()
		mr.TLBFlushes = classifyFlushes(counts, ksmdPID, pids)
	}
	if err != nil {
		return nil, nil, err
	}
	ksmdCPU1, _ := memstat.CPUTime(ksmdPID)
	mr.KsmdCPU = ksmdCPU1 - ksmdCPU0
	mr.Instances = len(results)
	expect := map[string]string{}
	for _, u := range fleet.Corpus.Unikernels {
		expect[u.Name] = u.Expect
	}
	var loads []float64
	for _, r := range results {
		if r.ExitCode != 0 || r.Error != "" || !strings.Contains(r.Output, expect[r.Unikernel]) {
			mr.Failed++
		}
		loads = append(loads, float64(r.LoadTime)/1e6)
	}
	sort.Float64s(loads)
	if n := len(loads); n > 0 {
		var sum float64
		for _, v := range loads {
			sum += v
		}
		mr.LoadMeanMs, mr.LoadP95Ms = sum/float64(n), loads[min(n-1, n*95/100)]
	}
	if n := len(mr.Samples); n > 0 {
		mr.FirstBytes, mr.FinalBytes = mr.Samples[0].PSS, mr.Samples[n-1].PSS
		mr.AvailDelta = mr.Samples[n-1].AvailDelta
		for _, s := range mr.Samples {
			mr.PeakBytes = max(mr.PeakBytes, s.PSS)
		}
		mr.FinalKSM = mr.Samples[n-1].KSM
	}
	if census != nil {
		mr.census = &censusResult{imagePages: census.Pages, imageDistinct: census.Distinct,
			runtimePages: runtimePages, runtimeDistinct: runtimeDistinct, anonBytes: anon}
	}
	return mr, census, nil
}

// censusResult is the page census of the shared mode, split into pages
// that come from images and pages the instances made at run time.
type censusResult struct {
	imagePages, imageDistinct     uint64
	runtimePages, runtimeDistinct uint64
	anonBytes                     uint64 // sum of Pss_Anon: what the instances wrote
}

// classifyFlushes attributes TLB flushes to ksmd, the monitor (this
// process's threads), the instances, or anything else on the machine.
// Shootdowns (every reason but the routine flush on task switch) are
// counted under the issuer; task-switch flushes of all tasks go in
// "task-switch" apart, since they measure scheduling, not sharing.
func classifyFlushes(c tlbtrace.Counts, ksmdPID int, instances []int) map[string]uint64 {
	inst := map[int]bool{}
	for _, p := range instances {
		inst[p] = true
	}
	self := map[int]bool{}
	if ents, err := os.ReadDir("/proc/self/task"); err == nil {
		for _, e := range ents {
			if tid, err := strconv.Atoi(e.Name()); err == nil {
				self[tid] = true
			}
		}
	}
	out := map[string]uint64{"ksmd": 0, "monitor": 0, "instances": 0, "other": 0, "task-switch": 0}
	for pid, n := range c.ByPID {
		shoot := c.Shootdowns[pid]
		out["task-switch"] += n - shoot
		switch {
		case pid == ksmdPID:
			out["ksmd"] += shoot
		case self[pid]:
			out["monitor"] += shoot
		case inst[pid]:
			out["instances"] += shoot
		default:
			out["other"] += shoot
		}
	}
	return out
}
