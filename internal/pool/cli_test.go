package pool

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/unipool/unipool/internal/pool/pooltest"
)

func TestCLICommandsEndToEnd(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	out := pooltest.Unipool(t, dir, "add", f.Hello)
	if !strings.HasPrefix(out, "added hello: sha256:") {
		t.Errorf("add: %q", out)
	}
	pooltest.Unipool(t, dir, "add", f.World, "--name", "w", "--cmdline", "a b", "--mem", "16M")
	if out := pooltest.Unipool(t, dir, "ls"); !strings.Contains(out, "hello") || !strings.Contains(out, "w ") {
		t.Errorf("ls: %q", out)
	}
	var rows []struct {
		Name      string `json:"name"`
		Libraries int    `json:"libraries"`
	}
	if err := json.Unmarshal([]byte(pooltest.Unipool(t, dir, "ls", "--json")), &rows); err != nil || len(rows) != 2 || rows[1].Name != "w" || rows[1].Libraries != 4 {
		t.Errorf("ls --json: %+v %v", rows, err)
	}
	out = pooltest.Unipool(t, dir, "inspect", "w")
	for _, want := range []string{"libC", "0x40020000", `"a b"`, "16.0 MiB", "private"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect w lacks %q:\n%s", want, out)
		}
	}
	var d Description
	if err := json.Unmarshal([]byte(pooltest.Unipool(t, dir, "inspect", "w", "--json")), &d); err != nil || d.Config.MemSize != 16<<20 || d.Config.Cmdline != "a b" {
		t.Errorf("inspect --json: %+v %v", d.Config, err)
	}
	var s Stats
	if err := json.Unmarshal([]byte(pooltest.Unipool(t, dir, "stats", "--json")), &s); err != nil || s.Unikernels != 2 || s.LibraryBlobs != 3 {
		t.Errorf("stats --json: %+v %v", s, err)
	}
	if out := pooltest.Unipool(t, dir, "verify"); !strings.Contains(out, "0 problems") {
		t.Errorf("verify: %q", out)
	}
	pooltest.Unipool(t, dir, "rm", "w")
	if out, err := pooltest.UnipoolErr(t, dir, "inspect", "w"); err == nil || !strings.Contains(out, `no such unikernel "w"`) {
		t.Errorf("inspect after rm: %v %q", err, out)
	}
	// w had an init blob of its own (its app's) besides its 5 other blobs.
	if out := pooltest.Unipool(t, dir, "gc"); !strings.HasPrefix(out, "removed 6 blobs") {
		t.Errorf("gc: %q", out)
	}
	// A flipped byte: verify names the blob and exits non-zero.
	p := mustOpen(t, dir)
	c, _ := p.Resolve("hello")
	path := p.BlobPath(c.Libraries[2].Shared.Digest)
	data, _ := os.ReadFile(path)
	data[7] ^= 1
	os.WriteFile(path, data, 0o644)
	out, err := pooltest.UnipoolErr(t, dir, "verify")
	if err == nil || !strings.Contains(out, c.Libraries[2].Shared.Digest) || !strings.Contains(out, "does not match its digest") {
		t.Errorf("verify of a damaged pool: %v\n%s", err, out)
	}
	if out, err := pooltest.UnipoolErr(t, dir, "add", f.Hello, "--mem", "lots"); err == nil || !strings.Contains(out, "--mem") {
		t.Errorf("add --mem lots: %v %q", err, out)
	}
}

func TestCLIUsesEnvironmentPool(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	cmd := exec.Command(pooltest.CLI(t), "pool", "add", f.Solo)
	cmd.Env = append(os.Environ(), EnvPool+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("add with $%s: %v\n%s", EnvPool, err, out)
	}
	if _, err := mustOpen(t, dir).Resolve("solo"); err != nil {
		t.Error(err)
	}
}

