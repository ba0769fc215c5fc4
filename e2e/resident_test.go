package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestResidentInstancesOutliveTheirRunUntilStopReleasesThem is the warm
// pool's claim (run --host --hold, the API's hold_ms): the instances end
// and run returns with their output, yet the daemon keeps every one
// resident — listed as such, counted by the metrics, its process still
// holding its memory — until `unipool stop --batch` releases them; then
// they go. Without jails and in jails of 2 (root only).
func TestResidentInstancesOutliveTheirRunUntilStopReleasesThem(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	pool, want := serveFleet(t, bin, dir, 3, 0)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"one-process-each", nil},
		{"jails-of-2", []string{"--vms-per-process", "2", "--jail-memory", "256M"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.args != nil && os.Geteuid() != 0 {
				t.Skip("jails need root")
			}
			sock := filepath.Join(dir, c.name+".sock")
			startDaemon(t, bin, pool, sock, c.args...)
			var rs []instance
			out := cli(t, bin, nil, "run", "--host", sock, "--json", "-n", "2", "--hold", "10m", "--timeout", "2m", "app0", "app1", "app2")
			if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) != 6 {
				t.Fatalf("run --host --hold: %v, %d results\n%s", err, len(rs), out)
			}
			for _, r := range rs {
				if r.ExitCode != 0 || r.Output != want[r.Unikernel] {
					t.Fatalf("%s/%d: exit %d, output %q, want %q", r.Unikernel, r.Instance, r.ExitCode, r.Output, want[r.Unikernel])
				}
			}

			// Every instance turns resident once its group has ended; its
			// process is still there.
			var held []residentInstance
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				held = residents(t, bin, sock)
				if len(held) == 6 || time.Now().After(deadline) {
					break
				}
			}
			if len(held) != 6 {
				t.Fatalf("%d of 6 instances resident after run returned: %+v", len(held), held)
			}
			for _, in := range held {
				if in.State != "exited" || in.PID <= 0 || syscall.Kill(in.PID, 0) != nil {
					t.Fatalf("resident instance %d: state %s, pid %d not alive", in.ID, in.State, in.PID)
				}
			}
			var m struct {
				Instances struct{ Resident int }
			}
			if err := json.Unmarshal([]byte(cli(t, bin, nil, "metrics", "--host", sock)), &m); err != nil || m.Instances.Resident != 6 {
				t.Fatalf("metrics: %v, resident %d, want 6", err, m.Instances.Resident)
			}

			// A stop releases them: none resident, their processes gone.
			cli(t, bin, nil, "stop", "--host", sock, "--batch", fmt.Sprint(held[0].Batch))
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				alive := 0
				for _, in := range held {
					if syscall.Kill(in.PID, 0) == nil {
						alive++
					}
				}
				left := len(residents(t, bin, sock))
				if left == 0 && alive == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after stop --batch: %d resident, %d processes alive", left, alive)
				}
			}
		})
	}
}

type residentInstance struct {
	ID       uint64 `json:"id"`
	Batch    uint64 `json:"batch"`
	State    string `json:"state"`
	PID      int    `json:"pid"`
	Resident bool   `json:"resident"`
}

// residents lists the daemon's resident instances.
func residents(t *testing.T, bin, sock string) []residentInstance {
	t.Helper()
	var is, held []residentInstance
	if err := json.Unmarshal([]byte(cli(t, bin, nil, "ps", "--host", sock, "--json")), &is); err != nil {
		t.Fatal(err)
	}
	for _, in := range is {
		if in.Resident {
			held = append(held, in)
		}
	}
	return held
}
