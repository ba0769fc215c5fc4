package monitorproc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/measure"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/monitor/process"
	"github.com/unipool/unipool/internal/pool"
	"github.com/unipool/unipool/internal/vmmproc"
)

// RunMeasure is `unipool run --measure` (req.Measure; req.Modes the load
// modes): it prints, as text or with req.JSON as JSON, what each mode's
// fleet costs the host. With the process monitor each mode's monitor is
// a unipool-vmm process (Measure), the binary `unipool run` execs; with
// the kvm monitor the VMs run in this process (runKVMMeasure).
func RunMeasure(ctx context.Context, req vmmproc.RunRequest, stdout, stderr io.Writer) error {
	switch req.Monitor {
	case process.Name:
	case "kvm":
		uks, opt, err := req.Unikernels()
		if err != nil {
			return err
		}
		defer launch.Closer(uks)()
		return runKVMMeasure(ctx, stdout, uks, opt, req.JSON, req.Modes)
	default:
		return fmt.Errorf("--measure: monitor %q cannot be measured", req.Monitor)
	}
	exe, err := vmmproc.Executable()
	if err != nil {
		return fmt.Errorf("--measure: %w", err)
	}
	rep, err := Measure(ctx, exe, req, stderr)
	if err != nil {
		return err
	}
	return printReport(stdout, rep, req.JSON)
}

