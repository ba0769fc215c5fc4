package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/testcli"
)

// runStart starts the CLI with its stdout on a pipe the test reads as the
// run goes; stderr is collected.
func runStart(t *testing.T, bin string, args ...string) (*exec.Cmd, *bufio.Reader, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// Killed with the test binary, not left running (with its spinning
	// instances) if the test dies without its cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, bufio.NewReader(stdout), &stderr
}

// runWait waits for the CLI to end and returns its exit status.
func runWait(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("unipool run did not end within 2 minutes of its interrupt")
	}
	return -1
}

// runWaitForGuest waits until the CLI has a child process (a guest), so
// the run is under way and its interrupt handling in place.
func runWaitForGuest(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	me := strconv.Itoa(cmd.Process.Pid)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		stats, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, st := range stats {
			b, err := os.ReadFile(st)
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...: comm may hold spaces, not ')'.
			f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
			if len(f) > 1 && f[1] == me {
				return
			}
		}
	}
	t.Fatal("no guest process within a minute")
}

const runSpinBody = `puts_("spinning\n"); for (;;) ;`

// runSpinLine is what a spinning instance prints. The guest writes one
// port at a time, so an interrupt can cut its line, which is then marked.
var runSpinLine = regexp.MustCompile(`^spin/\d+: (spinning|s(p(i(n(n(i(ng?)?)?)?)?)?)? \[cut: cancelled\])\n$`)

func TestRunPrintsEachInstanceAsItEndsAndOneSummaryLineOnInterrupt(t *testing.T) {
	testcli.NeedTools(t, "gcc")
	bin := runTestBinary(t)
	dir := t.TempDir()
	hi := testcli.PlainImage(t, dir, "hi", `puts_("hi\n"); exit_(0);`)
	spin := testcli.PlainImage(t, dir, "spin", runSpinBody)
	cmd, out, stderr := runStart(t, bin, "run", "--image", hi, "--image", spin)

	// spin never ends, so a run that printed only at its end would print
	// nothing here.
	got := make(chan string, 1)
	go func() { l, _ := out.ReadString('\n'); got <- l }()
	select {
	case l := <-got:
		if l != "hi/0: hi\n" {
			t.Fatalf("first line %q, want hi's output", l)
		}
	case <-time.After(time.Minute):
		t.Fatalf("no output within a minute while spin runs; stderr %q", stderr.String())
	}
	if cmd.ProcessState != nil {
		t.Fatal("unipool ended although spin never does")
	}

	cmd.Process.Signal(os.Interrupt)
	rest, _ := io.ReadAll(out)
	code := runWait(t, cmd)
	// spin's line, if it got to print any of it before the interrupt.
	if code != 1 || len(rest) > 0 && !runSpinLine.Match(rest) {
		t.Errorf("after the interrupt: status %d, stdout %q", code, rest)
	}
	// spin is cancelled either before its process started or while it ran
	// (hi may end before spin's process exists): one of the two, once.
	m := summaryRE.FindStringSubmatch(stderr.String())
	if m == nil || m[1] != "1" || m[2] != "2" || atoi(m[3])+atoi(m[4]) != 1 || m[5] != "1" {
		t.Errorf("stderr %q, want one summary line: 1 of 2 cancelled, 1 ended before", stderr.String())
	}
}

// summaryRE is the one line an interrupted run ends with.
var summaryRE = regexp.MustCompile(`^unipool: interrupted: (\d+) of (\d+) instances cancelled \((\d+) before they started, (\d+) while running\); of the (\d+) that ended before, 0 failed, 0 exited non-zero\n$`)

func TestRunInterruptedAmongManyInstancesSummarisesTheCancelledInOneLine(t *testing.T) {
	testcli.NeedTools(t, "gcc")
	bin := runTestBinary(t)
	spin := testcli.PlainImage(t, t.TempDir(), "spin", runSpinBody)
	const n = 3000

	cmd, out, stderr := runStart(t, bin, "run", "-n", strconv.Itoa(n), "--image", spin)
	runWaitForGuest(t, cmd)
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	text, _ := io.ReadAll(out)
	if code := runWait(t, cmd); code != 1 {
		t.Errorf("status %d, want 1", code)
	}
	m := summaryRE.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("stderr is not one summary line: %q", stderr.String())
	}
	cancelled, total, unstarted, running, _ := atoi(m[1]), atoi(m[2]), atoi(m[3]), atoi(m[4]), atoi(m[5])
	if cancelled != n || total != n || unstarted+running != n {
		t.Errorf("summary counts %v, want all %d cancelled", m[1:], n)
	}
	// Every instance that ran printed its line before it was killed, and
	// every line printed is whole.
	lines := strings.SplitAfter(string(text), "\n")
	if last := lines[len(lines)-1]; last != "" {
		t.Errorf("stdout ends in a cut line %q", last)
	}
	for _, l := range lines[:len(lines)-1] {
		if !runSpinLine.MatchString(l) {
			t.Errorf("stdout line %q", l)
		}
	}
	if len(lines)-1 > running {
		t.Errorf("%d output lines from %d instances that ran", len(lines)-1, running)
	}
}

func TestRunJSONStaysOneValidListWhenInterrupted(t *testing.T) {
	testcli.NeedTools(t, "gcc")
	bin := runTestBinary(t)
	spin := testcli.PlainImage(t, t.TempDir(), "spin", runSpinBody)
	const n = 500
	cmd, out, stderr := runStart(t, bin, "run", "--json", "-n", strconv.Itoa(n), "--image", spin)
	runWaitForGuest(t, cmd)
	cmd.Process.Signal(os.Interrupt)
	text, _ := io.ReadAll(out)
	runWait(t, cmd)
	var rs []monitor.Result
	if err := json.Unmarshal(text, &rs); err != nil {
		t.Fatalf("stdout is not a JSON list: %v\n%s", err, text)
	}
	seen := map[int]bool{}
	for _, r := range rs {
		seen[r.Instance] = true
		if !r.Cancelled || r.Error == "" {
			t.Errorf("instance %d: cancelled %v, error %q", r.Instance, r.Cancelled, r.Error)
		}
	}
	if len(rs) != n || len(seen) != n {
		t.Errorf("%d results for %d distinct instances, want %d", len(rs), len(seen), n)
	}
	if !summaryRE.MatchString(stderr.String()) {
		t.Errorf("stderr is not one summary line: %q", stderr.String())
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
