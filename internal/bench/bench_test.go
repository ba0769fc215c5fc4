package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestSamplerStopsWhenStable(t *testing.T) {
	s := Sampler{Period: 10 * time.Millisecond, Window: 3, Tolerance: 0.5, MaxTime: 5 * time.Second}
	ss, stableAt := s.Run(context.Background(), func() []int { return []int{os.Getpid()} })
	if len(ss) < 3 || len(ss) > 100 || ss[0].PSS == 0 {
		t.Fatalf("%d samples, first %+v", len(ss), ss[0])
	}
	if stableAt > ss[len(ss)-1].T {
		t.Fatalf("stable at %v after the last sample", stableAt)
	}
}

func TestStableSinceFindsConvergence(t *testing.T) {
	ss := []Sample{{T: 0, PSS: 1000}, {T: 1, PSS: 600}, {T: 2, PSS: 300}, {T: 3, PSS: 301}, {T: 4, PSS: 300}}
	if got := stableSince(ss, 0.01); got != 2 {
		t.Fatalf("stable since %v, want 2", got)
	}
}

func TestCensusOfTwoCopiesCountsOneContent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("pagemap needs root")
	}
	c := NewPageCensus()
	pid := os.Getpid()
	if err := c.AddProcess(pid, 0, 1<<47); err != nil {
		t.Fatal(err)
	}
	first := c.Distinct
	if err := c.AddProcess(pid, 0, 1<<47); err != nil {
		t.Fatal(err)
	}
	if c.Pages == 0 || first == 0 || c.Distinct > first+first/10 {
		t.Fatalf("pages %d distinct %d (first pass %d)", c.Pages, c.Distinct, first)
	}
}

func TestIdenticalImagesShareEveryPage(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "a.c")
	os.WriteFile(src, []byte("int v = 3; void _start(void) { for (;;) ; }\n"), 0o644)
	var imgs []string
	for _, n := range []string{"a", "b"} {
		out := filepath.Join(dir, n)
		if b, err := exec.Command("gcc", "-static", "-nostdlib", "-no-pie", "-o", out, src).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, b)
		}
		imgs = append(imgs, out)
	}
	lp, err := AnalyzeImages("packed", imgs)
	if err != nil {
		t.Fatal(err)
	}
	if lp.Unique != 0 || lp.Shareable == 0 || lp.SameAddr != lp.Shareable {
		t.Fatalf("%+v", lp)
	}
}

func TestResultsWriteAndPlot(t *testing.T) {
	dir := t.TempDir()
	r := &Results{Count: 2, Monitor: "process", IdealBytes: 1 << 20,
		Modes: []ModeResult{
			{Mode: "shared", FinalBytes: 2 << 20, Samples: []Sample{{T: 0, PSS: 2 << 20}, {T: 1, PSS: 2 << 20}}},
			{Mode: "packed-ksm", FinalBytes: 3 << 20, Samples: []Sample{{T: 0, PSS: 5 << 20}}},
		},
		Layouts: []LayoutPages{{Layout: "packed", Unique: 10, Shareable: 5, SameAddr: 1}},
	}
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	files, err := r.Plots(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, filepath.Join(dir, "results.json"), filepath.Join(dir, "memory.csv")) {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	var sb testWriter
	r.Table(&sb)
	if len(sb) == 0 {
		t.Fatal("empty table")
	}
}

type testWriter []byte

func (w *testWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }
