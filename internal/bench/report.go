package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"github.com/unipool/unipool/internal/ksm"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/unipool/unipool/internal/measure"
)

// ModeResult is one mode's outcome in results.json.
type ModeResult struct {
	Mode      string `json:"mode"`
	Instances int    `json:"instances"`
	Failed    int    `json:"failed"` // instances that did not print their expect line
	// FinalBytes, FirstBytes and PeakBytes are what the host pays
	// (Host.Total of the samples); Final is the last sample's split.
	FinalBytes uint64       `json:"final_bytes"`
	PeakBytes  uint64       `json:"peak_bytes"`
	FirstBytes uint64       `json:"first_bytes"`
	Final      measure.Host `json:"final"`
	// MonitorMeasured says what Final.Monitor is: "process" (the monitor
	// ran as a process of its own, started in the mode's cgroup: its
	// whole PSS; the kvm monitor's guests, read from outside, moved to
	// the instances) or "growth" (it ran inside the bench process: what
	// that process grew by, harness included; --monitor-in-process,
	// churn).
	MonitorMeasured string `json:"monitor_measured,omitempty"`
	// MonitorCPU is the monitor process's CPU time (user + system) from
	// its start to the fleet held (monitor_measured "process" only).
	MonitorCPU float64 `json:"monitor_cpu_to_held_s,omitempty"`
	// What the host pays per instance beyond the guest's own pages, from
	// Final: the monitor's part, the kernel's, and their sum (issue 16's
	// goal: ≤ 64 KiB).
	// BenchRuntime, where the monitor ran inside the bench process, is
	// that process's Go runtime at the baseline and at the last sample:
	// what its growth (the monitor column) was made of.
	BenchRuntime           *BenchRuntime `json:"bench_runtime,omitempty"`
	MonitorPerInstance     uint64        `json:"monitor_per_instance_bytes,omitempty"`
	KernelPerInstance      uint64        `json:"kernel_per_instance_bytes,omitempty"`
	BeyondGuestPerInstance uint64        `json:"beyond_guest_per_instance_bytes,omitempty"`
	// Cgroup is the memory cgroup the mode's fleet ran in (the kernel
	// part is what the kernel charged it); empty where there was none
	// and the kernel part is host-wide rises. OutsideGroup counts the
	// instance processes found outside it (0 unless something moved
	// them).
	Cgroup       string `json:"cgroup,omitempty"`
	OutsideGroup int    `json:"instances_outside_cgroup"`
	AvailDelta   int64  `json:"avail_delta_bytes"`
	// PoolBytes: over the instances, resident bytes of pool blobs mapped
	// shared (the library code and rodata load-time sharing shares).
	PoolBytes    uint64  `json:"pool_mapped_resident_bytes"`
	SharedBytes  uint64  `json:"shared_resident_bytes"` // over the instances: resident bytes shared with another process
	TimeToStable float64 `json:"time_to_stable_s"`
	Seconds      float64 `json:"seconds"` // the mode's wall time, start to end
	KsmdCPU      float64 `json:"ksmd_cpu_s"`
	TLB          TLB     `json:"tlb"`
	LoadMeanMs   float64 `json:"load_time_mean_ms"`
	LoadP95Ms    float64 `json:"load_time_p95_ms"`
	// Census is the page census of the instances once stable (process
	// monitor), and Ideals what follows from it.
	Census *measure.Counts `json:"census,omitempty"`
	Ideals *measure.Ideals `json:"ideals,omitempty"`
	// Private is the census of the instances' own pages (not the page
	// cache) by place: how many, how many all-zero, how many a merging
	// daemon could take back (duplicates), how many KSM merged.
	Private map[string]measure.PrivatePages `json:"private_by_place,omitempty"`
	// Repeats is the census of the instances' non-zero private pages by
	// app, place and page: how many hold a content another private page
	// holds too, or that the pool stores, or a file page holds.
	Repeats []measure.PageRepeats `json:"private_repeats,omitempty"`
	// Tables is the census's last-level page-table pages by the places
	// they hold (measure.Census.Tables), over the instances.
	Tables   map[string]uint64 `json:"page_table_leaves_by_place,omitempty"`
	Samples  []Sample          `json:"samples"`
	FinalKSM any               `json:"final_ksm,omitempty"`
	// KSMFullScans is how many full scans ksmd finished while a KSM mode
	// was sampled; KSMNotConverged says the sampling stopped at --ksm-wait
	// before ksmd had finished the scans that merging takes (the merged
	// figures are then partial).
	KSMFullScans    uint64 `json:"ksm_full_scans,omitempty"`
	KSMNotConverged bool   `json:"ksm_not_converged,omitempty"`
	// KSMOthers are the processes outside the fleet whose memory ksmd
	// scanned too during a KSM mode (found before it started or while it
	// was held): they lengthen every full scan, and the fleet's pages can
	// merge with theirs.
	KSMOthers []ksm.Process `json:"ksm_other_processes,omitempty"`
}

