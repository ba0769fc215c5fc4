package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/corpus"
	"github.com/unipool/unipool/internal/progress"
	"github.com/unipool/unipool/internal/testcli"
)

// TestCorpusBuildCLIMakesLinkableUnikernelsFromTheEmbeddedTree drives the
// real binary on the real (embedded) guest tree: build, rebuild from the
// cache, verify, and a stock final link of every unikernel with GNU ld.
func TestCorpusBuildCLIMakesLinkableUnikernelsFromTheEmbeddedTree(t *testing.T) {
	for _, tool := range []string{"gcc", "ld", "objcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian gcc/binutils; scripts/deps.sh installs them): %v", tool, err)
		}
	}
	tmp := t.TempDir()
	bin := testcli.Build(t)
	out, cache := filepath.Join(tmp, "corpus"), filepath.Join(tmp, "cache")
	run := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("unipool %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	build := []string{"corpus", "build", "--count", "5", "--seed", "3", "--out", out, "--cache", cache}
	start := time.Now()
	stdout, stderr := run(build...)
	took := time.Since(start)
	if !strings.Contains(stdout, "corpus: 5 unikernels") {
		t.Errorf("build said %q", stdout)
	}
	if !strings.Contains(stderr, "corpus objects: ") || !strings.Contains(stderr, ", finished in ") {
		t.Errorf("no progress on a non-terminal stderr: %q", stderr)
	}
	// A pipe gets plain lines, not a bar redrawn with carriage returns.
	// At most: the first, one per tenth, one per 10 s, the last.
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if strings.ContainsAny(stderr, "\r\x1b") || len(lines) > 12+int(took/progress.Every)+1 {
		t.Errorf("progress on a pipe is not a few plain lines: %q", stderr)
	}
	for _, l := range lines {
		if len(l) > 100 {
			t.Errorf("progress line of %d characters: %q", len(l), l)
		}
	}
	first, err := os.ReadFile(filepath.Join(out, corpus.FileName))
	if err != nil {
		t.Fatal(err)
	}

	stdout, _ = run(build...)
	if !strings.Contains(stdout, " 0 built") {
		t.Errorf("a rebuild with a warm cache built objects: %q", stdout)
	}
	second, err := os.ReadFile(filepath.Join(out, corpus.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != string(second) {
		t.Error("the rebuild wrote another corpus.json")
	}
	run("corpus", "verify", out)

	c, err := corpus.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range c.Unikernels {
		elf := filepath.Join(tmp, u.Name+".elf")
		args := append([]string{"-static", "-nostdlib", "-e", "_start", "-o", elf}, c.Objects(&u)...)
		if msg, err := exec.Command("ld", args...).CombinedOutput(); err != nil {
			t.Errorf("%s: ld: %v\n%s", u.Name, err, msg)
		}
	}

	// A broken guest tree is reported by file.
	bad := filepath.Join(tmp, "guest")
	if err := os.MkdirAll(filepath.Join(bad, "apps", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "apps", "x", "app.json"), []byte(`{"name": "x", "cases": 3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "corpus", "build", "--count", "1", "--guest", bad, "--out", filepath.Join(tmp, "bad"), "--cache", cache)
	msg, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "apps/x/app.json") {
		t.Errorf("bad app.json: %v, %q; want a failure naming apps/x/app.json", err, msg)
	}
}
