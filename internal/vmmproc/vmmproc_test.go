package vmmproc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/monitor"
)

func TestExecutableNamesThePathItLookedAtAndHowToBuildIt(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(filepath.Dir(self), Binary)
	if _, err := os.Stat(want); err == nil {
		t.Skipf("%s exists", want)
	}
	_, err = Executable()
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("got %v, want an error naming %s and `make build`", err, want)
	}
}

// plainImage is a plain image that prints line and exits 0.
func plainImage(t *testing.T, line string) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "hi.S")
	asm := ".globl _start\n_start:\n\tlea msg(%rip), %rsi\n\tmov $0x3f8, %dx\n1:\tlodsb\n\ttest %al, %al\n\tjz 2f\n\tout %al, %dx\n\tjmp 1b\n" +
		"2:\tmov $0x501, %dx\n\txor %eax, %eax\n\tout %eax, %dx\n\thlt\nmsg:\t.asciz \"" + line + "\\n\"\n"
	if err := os.WriteFile(src, []byte(asm), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "hi")
	if out, err := exec.Command("gcc", "-static", "-nostdlib", "-no-pie", "-Wl,-Ttext-segment=0x400000", "-o", img, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return img
}

// Run holds the fleet, says which processes hold it, and only after a
// line on its input tells each instance's outcome: whether it printed its
// expected line.
func TestRunHoldsTheFleetUntilALineThenTellsEachOutcome(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the process monitor needs root here")
	}
	img := plainImage(t, "hello vmm")
	spec := Spec{Monitor: "process", Mode: Mode{Name: "packed-stock", Load: monitor.LoadStock}, Timeout: time.Minute,
		Unikernels: []SpecUnikernel{{Name: "a", Image: img, Expect: "hello vmm"}, {Name: "b", Image: img, Expect: "not printed"}}}
	path := filepath.Join(t.TempDir(), "spec.json")
	if err := WriteSpec(path, spec); err != nil {
		t.Fatal(err)
	}
	spec, err := ReadSpec(path)
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), spec, 0, inR, outW)
		outW.Close()
	}()
	dec := json.NewDecoder(outR)
	var msg Message
	if err := dec.Decode(&msg); err != nil {
		t.Fatal(err)
	}
	if msg.Error != "" || len(msg.Resident) != 2 || msg.Done {
		t.Fatalf("first message %+v, want the 2 instance processes resident", msg)
	}
	for _, pid := range msg.Resident {
		if err := syscallKill0(pid); err != nil {
			t.Fatalf("instance process %d not there while held: %v", pid, err)
		}
	}
	inW.Write([]byte("release\n"))
	if err := dec.Decode(&msg); err != nil {
		t.Fatal(err)
	}
	if !msg.Done || len(msg.Outcomes) != 2 {
		t.Fatalf("second message %+v, want the 2 outcomes", msg)
	}
	if o := msg.Outcomes[0]; !o.OK || o.Unikernel != "a" {
		t.Errorf("a: %+v, want ok", o)
	}
	if o := msg.Outcomes[1]; o.OK || o.Unikernel != "b" {
		t.Errorf("b: %+v, want not ok (it did not print its expected line)", o)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func syscallKill0(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Signal(syscall.Signal(0))
}

// The lean binary links none of the CLI's packages: a monitor process
// pays for the pages of its binary. Nor the registry client (oras-go,
// net/http, crypto/tls): push and pull live in package pool/distribution,
// which package pool does not import.
func TestTheLeanBinaryImportsNothingOfTheCLI(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain")
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/unipool/unipool/cmd/unipool-vmm").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"github.com/spf13/cobra", "gonum.org/", "github.com/unipool/unipool/internal/corpus",
			"github.com/unipool/unipool/internal/registry", "github.com/unipool/unipool/internal/serve", "github.com/unipool/unipool/internal/api",
			"github.com/unipool/unipool/internal/bench", "github.com/unipool/unipool/internal/unikraft", "github.com/unipool/unipool/internal/link",
			"github.com/unipool/unipool/internal/demo", "github.com/unipool/unipool/internal/pool/distribution",
			"github.com/unipool/unipool/internal/monitorproc", // the measure reports (run --measure) stay in the CLI
			"oras.land/", "net/http", "crypto/tls"} {
			if dep == bad || strings.HasPrefix(dep, strings.TrimSuffix(bad, "/")+"/") {
				t.Errorf("unipool-vmm imports %s", dep)
			}
		}
	}
}

func TestPidListFoldsConsecutivePidsIntoRanges(t *testing.T) {
	for _, c := range []struct {
		pids []int
		want string
	}{{nil, ""}, {[]int{7}, "7"}, {[]int{3, 4, 5, 9, 11, 12}, "3-5,9,11-12"}} {
		if got := pidList(c.pids); got != c.want {
			t.Errorf("pidList(%v) = %q, want %q", c.pids, got, c.want)
		}
	}
}

// The request ExecRun hands the lean binary comes back whole from its
// descriptor, which is closed, and the variable is gone (an instance's
// own `unipool run` would not take it).
func TestTakeRunRequestReadsTheDescriptorExecRunFills(t *testing.T) {
	if _, ok, _ := TakeRunRequest(); ok {
		t.Fatalf("%s set in the test's environment", RunRequestEnv)
	}
	want := RunRequest{Monitor: "process", Names: []string{"a", "b"}, Load: "shared", N: 3, Hold: time.Second, JSON: true, Measure: true, Modes: []string{"naive"}}
	data, _ := json.Marshal(want)
	fd, err := unix.MemfdCreate("test", 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Write(fd, data)
	unix.Seek(fd, 0, io.SeekStart)
	t.Setenv(RunRequestEnv, fmt.Sprint(fd))
	got, ok, err := TakeRunRequest()
	if !ok || err != nil {
		t.Fatalf("ok %v, %v", ok, err)
	}
	if g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); g != w {
		t.Errorf("got %s, want %s", g, w)
	}
	if _, set := os.LookupEnv(RunRequestEnv); set {
		t.Errorf("%s still set", RunRequestEnv)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		t.Errorf("descriptor %d still open", fd)
	}
}
