package trampoline

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkSiteCost measures what a rewritten site costs per execution:
// the same loop, as a host program, before and after Rewrite. Reported as
// ns per loop iteration, before and after; the difference is the
// trampoline's cost for that kind of site.
//
//	go test -run XXX -bench SiteCost ./internal/trampoline
func BenchmarkSiteCost(b *testing.B) {
	if _, err := exec.LookPath("gcc"); err != nil {
		b.Skip("gcc not installed")
	}
	dir := b.TempDir()
	src := func(names ...string) map[string]string {
		m := map[string]string{}
		for _, n := range names {
			data, err := os.ReadFile(filepath.Join("testdata", "bench", n))
			if err != nil {
				b.Fatal(err)
			}
			m[n] = string(data)
		}
		return m
	}
	libs := []testLib{
		{name: "app", app: true, srcs: src("app.c", "app_start.S")},
		{name: "a", srcs: src("liba.c", "liba_plt.c"), fileFlags: map[string][]string{"liba_plt.c": {"-fplt"}}},
		{name: "b", srcs: src("libb.c")},
	}
	buildObjects(b, dir, libs)
	before := filepath.Join(dir, "before")
	cfg := linkImage(b, dir, libs, layout1, "before")
	after := filepath.Join(dir, "after")
	data, err := os.ReadFile(before)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(after, data, 0o755); err != nil {
		b.Fatal(err)
	}
	rep, err := RewriteReport(after, cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("library a: %v", rep.Libraries[1].Sites)
	const n = 100_000_000
	run := func(img, loop string) time.Duration {
		start := time.Now()
		if out, err := exec.Command(img, loop, strconv.Itoa(n)).CombinedOutput(); err != nil {
			b.Fatalf("%s %s: %v %s", img, loop, err, out)
		}
		return time.Since(start)
	}
	for _, c := range []struct{ name, arg string }{
		{"call", "c"}, {"call-slot", "s"}, {"load", "l"}, {"mem", "m"}, {"local", "o"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				// Interleaved, best of 5: the machine is shared.
				x, y := time.Duration(1<<62), time.Duration(1<<62)
				for k := 0; k < 5; k++ {
					x, y = min(x, run(before, c.arg)), min(y, run(after, c.arg))
				}
				b.ReportMetric(float64(x.Nanoseconds())/n, "ns/iter-before")
				b.ReportMetric(float64(y.Nanoseconds())/n, "ns/iter-after")
			}
		})
	}
}
