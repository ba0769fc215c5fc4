package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/testcli"
)

// serveFleet pools count small unikernels app0..app(count-1) sharing the
// library libcount: appK prints "appK: N" (N computed through the
// library) and exits 0; app0 first spins for about spin of wall time
// (rdtsc), so that it can be caught running. It returns the pool and each
// name's expected output.
// serveFleet pools count small unikernels app0..; app0 spins for about
// spinSeconds of wall-clock time (the TSC's, whatever the load) first.
func serveFleet(t *testing.T, bin, dir string, count, spinSeconds int) (string, map[string]string) {
	t.Helper()
	pool := filepath.Join(dir, "pool")
	lib := testcli.Object(t, dir, "libcount", testcli.GuestIO+`
unsigned long count_calls;
unsigned long count_square(unsigned long k) { count_calls++; return k * k + count_calls; }
`)
	want := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, count)
	objs := make([]string, count)
	for k := range count {
		spin := ""
		if k == 0 {
			// At 2.5 GHz of TSC.
			spin = fmt.Sprintf(`unsigned long t0 = rdtsc_(); while (rdtsc_() - t0 < %dUL) ;`, uint64(spinSeconds)*2500000000)
		}
		objs[k] = testcli.Object(t, dir, fmt.Sprintf("app%d", k), testcli.GuestIO+fmt.Sprintf(`
unsigned long count_square(unsigned long k);
void _start(void) { %s puts_("app%d: "); putn_(count_square(%d)); puts_("\n"); exit_(0); }
`, spin, k, k))
		want[fmt.Sprintf("app%d", k)] = fmt.Sprintf("app%d: %d\n", k, k*k+1)
	}
	// Links of one pool hold its map lock in turn; two at a time keep
	// both cores busy.
	sem := make(chan struct{}, 2)
	for k := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("app%d", k)
			img := filepath.Join(dir, name+".elf")
			for _, args := range [][]string{
				{"link", "--layout", "aligned", "--pool", pool, "-o", img, lib, objs[k]},
				{"pool", "add", "--pool", pool, "--name", name, img},
			} {
				if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
					errs <- fmt.Errorf("unipool %v: %v\n%s", args, err, out)
					return
				}
			}
			mu.Lock()
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return pool, want
}

type instance struct {
	ID        uint64 `json:"id"`
	State     string `json:"state"`
	Unikernel string `json:"unikernel"`
	Instance  int    `json:"instance"`
	PID       int    `json:"pid"`
	ExitCode  int    `json:"exit_code"`
	Output    string `json:"output"`
	Error     string `json:"error"`
}

// startDaemon runs `unipool serve` on a socket in dir and waits until it
// answers.
func startDaemon(t *testing.T, bin, pool, sock string, args ...string) *exec.Cmd {
	t.Helper()
	d := exec.Command(bin, append([]string{"serve", "--socket", sock, "--pool", pool}, args...)...)
	var stderr bytes.Buffer
	d.Stderr = &stderr
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Process.Kill()
		d.Wait()
		if t.Failed() {
			t.Logf("daemon's stderr:\n%s", stderr.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := exec.Command(bin, "ps", "--host", sock).Run(); err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon never answered on %s: %s", sock, stderr.String())
		}
	}
}

// failedRun waits for `run --host --json` to end with exit status 1 (why:
// which instances failed) and returns its want results.
func failedRun(t *testing.T, run *exec.Cmd, stdout, stderr *bytes.Buffer, why string, want int) []instance {
	t.Helper()
	err := run.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("run --host: %v (want exit status 1: %s)\n%s", err, why, stderr.String())
	}
	var rs []instance
	if err := json.Unmarshal(stdout.Bytes(), &rs); err != nil {
		t.Fatalf("run --host --json: %v\n%s", err, stdout.String())
	}
	if len(rs) != want {
		t.Fatalf("%d results, want %d", len(rs), want)
	}
	return rs
}

func ps(t *testing.T, bin, sock string) []instance {
	t.Helper()
	out := cli(t, bin, nil, "ps", "--host", sock, "--json")
	var is []instance
	if err := json.Unmarshal([]byte(out), &is); err != nil {
		t.Fatalf("ps --json: %v\n%s", err, out)
	}
	return is
}

