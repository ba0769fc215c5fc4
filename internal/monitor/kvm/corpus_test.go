package kvm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/monitor"
)

// TestCorpusSamplePrintsItsExpectLineUnderKVMAsUnderTheProcessMonitor runs
// a pooled sample of the corpus under both monitors, through the CLI.
// scripts/test.sh builds the sample (UNIPOOL_KVM_SAMPLE=DIR holding
// DIR/corpus/corpus.json and DIR/pool) outside the emulated KVM host, where
// compiling is fast, and runs this test where KVM works.
func TestCorpusSamplePrintsItsExpectLineUnderKVMAsUnderTheProcessMonitor(t *testing.T) {
	dir := os.Getenv("UNIPOOL_KVM_SAMPLE")
	if dir == "" {
		t.Skip("UNIPOOL_KVM_SAMPLE not set (scripts/test.sh sets it)")
	}
	needKVM(t)
	data, err := os.ReadFile(filepath.Join(dir, "corpus", "corpus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var corpus struct {
		Unikernels []struct{ Name, Input, Expect string } `json:"unikernels"`
	}
	if err := json.Unmarshal(data, &corpus); err != nil {
		t.Fatalf("corpus.json: %v", err)
	}
	if len(corpus.Unikernels) == 0 {
		t.Fatal("corpus.json names no unikernels")
	}
	bin := cliBinary(t)
	pool := filepath.Join(dir, "pool")
	for _, u := range corpus.Unikernels {
		outputs := map[string]string{}
		for _, run := range [][]string{{"--monitor", "process"}, {"--monitor", "kvm", "-n", "2"}, {"--monitor", "kvm", "--load", "naive"}} {
			args := append([]string{"run", "--json", "--timeout", "60s", "--pool", pool, "--cmdline", u.Input}, run...)
			stdout, stderr, code := cli(t, bin, append(args, u.Name)...)
			if code != 0 {
				t.Errorf("%s %v: status %d, stderr %q", u.Name, run, code, stderr)
				continue
			}
			var rs []monitor.Result
			if err := json.Unmarshal([]byte(stdout), &rs); err != nil {
				t.Fatalf("%s %v: %v", u.Name, run, err)
			}
			for _, r := range rs {
				if u.Expect != "" && !strings.Contains("\n"+r.Output, "\n"+u.Expect+"\n") {
					t.Errorf("%s %v instance %d: output %q lacks the expected line %q", u.Name, run, r.Instance, r.Output, u.Expect)
				}
				outputs[strings.Join(run, " ")] = r.Output
			}
		}
		want := outputs["--monitor process"]
		for run, out := range outputs {
			if out != want {
				t.Errorf("%s: %s printed %q, the process monitor %q", u.Name, run, out, want)
			}
		}
	}
}
