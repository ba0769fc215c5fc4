// Package demo is the main job a newcomer runs (`make demo`): build a
// fleet of FaaS unikernels, pool them, run them all with load-time sharing
// and with naive loading, and show what they printed and what memory each
// way costs against the ideal.
package demo

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/unipool/unipool/internal/bench"
	"github.com/unipool/unipool/internal/link"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/monitor/microvm"
)

// Options are the demo's flags.
type Options struct {
	Count int
	Seed  uint64
	Out   string
	Jobs  int
	KVM   string // "auto", "on", "off"
}

// Run runs the demo, printing the summary to out and progress to log.
func Run(ctx context.Context, o Options, out, log io.Writer) error {
	start := time.Now()
	modes := []bench.Mode{
		{Name: "shared", Load: monitor.LoadShared},
		bench.NaiveMode,
	}
	// packed and dce too: the page chart compares the three layouts.
	fleet, err := bench.BuildFleet(ctx, bench.FleetOptions{Count: o.Count, Seed: o.Seed,
		Work: filepath.Join(o.Out, "work"), Jobs: o.Jobs, Log: log, Layouts: []string{link.LayoutPacked, link.LayoutDCE}})
	if err != nil {
		return err
	}
	res, err := bench.Memory(ctx, bench.MemoryOptions{Seed: o.Seed, Monitor: "process",
		Modes: modes, Out: o.Out, Log: log, Fleet: fleet})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%d FaaS unikernels (%d apps), process monitor, one instance each:\n", res.Count, res.Apps)
	for _, m := range res.Modes {
		fmt.Fprintf(out, "  %-7s %d/%d printed their expected line\n", m.Mode, m.Instances-m.Failed, m.Instances)
	}
	fmt.Fprintln(out, "\nwhat the host pays, all resident (instances' PSS + the monitor process's PSS + kernel: page tables, stacks, slab):")
	res.Table(out)
	if len(res.Modes) == 2 && res.Modes[0].FinalBytes > 0 {
		fmt.Fprintf(out, "\nsharing at load time costs the host %.1fx less than naive loading; the ideal for load-time sharing is %.1f MiB "+
			"(every as-loaded image page once, every written and run-time page in full), %.1f MiB if every identical page were merged; "+
			"all-zero pages (%.1f MiB) are in neither\n",
			float64(res.Modes[1].FinalBytes)/float64(res.Modes[0].FinalBytes), float64(res.IdealLoadBytes)/(1<<20), float64(res.IdealBytes)/(1<<20),
			float64(res.ZeroBytes)/(1<<20))
	}
	fmt.Fprintln(out, "\nNo ksmd runs here, so no shootdown is ksmd's: load-time sharing needs no scanning. The instances' come from")
	fmt.Fprintln(out, "the system calls that build their address spaces (munmap, mprotect), the monitor's from its own memory")
	fmt.Fprintln(out, "management (the Go runtime), and \"other\" is every other process on this host:")
	res.TLBTable(out)
	if o.KVM != "off" {
		if err := microvm.Usable(); err != nil {
			if o.KVM == "on" {
				return fmt.Errorf("demo: KVM monitor: %w", err)
			}
			fmt.Fprintf(out, "\nKVM monitor skipped: %v (scripts/kvmhost runs it in an emulated KVM host)\n", err)
		} else {
			kres, err := bench.Memory(ctx, bench.MemoryOptions{Seed: o.Seed, Monitor: "kvm",
				Modes: modes, Out: filepath.Join(o.Out, "kvm"), Log: log, Fleet: fleet})
			if err != nil {
				return fmt.Errorf("demo: KVM monitor: %w", err)
			}
			fmt.Fprintln(out, "\nKVM monitor (all VMs in one loader process: its growth beyond its own baseline, split as above):")
			kres.Table(out)
		}
	}
	fmt.Fprintf(out, "\nplot: %s   results: %s   (%.0f s in all)\n", filepath.Join(o.Out, "memory.png"),
		filepath.Join(o.Out, "results.json"), time.Since(start).Seconds())
	return nil
}