// TestDaemonRuns200InstancesAndOneKilledProcessHurtsNoOther is the
// daemon's claim: through the API (the CLI as its client), 200 instances
// of 20 unikernels start; SIGKILL to one instance's process fails that
// instance alone; the other 199 print what they should, the daemon goes
// on serving (logs, stop, metrics), and SIGTERM ends it cleanly.
func TestDaemonRuns200InstancesAndOneKilledProcessHurtsNoOther(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	pool, want := serveFleet(t, bin, dir, 20, 3)
	sock := filepath.Join(dir, "api.sock")
	daemon := startDaemon(t, bin, pool, sock)

	names := make([]string, 20)
	for k := range names {
		names[k] = fmt.Sprintf("app%d", k)
	}
	run := exec.Command(bin, append([]string{"run", "--host", sock, "--json", "-n", "10", "--timeout", "2m"}, names...)...)
	var stdout, stderr bytes.Buffer
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	// Catch a spinning app0 instance running and kill its process.
	var victim instance
	for deadline := time.Now().Add(60 * time.Second); victim.PID == 0; time.Sleep(20 * time.Millisecond) {
		for _, in := range ps(t, bin, sock) {
			if in.Unikernel == "app0" && in.State == "running" && in.PID > 0 {
				victim = in
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no app0 instance seen running")
		}
	}
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", victim.PID, err)
	}
	rs := failedRun(t, run, &stdout, &stderr, "one instance failed", 200)
	failed := 0
	for _, r := range rs {
		if r.Unikernel == "app0" && r.Instance == victim.Instance {
			failed++
			if !strings.Contains(r.Error, "SIGKILL") || r.ExitCode != -1 {
				t.Errorf("killed instance: exit %d, error %q; want a SIGKILL report", r.ExitCode, r.Error)
			}
			continue
		}
		if r.ExitCode != 0 || r.Error != "" || r.Output != want[r.Unikernel] {
			t.Errorf("%s/%d: exit %d error %q output %q, want %q", r.Unikernel, r.Instance, r.ExitCode, r.Error, r.Output, want[r.Unikernel])
		}
	}
	if failed != 1 || !strings.Contains(stderr.String(), fmt.Sprintf("instance %d of app0", victim.Instance)) {
		t.Errorf("%d killed instances reported; stderr %q", failed, stderr.String())
	}

	// The daemon serves on: logs of the victim, a stop, the metrics.
	cmd := exec.Command(bin, "logs", "--host", sock, fmt.Sprint(victim.ID))
	var logErr bytes.Buffer
	cmd.Stderr = &logErr
	if err := cmd.Run(); err != nil || !strings.Contains(logErr.String(), "failed") || !strings.Contains(logErr.String(), "SIGKILL") {
		t.Errorf("logs %d: %v, stderr %q", victim.ID, err, logErr.String())
	}
	if out := cli(t, bin, nil, "logs", "--host", sock, fmt.Sprint(victim.ID+1)); out != want["app0"] {
		t.Errorf("logs of the next app0 instance: %q, want %q", out, want["app0"])
	}
	spin := exec.Command(bin, "run", "--host", sock, "--json", "app0")
	var spinOut bytes.Buffer
	spin.Stdout = &spinOut
	if err := spin.Start(); err != nil {
		t.Fatal(err)
	}
	var spinner instance
	for deadline := time.Now().Add(30 * time.Second); spinner.ID == 0; time.Sleep(20 * time.Millisecond) {
		for _, in := range ps(t, bin, sock) {
			if in.ID > rs[len(rs)-1].ID && in.State == "running" {
				spinner = in
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the new app0 instance never ran")
		}
	}
	cli(t, bin, nil, "stop", "--host", sock, fmt.Sprint(spinner.ID))
	spin.Wait()
	if !strings.Contains(spinOut.String(), "stopped by request") {
		t.Errorf("stopped instance: %s", spinOut.String())
	}
	var m struct {
		Instances struct {
			Exited, Failed, Stopped int
			Started                 uint64 `json:"started_total"`
		}
		LoadTime struct {
			Count int
			Mean  int64 `json:"mean_ns"`
			P50   int64 `json:"p50_ns"`
			P99   int64 `json:"p99_ns"`
		} `json:"load_time"`
		Memory struct {
			DaemonPSS uint64 `json:"daemon_pss_bytes"`
		}
	}
	if err := json.Unmarshal([]byte(cli(t, bin, nil, "metrics", "--host", sock)), &m); err != nil {
		t.Fatal(err)
	}
	t.Logf("metrics: %d loads, mean %v p50 %v p99 %v; daemon PSS %.1f MiB", m.LoadTime.Count,
		time.Duration(m.LoadTime.Mean), time.Duration(m.LoadTime.P50), time.Duration(m.LoadTime.P99), float64(m.Memory.DaemonPSS)/(1<<20))
	if m.Instances.Exited != 199 || m.Instances.Failed != 1 || m.Instances.Stopped != 1 || m.Instances.Started != 201 || m.LoadTime.Count != 201 {
		t.Errorf("metrics: %+v", m)
	}

	daemon.Process.Signal(syscall.SIGTERM)
	if err := daemon.Wait(); err != nil {
		t.Errorf("daemon after SIGTERM: %v", err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket %s left behind: %v", sock, err)
	}
}
