package ksm

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeDir stands in for sysfs only to check that Restore puts every value
// back; the real KSM is exercised by the benchmarks.
func fakeDir(t *testing.T) {
	t.Helper()
	old := Dir
	Dir = t.TempDir()
	t.Cleanup(func() { Dir = old })
	for name, v := range map[string]string{"run": "0", "pages_to_scan": "100", "sleep_millisecs": "20",
		"pages_shared": "0", "pages_sharing": "0", "pages_unshared": "0", "pages_volatile": "0", "full_scans": "3"} {
		os.WriteFile(filepath.Join(Dir, name), []byte(v+"\n"), 0o644)
	}
}

func TestRestorePutsSettingsBack(t *testing.T) {
	fakeDir(t)
	s, err := Start(1000, 10)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := read("run"); v != "1" {
		t.Fatalf("run=%s after Start", v)
	}
	if v, _ := read("pages_to_scan"); v != "1000" {
		t.Fatalf("pages_to_scan=%s", v)
	}
	if err := s.Restore(); err != nil {
		t.Fatal(err)
	}
	s.Restore()
	for name, want := range map[string]string{"run": "0", "pages_to_scan": "100", "sleep_millisecs": "20"} {
		if v, _ := read(name); v != want {
			t.Errorf("%s=%s after Restore, want %s", name, v, want)
		}
	}
}

func TestCountersRead(t *testing.T) {
	fakeDir(t)
	c, err := Read()
	if err != nil || c.FullScans != 3 {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestMissingKSMIsAClearError(t *testing.T) {
	old := Dir
	Dir = filepath.Join(t.TempDir(), "none")
	defer func() { Dir = old }()
	if err := Available(); err == nil {
		t.Fatal("missing KSM not reported")
	}
}

func TestMergeableListsProcessesWithMergeableMemoryButNotSkippedOnes(t *testing.T) {
	old := ProcDir
	ProcDir = t.TempDir()
	t.Cleanup(func() { ProcDir = old })
	proc := func(pid, comm, stat string) {
		d := filepath.Join(ProcDir, pid)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "comm"), []byte(comm+"\n"), 0o644)
		if stat != "" {
			os.WriteFile(filepath.Join(d, "ksm_stat"), []byte(stat), 0o644)
		}
	}
	proc("10", "qemu-system-x86", "ksm_rmap_items 0\nksm_zero_pages 0\nksm_merging_pages 0\nksm_process_profit 0\nksm_merge_any: no\nksm_mergeable: yes\n")
	proc("11", "bash", "ksm_rmap_items 0\nksm_merge_any: no\nksm_mergeable: no\n")
	proc("12", "old", "ksm_rmap_items 512\nksm_zero_pages 0\n") // a kernel without ksm_mergeable
	proc("13", "instance", "ksm_rmap_items 40\nksm_mergeable: yes\n")
	proc("14", "nostat", "")
	os.MkdirAll(filepath.Join(ProcDir, "self"), 0o755)
	got, err := Mergeable(map[int]bool{13: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (Process{Pid: 10, Command: "qemu-system-x86"}) || got[1] != (Process{Pid: 12, Command: "old", RmapItems: 512}) {
		t.Fatalf("Mergeable = %+v, want qemu (10) and old (12)", got)
	}
}
