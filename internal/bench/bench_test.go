package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/ksm"
	"github.com/unipool/unipool/internal/measure"
	"github.com/unipool/unipool/internal/tlbtrace"
)

func TestSamplerStopsOnceTheHostTotalIsStable(t *testing.T) {
	// Memory falls from 100 to 40 over six samples, then holds.
	seq := []uint64{100, 90, 80, 60, 50, 40}
	i := 0
	s := Sampler{Period: time.Millisecond, Window: 3, Tolerance: 0.01, MaxTime: 10 * time.Second}
	ss, stableAt := s.Run(context.Background(), func() (measure.Host, int) {
		v := seq[min(i, len(seq)-1)]
		i++
		return measure.Host{Total: v, Instances: v / 2}, 0
	})
	if len(ss) != 8 || ss[len(ss)-1].Bytes() != 40 || ss[0].PSS != 50 {
		t.Fatalf("%d samples, last %d, first PSS %d: want 8, 40, 50", len(ss), ss[len(ss)-1].Bytes(), ss[0].PSS)
	}
	if stableAt != ss[5].T {
		t.Fatalf("stable at %v, want the sixth sample's %v", stableAt, ss[5].T)
	}
}

func TestStableSinceFindsConvergence(t *testing.T) {
	ss := []Sample{{T: 0, PSS: 1000}, {T: 1, PSS: 600}, {T: 2, PSS: 300}, {T: 3, PSS: 301}, {T: 4, PSS: 300}}
	if got := stableSince(ss, 0.01); got != 2 {
		t.Fatalf("stable since %v, want 2", got)
	}
}

func TestRemoteShootdownsAreChargedToTheProcessThatIssuedThem(t *testing.T) {
	const ksmd, self, inst, stranger = 37, 1000, 2001, 3000
	c := tlbtrace.Counts{ByTGID: map[int]map[string]uint64{
		ksmd:     {tlbtrace.RemoteSend: 30, tlbtrace.LocalShootdown: 5},
		self:     {tlbtrace.RemoteSend: 4, tlbtrace.RemoteReceived: 50, tlbtrace.TaskSwitch: 9},
		inst:     {"remote ipi send": 2, tlbtrace.LocalMMShootdown: 7, tlbtrace.RemoteWrongCPU: 1},
		stranger: {tlbtrace.RemoteSend: 6},
	}}
	got := classifyFlushes(c, ksmd, self, []int{inst}, 2)
	want := map[string]uint64{"ksmd": 30, "monitor": 4, "instances": 2, "other": 6}
	for k, v := range want {
		if got.Remote[k] != v || got.RemotePerSecond[k] != float64(v)/2 {
			t.Errorf("%s: %d remote (%.1f/s), want %d", k, got.Remote[k], got.RemotePerSecond[k], v)
		}
	}
	// Flushes received from other CPUs name no issuer: the monitor's 50
	// are nobody's shootdowns.
	if got.Received != 51 || got.TaskSwitch != 9 || got.Local["ksmd"] != 5 || got.Local["instances"] != 7 || got.RemoteTotal() != 42 {
		t.Errorf("%+v", got)
	}
}

func TestFleetIdealsComeFromTheSharedModesCensus(t *testing.T) {
	r := &Results{Modes: []ModeResult{
		{Mode: "packed-naive", Census: &measure.Counts{Pages: 9}, Ideals: &measure.Ideals{Ideal: 1, LoadTime: 2}},
		{Mode: "shared", Census: &measure.Counts{Pages: 5, Distinct: 3}, Ideals: &measure.Ideals{Ideal: 3 << 12, LoadTime: 4 << 12, Zero: 1 << 12}},
	}}
	r.setIdeals()
	if r.IdealMode != "shared" || r.IdealBytes != 3<<12 || r.IdealLoadBytes != 4<<12 || r.ZeroBytes != 1<<12 || r.IdealNote == "" {
		t.Fatalf("%+v", r)
	}
}

func TestIdenticalImagesShareEveryPage(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "a.c")
	os.WriteFile(src, []byte("int v = 3; char big[8192]; void _start(void) { big[v] = 1; for (;;) ; }\n"), 0o644)
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
	// Two identical images: no page is unique, every non-zero page has
	// its twin at its address, and the 8 KiB of bss are counted apart.
	if lp.Unique != 0 || lp.Shareable == 0 || lp.SameAddr != lp.Shareable || lp.Zero < 2*2 {
		t.Fatalf("%+v", lp)
	}
}

func TestResultsWriteAndPlot(t *testing.T) {
	dir := t.TempDir()
	r := &Results{Count: 2, Monitor: "process", IdealBytes: 1 << 20, IdealLoadBytes: 2 << 20,
		Modes: []ModeResult{
			{Mode: "shared", FinalBytes: 2 << 20, Samples: []Sample{{T: 0, Host: measure.Host{Total: 2 << 20}}, {T: 1, Host: measure.Host{Total: 2 << 20}}}},
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

// logWriter writes a test's log.
type logWriter struct{ t *testing.T }

func (w *logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestKernelTableUnderChurnShowsThePeakSampleNotTheEmptyFinalOne(t *testing.T) {
	peak := measure.Host{Total: 9 << 20, Kernel: measure.Kernel{Source: "cgroup", Charged: 3 << 20, Total: 3 << 20},
		Cgroup: &measure.CgroupMemory{Anon: 5 << 20}}
	r := &Results{Churn: &Churn{Rate: 1}, Modes: []ModeResult{{Mode: "shared",
		Samples: []Sample{{Host: measure.Host{Total: 1 << 20}}, {Host: peak}, {}}}}}
	var sb testWriter
	r.KernelTable(&sb)
	if !strings.Contains(string(sb), "shared  cgroup     3.0            3.0") {
		t.Fatalf("no peak row in\n%s", sb)
	}
}

func TestAKSMModeThatEndsBeforeKsmdFinishedItsScansSaysItDidNotConverge(t *testing.T) {
	samples := func(scans ...uint64) []Sample {
		var ss []Sample
		for _, n := range scans {
			ss = append(ss, Sample{KSM: &ksm.Counters{FullScans: n}})
		}
		return ss
	}
	m := Mode{Name: "aligned-ksm", KSM: true}
	var log strings.Builder
	slow := &ModeResult{Samples: samples(7, 7, 7, 8), KSMOthers: []ksm.Process{{Pid: 42, Command: "qemu-system-x86", RmapItems: 300000}}}
	slow.ksmVerdict(m, 90*time.Second, &log)
	if !slow.KSMNotConverged || slow.KSMFullScans != 1 || !strings.Contains(log.String(), "NOT CONVERGED") || !strings.Contains(log.String(), "qemu-system-x86 (pid 42") {
		t.Fatalf("one full scan in the wait: converged=%v scans=%d, log %q", !slow.KSMNotConverged, slow.KSMFullScans, log.String())
	}
	log.Reset()
	done := &ModeResult{Samples: samples(7, 9, 10, 12)}
	done.ksmVerdict(m, 90*time.Second, &log)
	if done.KSMNotConverged || done.KSMFullScans != 5 || log.Len() != 0 {
		t.Fatalf("five full scans: converged=%v scans=%d, log %q", !done.KSMNotConverged, done.KSMFullScans, log.String())
	}
}
