package monitorproc

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/monitor/microvm"
)

// runKVMMeasure is `run --monitor kvm --measure`. Unlike the process
// monitor's (Measure), it runs in this process, the CLI: its report is
// the loader's growth before and after each VM (microvm.Monitor.Measure),
// which only the process that holds the VMs can take. Every VM of a mode
// runs here, so the report is this process's PSS, the guests' own pages,
// and what each VM costs the loader and the kernel beyond them.
func runKVMMeasure(ctx context.Context, w io.Writer, uks []monitor.Unikernel, opt monitor.Options, asJSON bool, modes []string) error {
	monitor.LeanGC() // this process is the monitor from here on
	rep, err := microvm.Monitor{}.Measure(ctx, uks, opt, modes)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, rep)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "load\tVMs\tfailed\texited non-zero\tloader PSS\tMemAvailable drop\tshared once\tguest private\tpage tables\tloader/VM\t(accounted)\tkernel/VM\tload mean\tload median\tload p99\t")
	for _, m := range rep.Modes {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\t%v\t%v\t\n", m.Load, m.VMs, m.Failed, m.NonZero,
			mib(m.LoaderPSS-min(m.LoaderPSS, m.LoaderPSSAfter)), mib(uint64(max(m.MemAvailableDrop, 0))), kib(m.Shared),
			mib(m.GuestPrivate), kib(m.PageTables), kibSigned(m.LoaderPerVM), kibSigned(m.LoaderAccountedPerVM), kibSigned(m.KernelPerVM),
			m.LoadMean.Round(time.Microsecond), m.LoadMedian.Round(time.Microsecond), m.LoadP99.Round(time.Microsecond))
	}
	fmt.Fprintf(tw, "ideal, load-time sharing\t\t\t\t%s\t\t\t\t\t\t\t\t\t\t\t\n", mib(rep.IdealLoadTime))
	fmt.Fprintf(tw, "ideal\t\t\t\t%s\t\t\t\t\t\t\t\t\t\t\t\n", mib(rep.Ideal))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nwhat the host pays (internal/measure: guests = instances; the loader's other growth = monitor; kernel = page tables, stacks, slab, KVM's second-level page tables):")
	tw = newTable(w)
	fmt.Fprintln(tw, "load\thost total\tinstances\tmonitor\tkernel\tper VM: monitor + kernel\tMemAvailable drop\tzero pages\t")
	for _, m := range rep.Modes {
		h := m.Host
		zero := "-"
		if m.Ideals != nil {
			zero = mib(m.Ideals.Zero)
		}
		per := uint64(0)
		if m.VMs > 0 {
			per = (h.Monitor + h.Kernel.Total) / uint64(m.VMs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", m.Load, mib(h.Total), mib(h.Instances), mib(h.Monitor), mib(h.Kernel.Total),
			kib(per), mib(uint64(max(h.AvailDrop, 0))), zero)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, m := range rep.Modes {
		fmt.Fprintln(w, kernelSource(m.Load, m.Host, m.CgroupError))
	}
	for _, m := range rep.Modes {
		fmt.Fprintf(w, "%s: kernel deltas per VM:", m.Load)
		for _, f := range []string{"SUnreclaim", "SecPageTables", "PageTables", "KernelStack", "VmallocUsed", "Percpu"} {
			if m.VMs > 0 {
				fmt.Fprintf(w, " %s %s", f, kibSigned(m.Kernel[f]/int64(m.VMs)))
			}
		}
		fmt.Fprintln(w)
	}
	if len(rep.Modes) == 2 && rep.Modes[0].LoaderPSS > rep.Modes[0].LoaderPSSAfter && rep.Ideal > 0 {
		s, n := rep.Modes[0], rep.Modes[1]
		sg, ng := s.LoaderPSS-s.LoaderPSSAfter, n.LoaderPSS-n.LoaderPSSAfter
		fmt.Fprintf(w, "naive/shared loader PSS %.2fx; shared/ideal %.2fx; naive/shared MemAvailable drop %.2fx\n",
			float64(ng)/float64(sg), float64(sg)/float64(rep.Ideal), float64(n.MemAvailableDrop)/float64(max(s.MemAvailableDrop, 1)))
	}
	for _, m := range rep.Modes {
		if m.Failed > 0 {
			return fmt.Errorf("%d %s VMs failed, e.g. %s", m.Failed, m.Load, strings.Join(m.Errors, "; "))
		}
	}
	return nil
}

func kibSigned(b int64) string { return fmt.Sprintf("%.1f KiB", float64(b)/1024) }
