package microvm

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/corpus"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/pool"
)

// TestCorpusSamplePrintsItsExpectLineUnderKVMAsUnderTheProcessMonitor runs
// a pooled sample of the corpus under both monitors, through the CLI.
// scripts/test.sh builds the sample (UNIPOOL_KVM_SAMPLE=DIR holding
// DIR/corpus/corpus.json and DIR/pool) outside the emulated KVM host, where
// compiling is fast, and runs this test where KVM works.
func TestCorpusSamplePrintsItsExpectLineUnderKVMAsUnderTheProcessMonitor(t *testing.T) {
	dir, unikernels := kvmSample(t)
	bin := cliBinary(t)
	pool := filepath.Join(dir, "pool")
	for _, u := range unikernels {
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

// TestCorpusSampleFromSnapshotsPrintsUnderKVMWhatColdBootsPrint snapshots
// a copy of the sample pool (under the process monitor, as `unipool
// snapshot` does) and starts every unikernel from its snapshot under KVM:
// its pages mapped copy-on-write into the VM's private slot, its registers
// set, its own command line delivered. Output and exit code must be those
// of a cold boot. The pages of a snapshot taken after another lie partly
// in that one's page pack at offsets (a page stored once); the test
// fails unless some unikernel maps such a page at a non-zero offset of
// another snapshot's pack, and unless some library pack is one whole-pack
// blob, so that both pool forms are what KVM runs here.
func TestCorpusSampleFromSnapshotsPrintsUnderKVMWhatColdBootsPrint(t *testing.T) {
	dir, unikernels := kvmSample(t)
	pool := filepath.Join(t.TempDir(), "pool")
	defer func() {
		if !t.Failed() {
			checkSampleUsesPacks(t, pool, unikernels)
		}
	}()
	if out, err := exec.Command("cp", "-a", filepath.Join(dir, "pool"), pool).CombinedOutput(); err != nil {
		t.Fatalf("copy the sample pool: %v\n%s", err, out)
	}
	bin := cliBinary(t)
	for _, u := range unikernels {
		if _, stderr, code := cli(t, bin, "snapshot", "--pool", pool, u.Name); code != 0 {
			t.Fatalf("snapshot %s: status %d, stderr %q", u.Name, code, stderr)
		}
		results := map[string][]monitor.Result{}
		for _, run := range [][]string{{"--monitor", "process"}, {"--monitor", "kvm", "--snapshot", "-n", "2"}} {
			args := append([]string{"run", "--json", "--pool", pool, "--cmdline", u.Input}, run...)
			stdout, _, _ := cli(t, bin, append(args, u.Name)...)
			var rs []monitor.Result
			if err := json.Unmarshal([]byte(stdout), &rs); err != nil {
				t.Fatalf("%s %v: %v\n%s", u.Name, run, err, stdout)
			}
			results[run[1]] = rs
		}
		cold := results["process"][0]
		for _, r := range results["kvm"] {
			if r.Error != "" || r.ExitCode != cold.ExitCode || r.Output != cold.Output {
				t.Errorf("%s instance %d from its snapshot under KVM: exit %d, error %q, printed %q; cold: exit %d, printed %q",
					u.Name, r.Instance, r.ExitCode, r.Error, r.Output, cold.ExitCode, cold.Output)
			}
		}
	}
}

// checkSampleUsesPacks fails t unless the snapshotted pool at dir has a
// snapshot page at a non-zero offset of another unikernel's page pack and
// a library pack pooled as one whole blob of more than one page.
func checkSampleUsesPacks(t *testing.T, dir string, unikernels []corpus.Unikernel) {
	t.Helper()
	p, err := pool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	own := map[string]string{} // pack -> the unikernel whose snapshot stored it (its first page at offset 0)
	var cross, whole int
	for pass := 0; pass < 2; pass++ {
		for _, u := range unikernels {
			c, err := p.Resolve(u.Name)
			if err != nil {
				t.Fatal(err)
			}
			if c.Snapshot == nil {
				t.Fatalf("%s: no snapshot in %s", u.Name, dir)
			}
			for _, pg := range c.Snapshot.Pages {
				if pass == 0 && pg.Blob != "" && pg.Offset == 0 && own[pg.Blob] == "" {
					own[pg.Blob] = u.Name
				}
				if pass == 1 && pg.Blob != "" && pg.Offset != 0 && own[pg.Blob] != "" && own[pg.Blob] != u.Name {
					cross++
				}
			}
			for _, l := range c.Libraries {
				if pass == 1 && l.PackPage && l.Region.SharedSize > 0x1000 {
					whole++
				}
			}
		}
	}
	t.Logf("pages mapped at a non-zero offset of another snapshot's pack: %d; whole-pack entries: %d", cross, whole)
	if cross == 0 || whole == 0 {
		t.Errorf("the sample's snapshots map %d pages from other snapshots' packs at an offset and %d whole packs: the KVM paths for them were not run", cross, whole)
	}
}

// kvmSample is the pooled corpus sample scripts/test.sh builds outside the
// emulated KVM host for the tests that run inside it
// (UNIPOOL_KVM_SAMPLE=DIR: DIR/corpus, a corpus of a few unikernels, and
// DIR/pool, each of them pooled): DIR and the corpus's unikernels. It
// skips the test where there is no sample and fails it where the sample
// names no unikernel.
func kvmSample(t *testing.T) (string, []corpus.Unikernel) {
	t.Helper()
	dir := os.Getenv("UNIPOOL_KVM_SAMPLE")
	if dir == "" {
		t.Skip("UNIPOOL_KVM_SAMPLE not set (scripts/test.sh sets it)")
	}
	needKVM(t)
	c, err := corpus.Load(filepath.Join(dir, "corpus"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Unikernels) == 0 {
		t.Fatalf("%s names no unikernels", filepath.Join(c.Dir, corpus.FileName))
	}
	return dir, c.Unikernels
}