// BenchRuntime is the bench process's Go runtime before a mode's fleet
// and at its last sample.
type BenchRuntime struct {
	Baseline measure.GoRuntime `json:"baseline"`
	Final    measure.GoRuntime `json:"final"`
}

// TLB is a mode's TLB flushes (tlb:tlb_flush), from the start of its
// instances to their end.
type TLB struct {
	// Remote are the remote shootdowns by issuer (ksmd, monitor,
	// instances, other): the "remote IPI send" events, traced in the task
	// that sends the flush to other CPUs.
	Remote map[string]uint64 `json:"remote_by_issuer"`
	// RemotePerSecond is Remote over the mode's wall time.
	RemotePerSecond map[string]float64 `json:"remote_per_s_by_issuer"`
	// Local are the shootdowns that flush only the issuing CPU, by issuer.
	Local map[string]uint64 `json:"local_by_issuer"`
	// Received counts remote flushes as the receiving CPUs trace them (in
	// whatever task they ran), TaskSwitch the flushes of every context
	// switch: neither names an issuer.
	Received   uint64 `json:"received"`
	TaskSwitch uint64 `json:"task_switch"`
}

// RemoteTotal is every remote shootdown issued, all issuers.
func (t TLB) RemoteTotal() uint64 {
	var n uint64
	for _, v := range t.Remote {
		n += v
	}
	return n
}

// Results is results.json.
type Results struct {
	Count   int    `json:"count"`
	Apps    int    `json:"apps"`
	Seed    uint64 `json:"seed"`
	Inputs  string `json:"inputs,omitempty"`
	Monitor string `json:"monitor"`
	// FreePageReportsIgnored: the monitor ignored the guests' free-page
	// reports (bench memory --ignore-free-page-reports).
	FreePageReportsIgnored bool `json:"free_page_reports_ignored,omitempty"`
	// The fleet's ideals (measure.Ideals), from the census of IdealMode.
	IdealBytes     uint64 `json:"ideal_bytes"`
	IdealLoadBytes uint64 `json:"ideal_load_time_bytes"`
	ZeroBytes      uint64 `json:"zero_bytes"`
	IdealMode      string `json:"ideal_mode,omitempty"`
	IdealNote      string `json:"ideal_note"`
	// Churn, for `bench memory --arrivals`, says how instances came and went.
	Churn   *Churn        `json:"churn,omitempty"`
	Modes   []ModeResult  `json:"modes"`
	Layouts []LayoutPages `json:"layouts,omitempty"`
}

// LayoutPages is, for one layout over the corpus, how many loaded pages
// are unique to one image and how many have a twin in another image; the
// all-zero pages (bss, padding, table slack) are counted apart, in none
// of the others.
type LayoutPages struct {
	Layout     string `json:"layout"`
	Unique     uint64 `json:"unique_pages"`
	Shareable  uint64 `json:"shareable_pages"`
	SameAddr   uint64 `json:"shareable_same_address_pages"`
	Zero       uint64 `json:"zero_pages"`
	TotalBytes uint64 `json:"total_bytes"`
}

