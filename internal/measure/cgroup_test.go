package measure

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/cgroup"
)

func TestCgroupFiguresComeFromTheRightLinesOfEachVersion(t *testing.T) {
	v2 := map[string]uint64{"anon": 100, "file": 200, "kernel": 300, "kernel_stack": 16, "pagetables": 40, "sec_pagetables": 8,
		"slab": 90, "slab_unreclaimable": 70, "percpu": 4, "vmalloc": 12, "sock": 5, "shmem": 1, "file_mapped": 2}
	m := CgroupFromStat(v2, true, 999, 0, 0)
	want := CgroupMemory{Version: 2, Current: 999, Anon: 100, File: 200, Kernel: 300, Sock: 5, KernelStack: 16, PageTables: 40,
		SecPageTables: 8, Slab: 90, SlabUnreclaimable: 70, Percpu: 4, Vmalloc: 12, Shmem: 1, FileMapped: 2}
	if m != want {
		t.Errorf("v2:\n got %+v\nwant %+v", m, want)
	}
	// Before Linux 5.18 there is no "kernel" line: the parts add up.
	delete(v2, "kernel")
	delete(v2, "slab")
	v2["slab_reclaimable"] = 20
	if m := CgroupFromStat(v2, true, 999, 0, 0); m.Slab != 90 || m.Kernel != 16+40+8+90+4+12 {
		t.Errorf("v2 without kernel: slab %d kernel %d", m.Slab, m.Kernel)
	}
	v1 := map[string]uint64{"rss": 100, "cache": 200, "shmem": 1, "mapped_file": 2, "total_rss": 5000}
	m = CgroupFromStat(v1, false, 999, 300, 5)
	want = CgroupMemory{Version: 1, Current: 999, Anon: 100, File: 200, Kernel: 300, Sock: 5, Shmem: 1, FileMapped: 2}
	if m != want {
		t.Errorf("v1:\n got %+v\nwant %+v", m, want)
	}
}

func TestKernelPartIsTheCgroupsChargeWhereThereIsOne(t *testing.T) {
	h := Host{Instances: 10 << 20, Monitor: 2 << 20,
		Kernel: Kernel{PageTables: 1 << 20, Stacks: 1 << 20, Slab: 100 << 20, KSM: 3 << 20}}
	h.Kernel.sum()
	if h.Kernel.Source != "host-wide" || h.Kernel.Total != 102<<20 {
		t.Fatalf("host-wide: %s %d (KSM's items are in the slab rise)", h.Kernel.Source, h.Kernel.Total>>20)
	}
	h.UseCgroup(CgroupMemory{Kernel: 4 << 20, Sock: 1 << 20, Anon: 11 << 20})
	if h.Kernel.Source != "cgroup" || h.Kernel.Charged != 5<<20 || h.Kernel.Total != 8<<20 || h.Total != 20<<20 {
		t.Fatalf("cgroup: %s charged %d total %d host %d", h.Kernel.Source, h.Kernel.Charged>>20, h.Kernel.Total>>20, h.Total>>20)
	}
	if h.Kernel.ChargedRest != 3<<20 {
		t.Errorf("charged rest %d MiB, want 5 less page tables and stacks (2)", h.Kernel.ChargedRest>>20)
	}
	h.Kernel.PageTables = 6 << 20 // more than the group was charged: no rest, not an underflow
	h.UseCgroup(CgroupMemory{Kernel: 4 << 20, Sock: 1 << 20})
	if h.Kernel.ChargedRest != 0 {
		t.Errorf("charged rest %d, want 0 where page tables and stacks exceed the charge", h.Kernel.ChargedRest)
	}
}

func inGroup(t *testing.T, pid int, dir string) bool {
	t.Helper()
	h, err := cgroup.FindHierarchy()
	if err != nil {
		t.Fatal(err)
	}
	own, err := h.Own(pid)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(own) == filepath.Clean(dir)
}

func TestFleetGroupHoldsTheMonitorAndWhatItStartsAndIsChargedTheirKernelMemory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making a cgroup needs root")
	}
	h, err := cgroup.FindHierarchy()
	if err != nil {
		t.Skipf("no memory cgroup on this host: %v", err)
	}
	before, err := h.Own(0)
	if err != nil {
		t.Fatal(err)
	}
	g, err := EnterFleetGroup("test")
	if GroupsUnavailable(err) {
		t.Skipf("this host lets no process make a memory cgroup: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			g.Close()
		}
	}()
	if !inGroup(t, 0, g.Dir()) {
		t.Fatalf("this process is not in %s", g.Dir())
	}
	var kids []*exec.Cmd
	for range 20 {
		c := exec.Command("sleep", "60")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer c.Process.Kill()
		kids = append(kids, c)
	}
	procs, err := g.Procs()
	if err != nil {
		t.Fatal(err)
	}
	has := map[int]bool{}
	for _, p := range procs {
		has[p] = true
	}
	var pt, st uint64
	for _, c := range kids {
		if !has[c.Process.Pid] || !inGroup(t, c.Process.Pid, g.Dir()) {
			t.Fatalf("child %d is not in %s (%v)", c.Process.Pid, g.Dir(), procs)
		}
		p, s, err := ProcessKernel(c.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		pt, st = pt+p, st+s
	}
	time.Sleep(100 * time.Millisecond)
	m, err := g.Read()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s (v%d): current %d, anon %d, file %d, kernel %d; the 20 children's page tables %d, stacks %d",
		m.Group, m.Version, m.Current, m.Anon, m.File, m.Kernel, pt, st)
	// Each child's page tables, kernel stack, task and mm structures were
	// allocated in the group: it is charged at least their page tables
	// and stacks.
	if m.Kernel < pt+st {
		t.Errorf("the group's kernel charge %d is below its processes' page tables and stacks, %d", m.Kernel, pt+st)
	}
	if m.Current < m.Kernel {
		t.Errorf("memory.current %d below the kernel charge %d", m.Current, m.Kernel)
	}
	for _, c := range kids {
		c.Process.Kill()
		c.Wait()
	}
	closed = true
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if !inGroup(t, 0, before) {
		t.Errorf("this process did not go back to %s", before)
	}
	if _, err := os.Stat(g.Dir()); !os.IsNotExist(err) {
		t.Errorf("%s is still there: %v", g.Dir(), err)
	}
}

func TestAFleetGroupLeftByAGoneProcessIsRemoved(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making a cgroup needs root")
	}
	if _, err := cgroup.FindHierarchy(); err != nil {
		t.Skipf("no memory cgroup on this host: %v", err)
	}
	g, err := EnterFleetGroup("probe")
	if GroupsUnavailable(err) {
		t.Skipf("this host lets no process make a memory cgroup: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	parent := filepath.Dir(g.Dir())
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	// A group named for a pid that does not exist (above pid_max).
	stale := filepath.Join(parent, fleetGroupPrefix+"99999999-1-x")
	if err := os.Mkdir(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(stale)
	g, err = EnterFleetGroup("next")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", stale, err)
	}
	if !strings.HasPrefix(filepath.Base(g.Dir()), fleetGroupPrefix) {
		t.Errorf("group %s", g.Dir())
	}
}
