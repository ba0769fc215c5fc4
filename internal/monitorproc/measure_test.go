package monitorproc

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/testcli"
	"github.com/unipool/unipool/internal/vmmproc"
)

// Measure runs each mode's fleet in a unipool-vmm process and charges it
// the instances' PSS, that process's and the kernel's; the census counts
// each as-loaded image page once however many instances hold it. The
// fleet is a pooled unikernel and a plain image that exits 7 (measured,
// not failed, counted apart).
func TestMeasureChargesInstancesTheMonitorProcessAndKernelAndCountsImagePagesOnce(t *testing.T) {
	testcli.NeedTools(t, "gcc", "ld")
	bin := testcli.Build(t)
	exe := filepath.Join(filepath.Dir(bin), vmmproc.Binary)
	pool := testcli.PooledDemo(t, bin)
	seven := testcli.PlainImage(t, t.TempDir(), "seven", `exit_(7);`)
	const n = 4
	req := vmmproc.RunRequest{Pool: pool, Monitor: "process", Names: []string{"demo"}, Images: []string{seven}, Load: monitor.LoadShared, N: n,
		Measure: true, Modes: []string{monitor.LoadShared, monitor.LoadNaive}}
	rep, err := Measure(context.Background(), exe, req, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Modes) != 2 {
		t.Fatalf("%d modes, want 2", len(rep.Modes))
	}
	shared, naive := rep.Modes[0], rep.Modes[1]
	if shared.Instances != 2*n || naive.Instances != 2*n || shared.Failed+naive.Failed != 0 {
		t.Fatalf("instances %d/%d failed %d/%d, want %d each, none failed", shared.Instances, naive.Instances, shared.Failed, naive.Failed, 2*n)
	}
	if shared.NonZero != n || naive.NonZero != n {
		t.Errorf("exited non-zero %d/%d, want %d each (the image exits 7)", shared.NonZero, naive.NonZero, n)
	}
	for _, m := range rep.Modes {
		h := m.Host
		// Every instance process has page tables of its own; the monitor
		// process has its Go runtime and its binary's pages.
		if h.Monitor < 1<<20 || h.Kernel.PageTables < 2*n*abi.PageSize || h.Total != h.Instances+h.Monitor+h.Kernel.Total {
			t.Errorf("%s: host %+v: want the monitor's MiBs, page tables of every instance, parts adding up", m.Load, h)
		}
		if m.MonitorExe != exe || m.MonitorPid == 0 {
			t.Errorf("%s: monitor %d %q, want a process of %s", m.Load, m.MonitorPid, m.MonitorExe, exe)
		}
		c := m.Census
		if c == nil || c.ImageLoaded < 2*n || c.Runtime < n {
			t.Fatalf("%s: census %+v: want the images' pages in every instance", m.Load, c)
		}
		// n instances of each image: each as-loaded content is one page
		// however many instances hold it.
		if c.LoadedDistinct*n != c.ImageLoaded {
			t.Errorf("%s: %d as-loaded image pages, %d distinct: want one in %d", m.Load, c.ImageLoaded, c.LoadedDistinct, n)
		}
	}
	// Naive loading copies the demo's library code into every instance.
	if naive.Host.Instances < shared.Host.Instances+(n-1)*abi.PageSize {
		t.Errorf("instances' PSS: naive %d, shared %d; want naive to hold the code %d times more", naive.Host.Instances, shared.Host.Instances, n-1)
	}
	if rep.Ideal != shared.Ideals.Ideal || rep.IdealLoadTime != shared.Ideals.LoadTime {
		t.Errorf("report ideals %d/%d, want the shared census's", rep.Ideal, rep.IdealLoadTime)
	}
	if shared.LoadMean <= 0 || naive.LoadMedian <= 0 {
		t.Errorf("load times %v %v, want positive", shared.LoadMean, naive.LoadMedian)
	}
}
