package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/testcli"
)

// End-to-end tests of `unipool run`: the real CLI, images and objects
// built with the system's gcc and ld, the pool on disk.

// runTestBinary compiles unipool (and unipool-vmm beside it) into the
// test's temporary folder.
func runTestBinary(t *testing.T) string {
	t.Helper()
	return testcli.Build(t)
}

// runCLI runs the unipool binary and returns stdout, stderr and its exit
// status; a run that hangs fails the test within testcli.Limit, naming it.
func runCLI(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	return testcli.Run(t, testcli.Limit, nil, bin, args...)
}

func TestRunPrintsAnImagesOutputAndExitsZero(t *testing.T) {
	testcli.NeedTools(t, "gcc")
	bin := runTestBinary(t)
	img := testcli.PlainImage(t, t.TempDir(), "hello", `puts_("hello from an image\n"); exit_(0);`)
	stdout, stderr, code := runCLI(t, bin, "run", "--image", img)
	if code != 0 || stdout != "hello from an image\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = runCLI(t, bin, "run", "--hold", "100ms", "--image", img)
	if code != 0 || stdout != "hello from an image\n" || !strings.Contains(stderr, "holding 1 finished instances resident for 100ms (pids ") {
		t.Fatalf("--hold: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = runCLI(t, bin, "run", "-n", "3", "--image", img)
	// Each instance's lines come as it ends, so in any order.
	lines := strings.SplitAfter(stdout, "\n")
	sort.Strings(lines)
	want := "hello/0: hello from an image\nhello/1: hello from an image\nhello/2: hello from an image\n"
	if code != 0 || strings.Join(lines, "") != want {
		t.Fatalf("-n 3: exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, want)
	}
}

func TestRunExitsNonZeroWhenAnInstanceDoesAndSaysWhich(t *testing.T) {
	testcli.NeedTools(t, "gcc")
	bin := runTestBinary(t)
	dir := t.TempDir()
	three := testcli.PlainImage(t, dir, "three", `exit_(3);`)
	scribble := testcli.PlainImage(t, dir, "scribble", `*(volatile char *)(unsigned long)_start = 0; exit_(0);`)
	_, stderr, code := runCLI(t, bin, "run", "--image", three)
	if code != 1 || !strings.Contains(stderr, "instance 0 of three: exit code 3") {
		t.Errorf("exit 3 guest: status %d, stderr %q", code, stderr)
	}
	_, stderr, code = runCLI(t, bin, "run", "--image", scribble)
	if code != 1 || !strings.Contains(stderr, "instance 0 of scribble: write to read-only code at 0x40") {
		t.Errorf("self-writing guest: status %d, stderr %q", code, stderr)
	}
}

func TestRunJSONReportsEachInstance(t *testing.T) {
	testcli.NeedTools(t, "gcc")
	bin := runTestBinary(t)
	img := testcli.PlainImage(t, t.TempDir(), "hi", `puts_("hi\n"); exit_(0);`)
	stdout, stderr, code := runCLI(t, bin, "run", "--json", "-n", "2", "--image", img)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var rs []monitor.Result
	if err := json.Unmarshal([]byte(stdout), &rs); err != nil {
		t.Fatalf("--json output %q: %v", stdout, err)
	}
	if len(rs) != 2 {
		t.Fatalf("%d results, want 2", len(rs))
	}
	seen := map[int]bool{}
	for i, r := range rs {
		seen[r.Instance] = true
		if r.Output != "hi\n" || r.ExitCode != 0 || r.PID <= 0 || r.LoadTime <= 0 || r.Cancelled {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	if !seen[0] || !seen[1] {
		t.Errorf("instances reported: %v, want 0 and 1", seen)
	}
}

func TestRunUnknownNameSaysHowToListThePool(t *testing.T) {
	testcli.NeedTools(t, "gcc", "ld")
	bin := runTestBinary(t)
	pool := testcli.PooledDemo(t, bin)
	_, stderr, code := runCLI(t, bin, "run", "--pool", pool, "nosuch")
	if code != 1 || !strings.Contains(stderr, `no unikernel "nosuch"`) || !strings.Contains(stderr, "unipool pool ls") {
		t.Fatalf("status %d, stderr %q", code, stderr)
	}
}

func TestRunPooledUnikernelSharedNaiveAndASLR(t *testing.T) {
	testcli.NeedTools(t, "gcc", "ld")
	bin := runTestBinary(t)
	pool := testcli.PooledDemo(t, bin)
	want := "hello from libgreet\nhello from libgreet\n"
	for _, flags := range [][]string{{}, {"--load", "naive"}, {"--load", "naive", "--ksm"}, {"--aslr"}} {
		args := append([]string{"run", "--pool", pool, "--json", "-n", "2"}, flags...)
		stdout, stderr, code := runCLI(t, bin, append(args, "demo")...)
		if code != 0 {
			t.Fatalf("%v: status %d, stderr %q", flags, code, stderr)
		}
		var rs []monitor.Result
		if err := json.Unmarshal([]byte(stdout), &rs); err != nil {
			t.Fatalf("%v: %v", flags, err)
		}
		for _, r := range rs {
			if r.Output != want || r.Bases["greet"] == 0 {
				t.Errorf("%v: instance %d: output %q, bases %v", flags, r.Instance, r.Output, r.Bases)
			}
		}
		if len(flags) == 1 && rs[0].Bases["greet"] == rs[1].Bases["greet"] {
			t.Errorf("--aslr: both instances have greet at %#x", rs[0].Bases["greet"])
		}
	}
}

// run --measure measures, per load mode, a monitor process of its own:
// the lean binary unipool-vmm beside unipool (the one run execs), not the
// CLI; without it, it says where it looked and how to build it.
func TestRunMeasureMeasuresAUnipoolVMMProcessPerMode(t *testing.T) {
	testcli.NeedTools(t, "gcc", "ld")
	bin := runTestBinary(t)
	pool := testcli.PooledDemo(t, bin)
	stdout, stderr, code := runCLI(t, bin, "run", "--pool", pool, "--measure", "--json", "-n", "3", "demo")
	if code != 0 {
		t.Fatalf("status %d, stderr %q", code, stderr)
	}
	var rep struct {
		Modes []struct {
			Load       string `json:"load"`
			Instances  int    `json:"instances"`
			Failed     int    `json:"failed"`
			MonitorPid int    `json:"monitor_pid"`
			MonitorExe string `json:"monitor_exe"`
			Host       struct {
				Instances uint64 `json:"instances_bytes"`
				Monitor   uint64 `json:"monitor_bytes"`
			} `json:"host"`
		} `json:"modes"`
		Ideal uint64 `json:"ideal_bytes"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	vmm := filepath.Join(filepath.Dir(bin), "unipool-vmm")
	if len(rep.Modes) != 2 || rep.Modes[0].Load != monitor.LoadShared || rep.Modes[1].Load != monitor.LoadNaive || rep.Ideal == 0 {
		t.Fatalf("report %+v: want shared then naive, an ideal", rep)
	}
	pids := map[int]bool{}
	for _, m := range rep.Modes {
		if m.Instances != 3 || m.Failed != 0 || m.Host.Monitor == 0 || m.Host.Instances == 0 {
			t.Errorf("%s: %+v: want 3 instances measured, a monitor and instances PSS", m.Load, m)
		}
		if m.MonitorExe != vmm || m.MonitorPid == 0 || pids[m.MonitorPid] {
			t.Errorf("%s: monitor pid %d, executable %q: want a process of its own running %s", m.Load, m.MonitorPid, m.MonitorExe, vmm)
		}
		pids[m.MonitorPid] = true
	}
	stdout, stderr, code = runCLI(t, bin, "run", "--pool", pool, "--measure", "--load", "naive", "demo")
	if code != 0 || !strings.Contains(stdout, "naive: monitor = the monitor process ") || !strings.Contains(stdout, "("+vmm+")") ||
		strings.Contains(stdout, "shared") {
		t.Fatalf("--load naive: status %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// unipool alone: no lean binary to measure.
	alone := filepath.Join(t.TempDir(), "unipool")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, data, 0o755); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(filepath.Dir(alone), "unipool-vmm")
	_, stderr, code = runCLI(t, alone, "run", "--pool", pool, "--measure", "demo")
	if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "make build") {
		t.Fatalf("without unipool-vmm: status %d, stderr %q: want an error naming %s and `make build`", code, stderr, want)
	}
}

func TestRunRefusesACorruptPoolBlobNamingIt(t *testing.T) {
	testcli.NeedTools(t, "gcc", "ld")
	bin := runTestBinary(t)
	pool := testcli.PooledDemo(t, bin)
	stdout, stderr, code := runCLI(t, bin, "pool", "inspect", "--pool", pool, "--json", "demo")
	if code != 0 {
		t.Fatalf("pool inspect: %d %s", code, stderr)
	}
	var d struct {
		Blobs []struct {
			Role, Library, Digest string
		}
	}
	if err := json.Unmarshal([]byte(stdout), &d); err != nil {
		t.Fatal(err)
	}
	// greet's code: its own blob, or (a small library) its pack's page.
	var greet, lib string
	for _, b := range d.Blobs {
		if b.Role == "shared" && (b.Library == "greet" || strings.HasPrefix(b.Library, "pack-")) {
			greet, lib = b.Digest, b.Library
		}
	}
	if greet == "" {
		t.Fatalf("no shared blob of greet in %s", stdout)
	}
	file := filepath.Join(pool, "blobs", "sha256", strings.TrimPrefix(greet, "sha256:"))
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data[0] ^= 0xff
	os.Chmod(file, 0o644)
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = runCLI(t, bin, "run", "--pool", pool, "demo")
	if code != 1 || !strings.Contains(stderr, "library "+lib) || !strings.Contains(stderr, greet) ||
		!strings.Contains(stderr, "does not match its digest") || !strings.Contains(stderr, "`unipool pool add` of its image again") {
		t.Fatalf("status %d, stderr %q", code, stderr)
	}

	// What the error says repairs it does.
	img := filepath.Join(filepath.Dir(pool), "demo.elf")
	if _, stderr, code := runCLI(t, bin, "pool", "add", "--pool", pool, "--name", "demo", img); code != 0 {
		t.Fatalf("pool add again: status %d: %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, bin, "pool", "verify", "--pool", pool); code != 0 {
		t.Fatalf("pool verify after the repair: status %d: %s", code, stderr)
	}
	if stdout, stderr, code := runCLI(t, bin, "run", "--pool", pool, "demo"); code != 0 || stdout != "hello from libgreet\nhello from libgreet\n" {
		t.Fatalf("run after the repair: status %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestCorpusUnikernelsPrintTheirExpectedLine is the whole pipeline through
// the CLI: corpus build, aligned link into a pool, pool add, then run each
// unikernel with its input (plain, and with --aslr) and find its expect
// line in the output.
func TestCorpusUnikernelsPrintTheirExpectedLine(t *testing.T) {
	testcli.NeedTools(t, "gcc", "ld", "objcopy")
	bin := runTestBinary(t)
	dir := t.TempDir()
	corpusDir, pool := filepath.Join(dir, "corpus"), filepath.Join(dir, "pool")
	if _, stderr, code := runCLI(t, bin, "corpus", "build", "--count", "3", "--seed", "5", "--out", corpusDir); code != 0 {
		t.Fatalf("corpus build: status %d: %s", code, stderr)
	}
	data, err := os.ReadFile(filepath.Join(corpusDir, "corpus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Unikernels []struct{ Name, Input, Expect string }
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	for _, u := range c.Unikernels {
		img := filepath.Join(dir, u.Name+".elf")
		if _, stderr, code := runCLI(t, bin, "link", "--layout", "aligned", "--pool", pool, "--corpus", corpusDir, "--unikernel", u.Name, "-o", img); code != 0 {
			t.Fatalf("link %s: status %d: %s", u.Name, code, stderr)
		}
		if _, stderr, code := runCLI(t, bin, "pool", "add", "--pool", pool, "--name", u.Name, img); code != 0 {
			t.Fatalf("pool add %s: status %d: %s", u.Name, code, stderr)
		}
		for _, c := range []struct {
			flags []string
			n     int
		}{{nil, 1}, {[]string{"--aslr", "-n", "2"}, 2}} {
			flags := c.flags
			args := append([]string{"run", "--pool", pool, "--timeout", "60s", "--cmdline", u.Input}, flags...)
			stdout, stderr, code := runCLI(t, bin, append(args, u.Name)...)
			found := 0
			for _, line := range strings.Split(stdout, "\n") {
				if strings.HasSuffix(line, u.Expect) && u.Expect != "" {
					found++
				}
			}
			if code != 0 || found != c.n {
				t.Errorf("%s %v: status %d, %d lines end with %q\nstdout %q\nstderr %q", u.Name, flags, code, found, u.Expect, stdout, stderr)
			}
		}
	}
}
