package process

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cpuTime reads the process CPU clock, not /proc: it must say what
// /proc/PID/schedstat says of a process that is not running (the same
// sum_exec_runtime, read twice), and 0 of a process that is gone.
func TestCPUTimeIsSchedstat(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep: %v", err)
	}
	pid := cmd.Process.Pid
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// Wait (a bounded number of times) until it sleeps: its run time no
	// longer moves.
	sleeping := false
	for i := 0; i < 1000 && !sleeping; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		sleeping = len(f) > 0 && f[0] == "S"
		if !sleeping {
			time.Sleep(time.Millisecond)
		}
	}
	if !sleeping {
		t.Skip("sleep never slept")
	}
	got := cpuTime(pid)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := strconv.ParseUint(strings.Fields(string(b))[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if got <= 0 || got != time.Duration(ns) {
		t.Errorf("cpuTime(%d) = %d ns, /proc/%d/schedstat says %d ns", pid, got, pid, ns)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if got := cpuTime(pid); got != 0 {
		t.Errorf("cpuTime of reaped pid %d = %v, want 0", pid, got)
	}
}
