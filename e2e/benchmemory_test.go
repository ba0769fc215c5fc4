package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestBenchMemoryCountsTheMonitorAsAProcessOfItsOwnAndNothingOfTheBench:
// `bench memory` runs each mode's process monitor as a process of its own
// in the mode's memory cgroup: the monitor column is that process's whole
// PSS (anonymous + file), and the group's anonymous charge is the
// instances' and the monitor's anonymous pages and nothing else (none of
// the bench's own heap: fleet, census, samples). shared-no-packs runs the
// same unikernels from the fleet's second pool (linked --no-packs).
func TestBenchMemoryCountsTheMonitorAsAProcessOfItsOwnAndNothingOfTheBench(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bench memory reads other processes' memory: needs root")
	}
	bin := build(t)
	dir := t.TempDir()
	env := []string{"XDG_CACHE_HOME=" + filepath.Join(dir, "cache")}
	out := filepath.Join(dir, "out")
	cli(t, bin, env, "bench", "memory", "--count", "4", "--seed", "5", "--modes", "shared,packed-naive,shared-no-packs", "--modes-layouts-only",
		"--work", filepath.Join(dir, "work"), "--out", out)
	data, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Layouts []struct {
			Layout string `json:"layout"`
		} `json:"layouts"`
		Modes []struct {
			Mode            string `json:"mode"`
			Instances       int    `json:"instances"`
			Failed          int    `json:"failed"`
			MonitorMeasured string `json:"monitor_measured"`
			Outside         int    `json:"instances_outside_cgroup"`
			Cgroup          string `json:"cgroup"`
			PerInstance     uint64 `json:"beyond_guest_per_instance_bytes"`
			Final           struct {
				InstancesAnon uint64 `json:"instances_anon_bytes"`
				Monitor       uint64 `json:"monitor_bytes"`
				MonitorAnon   uint64 `json:"monitor_anon_bytes"`
				MonitorFile   uint64 `json:"monitor_file_bytes"`
				Processes     string `json:"monitor_processes"`
				Kernel        struct {
					Total uint64 `json:"total_bytes"`
				} `json:"kernel"`
				Cgroup *struct {
					Anon uint64 `json:"anon_bytes"`
				} `json:"cgroup"`
			} `json:"final"`
		} `json:"modes"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Modes) != 3 {
		t.Fatalf("%d modes in results.json, want 3", len(res.Modes))
	}
	var layouts []string
	for _, l := range res.Layouts {
		layouts = append(layouts, l.Layout)
	}
	if !slices.Contains(layouts, "aligned-no-packs") {
		t.Errorf("page analysis of layouts %v: no aligned-no-packs", layouts)
	}
	for _, m := range res.Modes {
		f := m.Final
		t.Logf("%s: monitor %d KiB (anon %d, file %d), kernel %d KiB, %d KiB per instance beyond its pages",
			m.Mode, f.Monitor>>10, f.MonitorAnon>>10, f.MonitorFile>>10, f.Kernel.Total>>10, m.PerInstance>>10)
		if m.Instances != 4 || m.Failed != 0 || m.Outside != 0 {
			t.Errorf("%s: %d instances, %d failed, %d outside the group; want 4, 0, 0", m.Mode, m.Instances, m.Failed, m.Outside)
		}
		if m.MonitorMeasured != "process" || f.Processes != "own" {
			t.Errorf("%s: monitor measured as %q/%q, want a process of its own", m.Mode, m.MonitorMeasured, f.Processes)
		}
		// A whole process: its runtime and the binary's pages it runs.
		if f.MonitorAnon == 0 || f.MonitorFile == 0 || f.Monitor < f.MonitorAnon+f.MonitorFile {
			t.Errorf("%s: monitor %d, anon %d, file %d", m.Mode, f.Monitor, f.MonitorAnon, f.MonitorFile)
		}
		if m.PerInstance != f.Monitor/4+f.Kernel.Total/4 {
			t.Errorf("%s: %d bytes per instance beyond its pages, want (monitor + kernel) / 4", m.Mode, m.PerInstance)
		}
		if m.Cgroup == "" || f.Cgroup == nil {
			t.Logf("%s: no memory cgroup here", m.Mode)
			continue
		}
		perProcess := f.InstancesAnon + f.MonitorAnon
		diff := int64(f.Cgroup.Anon) - int64(perProcess)
		if diff < -(1<<20) || diff > 1<<20 {
			t.Errorf("%s: the group's anonymous charge %d KiB is not the instances' and the monitor's %d KiB (±1 MiB): something else is in it",
				m.Mode, f.Cgroup.Anon>>10, perProcess>>10)
		}
	}
}

// TestBenchMemoryUnderChurnCountsTheMonitorAsAProcessOfItsOwn: `bench
// memory --arrivals` runs the arrivals in a monitor process of its own
// too; every sample counts that process's whole PSS, and the instances
// resident at the time.
func TestBenchMemoryUnderChurnCountsTheMonitorAsAProcessOfItsOwn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bench memory reads other processes' memory: needs root")
	}
	bin := build(t)
	dir := t.TempDir()
	env := []string{"XDG_CACHE_HOME=" + filepath.Join(dir, "cache")}
	out := filepath.Join(dir, "out")
	cli(t, bin, env, "bench", "memory", "--count", "2", "--seed", "5", "--modes", "shared", "--modes-layouts-only",
		"--arrivals", "10", "--lifetime", "1s", "--duration", "2s", "--work", filepath.Join(dir, "work"), "--out", out)
	data, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Modes []struct {
			Instances       int    `json:"instances"`
			Failed          int    `json:"failed"`
			MonitorMeasured string `json:"monitor_measured"`
			FinalBytes      uint64 `json:"final_bytes"`
			Samples         []struct {
				Resident int `json:"resident"`
				Host     struct {
					Instances uint64 `json:"instances_bytes"`
					Monitor   uint64 `json:"monitor_bytes"`
					File      uint64 `json:"monitor_file_bytes"`
					Processes string `json:"monitor_processes"`
				} `json:"host"`
			} `json:"samples"`
		} `json:"modes"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Modes) != 1 {
		t.Fatalf("%d modes, want 1", len(res.Modes))
	}
	m := res.Modes[0]
	if m.Instances < 5 || m.Failed != 0 || m.MonitorMeasured != "process" || m.FinalBytes == 0 {
		t.Fatalf("%d instances, %d failed, monitor measured as %q, final %d: want about 20, none, a process of its own", m.Instances, m.Failed, m.MonitorMeasured, m.FinalBytes)
	}
	busy := 0
	for _, s := range m.Samples {
		if s.Resident == 0 {
			continue
		}
		busy++
		// A whole process, the binary's pages it runs included.
		if s.Host.Processes != "own" || s.Host.File == 0 || s.Host.Instances == 0 {
			t.Errorf("a sample with %d resident: instances %d, monitor %d (file %d) counted as %q", s.Resident, s.Host.Instances, s.Host.Monitor, s.Host.File, s.Host.Processes)
		}
	}
	if busy == 0 {
		t.Errorf("no sample saw an instance resident")
	}
}
