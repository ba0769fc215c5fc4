package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/corpus"
	"github.com/unipool/unipool/internal/testcli"
	"github.com/unipool/unipool/internal/unikraft"
)

// TestCorpusBuildFlavorUnikraftMakesAFleetThatLinkBenchSharesAligned drives
// the real binary: two Unikraft unikernels (two apps of guest/unikraft, one
// configuration: one Unikraft build, the second app an incremental make),
// built again from the cache, verified, and `link bench` over them: every
// library page of the aligned images is where the other image has it.
func TestCorpusBuildFlavorUnikraftMakesAFleetThatLinkBenchSharesAligned(t *testing.T) {
	wd, _ := os.Getwd()
	if _, err := unikraft.Find(context.Background(), "", wd); err != nil {
		if os.Getenv("UNIPOOL_REQUIRE_UNIKRAFT") != "" {
			t.Fatalf("UNIPOOL_REQUIRE_UNIKRAFT is set, but: %v", err)
		}
		t.Skipf("needs Unikraft: %v", err)
	}
	tmp := t.TempDir()
	bin := testcli.Build(t)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("unipool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := filepath.Join(tmp, "corpus")
	build := []string{"corpus", "build", "--flavor", "unikraft", "--count", "2", "--configs", "1", "--out", out, "--cache", unikraft.TestFleetCache(t)}
	run(build...)
	if got := run(build...); !strings.Contains(got, "2 Unikraft unikernels") || !strings.Contains(got, "(0 built, 1 from the cache)") {
		t.Errorf("a second build: %q", got)
	}
	run("corpus", "verify", out)
	c, err := corpus.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if c.Flavor != corpus.FlavorUnikraft || len(c.Configs) != 1 || c.Unikernels[0].App == c.Unikernels[1].App {
		t.Fatalf("corpus: flavor %q, %d configurations, apps %s and %s", c.Flavor, len(c.Configs), c.Unikernels[0].App, c.Unikernels[1].App)
	}
	for _, u := range c.Unikernels {
		if len(u.LDFragments) == 0 || u.StockImage == "" {
			t.Errorf("%s: no linker-script fragments or stock image", u.Name)
		}
		if _, err := os.Stat(filepath.Join(out, u.StockImage)); err != nil {
			t.Error(err)
		}
	}
	got := run("link", "bench", "--corpus", out)
	var aligned string
	for _, l := range strings.Split(got, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == "aligned" && strings.Contains(l, "%") {
			aligned = l
			break
		}
	}
	if !strings.Contains(aligned, "100.00%") {
		t.Errorf("link bench: aligned does not share every library page of the two images:\n%s", got)
	}
}