// Measure runs req's fleet (req.N instances of each unikernel) once per
// load mode of req.Modes, one mode after the other, each in a monitor
// process of its own: exe (the lean monitor binary) on a spec, started in
// the mode's memory cgroup, its stderr to log. Once the mode's instances
// are all held resident it measures them from here with internal/measure,
// as `bench memory` does: the instances' PSS, the monitor process's whole
// PSS (its binary's pages with it: those of exe, not of this process),
// and the kernel part from the cgroup; then it ends the hold and tallies
// the outcomes. The page census's loaded contents come from this
// process's own reading of the fleet (as the bench's), in no column.
//
// exe is run as it is, not a copy (the bench copies it): this process
// never maps it and the modes' monitors run one after the other, so the
// monitor's binary pages are its own unless other unipool-vmm processes
// (runs, a daemon's jails) map them too, as they would for any run.
func Measure(ctx context.Context, exe string, req vmmproc.RunRequest, log io.Writer) (*Report, error) {
	uks, _, err := req.Unikernels()
	if err != nil {
		return nil, err
	}
	loaded, err := measure.LoadedContents(uks)
	launch.Closer(uks)()
	if err != nil {
		return nil, err
	}
	spec := vmmproc.Spec{Monitor: req.Monitor, Pool: req.Pool, Timeout: req.Timeout, N: req.N, MemSize: req.MemSize, Seed: req.Seed}
	if spec.Pool == "" && len(req.Names) > 0 {
		if spec.Pool, err = pool.DefaultDir(); err != nil {
			return nil, err
		}
	}
	for _, name := range req.Names {
		spec.Unikernels = append(spec.Unikernels, vmmproc.SpecUnikernel{Name: name, Cmdline: req.Cmdline})
	}
	for _, img := range req.Images {
		spec.Unikernels = append(spec.Unikernels, vmmproc.SpecUnikernel{Name: filepath.Base(img), Image: img, Cmdline: req.Cmdline})
	}
	dir, err := os.MkdirTemp("", "unipool-measure-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	rep := &Report{}
	for _, mode := range req.Modes {
		spec.Mode = vmmproc.Mode{Name: mode, Load: mode, KSM: req.KSM, ASLR: req.ASLR, ASLRPerLibrary: req.ASLRPerLibrary, Snapshot: req.Snapshot}
		meas, err := measureMode(ctx, exe, filepath.Join(dir, "monitor-"+mode+".json"), spec, loaded, log)
		if err != nil {
			return nil, fmt.Errorf("measure %s: %w", mode, err)
		}
		if meas.Ideals != nil && (mode == monitor.LoadShared || rep.Ideal == 0) {
			rep.Ideal, rep.IdealLoadTime = meas.Ideals.Ideal, meas.Ideals.LoadTime
		}
		rep.Modes = append(rep.Modes, meas)
	}
	return rep, nil
}

// Measurement is what one load mode's instances, all held resident at
// once, cost the host (internal/measure), and their load time.
type Measurement struct {
	Load      string `json:"load"`
	Instances int    `json:"instances"`
	Failed    int    `json:"failed"`
	// NonZero counts the measured instances whose guest exited with a
	// non-zero code: they ran and were measured, but did not succeed.
	NonZero int `json:"exited_nonzero"`
	// Host is what the host pays: the instances' PSS, the monitor
	// process's PSS, and the kernel's part (page tables, kernel stacks,
	// slab), each apart, with the drop of MemAvailable beside them.
	Host measure.Host `json:"host"`
	// CgroupError says why the mode's fleet did not run in a memory
	// cgroup of its own (the kernel part is then host-wide rises).
	CgroupError string `json:"cgroup_error,omitempty"`
	// PSS is the instances' part (Host.Instances).
	PSS uint64 `json:"pss_bytes"`
	// MemAvailableDrop is Host.AvailDrop.
	MemAvailableDrop int64 `json:"mem_available_drop_bytes"`
	// Census and Ideals are the page census of the instances.
	Census *measure.Counts `json:"census,omitempty"`
	Ideals *measure.Ideals `json:"ideals,omitempty"`
	// LoadMean and LoadMedian are the load time per instance: from
	// planning its layout to entering the guest.
	LoadMean   time.Duration `json:"load_mean_ns"`
	LoadMedian time.Duration `json:"load_median_ns"`
	// MonitorPid and MonitorExe are the monitor process measured and its
	// executable (/proc/PID/exe), where it is a process of its own
	// (`unipool run --measure`: the lean binary unipool-vmm).
	MonitorPid int    `json:"monitor_pid,omitempty"`
	MonitorExe string `json:"monitor_exe,omitempty"`
}

// Report compares load modes with the ideals.
type Report struct {
	Modes []Measurement `json:"modes"`
	// Ideal and IdealLoadTime are measure.Ideals from the census of the
	// shared run (else the first): every distinct non-zero page content
	// once, and what sharing at load time reaches at best.
	Ideal         uint64 `json:"ideal_bytes"`
	IdealLoadTime uint64 `json:"ideal_load_time_bytes"`
}

// measureMode runs spec's fleet in a monitor process of exe and measures
// it once it is held.
func measureMode(ctx context.Context, exe, specPath string, spec vmmproc.Spec, loaded *measure.Census, log io.Writer) (Measurement, error) {
	meas := Measurement{Load: spec.Mode.Load}
	base, err := measure.TakeBaseline(nil)
	if err != nil {
		return meas, err
	}
	// The mode's own memory cgroup, so that the kernel part is what the
	// kernel charges this fleet (else host-wide rises).
	start := func(cmd *exec.Cmd) error { return cmd.Start() }
	group, gerr := measure.NewFleetGroup("run-" + spec.Mode.Name)
	if gerr != nil {
		meas.CgroupError = gerr.Error()
	} else {
		start = group.Start
	}
	defer group.Close()
	p, err := Start(exe, specPath, spec, log, start)
	if err != nil {
		return meas, err
	}
	stop := context.AfterFunc(ctx, func() { p.cmd.Process.Kill() }) // a cancelled run ends it
	defer stop()
	msg, err := p.Next()
	if err != nil {
		p.Kill()
		return meas, err
	}
	outcomes := msg.Outcomes // every instance failed: nothing held
	if !msg.Done {
		meas.MonitorPid = p.Pid()
		meas.MonitorExe, _ = os.Readlink("/proc/" + strconv.Itoa(p.Pid()) + "/exe")
		s, err := measure.Take(measure.Fleet{Instances: msg.Resident, Monitors: []int{p.Pid()}, Group: group}, base, loaded, nil)
		if err != nil {
			p.Kill()
			return meas, err
		}
		meas.Host, meas.Census, meas.Ideals = s.Host, s.Census, s.Ideals
		meas.PSS, meas.MemAvailableDrop = s.Host.Instances, s.Host.AvailDrop
		p.Release()
		if outcomes, err = p.Finish(); err != nil {
			return meas, err
		}
	} else if err := p.Wait(); err != nil {
		return meas, fmt.Errorf("the monitor process: %w", err)
	}
	var loads []time.Duration
	var sum time.Duration
	for _, r := range outcomes {
		if r.Error != "" {
			meas.Failed++
			continue
		}
		meas.Instances++
		if !r.OK { // no error, no expected line asked for: a non-zero exit
			meas.NonZero++
		}
		loads = append(loads, r.LoadTime)
		sum += r.LoadTime
	}
	if len(loads) > 0 {
		sort.Slice(loads, func(i, j int) bool { return loads[i] < loads[j] })
		meas.LoadMean = sum / time.Duration(len(loads))
		meas.LoadMedian = loads[len(loads)/2]
	}
	return meas, nil
}

// printReport prints rep: JSON with asJSON, else a table and what its
// columns are.
func printReport(w io.Writer, rep *Report, asJSON bool) error {
	if asJSON {
		return writeJSON(w, rep)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "load\tinstances\tfailed\texited non-zero\thost total\tinstances PSS\tmonitor\tkernel\tof which page tables\tMemAvailable drop\tzero pages\tload mean\tload median\t")
	for _, m := range rep.Modes {
		h := m.Host
		zero := "-"
		if m.Ideals != nil {
			zero = mib(m.Ideals.Zero)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\t%v\t\n", m.Load, m.Instances, m.Failed, m.NonZero,
			mib(h.Total), mib(h.Instances), mib(h.Monitor), mib(h.Kernel.Total), mib(h.Kernel.PageTables),
			mib(uint64(max(h.AvailDrop, 0))), zero, m.LoadMean.Round(time.Microsecond), m.LoadMedian.Round(time.Microsecond))
	}
	fmt.Fprintf(tw, "ideal, load-time sharing\t\t\t\t%s\t\t\t\t\t\t\t\t\t\n", mib(rep.IdealLoadTime))
	fmt.Fprintf(tw, "ideal\t\t\t\t%s\t\t\t\t\t\t\t\t\t\n", mib(rep.Ideal))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "host total = instances PSS + the monitor process's PSS + kernel (page tables, kernel stacks, slab);")
	for _, m := range rep.Modes {
		if m.MonitorPid != 0 {
			fmt.Fprintf(w, "%s: monitor = the monitor process %d (%s), its whole PSS\n", m.Load, m.MonitorPid, m.MonitorExe)
		}
	}
	for _, m := range rep.Modes {
		fmt.Fprintln(w, kernelSource(m.Load, m.Host, m.CgroupError))
	}
	fmt.Fprintln(w, "ideal = every distinct non-zero page once; load-time ideal = as-loaded image pages once, written and run-time pages in full")
	if len(rep.Modes) == 2 && rep.Modes[0].Host.Total > 0 {
		s, n := rep.Modes[0], rep.Modes[1]
		fmt.Fprintf(w, "naive/shared host memory %.2fx; naive/shared median load time %.2fx\n",
			float64(n.Host.Total)/float64(s.Host.Total), float64(n.LoadMedian)/float64(max(s.LoadMedian, 1)))
	}
	for _, m := range rep.Modes {
		if m.Failed > 0 {
			return fmt.Errorf("%d %s instances failed (run without --measure to see why)", m.Failed, m.Load)
		}
	}
	return nil
}

// writeJSON writes a --measure report to w as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable starts a --measure report's table: right-aligned columns.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
}

func kib(b uint64) string { return fmt.Sprintf("%.1f KiB", float64(b)/1024) }
func mib(b uint64) string { return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20)) }

// kernelSource says where a mode's kernel part comes from: what the
// kernel charged the fleet's own memory cgroup, or (where there was none,
// and why) host-wide rises.
func kernelSource(mode string, h measure.Host, cgroupErr string) string {
	if c := h.Cgroup; c != nil {
		return fmt.Sprintf("%s: kernel = charged to the fleet's memory cgroup (v%d) %s + KSM's rmap items %s; the cgroup's anonymous pages %s, page cache it brought in first %s (in no total)",
			mode, c.Version, mib(h.Kernel.Charged), mib(h.Kernel.KSM), mib(c.Anon), mib(c.File))
	}
	return fmt.Sprintf("%s: kernel = host-wide meminfo rises (other processes move them): %s", mode, cgroupErr)
}