// checkPool verifies the pool and that every name in want resolves with
// intact blobs.
func checkPool(t *testing.T, dir string, want map[string]int) {
	t.Helper()
	p := mustOpen(t, dir)
	mustVerify(t, p)
	for name, libs := range want {
		c, err := p.Resolve(name)
		if err != nil {
			t.Errorf("lost %s: %v", name, err)
			continue
		}
		if len(c.Libraries) != libs {
			t.Errorf("%s resolves to %d libraries, want %d", name, len(c.Libraries), libs)
		}
		if err := p.VerifyBlob(c.Private.Digest); err != nil {
			t.Error(err)
		}
		for _, l := range c.Libraries {
			if err := p.VerifyBlob(l.Shared.Digest); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestConcurrentAddsLeaveConsistentPool(t *testing.T) {
	f := pooltest.Images(t)
	pooltest.CLI(t)
	// No pool yet (only the map the linker wrote): the adds race to create it.
	dir := pooltest.NewPool(t)
	imgs := []string{f.Hello, f.World, f.Solo, f.Big}
	libs := map[string]int{f.Hello: 3, f.World: 4, f.Solo: 1, f.Big: 3}
	want := map[string]int{}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	outs := make([]string, 8)
	for i := range 8 {
		img := imgs[i%len(imgs)]
		name := fmt.Sprintf("u%d", i)
		want[name] = libs[img]
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = pooltest.UnipoolErr(t, dir, "add", img, "--name", name)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("add u%d: %v\n%s", i, err, outs[i])
		}
	}
	checkPool(t, dir, want)
	ents, _ := mustOpen(t, dir).List()
	if len(ents) != 8 {
		t.Errorf("%d unikernels in the index, want 8: %+v", len(ents), ents)
	}
	// Every distinct blob once: 4 images, libA shared by three of them.
	s, err := mustOpen(t, dir).Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.LibraryBlobs != 4 || s.AppBlobs != 4 || s.UnreferencedBlobs != 0 {
		t.Errorf("stats %+v: want 4 library blobs (libA, libB, libC, libBig), 4 app blobs, none unreferenced", s)
	}
}

// killAtRandom runs the CLI with args, sends SIGKILL after a random delay
// in [0, limit) and reports whether the command finished before the kill.
func killAtRandom(t *testing.T, limit time.Duration, args ...string) bool {
	t.Helper()
	cmd := exec.Command(pooltest.CLI(t), args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(mrand.Int64N(int64(limit))))
	cmd.Process.Signal(syscall.SIGKILL)
	return !killed(t, cmd.Wait(), args...)
}

// killed reports whether a command that was sent SIGKILL died of a signal
// (false: it had finished, successfully); any other failure fails t.
func killed(t *testing.T, err error, args ...string) bool {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return true
		}
	}
	if err != nil {
		t.Fatalf("unipool %s: %v", strings.Join(args, " "), err)
	}
	return false
}

// killWhileRemoving runs `unipool pool gc` on dir and kills it once it has
// removed a blob and before it has finished: it watches the blob directory
// shrink, not the clock, so that a fast machine cannot finish every gc
// before its kill. It reports whether the kill landed (false: the gc
// finished before it was seen removing anything).
func killWhileRemoving(t *testing.T, dir string) bool {
	t.Helper()
	bd := filepath.Join(dir, "blobs", "sha256")
	count := func() int {
		ents, err := os.ReadDir(bd)
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := count()
	args := []string{"pool", "--pool", dir, "gc"}
	cmd := exec.Command(pooltest.CLI(t), args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("unipool %s: %v", strings.Join(args, " "), err)
			}
			return false // finished before it was seen removing
		default:
		}
		if count() < before {
			cmd.Process.Signal(syscall.SIGKILL)
			return killed(t, <-done, args...)
		}
	}
}

