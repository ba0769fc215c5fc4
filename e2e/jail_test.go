package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mappedBlobs is the set of blob files a pooled unikernel's instances map
// (its libraries' shared and init parts, its private blob), by hex digest.
func mappedBlobs(t *testing.T, bin, pool, name string) map[string]bool {
	t.Helper()
	var d struct {
		Blobs []struct{ Role, Digest string }
	}
	if err := json.Unmarshal([]byte(cli(t, bin, nil, "pool", "inspect", "--pool", pool, "--json", name)), &d); err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, b := range d.Blobs {
		if b.Role == "shared" || b.Role == "init" || b.Role == "private" {
			m[strings.TrimPrefix(b.Digest, "sha256:")] = true
		}
	}
	return m
}

// statusField reads one field of /proc/PID/status.
func statusField(t *testing.T, pid int, field string) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return nil
}

// TestJailedInstancesSeeOnlyTheirOwnBlobsAndAJailDyingHurtsNoOther is the
// jailer's claim (serve --vms-per-process): each jail's processes run as
// an unprivileged host uid of their own, in namespaces of their own, with
// a root holding nothing but the blobs their instances map; killing one
// jail's process fails its instances and no other's.
func TestJailedInstancesSeeOnlyTheirOwnBlobsAndAJailDyingHurtsNoOther(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("jails need root")
	}
	bin := build(t)
	dir := t.TempDir()
	// app0 spins ~15 s: its first jail must outlive the checks below,
	// CLI calls among them, on a loaded machine (3 s did not).
	pool, want := serveFleet(t, bin, dir, 4, 15)
	wantBlobs := mappedBlobs(t, bin, pool, "app0")
	sock := filepath.Join(dir, "api.sock")
	daemon := startDaemon(t, bin, pool, sock, "--vms-per-process", "2", "--jail-memory", "256M")

	// 4 unikernels x 3 = 12 instances, in jails of 2, each of one
	// unikernel: app0's three spinning instances fill the first jail and
	// are the second's only one.
	run := exec.Command(bin, "run", "--host", sock, "--json", "-n", "3", "--timeout", "2m", "app0", "app1", "app2", "app3")
	var stdout, stderr bytes.Buffer
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	var victim instance
	for deadline := time.Now().Add(60 * time.Second); victim.PID == 0; time.Sleep(20 * time.Millisecond) {
		for _, in := range ps(t, bin, sock) {
			if in.Unikernel == "app0" && in.Instance == 0 && in.State == "running" && in.PID > 0 {
				victim = in
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("app0's first instance never seen running")
		}
	}
	// What /proc says of the victim, read at once.
	nspid := statusField(t, victim.PID, "NSpid")
	// The jail's process: PID 1 of the instance's namespace, an ancestor
	// (the instance is a fork of its tracer thread's zygote, itself the
	// jail process's child).
	ppid := victim.PID
	for range 4 {
		if ns := statusField(t, ppid, "NSpid"); ns[len(ns)-1] == "1" {
			break
		}
		ppid, _ = strconv.Atoi(statusField(t, ppid, "PPid")[0])
	}
	if ns := statusField(t, ppid, "NSpid"); ns[len(ns)-1] != "1" {
		t.Fatalf("no ancestor of instance %d is PID 1 of its namespace (got to %d, NSpid %v)", victim.PID, ppid, ns)
	}
	// The first jail holds app0's instances 0 and 1: its root has the
	// blobs app0 maps, and nothing else at all.
	root := fmt.Sprintf("/proc/%d/root", victim.PID)
	top, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range top {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"blobs", "proc"}) {
		t.Errorf("a jail's root holds %v, want only [blobs proc]", names)
	}
	ents, err := os.ReadDir(filepath.Join(root, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range ents {
		got[e.Name()] = true
	}
	if w := wantBlobs; !maps.Equal(got, w) {
		t.Errorf("app0's jail holds blobs %v, want exactly app0's %v", got, w)
	}
	if err := os.WriteFile(filepath.Join(root, "blobs", "x"), nil, 0o644); err == nil {
		t.Errorf("a jail's root is writable")
	}
	uid := statusField(t, victim.PID, "Uid")
	if n, _ := strconv.Atoi(uid[0]); n < 900000 {
		t.Errorf("jailed instance runs as host uid %v, want one of the jails' (>= 900000)", uid)
	}
	if ns := nspid; len(ns) < 2 {
		t.Errorf("jailed instance's NSpid %v: not in a PID namespace of its own", ns)
	}
	self, _ := os.Readlink("/proc/self/ns/mnt")
	if jm, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", victim.PID)); jm == self {
		t.Errorf("jailed instance shares the host's mount namespace %s", self)
	}

	// The daemon's metrics count the jails and what their cgroups hold.
	var m struct {
		Jails struct {
			Processes int    `json:"processes"`
			Memory    uint64 `json:"memory_bytes"`
		} `json:"jails"`
	}
	if err := json.Unmarshal([]byte(cli(t, bin, nil, "metrics", "--host", sock)), &m); err != nil {
		t.Fatal(err)
	}
	t.Logf("jail of app0/0 holds %d blobs; metrics: %d jail processes, %.1f MiB charged to their cgroups",
		len(got), m.Jails.Processes, float64(m.Jails.Memory)/(1<<20))
	if m.Jails.Processes == 0 || m.Jails.Memory == 0 {
		t.Errorf("metrics while jails run: %+v", m.Jails)
	}

	// Kill the jail's process (PID 1 of its namespace: its instances go
	// with it).
	if err := syscall.Kill(ppid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the jail's process %d: %v", ppid, err)
	}
	rs := failedRun(t, run, &stdout, &stderr, "the killed jail's instances failed", 12)
	for _, r := range rs {
		inJail := r.Unikernel == "app0" && r.Instance < 2
		switch {
		case inJail && (r.ExitCode != -1 || r.Error == ""):
			t.Errorf("%s/%d in the killed jail: exit %d error %q; want it failed", r.Unikernel, r.Instance, r.ExitCode, r.Error)
		case !inJail && (r.ExitCode != 0 || r.Error != "" || r.Output != want[r.Unikernel]):
			t.Errorf("%s/%d: exit %d error %q output %q, want %q", r.Unikernel, r.Instance, r.ExitCode, r.Error, r.Output, want[r.Unikernel])
		}
	}
	daemon.Process.Signal(syscall.SIGTERM)
	if err := daemon.Wait(); err != nil {
		t.Errorf("daemon after SIGTERM: %v", err)
	}
	// Jails leave nothing behind.
	if left, _ := os.ReadDir(filepath.Join(pool, ".jail")); len(left) != 0 {
		t.Errorf("jail directories left behind: %v", left)
	}
}