// ReadResults reads a results.json that Write stored.
func ReadResults(path string) (*Results, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", path, err)
	}
	return &r, nil
}

// Write stores results.json and one CSV time series per mode in dir.
func (r *Results) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "memory.csv"))
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	w := csv.NewWriter(f)
	w.Write([]string{"mode", "t_s", "host_bytes", "instances_bytes", "monitor_bytes", "kernel_bytes", "page_tables_bytes",
		"avail_delta_bytes", "ksm_pages_sharing", "resident", "kernel_source", "cgroup_kernel_bytes", "cgroup_anon_bytes", "cgroup_file_bytes",
		"slab_unreclaimable_rise_bytes"})
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	for _, m := range r.Modes {
		for _, s := range m.Samples {
			sharing := ""
			if s.KSM != nil {
				sharing = u(s.KSM.PagesSharing)
			}
			w.Write([]string{m.Mode, strconv.FormatFloat(s.T, 'f', 2, 64), u(s.Bytes()), u(s.Host.Instances), u(s.Host.Monitor),
				u(s.Host.Kernel.Total), u(s.Host.Kernel.PageTables), strconv.FormatInt(s.AvailDelta, 10), sharing, strconv.Itoa(s.Resident),
				s.Host.Kernel.Source, u(s.Host.Kernel.Charged), cg(s.Host, "anon"), cg(s.Host, "file"), strconv.FormatInt(s.Host.Kernel.Slab, 10)})
		}
	}
	w.Flush()
	return w.Error()
}

// cg is a figure of h's cgroup reading ("" without one).
func cg(h measure.Host, what string) string {
	if h.Cgroup == nil {
		return ""
	}
	v := h.Cgroup.Anon
	if what == "file" {
		v = h.Cgroup.File
	}
	return strconv.FormatUint(v, 10)
}

