package microvm

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/testcli"
)

// End-to-end tests of `unipool run --monitor kvm`: the real CLI, guests
// built with the system's gcc and ld, a pool on disk.

// cliBinary is the unipool CLI: inside scripts/kvmhost the one it built
// fresh from this repo (on PATH; the host's Go cache is read-only there),
// elsewhere built now.
func cliBinary(t *testing.T) string {
	t.Helper()
	if os.Getenv("UNIPOOL_KVMHOST") == "1" {
		bin, err := exec.LookPath("unipool")
		if err != nil {
			t.Fatalf("inside kvmhost but no unipool on PATH: %v", err)
		}
		return bin
	}
	return testcli.Build(t)
}

// cli runs the CLI; a run that hangs fails the test within testcli.Limit,
// naming the command (unikernel, monitor, mode).
func cli(t *testing.T, bin string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	return testcli.Run(t, testcli.Limit, nil, bin, args...)
}

func TestCLISaysToUseKVMHostWhereKVMCannotRunGuests(t *testing.T) {
	if Usable() == nil {
		t.Skip("this host's KVM runs guests")
	}
	testcli.NeedTools(t, "gcc")
	bin := cliBinary(t)
	img := testcli.PlainImage(t, t.TempDir(), "hi", `puts_("hi\n"); exit_(0);`)
	_, stderr, code := cli(t, bin, "run", "--monitor", "kvm", "--image", img)
	if want := "scripts/kvmhost -- unipool run --monitor kvm --image " + img; code != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("status %d, stderr %q; want 1 and the same command under scripts/kvmhost: %q", code, stderr, want)
	}
}

func TestKVMHostHintQuotesTheCommandForTheShell(t *testing.T) {
	got := kvmhostCommand([]string{"/usr/local/bin/unipool", "run", "--monitor", "kvm", "--cmdline", "md5 it's", "-n", "3", "digest"})
	want := `scripts/kvmhost -- unipool run --monitor kvm --cmdline 'md5 it'\''s' -n 3 digest`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestCLIRunsPooledUnikernelInOneLoaderProcessSharedNaiveAndASLR(t *testing.T) {
	needKVM(t)
	testcli.NeedTools(t, "gcc", "ld")
	bin := cliBinary(t)
	pool := testcli.PooledDemo(t, bin)
	want := "hello from libgreet\nhello from libgreet\n"
	for _, flags := range [][]string{{}, {"--load", "naive"}, {"--load", "naive", "--ksm"}, {"--aslr"}} {
		args := append([]string{"run", "--monitor", "kvm", "--timeout", "60s", "--pool", pool, "--json", "-n", "3"}, flags...)
		stdout, stderr, code := cli(t, bin, append(args, "demo")...)
		if code != 0 {
			t.Fatalf("%v: status %d, stderr %q", flags, code, stderr)
		}
		var rs []monitor.Result
		if err := json.Unmarshal([]byte(stdout), &rs); err != nil {
			t.Fatalf("%v: %v", flags, err)
		}
		if len(rs) != 3 {
			t.Fatalf("%v: %d results, want 3", flags, len(rs))
		}
		bases := map[uint64]bool{}
		for _, r := range rs {
			if r.Output != want || r.ExitCode != 0 || r.Error != "" || r.Bases["greet"] == 0 {
				t.Errorf("%v: instance %d: exit %d, output %q, error %q, bases %v", flags, r.Instance, r.ExitCode, r.Output, r.Error, r.Bases)
			}
			if r.PID != rs[0].PID {
				t.Errorf("%v: instance %d ran in pid %d, instance 0 in %d: want one loader process", flags, r.Instance, r.PID, rs[0].PID)
			}
			bases[r.Bases["greet"]] = true
		}
		if aslr := len(flags) == 1 && flags[0] == "--aslr"; aslr && len(bases) < 2 {
			t.Errorf("--aslr: every instance got greet at the same base %v", bases)
		}
	}
}

func TestCLIRunsImageUnderKVMAndReportsItsExitCodeAndFaults(t *testing.T) {
	needKVM(t)
	testcli.NeedTools(t, "gcc")
	bin := cliBinary(t)
	three := testcli.PlainImage(t, t.TempDir(), "three", `puts_("three\n"); exit_(3);`)
	stdout, stderr, code := cli(t, bin, "run", "--monitor", "kvm", "--timeout", "60s", "--image", three)
	if code != 1 || stdout != "three\n" || !strings.Contains(stderr, "instance 0 of three: exit code 3") {
		t.Errorf("exit-3 guest: status %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	scribble := testcli.PlainImage(t, t.TempDir(), "scribble", `*(volatile char *)(unsigned long)_start = 0; exit_(0);`)
	_, stderr, code = cli(t, bin, "run", "--monitor", "kvm", "--timeout", "60s", "--image", scribble)
	if code != 1 || !strings.Contains(stderr, "page fault: write to read-only address 0x40") {
		t.Errorf("self-writing guest: status %d, stderr %q", code, stderr)
	}
	spin := testcli.PlainImage(t, t.TempDir(), "spin", `for (;;) ;`)
	_, stderr, code = cli(t, bin, "run", "--monitor", "kvm", "--timeout", "500ms", "--image", spin)
	if code != 1 || !strings.Contains(stderr, "timeout") {
		t.Errorf("spinning guest: status %d, stderr %q", code, stderr)
	}
}

// TestCLIServesVMsInJailsOfAtMostN: `serve --monitor kvm --vms-per-process
// 2` runs 5 VMs in three jails (namespaces, their own root and cgroup,
// /dev/kvm handed in as a descriptor), each printing what it should.
func TestCLIServesVMsInJailsOfAtMostN(t *testing.T) {
	needKVM(t)
	testcli.NeedTools(t, "gcc", "ld")
	if os.Geteuid() != 0 {
		t.Skip("jails need root")
	}
	bin := cliBinary(t)
	pool := testcli.PooledDemo(t, bin)
	sock := filepath.Join(t.TempDir(), "api.sock")
	d := exec.Command(bin, "serve", "--monitor", "kvm", "--socket", sock, "--pool", pool, "--vms-per-process", "2", "--jail-memory", "512M")
	var derr strings.Builder
	d.Stderr = &derr
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		d.Process.Kill()
		d.Wait()
		if t.Failed() {
			t.Logf("daemon's stderr:\n%s", derr.String())
		}
	}()
	var stdout, stderr string
	var code int
	for i := 0; ; i++ {
		stdout, stderr, code = cli(t, bin, "run", "--host", sock, "--json", "-n", "5", "--timeout", "120s", "demo")
		if code == 0 || !strings.Contains(stderr, sock) || i == 100 {
			break // answered (or never will)
		}
		exec.Command("sleep", "0.1").Run() // the daemon is still starting
	}
	if code != 0 {
		t.Fatalf("run --host: status %d, stderr %q", code, stderr)
	}
	var rs []monitor.Result
	if err := json.Unmarshal([]byte(stdout), &rs); err != nil {
		t.Fatal(err)
	}
	pids := map[int]bool{}
	for _, r := range rs {
		if r.Output != "hello from libgreet\nhello from libgreet\n" || r.ExitCode != 0 || r.Error != "" {
			t.Errorf("instance %d: exit %d output %q error %q", r.Instance, r.ExitCode, r.Output, r.Error)
		}
		pids[r.PID] = true
	}
	if len(rs) != 5 || len(pids) != 3 {
		t.Errorf("%d results in %d processes %v, want 5 in 3 jails", len(rs), len(pids), pids)
	}
}
