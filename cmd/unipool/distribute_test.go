package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/bench"
	"github.com/unipool/unipool/internal/testcli"
)

// TestBenchDistributeShipsAFleetBothWaysThroughARealRegistry drives the
// real binary: a fleet of 3 unikernels and 1 added, through Debian's
// docker-registry with TLS and a password, as a pool and as whole images,
// then a pull killed twice and rerun.
func TestBenchDistributeShipsAFleetBothWaysThroughARealRegistry(t *testing.T) {
	for _, tool := range []string{"gcc", "ld", "objcopy", "docker-registry"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (scripts/deps.sh installs it): %v", tool, err)
		}
	}
	tmp := t.TempDir()
	bin := testcli.Build(t)
	out := filepath.Join(tmp, "out")
	cmd := exec.Command(bin, "bench", "distribute", "--count", "3", "--add", "1", "--kills", "2", "--out", out)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench distribute: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	data, err := os.ReadFile(filepath.Join(out, "distribute.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r bench.DistributeResults
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Shipments) != 4 || !r.Verified || r.Kill == nil || !r.Kill.Verified || r.Kill.Unikernels != 3 {
		t.Fatalf("results: %s", data)
	}
	for _, s := range r.Shipments {
		if s.BytesIn <= 0 || s.Requests <= 0 || s.Blobs <= 0 {
			t.Errorf("%s %s: nothing counted: %+v", s.Step, s.Method, s)
		}
	}
	if !strings.Contains(stdout.String(), "whole images / pool") {
		t.Errorf("no comparison in the table:\n%s", stdout.String())
	}
}