// KernelTable prints, per mode, where the kernel part comes from and the
// two views side by side: what the kernel charged the mode's own memory
// cgroup (kernel, anonymous and file pages) and the per-process view
// (page tables and stacks per process, the instances' and monitor's
// PSS), with the host-wide slab rise that other processes move.
func (r *Results) KernelTable(out io.Writer) {
	fmt.Fprintln(out, "the kernel part (MiB): source; charged to the mode's memory cgroup (kernel incl. socket buffers; KSM's rmap items, charged to no group, apart);")
	fmt.Fprintln(out, "the cgroup's anonymous pages beside the per-process view (the instances' Pss_Anon + the monitor's: its process's Pss_Anon, or the bench's PSS growth); page cache the fleet brought in first (in no total);")
	fmt.Fprintln(out, "per process: page tables (VmPTE + PGD) and kernel stacks; host-wide rise of SUnreclaim (moved by every process on the host):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "mode\tsource\tkernel\tcgroup kernel\tKSM rmap\tcgroup anon\tPss_Anon + monitor\tcgroup file\tpage tables\tstacks\tslab rise\t\n")
	if r.Churn != nil {
		fmt.Fprintln(out, "(under churn: at each mode's peak sample; the final sample has every instance ended)")
	}
	for _, m := range r.Modes {
		h := m.Final
		if r.Churn != nil {
			for _, s := range m.Samples {
				if s.Host.Total > h.Total {
					h = s.Host
				}
			}
		}
		k := h.Kernel
		ck, ca, cf := "-", "-", "-"
		if c := h.Cgroup; c != nil {
			ck, ca, cf = fmt.Sprintf("%.1f", mib(k.Charged)), fmt.Sprintf("%.1f", mib(c.Anon)), fmt.Sprintf("%.1f", mib(c.File))
		}
		mon := h.Monitor
		if h.MonitorProcesses == "own" {
			mon = h.MonitorAnon // the monitor's file pages are its binary's: page cache
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t%.1f\t%s\t%.1f\t%s\t%.1f\t%.1f\t%.1f\t\n", m.Mode, k.Source, mib(k.Total), ck, mib(k.KSM), ca,
			mib(h.InstancesAnon+mon), cf, mib(k.PageTables), mib(k.Stacks), float64(k.Slab)/(1<<20))
	}
	tw.Flush()
}

// PerInstanceTable prints, per mode, what the host pays per instance
// beyond the guest's own pages (issue 16's goal: ≤ 64 KiB): the monitor's
// part (anonymous and file apart, where the monitor was a process of its
// own) and the kernel's (page tables and kernel stacks per process, the
// rest: slab, vmalloc, ...), in KiB.
func (r *Results) PerInstanceTable(out io.Writer) {
	fmt.Fprintln(out, "per instance beyond the guest's own pages (KiB): the monitor (its process's PSS: anonymous, file; or the bench's growth) and the kernel part (page tables, stacks, the rest):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "mode\tinstances\tmonitor as\tmonitor\tanon\tfile\tkernel\tpage tables\tstacks\trest\tmonitor + kernel\t\n")
	for _, m := range r.Modes {
		if m.Instances == 0 {
			continue
		}
		n := float64(m.Instances)
		h := m.Final
		k := h.Kernel
		rest := float64(k.Total) - float64(k.PageTables) - float64(k.Stacks)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", m.Mode, m.Instances, m.MonitorMeasured,
			kib(h.Monitor)/n, kib(h.MonitorAnon)/n, kib(h.MonitorFile)/n, kib(k.Total)/n, kib(k.PageTables)/n, kib(k.Stacks)/n, rest/1024/n,
			(kib(h.Monitor)+kib(k.Total))/n)
	}
	tw.Flush()
}

func kib(b uint64) float64 { return float64(b) / 1024 }

// Table prints the terminal summary: what the host pays per mode, split
// into instances, monitor and kernel, against the ideals.
func (r *Results) Table(out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "mode\thost MiB\tinstances\tmonitor\tkernel\tfirst MiB\tpeak MiB\tvs ideal\tstable s\tksmd CPU s\tremote TLB\t/s\tzero MiB\tload ms\tfailed\t\n")
	for _, m := range r.Modes {
		ratio := "-"
		if r.IdealBytes > 0 {
			ratio = fmt.Sprintf("%.2fx", float64(m.FinalBytes)/float64(r.IdealBytes))
		}
		zero := "-"
		if m.Ideals != nil {
			zero = fmt.Sprintf("%.1f", mib(m.Ideals.Zero))
		}
		var perS float64
		if m.Seconds > 0 {
			perS = float64(m.TLB.RemoteTotal()) / m.Seconds
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%.0f\t%.2f\t%d\t%.0f\t%s\t%.2f\t%d\t\n", m.Mode,
			mib(m.FinalBytes), mib(m.Final.Instances), mib(m.Final.Monitor), mib(m.Final.Kernel.Total), mib(m.FirstBytes),
			mib(m.PeakBytes), ratio, m.TimeToStable, m.KsmdCPU, m.TLB.RemoteTotal(), perS, zero, m.LoadMeanMs, m.Failed)
	}
	if r.IdealLoadBytes > 0 {
		fmt.Fprintf(tw, "ideal, load-time sharing\t%.1f\t\t\t\t\t\t%.2fx\t\t\t\t\t\t\t\t\n", mib(r.IdealLoadBytes), float64(r.IdealLoadBytes)/float64(max(r.IdealBytes, 1)))
	}
	if r.IdealBytes > 0 {
		fmt.Fprintf(tw, "ideal\t%.1f\t\t\t\t\t\t1.00x\t\t\t\t\t%.1f\t\t\t\n", mib(r.IdealBytes), mib(r.ZeroBytes))
	}
	tw.Flush()
	if r.IdealNote != "" {
		fmt.Fprintln(out, r.IdealNote)
	}
	var sh, sa *ModeResult
	for i := range r.Modes {
		switch r.Modes[i].Mode {
		case "shared":
			sh = &r.Modes[i]
		case "shared-aslr":
			sa = &r.Modes[i]
		}
	}
	if sh != nil && sa != nil && sh.PoolBytes > 0 && sh.SharedBytes > 0 {
		fmt.Fprintf(out, "with --aslr: %.1f%% of the pool pages and %.1f%% of all shared pages stay shared (%.1f / %.1f MiB pool, %.1f / %.1f MiB shared)\n",
			100*float64(sa.PoolBytes)/float64(sh.PoolBytes), 100*float64(sa.SharedBytes)/float64(sh.SharedBytes),
			mib(sa.PoolBytes), mib(sh.PoolBytes), mib(sa.SharedBytes), mib(sh.SharedBytes))
	}
	if sh != nil && sh.FinalBytes > 0 {
		for _, m := range r.Modes {
			if m.Mode != "shared" {
				fmt.Fprintf(out, "%s / shared = %.2f\n", m.Mode, float64(m.FinalBytes)/float64(sh.FinalBytes))
			}
		}
	}
}

