package vmmproc

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/pool"
	"github.com/unipool/unipool/internal/testcli"
)

// What an exec after the resolve hands the new program comes back as it
// was sent: the refs, the names, the blob descriptors (close-on-exec
// again), its own descriptor closed and the variable unset; a fleet that
// is not the spec's is refused.
func TestTheResolvedFleetHandedAcrossAnExecIsTakenAsItWasSent(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "blob"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blob := int(f.Fd())
	setCloexec(map[string]int{"b": blob}, false) // as across the exec
	sent := resolvedFleet{Pool: "/p", Names: []string{"a", "b"}, Snapshot: true,
		Refs: []pool.RefState{{Manifest: "sha256:m1", Size: 10}, {Manifest: "sha256:m2", Size: 20}}, Fds: map[string]int{"sha256:b": blob}}
	hand := func(r resolvedFleet) int {
		data, _ := json.Marshal(r)
		fd, err := unix.MemfdCreate("test", 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Write(fd, data)
		unix.Seek(fd, 0, 0)
		t.Setenv(resolvedEnv, fmt.Sprint(fd))
		return fd
	}
	fd := hand(sent)
	got, ok, err := takeResolved()
	if !ok || err != nil {
		t.Fatalf("takeResolved: %v, %v", ok, err)
	}
	if fmt.Sprint(got) != fmt.Sprint(sent) {
		t.Errorf("taken %+v, sent %+v", got, sent)
	}
	if _, set := os.LookupEnv(resolvedEnv); set {
		t.Errorf("%s still set", resolvedEnv)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		t.Errorf("the handed descriptor %d is still open", fd)
	}
	if fl, err := unix.FcntlInt(uintptr(blob), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
		t.Errorf("the blob's descriptor: flags %#x, %v; want close-on-exec again", fl, err)
	}
	if _, ok, _ := takeResolved(); ok {
		t.Errorf("taken twice")
	}
	// Another spec's fleet is refused.
	hand(sent)
	spec := Spec{Monitor: "process", Pool: "/p", Mode: Mode{Snapshot: true}}
	if _, err := resolveNamed(spec, []string{"a", "c"}); err == nil || !strings.Contains(err.Error(), "not the spec's") {
		t.Errorf("a handed fleet of other names: %v, want refused", err)
	}
}

// unipool-vmm on a pooled fleet (the process monitor) resolves it, then
// execs itself with it and runs it from the new program: the same
// process, every outcome as without.
func TestTheLeanMonitorStartsAResolvedFleetAfreshInTheSameProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the process monitor needs root here")
	}
	testcli.NeedTools(t, "gcc", "ld")
	bin := testcli.Build(t)
	exe := filepath.Join(filepath.Dir(bin), Binary)
	dir := testcli.PooledDemo(t, bin)
	spec := Spec{Monitor: "process", Pool: dir, Mode: Mode{Name: "shared", Load: "shared"}, Timeout: time.Minute,
		Unikernels: []SpecUnikernel{{Name: "demo"}, {Name: "demo"}}}
	path := filepath.Join(t.TempDir(), "spec.json")
	if err := WriteSpec(path, spec); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "--spec", path)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var msg Message
	if err := json.Unmarshal([]byte(line), &msg); err != nil || len(msg.Resident) != 2 {
		t.Fatalf("first message %q (%v), want 2 instances resident", line, err)
	}
	// The held process is the one started, exec'ed with the resolved fleet.
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), resolvedEnv+"=") {
		t.Errorf("the held monitor %d was not exec'ed with its resolved fleet (no %s)", cmd.Process.Pid, resolvedEnv)
	}
	in.Write([]byte("release\n"))
	line, err = r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(line), &msg); err != nil || !msg.Done || len(msg.Outcomes) != 2 {
		t.Fatalf("second message %q (%v), want both outcomes", line, err)
	}
	for _, o := range msg.Outcomes {
		if o.Error != "" || o.Unikernel != "demo" {
			t.Errorf("outcome %+v, want demo without error", o)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}