func timed(t *testing.T, args ...string) time.Duration {
	t.Helper()
	start := time.Now()
	if out, err := exec.Command(pooltest.CLI(t), args...).CombinedOutput(); err != nil {
		t.Fatalf("unipool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return time.Since(start)
}

func TestKillDuringAddLeavesConsistentPool(t *testing.T) {
	f := pooltest.Images(t)
	pooltest.CLI(t)
	dir := pooltest.NewPool(t)
	want := map[string]int{"hello": 3, "world": 4}
	pooltest.Unipool(t, dir, "add", f.Hello)
	pooltest.Unipool(t, dir, "add", f.World)
	// The big image takes long enough (hashing, writing and fsyncing 6 MiB)
	// for random kills to land inside it.
	d := timed(t, "pool", "--pool", dir, "add", f.Big, "--name", "big-warm")
	want["big-warm"] = 3
	pooltest.Unipool(t, dir, "rm", "big-warm")
	pooltest.Unipool(t, dir, "gc")
	delete(want, "big-warm")
	killed := 0
	for i := range 20 {
		img, libs := f.Big, 3
		if i%4 == 3 {
			img, libs = f.World, 4
		}
		name := fmt.Sprintf("k%d", i%3) // some adds replace an earlier one
		if killAtRandom(t, d*3/2, "pool", "--pool", dir, "add", img, "--name", name) {
			want[name] = libs
		} else {
			// Killed: the name holds what it held before, or (if the
			// kill came after index.json was replaced) the new image.
			killed++
			before, had := want[name]
			c, err := mustOpen(t, dir).Resolve(name)
			switch {
			case err == nil && (len(c.Libraries) == libs || had && len(c.Libraries) == before):
				want[name] = len(c.Libraries)
			case errors.Is(err, ErrNotFound) && !had:
			default:
				t.Fatalf("iteration %d: after a killed add, %s resolves to %v, %v; want its old (%v, %d libraries) or new (%d libraries) self", i, name, c, err, had, before, libs)
			}
		}
		checkPool(t, dir, want)
		if t.Failed() {
			t.Fatalf("after iteration %d", i)
		}
	}
	t.Logf("add took %v; %d of 20 adds were killed before they finished", d, killed)
	if killed == 0 {
		t.Error("no add was killed: the test exercised nothing")
	}
	pooltest.Unipool(t, dir, "gc")
	checkPool(t, dir, want)
}

// garbage writes n unreferenced blobs (and a temporary file) for gc.
func garbage(t *testing.T, dir string, n int) {
	t.Helper()
	bd := filepath.Join(dir, "blobs", "sha256")
	for range n {
		b := make([]byte, 512)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(bd, digest.SHA256.FromBytes(b).Encoded()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(bd, tmpPrefix+"killed-add"), []byte("partial"), 0o644)
}

func TestKillDuringGCLeavesConsistentPool(t *testing.T) {
	f := pooltest.Images(t)
	pooltest.CLI(t)
	dir := pooltest.NewPool(t)
	want := map[string]int{"hello": 3, "world": 4, "big": 3}
	pooltest.Unipool(t, dir, "add", f.Hello)
	pooltest.Unipool(t, dir, "add", f.World)
	pooltest.Unipool(t, dir, "add", f.Big)
	garbage(t, dir, 250)
	d := timed(t, "pool", "--pool", dir, "gc")
	killed, midRemoval := 0, 0
	for i := range 20 {
		// Real unreferenced blobs too: a replaced and a removed unikernel
		// (made in-process: what is under test is the killed gc).
		mustAdd(t, dir, f.Solo, AddOptions{Name: "tmp"})
		mustAdd(t, dir, f.Hello, AddOptions{Name: "tmp"})
		mustAdd(t, dir, f.Solo, AddOptions{Name: "gone"})
		if err := mustOpen(t, dir).Remove("gone"); err != nil {
			t.Fatal(err)
		}
		garbage(t, dir, 250)
		want["tmp"] = 3
		if i%2 == 0 {
			// Anywhere in its run, start and scan included.
			if !killAtRandom(t, d*2, "pool", "--pool", dir, "gc") {
				killed++
			}
		} else if killWhileRemoving(t, dir) {
			// Between two removals, however fast this machine runs it.
			killed++
			midRemoval++
		}
		checkPool(t, dir, want)
		if t.Failed() {
			t.Fatalf("after iteration %d", i)
		}
	}
	t.Logf("gc took %v; %d of 20 were killed before they finished, %d of them between removals", d, killed, midRemoval)
	if midRemoval == 0 {
		t.Error("no gc was killed while it removed blobs: the test exercised nothing")
	}
	pooltest.Unipool(t, dir, "gc")
	s, err := mustOpen(t, dir).Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.UnreferencedBlobs != 0 {
		t.Errorf("after a full gc: %d unreferenced blobs", s.UnreferencedBlobs)
	}
}