// PrivateTable prints, per mode, where the instances' own pages are (the
// census by place), all-zero and duplicate pages apart: what load-time
// sharing leaves private, and what of it merging identical pages (KSM)
// could take back.
func (r *Results) PrivateTable(out io.Writer) {
	any := false
	for _, m := range r.Modes {
		any = any || len(m.Private) > 0
	}
	if !any {
		return
	}
	fmt.Fprintln(out, "private pages by place (the census: anonymous pages of the instances; duplicate = a non-zero content another private page holds too; KSM = merged already):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "mode\tplace\tpages\tMiB\tall-zero\tduplicate\tKSM\t\n")
	for _, m := range r.Modes {
		places := make([]string, 0, len(m.Private))
		var tot measure.PrivatePages
		for p, c := range m.Private {
			places = append(places, p)
			tot.Pages, tot.Zero, tot.Duplicate, tot.KSM = tot.Pages+c.Pages, tot.Zero+c.Zero, tot.Duplicate+c.Duplicate, tot.KSM+c.KSM
		}
		sort.Slice(places, func(i, j int) bool { return m.Private[places[i]].Pages > m.Private[places[j]].Pages })
		for _, p := range places {
			c := m.Private[p]
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%d\t%d\t%d\t\n", m.Mode, p, c.Pages, mib(c.Pages*measure.PageSize), c.Zero, c.Duplicate, c.KSM)
		}
		if len(places) > 0 {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%d\t%d\t%d\t\n", m.Mode, "all", tot.Pages, mib(tot.Pages*measure.PageSize), tot.Zero, tot.Duplicate, tot.KSM)
		}
	}
	tw.Flush()
}

// RepeatsTable prints, per mode, the groups (app, place, page) of the
// instances' non-zero private pages that hold the most repeated contents
// (rows), and every group summed by place and page: where what KSM merges
// lies, and whether the pool already had it.
func (r *Results) RepeatsTable(out io.Writer, rows int) {
	any := false
	for _, m := range r.Modes {
		any = any || len(m.Repeats) > 0
	}
	if !any {
		return
	}
	fmt.Fprintln(out, "repeated private pages (the census: non-zero anonymous pages of the instances; repeated = another private page holds the content too, every copy counted;")
	fmt.Fprintln(out, "other app = of them, a page of another app's instance; stored = the pool stores the content: an image page as loaded, a snapshot page; file page = a page-cache page an instance maps holds it),")
	fmt.Fprintf(out, "by place and page, then the %d app groups with the most repeated pages:\n", rows)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "mode\tapp\tplace\tpage\tpages\trepeated\tother app\tstored\tfile page\t\n")
	for _, m := range r.Modes {
		if len(m.Repeats) == 0 {
			continue
		}
		by := map[measure.PageGroup]*measure.PageRepeats{}
		var keys []measure.PageGroup
		for _, g := range m.Repeats {
			k := measure.PageGroup{App: "all", Place: g.Place, Page: g.Page}
			s := by[k]
			if s == nil {
				s = &measure.PageRepeats{PageGroup: k}
				by[k] = s
				keys = append(keys, k)
			}
			s.Pages, s.Repeated, s.OtherApp, s.Stored, s.FilePage = s.Pages+g.Pages, s.Repeated+g.Repeated, s.OtherApp+g.OtherApp, s.Stored+g.Stored, s.FilePage+g.FilePage
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].Place != keys[j].Place {
				return keys[i].Place < keys[j].Place
			}
			return keys[i].Page < keys[j].Page
		})
		row := func(g measure.PageRepeats) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", m.Mode, g.App, g.Place, g.Page, g.Pages, g.Repeated, g.OtherApp, g.Stored, g.FilePage)
		}
		for _, k := range keys {
			row(*by[k])
		}
		for i, g := range m.Repeats {
			if i == rows || g.Repeated == 0 {
				break
			}
			row(g)
		}
	}
	tw.Flush()
}

