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
