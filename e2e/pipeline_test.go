// Package e2e drives the real CLI through the whole pipeline — corpus
// build, link, pool add, run — on a sample of the corpus, and checks that
// every unikernel prints its expected line under every load mode.
package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/testcli"
)

type corpusFile struct {
	Unikernels []struct {
		Name, App, Input, Expect string
	}
}

type result struct {
	Unikernel string            `json:"unikernel"`
	ExitCode  int               `json:"exit_code"`
	Output    string            `json:"output"`
	Error     string            `json:"error"`
	Bases     map[string]uint64 `json:"bases"`
}

func build(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"gcc", "ld", "objcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/deps.sh installs it)", tool)
		}
	}
	return testcli.Build(t)
}

func cli(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	// corpus build compiles a whole corpus: its own, longer limit.
	limit := testcli.Limit
	if len(args) > 0 && args[0] == "corpus" {
		limit = 20 * time.Minute
	}
	out, stderr, code := testcli.Run(t, limit, env, bin, args...)
	if code != 0 {
		t.Fatalf("unipool %s: exit status %d\n%s\n%s", strings.Join(args, " "), code, out, stderr)
	}
	return out
}

// TestCorpusSamplePrintsExpectedLinesInEveryMode is the pipeline's claim:
// the same unikernel, linked aligned and pooled, prints what its app
// computes natively — shared, naive and with ASLR — and so does its
// packed and dce images.
func TestCorpusSamplePrintsExpectedLinesInEveryMode(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	env := []string{"UNIPOOL_POOL=" + filepath.Join(dir, "pool"), "XDG_CACHE_HOME=" + filepath.Join(dir, "cache")}
	count := "24"
	if testing.Short() {
		count = "8"
	}
	cdir := filepath.Join(dir, "corpus")
	cli(t, bin, env, "corpus", "build", "--count", count, "--seed", "7", "--out", cdir)
	data, err := os.ReadFile(filepath.Join(cdir, "corpus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c corpusFile
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	expect := map[string]string{}
	var names, packed, dce []string
	for _, u := range c.Unikernels {
		expect[u.Name] = u.Expect
		img := filepath.Join(dir, u.Name+".img")
		cli(t, bin, env, "link", "--layout", "aligned", "--corpus", cdir, "--unikernel", u.Name, "-o", img)
		cli(t, bin, env, "pool", "add", img, "--name", u.Name, "--cmdline", u.Input)
		p := filepath.Join(dir, u.Name+".packed")
		cli(t, bin, env, "link", "--layout", "packed", "--corpus", cdir, "--unikernel", u.Name, "-o", p)
		d := filepath.Join(dir, u.Name+".dce")
		cli(t, bin, env, "link", "--layout", "dce", "--corpus", cdir, "--unikernel", u.Name, "-o", d)
		names = append(names, u.Name)
		packed = append(packed, p)
		dce = append(dce, d)
	}
	cli(t, bin, env, "pool", "verify")
	t.Run("DenseImagesCarryTheirArenaPagesInThePrivateBlob", func(t *testing.T) {
		// pool add stores the data-arena pages as whole pages of the
		// private blob, which the loader maps copy-on-write (the runs
		// below then print their lines through that path).
		var d struct {
			Config struct {
				Private struct {
					Size uint64 `json:"size"`
				} `json:"private"`
				Arena []struct {
					Addr    uint64 `json:"addr"`
					Size    uint64 `json:"size"`
					BlobOff uint64 `json:"blob_off"`
				} `json:"arena"`
			} `json:"config"`
		}
		if err := json.Unmarshal([]byte(cli(t, bin, env, "pool", "inspect", "--json", names[0])), &d); err != nil {
			t.Fatal(err)
		}
		if len(d.Config.Arena) == 0 {
			t.Fatalf("%s: no arena runs in its description", names[0])
		}
		for _, a := range d.Config.Arena {
			if a.Size == 0 || a.Size%4096 != 0 || a.BlobOff%4096 != 0 || a.BlobOff+a.Size > d.Config.Private.Size {
				t.Errorf("%s: arena run %+v: not whole pages inside the private blob (%d bytes)", names[0], a, d.Config.Private.Size)
			}
		}
	})
	t.Run("TheCoreIsOneGroupUnitAndLoadsFewerPagesThanUngrouped", func(t *testing.T) {
		type insp struct {
			LoadedSize uint64 `json:"loaded_size"`
			Libraries  []struct {
				Name    string `json:"name"`
				Members []struct {
					Name string `json:"name"`
				} `json:"members"`
			} `json:"libraries"`
		}
		inspect := func(img string) insp {
			var in insp
			if err := json.Unmarshal([]byte(cli(t, bin, env, "inspect", "--json", img)), &in); err != nil {
				t.Fatal(err)
			}
			return in
		}
		grouped := inspect(filepath.Join(dir, names[0]+".img"))
		solo := filepath.Join(dir, names[0]+".solo")
		cli(t, bin, env, "link", "--group", "none", "--map", filepath.Join(dir, "solo.json"), "--corpus", cdir, "--unikernel", names[0], "-o", solo)
		ungrouped := inspect(solo)
		var members []string
		for _, l := range grouped.Libraries {
			for _, m := range l.Members {
				members = append(members, m.Name)
			}
		}
		if len(members) < 3 || strings.Join(members[:3], ",") != "ukplat,ukboot,libc" {
			t.Errorf("grouped image: unit members %v, want the core first", members)
		}
		if len(grouped.Libraries) >= len(ungrouped.Libraries) || grouped.LoadedSize >= ungrouped.LoadedSize {
			t.Errorf("grouped: %d libraries, %d bytes loaded; ungrouped %d, %d", len(grouped.Libraries), grouped.LoadedSize, len(ungrouped.Libraries), ungrouped.LoadedSize)
		}
		out := cli(t, bin, env, "run", "--json", "--timeout", "60s", "--image", solo, "--cmdline", c.Unikernels[0].Input)
		if !strings.Contains(out, strings.ReplaceAll(expect[names[0]], `"`, `\"`)) {
			t.Errorf("ungrouped image printed %s, want %q", out, expect[names[0]])
		}
	})
	check := func(mode string, out string, images bool) {
		var rs []result
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			t.Fatalf("%s: run --json: %v\n%s", mode, err, out)
		}
		if len(rs) != len(names) {
			t.Fatalf("%s: %d results for %d unikernels", mode, len(rs), len(names))
		}
		for i, r := range rs {
			name := r.Unikernel
			if images {
				name = names[i]
			}
			got := strings.TrimSpace(r.Output)
			if r.ExitCode != 0 || r.Error != "" || got != expect[name] {
				t.Errorf("%s: %s: exit %d, error %q, printed %q, want %q", mode, name, r.ExitCode, r.Error, got, expect[name])
			}
		}
	}
	var cold string
	for _, mode := range [][]string{{"--load", "shared"}, {"--load", "naive"}, {"--aslr"}, {"--aslr-per-library"}} {
		args := append(append([]string{"run", "--json", "--timeout", "60s"}, mode...), names...)
		out := cli(t, bin, env, args...)
		check(strings.Join(mode, " "), out, false)
		if cold == "" {
			cold = out
		}
	}
	t.Run("FromSnapshotsPrintTheSameAsColdBoots", func(t *testing.T) {
		cli(t, bin, env, append([]string{"snapshot"}, names...)...)
		cli(t, bin, env, "pool", "verify")
		out := cli(t, bin, env, append([]string{"run", "--json", "--timeout", "60s", "--snapshot", "-n", "2"}, names...)...)
		var warm, boot []result
		if err := json.Unmarshal([]byte(out), &warm); err != nil {
			t.Fatalf("run --snapshot --json: %v\n%s", err, out)
		}
		if err := json.Unmarshal([]byte(cold), &boot); err != nil {
			t.Fatal(err)
		}
		if len(warm) != 2*len(boot) {
			t.Fatalf("%d results from snapshots for %d unikernels x 2", len(warm), len(boot))
		}
		// run --json lists instances as they end: match them by name.
		cold := map[string]result{}
		for _, b := range boot {
			cold[b.Unikernel] = b
		}
		for _, w := range warm {
			b, ok := cold[w.Unikernel]
			if !ok || w.ExitCode != b.ExitCode || w.Output != b.Output || w.Error != "" {
				t.Errorf("%s from its snapshot: exit %d, error %q, printed %q; cold: exit %d, printed %q",
					w.Unikernel, w.ExitCode, w.Error, w.Output, b.ExitCode, b.Output)
			}
		}
		// bench start: the same instances cold and from snapshots, and
		// by load mode; every instance reaches its ready point, and the
		// outputs agree.
		var st struct {
			Cold, Snapshot struct {
				Instances, Failed int
				ReadyMean         float64 `json:"ready_mean_us"`
			}
			Loads []struct {
				Load              string
				Instances, Failed int
				LoadMean          float64 `json:"load_mean_us"`
			}
			Mismatches int
		}
		two := names[:2]
		out = cli(t, bin, env, append([]string{"bench", "start", "--json", "-n", "2", "--rounds", "2"}, two...)...)
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("bench start --json: %v\n%s", err, out)
		}
		for _, s := range []struct {
			Instances, Failed int
			ReadyMean         float64 `json:"ready_mean_us"`
		}{st.Cold, st.Snapshot} {
			if s.Instances != 2*2*2 || s.Failed != 0 || s.ReadyMean <= 0 || st.Mismatches != 0 {
				t.Errorf("bench start: %s\nwant 8 instances each way, none failed, a ready time, no mismatch", out)
				break
			}
		}
		out = cli(t, bin, env, append([]string{"bench", "start", "--json", "-n", "2", "--rounds", "1", "--loads", "shared,naive"}, two...)...)
		st.Loads = nil
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("bench start --loads --json: %v\n%s", err, out)
		}
		if len(st.Loads) != 2 || st.Loads[0].Load != "shared" || st.Loads[1].Load != "naive" || st.Mismatches != 0 {
			t.Errorf("bench start --loads shared,naive: %s", out)
		}
		for _, l := range st.Loads {
			if l.Instances != 4 || l.Failed != 0 || l.LoadMean <= 0 {
				t.Errorf("bench start --loads: %s: %+v, want 4 instances, none failed, a load time", l.Load, l)
			}
		}
		// The daemon starts instances from snapshots too (the API's
		// "snapshot"), in its own process and in jails, whose roots then
		// hold the snapshots' page blobs: the same lines as cold boots.
		four := names[:min(4, len(names))]
		for _, jailed := range []bool{false, true} {
			if jailed && os.Geteuid() != 0 {
				continue
			}
			var args []string
			if jailed {
				args = []string{"--vms-per-process", "2", "--jail-memory", "256M"}
			}
			sock := filepath.Join(t.TempDir(), "api.sock")
			startDaemon(t, bin, filepath.Join(dir, "pool"), sock, args...)
			out := cli(t, bin, nil, append([]string{"run", "--host", sock, "--json", "--timeout", "60s", "--snapshot", "-n", "2"}, four...)...)
			var rs []struct {
				result
				Load  int64 `json:"load_time_ns"`
				Ready int64 `json:"ready_time_ns"`
			}
			if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) != 2*len(four) {
				t.Fatalf("run --host --snapshot (jailed %v): %v, %d results for %d unikernels x 2\n%s", jailed, err, len(rs), len(four), out)
			}
			for _, w := range rs {
				if b := cold[w.Unikernel]; w.ExitCode != b.ExitCode || w.Output != b.Output || w.Error != "" {
					t.Errorf("daemon (jailed %v): %s from its snapshot: exit %d, error %q, printed %q; cold: exit %d, printed %q",
						jailed, w.Unikernel, w.ExitCode, w.Error, w.Output, b.ExitCode, b.Output)
				}
				// An instance resumed at its ready point is ready when it
				// is loaded; a cold boot gets there later.
				if w.Load <= 0 || w.Ready != w.Load {
					t.Errorf("daemon (jailed %v): %s: load %d ns, ready %d ns: not started from its snapshot", jailed, w.Unikernel, w.Load, w.Ready)
				}
			}
			cmd := exec.Command(bin, "run", "--host", sock, "--snapshot", "--aslr", names[0])
			if msg, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(msg), "fixes the layout") {
				t.Errorf("run --host --snapshot --aslr: err %v, said %q; want a refusal naming the fixed layout", err, msg)
			}
		}
		// A snapshot fixes its layout: no --aslr, said clearly.
		cmd := exec.Command(bin, "run", "--snapshot", "--aslr", names[0])
		cmd.Env = append(os.Environ(), env...)
		msg, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(msg), "fixes the layout") {
			t.Errorf("run --snapshot --aslr: err %v, said %q; want a refusal naming the fixed layout", err, msg)
		}
	})
	// Packed and dce images take the command line from the run (they
	// have no description); dce's --gc-sections keeps what the loader
	// reads (the guest's boot-info version).
	for layout, images := range map[string][]string{"packed": packed, "dce": dce} {
		var rs []result
		for i, p := range images {
			out := cli(t, bin, env, "run", "--json", "--timeout", "60s", "--image", p, "--cmdline", c.Unikernels[i].Input)
			var one []result
			if err := json.Unmarshal([]byte(out), &one); err != nil {
				t.Fatalf("%s %s: %v", layout, p, err)
			}
			rs = append(rs, one...)
		}
		js, _ := json.Marshal(rs)
		check(layout, string(js), true)
	}
}