// PageTableTable prints, per mode, the page-table pages the instances'
// present guest pages need (the census: one last-level page per 2 MiB that
// holds one, one middle page per GiB), per instance and by the places that
// share a last-level page.
func (r *Results) PageTableTable(out io.Writer) {
	any := false
	for _, m := range r.Modes {
		any = any || (m.Census != nil && m.Census.TableLeaves > 0)
	}
	if !any {
		return
	}
	fmt.Fprintln(out, "page-table pages of the instances' guest memory (the census: a last-level page per 2 MiB with a present page, a middle page per GiB; the stub, the vDSO and the levels above are not counted):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "mode\tleaf\tmiddle\tper instance\tleaves by the places they hold\t\n")
	for _, m := range r.Modes {
		if m.Census == nil || m.Census.TableLeaves == 0 {
			continue
		}
		places := make([]string, 0, len(m.Tables))
		for p := range m.Tables {
			places = append(places, p)
		}
		sort.Slice(places, func(i, j int) bool {
			if m.Tables[places[i]] != m.Tables[places[j]] {
				return m.Tables[places[i]] > m.Tables[places[j]]
			}
			return places[i] < places[j]
		})
		var by []string
		for _, p := range places {
			by = append(by, fmt.Sprintf("%s %d", p, m.Tables[p]))
		}
		per := 0.0
		if m.Instances > 0 {
			per = float64(m.Census.TableLeaves+m.Census.TableMiddles) / float64(m.Instances)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%s\t\n", m.Mode, m.Census.TableLeaves, m.Census.TableMiddles, per, strings.Join(by, ", "))
	}
	tw.Flush()
}

// TLBTable prints the remote shootdowns by issuer, in all and per second,
// with the flushes that name no issuer apart.
func (r *Results) TLBTable(out io.Writer) {
	fmt.Fprintln(out, "remote TLB shootdowns by issuer (tlb:tlb_flush \"remote IPI send\", traced in the issuing task), total and per second;")
	fmt.Fprintln(out, "local shootdowns (all issuers), flushes received from other CPUs and task-switch flushes apart:")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "mode\tseconds\tksmd\tmonitor\tinstances\tother\tksmd/s\tmonitor/s\tinstances/s\tother/s\tlocal\treceived\ttask-switch\t\n")
	for _, m := range r.Modes {
		t := m.TLB
		var local uint64
		for _, v := range t.Local {
			local += v
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t\n", m.Mode, m.Seconds,
			t.Remote["ksmd"], t.Remote["monitor"], t.Remote["instances"], t.Remote["other"],
			t.RemotePerSecond["ksmd"], t.RemotePerSecond["monitor"], t.RemotePerSecond["instances"], t.RemotePerSecond["other"],
			local, t.Received, t.TaskSwitch)
	}
	tw.Flush()
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
