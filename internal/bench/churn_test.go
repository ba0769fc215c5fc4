package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/unipool/unipool/internal/cgroup"
	"github.com/unipool/unipool/internal/measure"
	"github.com/unipool/unipool/internal/monitor"
	_ "github.com/unipool/unipool/internal/monitor/process"
)

// exitImage is a plain image that exits 0 at once.
func exitImage(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "exit.S")
	os.WriteFile(src, []byte(".globl _start\n_start:\n\tmov $0x501, %dx\n\txor %eax, %eax\n\tout %eax, %dx\n\thlt\n"), 0o644)
	img := filepath.Join(dir, "exit")
	if out, err := exec.Command("gcc", "-static", "-nostdlib", "-no-pie", "-Wl,-Ttext-segment=0x400000", "-o", img, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return img
}

func TestChurnKeepsAboutRateTimesLifetimeResidentAndEndsThemAll(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the process monitor's measurements need root")
	}
	mon, err := monitor.Open("process")
	if err != nil {
		t.Fatal(err)
	}
	img := exitImage(t)
	uks := []monitor.Unikernel{{Name: "a", Image: img}, {Name: "b", Image: img}}
	c := Churn{Rate: 20, Lifetime: 1, Duration: 3}
	mr, err := runChurn(context.Background(), mon, fixed(uks), Mode{Name: "packed-stock", Load: monitor.LoadStock}, c,
		map[string]string{}, false, &logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	// About 60 arrivals, about 20 resident at a time.
	peak := 0
	for _, s := range mr.Samples {
		peak = max(peak, s.Resident)
	}
	if mr.Instances < 30 || mr.Instances > 100 || mr.Failed != 0 || peak < 5 || peak > 60 {
		t.Fatalf("%d instances, %d failed, at most %d resident: want about 60, none, about 20", mr.Instances, mr.Failed, peak)
	}
	if last := mr.Samples[len(mr.Samples)-1]; last.Resident != 0 {
		t.Fatalf("%d instances still resident at the end", last.Resident)
	}
	if mr.FinalBytes == 0 || mr.PeakBytes < mr.FinalBytes {
		t.Fatalf("steady state %d bytes, peak %d", mr.FinalBytes, mr.PeakBytes)
	}
}

func TestEachModesFleetRunsInAMemoryCgroupOfItsOwnThatTheKernelPartComesFrom(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the process monitor's measurements and cgroups need root")
	}
	if g, err := measure.EnterFleetGroup("probe"); measure.GroupsUnavailable(err) {
		t.Skipf("this host lets no process make a memory cgroup: %v", err)
	} else if err != nil {
		t.Fatal(err)
	} else if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	mon, err := monitor.Open("process")
	if err != nil {
		t.Fatal(err)
	}
	img := exitImage(t)
	var uks []monitor.Unikernel
	for i := range 8 {
		uks = append(uks, monitor.Unikernel{Name: fmt.Sprint("u", i), Image: img})
	}
	h, _ := cgroup.FindHierarchy()
	before, err := h.Own(0)
	if err != nil {
		t.Fatal(err)
	}
	var log testWriter
	mr, err := runMode(context.Background(), mon, fixed(uks), Mode{Name: "packed-stock", Load: monitor.LoadStock},
		MemoryOptions{Log: &log}, nil, nil, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if mr.Cgroup == "" {
		t.Fatalf("no cgroup: %s", log)
	}
	if mr.Instances != 8 || mr.Failed != 0 || mr.OutsideGroup != 0 {
		t.Fatalf("%d instances, %d failed, %d outside %s", mr.Instances, mr.Failed, mr.OutsideGroup, mr.Cgroup)
	}
	k := mr.Final.Kernel
	c := mr.Final.Cgroup
	if k.Source != "cgroup" || c == nil || c.Group != mr.Cgroup {
		t.Fatalf("kernel part from %q, cgroup reading %+v", k.Source, c)
	}
	t.Logf("%s: kernel charged %d (page tables %d, stacks %d per process), anon %d, file %d; PSS instances %d monitor %d",
		c.Group, k.Charged, k.PageTables, k.Stacks, c.Anon, c.File, mr.Final.Instances, mr.Final.Monitor)
	// The group held every instance process from its start: it was
	// charged their page tables and kernel stacks at least.
	if k.Charged < k.PageTables+k.Stacks || k.Total != k.Charged+k.KSM {
		t.Errorf("charged %d, below the fleet's page tables and stacks %d", k.Charged, k.PageTables+k.Stacks)
	}
	// Every anonymous page of the instances was charged to the group.
	if c.Anon < mr.Final.InstancesAnon {
		t.Errorf("the group's anonymous pages %d are fewer than the instances' Pss_Anon %d", c.Anon, mr.Final.InstancesAnon)
	}
	if own, _ := h.Own(0); own != before {
		t.Errorf("the monitor is in %s after the mode, not back in %s", own, before)
	}
	if _, err := os.Stat(mr.Cgroup); !os.IsNotExist(err) {
		t.Errorf("%s was not removed: %v", mr.Cgroup, err)
	}
}

// fixed resolves to uks.
func fixed(uks []monitor.Unikernel) func() ([]monitor.Unikernel, error) {
	return func() ([]monitor.Unikernel, error) { return uks, nil }
}
