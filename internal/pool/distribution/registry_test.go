package distribution

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/libmap"
	"github.com/unipool/unipool/internal/pool"
	"github.com/unipool/unipool/internal/pool/pooltest"
	"github.com/unipool/unipool/internal/registry"
)

// testRegistry is Debian's docker-registry (the CNCF distribution
// registry), started for one test on the loopback address with TLS (a CA
// made for it) and a password (htpasswd, bcrypt), or plain HTTP if asked.
type testRegistry struct {
	*registry.Registry
	user, password string
	opt            RemoteOptions // what a client that knows the CA and the password uses
}

func startRegistry(t *testing.T, plainHTTP bool) *testRegistry {
	t.Helper()
	pw := make([]byte, 12)
	rand.Read(pw)
	tr := &testRegistry{user: "fleet", password: hex.EncodeToString(pw)}
	r, err := registry.Start(context.Background(), registry.Options{
		Dir: t.TempDir(), PlainHTTP: plainHTTP, Users: map[string]string{tr.user: tr.password}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop() })
	tr.Registry = r
	tr.opt = RemoteOptions{PlainHTTP: plainHTTP, CAFile: r.CAFile, Username: tr.user, Password: tr.password}
	return tr
}

// tags lists the tags the registry's storage holds for repo (read from its
// storage folder, not through the API).
func (r *testRegistry) tags(repo string) []string {
	ents, _ := os.ReadDir(filepath.Join(r.StorageDir, "docker", "registry", "v2", "repositories", repo, "_manifests", "tags"))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out
}

var blobGetRE = regexp.MustCompile(`"GET /v2/[^ ]+/blobs/(sha256:[0-9a-f]{64}) HTTP/[0-9.]+" 200 `)

// blobGets are the blobs the registry served (its access log), from the
// log's byte offset from on; and the log's length.
func (r *testRegistry) blobGets(t *testing.T, from int) ([]digest.Digest, int) {
	t.Helper()
	data, err := os.ReadFile(r.AccessLog)
	if err != nil {
		t.Fatal(err)
	}
	var out []digest.Digest
	for _, m := range blobGetRE.FindAllSubmatch(data[from:], -1) {
		out = append(out, digest.Digest(m[1]))
	}
	return out, len(data)
}

// poolState is what a pool shows: index, map and the set of blob files.
func poolState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []string{"oci-layout", "index.json", "map.json"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		fmt.Fprintf(&b, "%s: %v %x\n", f, err == nil, digest.SHA256.FromBytes(data))
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	for _, e := range ents {
		fmt.Fprintln(&b, e.Name())
	}
	return b.String()
}

func TestPushThenPullThroughARealRegistryRecreatesUnikernelsAndMap(t *testing.T) {
	f := pooltest.Images(t)
	reg := startRegistry(t, false)
	ctx := context.Background()
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.Hello, pool.AddOptions{})
	mustAdd(t, dir, f.World, pool.AddOptions{})
	p := mustOpen(t, dir)
	repo := reg.Host + "/unipool/test"
	if _, err := Push(ctx, p, repo, nil, reg.opt); err != nil {
		t.Fatal(err)
	}
	if got := reg.tags("unipool/test"); len(got) != 4 || got[0] != "hello" || got[1] != pool.MapTag || !strings.HasPrefix(got[2], pool.MapTagPrefix) || got[3] != "world" {
		t.Errorf("registry storage has tags %v, want hello, %s, %s<digest>, world", got, pool.MapTag, pool.MapTagPrefix)
	}

	other := filepath.Join(t.TempDir(), "other")
	res, err := Pull(ctx, other, repo, []string{"hello"}, reg.opt)
	if err != nil {
		t.Fatal(err)
	}
	// hello: the app's, libA's and libB's shared blobs and the private
	// blob are downloaded; config and manifest are read anyway.
	if !res.MapChanged || res.NewBlobs != 6 || res.Fetched != 4 {
		t.Errorf("pull hello: %+v, want the map taken, 6 new blobs, 4 downloaded", res)
	}
	q := mustOpen(t, other)
	dh, _ := q.Inspect("hello")
	_, off := reg.blobGets(t, 0)
	res, err = Pull(ctx, other, repo, nil, reg.opt)
	if err != nil {
		t.Fatal(err)
	}
	// world needs only its own app, libC and private blob: libA's and
	// libB's shared blobs are not downloaded again.
	if res.Fetched != 3 || res.NewBlobs != 5 || res.Resumed != 0 {
		t.Errorf("pull of all: %+v; want 3 downloaded, 5 new (with config and manifest)", res)
	}
	gets, _ := reg.blobGets(t, off)
	for _, b := range dh.Blobs {
		if b.Role == "shared" && slices.Contains(gets, b.Digest) {
			t.Errorf("the registry served %s (%s, %s), which the pool had", b.Digest, b.Role, b.Library)
		}
	}
	if len(gets) == 0 {
		t.Error("the registry's access log shows no blob served")
	}
	// hello's description is in the pool: read there, not fetched again.
	if res.LocalConfigs != 1 {
		t.Errorf("pull of all: %d descriptions read locally, want 1 (hello's)", res.LocalConfigs)
	}
	for _, b := range dh.Blobs {
		if b.Role == "config" && slices.Contains(gets, b.Digest) {
			t.Errorf("the registry served hello's description %s, which the pool had", b.Digest)
		}
	}
	// A pull of what the pool holds reads the manifests and no blob.
	_, off = reg.blobGets(t, 0)
	res, err = Pull(ctx, other, repo, nil, reg.opt)
	if err != nil {
		t.Fatal(err)
	}
	if gets, _ := reg.blobGets(t, off); len(gets) != 0 || res.Fetched != 0 || res.LocalConfigs != 2 {
		t.Errorf("a pull of a pool that holds everything: served %v, %+v; want no blob, 2 descriptions read locally", gets, res)
	}
	mustVerify(t, q)
	for _, b := range dh.Blobs {
		if fi, err := os.Stat(q.BlobPath(string(b.Digest))); err != nil || fi.Mode().Perm() != blobPerm {
			t.Errorf("pulled blob %s: %v, want mode %o", b.Digest, err, blobPerm)
		}
	}
	for _, name := range []string{"hello", "world"} {
		a, _ := p.Inspect(name)
		b, err := q.Inspect(name)
		if err != nil {
			t.Fatal(err)
		}
		if a.Manifest != b.Manifest {
			t.Errorf("%s: manifest %s after the round trip, %s before", name, b.Manifest, a.Manifest)
		}
	}
	m, err := libmap.Load(q.MapPath())
	if err != nil || len(m.Libraries) != 4 {
		t.Errorf("pulled map: %v, %v", m, err)
	}
}

func TestPullRefusesAMapThatPlacesALibraryElsewhereNamingItAndLeavesThePoolUnchanged(t *testing.T) {
	f := pooltest.Images(t)
	reg := startRegistry(t, false)
	ctx := context.Background()
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.Hello, pool.AddOptions{})
	repo := reg.Host + "/fleet"
	if _, err := Push(ctx, mustOpen(t, dir), repo, nil, reg.opt); err != nil {
		t.Fatal(err)
	}
	third := filepath.Join(t.TempDir(), "third")
	moved := pooltest.LibB
	moved.Region.Start += 0x100000
	pooltest.WriteMap(t, third, pooltest.LibA, moved)
	before := poolState(t, third)
	_, err := Pull(ctx, third, repo, []string{"hello"}, reg.opt)
	if err == nil || !strings.Contains(err.Error(), `library "libB"`) || !strings.Contains(err.Error(), "disagrees") {
		t.Errorf("pull into a pool whose map places libB elsewhere: %v", err)
	}
	if after := poolState(t, third); after != before {
		t.Errorf("a refused pull changed the pool:\n%s\nwas\n%s", after, before)
	}
	// And push refuses to overwrite the registry's map with it.
	mustAdd(t, third, f.Solo, pool.AddOptions{})
	if _, err := Push(ctx, mustOpen(t, third), repo, nil, reg.opt); err == nil || !strings.Contains(err.Error(), `library "libB"`) {
		t.Errorf("push of a disagreeing map: %v", err)
	}
}

func TestPushRefusesADamagedUnikernel(t *testing.T) {
	f := pooltest.Images(t)
	reg := startRegistry(t, false)
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.Hello, pool.AddOptions{})
	p := mustOpen(t, dir)
	d, _ := p.Inspect("hello")
	path := p.BlobPath(string(d.Blobs[1].Digest)) // the config
	data, _ := os.ReadFile(path)
	data[10] ^= 1
	os.WriteFile(path, data, 0o644)
	_, err := Push(context.Background(), p, reg.Host+"/x", nil, reg.opt)
	if err == nil || !strings.Contains(err.Error(), string(d.Blobs[1].Digest)) {
		t.Errorf("push of a damaged unikernel: %v", err)
	}
	if tags := reg.tags("x"); len(tags) != 0 {
		t.Errorf("registry got tags %v", tags)
	}
}

// pushed is a registry holding hello and world, and a pool that has
// pulled nothing yet but hello (the case where the errors must leave
// the pool as it was).
func pushed(t *testing.T, plainHTTP bool) (reg *testRegistry, repo, src, dst string) {
	t.Helper()
	f := pooltest.Images(t)
	reg = startRegistry(t, plainHTTP)
	src = pooltest.NewPool(t)
	mustAdd(t, src, f.Hello, pool.AddOptions{InitBlobs: true})
	mustAdd(t, src, f.World, pool.AddOptions{InitBlobs: true})
	repo = reg.Host + "/fleet"
	if _, err := Push(context.Background(), mustOpen(t, src), repo, nil, reg.opt); err != nil {
		t.Fatal(err)
	}
	dst = filepath.Join(t.TempDir(), "dst")
	if _, err := Pull(context.Background(), dst, repo, []string{"hello"}, reg.opt); err != nil {
		t.Fatal(err)
	}
	return reg, repo, src, dst
}

func TestPullWithAWrongPasswordIsAClearErrorAndNothingEntersThePool(t *testing.T) {
	reg, repo, _, dst := pushed(t, false)
	before := poolState(t, dst)
	o := reg.opt
	o.Password = "not-" + reg.password
	_, err := Pull(context.Background(), dst, repo, []string{"world"}, o)
	if err == nil || !strings.Contains(err.Error(), "refused the credentials (401 unauthorized)") || !strings.Contains(err.Error(), `user "fleet"`) {
		t.Errorf("pull with a wrong password: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), o.Password) {
		t.Errorf("the error shows the password: %v", err)
	}
	o.Username, o.Password = "", ""
	o.DockerConfig = filepath.Join(t.TempDir(), "config.json") // none there
	_, err = Pull(context.Background(), dst, repo, []string{"world"}, o)
	if err == nil || !strings.Contains(err.Error(), "asks for a password and there is none") || !strings.Contains(err.Error(), "no credentials") {
		t.Errorf("pull with no credentials: %v", err)
	}
	if after := poolState(t, dst); after != before {
		t.Errorf("a refused pull changed the pool:\n%s\nwas\n%s", after, before)
	}
	// Nor into a pool that did not exist: none is created.
	fresh := filepath.Join(t.TempDir(), "fresh")
	if _, err := Pull(context.Background(), fresh, repo, nil, RemoteOptions{CAFile: reg.CAFile, Username: "fleet", Password: "x"}); err == nil {
		t.Error("pull with a wrong password succeeded")
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused pull created %s: %v", fresh, err)
	}
}

func TestPullFromARegistryWhoseCertificateIsNotTrustedIsAClearErrorAndNothingEntersThePool(t *testing.T) {
	reg, repo, _, dst := pushed(t, false)
	before := poolState(t, dst)
	o := reg.opt
	o.CAFile = "" // the system's CAs do not know the test CA
	_, err := Pull(context.Background(), dst, repo, []string{"world"}, o)
	if err == nil || !strings.Contains(err.Error(), "TLS certificate is not trusted") || !strings.Contains(err.Error(), "--ca-file") {
		t.Errorf("pull from a registry with an unknown CA: %v", err)
	}
	// A registry whose certificate, from a trusted CA, is for another name.
	other, err := registry.Start(context.Background(), registry.Options{Dir: t.TempDir(), CertHosts: []string{"registry.example"}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Stop()
	_, err = Pull(context.Background(), dst, other.Host+"/fleet", []string{"world"}, RemoteOptions{CAFile: other.CAFile})
	if err == nil || !strings.Contains(err.Error(), "TLS certificate is not valid for 127.0.0.1 (it names registry.example)") {
		t.Errorf("pull from a registry with a certificate for another name: %v", err)
	}
	if after := poolState(t, dst); after != before {
		t.Errorf("a refused pull changed the pool:\n%s\nwas\n%s", after, before)
	}
}

func TestPlainHTTPOnlyWhenAskedFor(t *testing.T) {
	reg, repo, _, dst := pushed(t, true)
	o := reg.opt
	o.PlainHTTP = false
	_, err := Pull(context.Background(), dst, repo, []string{"world"}, o)
	if err == nil || !strings.Contains(err.Error(), "--plain-http") {
		t.Errorf("https to a plain-HTTP registry: %v", err)
	}
	if _, err := Pull(context.Background(), dst, repo, []string{"world"}, reg.opt); err != nil {
		t.Errorf("with --plain-http: %v", err)
	}
}

func TestPullOfABlobTamperedWithInTheRegistryIsRefusedAndNothingEntersThePool(t *testing.T) {
	reg, repo, src, dst := pushed(t, false)
	// libC's shared blob, which only world has: flip a byte in the
	// registry's storage, keeping the size.
	d, _ := mustOpen(t, src).Inspect("world")
	var target digest.Digest
	for _, b := range d.Blobs {
		if b.Role == "shared" && b.Library == "libC" {
			target = b.Digest
		}
	}
	path := reg.BlobDataPath(target)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	before := poolState(t, dst)
	_, err = Pull(context.Background(), dst, repo, []string{"world"}, reg.opt)
	if err == nil || !strings.Contains(err.Error(), string(target)) || !strings.Contains(err.Error(), "tampered") || !strings.Contains(err.Error(), "libC") {
		t.Errorf("pull of a tampered blob: %v", err)
	}
	if after := poolState(t, dst); after != before {
		t.Errorf("a refused pull changed the pool:\n%s\nwas\n%s", after, before)
	}
	if _, err := os.Stat(filepath.Join(dst, stagingDir, target.Encoded())); err == nil {
		t.Error("the tampered blob was kept in the staging folder")
	}
	mustVerify(t, mustOpen(t, dst))
}

func TestCLIPushPullWithTLSAndAPasswordOnStdinOrInTheDockerConfig(t *testing.T) {
	f := pooltest.Images(t)
	reg := startRegistry(t, false)
	dir := pooltest.NewPool(t)
	pooltest.Unipool(t, dir, "add", f.World)
	repo := reg.Host + "/fleet"
	run := func(dir, stdin string, env []string, args ...string) (string, error) {
		cmd := exec.Command(pooltest.CLI(t), append([]string{"pool", "--pool", dir}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if strings.Contains(string(out), reg.password) {
			t.Errorf("unipool %s printed the password:\n%s", strings.Join(args, " "), out)
		}
		return string(out), err
	}
	if out, err := run(dir, reg.password+"\n", nil, "push", "--ca-file", reg.CAFile, "--username", reg.user, repo); err != nil || !strings.HasPrefix(out, "pushed 1 unikernels") {
		t.Fatalf("push: %v %q", err, out)
	}
	// The docker config's auths, as `docker login` writes them.
	home := t.TempDir()
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{reg.Host: map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte(reg.user + ":" + reg.password))}}})
	os.MkdirAll(filepath.Join(home, ".docker"), 0o700)
	os.WriteFile(filepath.Join(home, ".docker", "config.json"), cfg, 0o600)
	env := []string{"HOME=" + home, "DOCKER_CONFIG="}
	other := filepath.Join(t.TempDir(), "other")
	out, err := run(other, "", env, "pull", "--ca-file", reg.CAFile, repo)
	// 7 blobs and 3 init blobs; 8 downloaded (not config and manifest).
	if err != nil || !strings.HasPrefix(out, "pulled world (10 new blobs") || !strings.Contains(out, "downloaded 8 blobs") {
		t.Errorf("pull with the docker config: %v %q", err, out)
	}
	if out := pooltest.Unipool(t, other, "verify"); !strings.Contains(out, "0 problems") {
		t.Errorf("verify after pull: %q", out)
	}
	if out, err := run(other, "", env, "pull", "--ca-file", reg.CAFile, repo, "nothere"); err == nil || !strings.Contains(out, "nothere") {
		t.Errorf("pull of a missing tag: %v %q", err, out)
	}
	if out, err := run(other, "", nil, "pull", "--ca-file", reg.CAFile, "--username", reg.user, repo); err == nil || !strings.Contains(out, "no password on stdin") {
		t.Errorf("--username without a password on stdin: %v %q", err, out)
	}
}

// pushedFleet starts a registry (TLS, with a password) and pushes to its
// repository "fleet" a pool of three unikernels: hello, world and big.
func pushedFleet(t *testing.T) (reg *testRegistry, src, repo string) {
	t.Helper()
	f := pooltest.Images(t)
	reg = startRegistry(t, false)
	src = pooltest.NewPool(t)
	mustAdd(t, src, f.Hello, pool.AddOptions{InitBlobs: true})
	mustAdd(t, src, f.World, pool.AddOptions{InitBlobs: true})
	mustAdd(t, src, f.Big, pool.AddOptions{Name: "big", InitBlobs: true})
	repo = reg.Host + "/fleet"
	if _, err := Push(context.Background(), mustOpen(t, src), repo, nil, reg.opt); err != nil {
		t.Fatal(err)
	}
	return reg, src, repo
}

func TestConcurrentPullsOfOverlappingFleetsIntoOnePoolAllLand(t *testing.T) {
	reg, src, repo := pushedFleet(t)
	dst := filepath.Join(t.TempDir(), "dst")
	fleets := [][]string{{"hello", "world"}, {"world", "big"}, {"big", "hello"}, {"hello"}, {"hello", "world", "big"}}
	var wg sync.WaitGroup
	errs := make([]string, len(fleets))
	for i, fl := range fleets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(pooltest.CLI(t), append([]string{"pool", "--pool", dst, "pull", "--ca-file", reg.CAFile, "--username", reg.user, repo}, fl...)...)
			cmd.Stdin = strings.NewReader(reg.password)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Sprintf("pull %v: %v\n%s", fl, err, out)
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Error(e)
		}
	}
	q := mustOpen(t, dst)
	mustVerify(t, q)
	for _, name := range []string{"hello", "world", "big"} {
		a, _ := mustOpen(t, src).Inspect(name)
		if b, err := q.Inspect(name); err != nil || a.Manifest != b.Manifest {
			t.Errorf("%s after concurrent pulls: %v", name, err)
		}
	}
}

func TestAPullKilledAtRandomPointsResumesAndEndsWithAVerifiedPool(t *testing.T) {
	reg, _, repo := pushedFleet(t)
	dst := filepath.Join(t.TempDir(), "dst")
	pull := func() *exec.Cmd {
		cmd := exec.Command(pooltest.CLI(t), "pool", "--pool", dst, "pull", "--json", "--jobs", "1", "--ca-file", reg.CAFile, "--username", reg.user, repo)
		cmd.Stdin = strings.NewReader(reg.password)
		return cmd
	}
	// The whole pull takes some hundred milliseconds; kill it within that.
	start := time.Now()
	if out, err := pull().CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	whole := time.Since(start)
	os.RemoveAll(dst)
	for i := 0; i < 4; i++ {
		cmd := pull()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(mrand.Int64N(int64(whole) * 3 / 4)))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		// Killed or not, the pool is whole: all three unikernels or none.
		if _, err := os.Stat(filepath.Join(dst, "oci-layout")); err == nil { // pool.Init writes it last
			q := mustOpen(t, dst)
			mustVerify(t, q)
			if rows, _ := q.Summaries(); len(rows) != 0 && len(rows) != 3 {
				t.Errorf("after kill %d: %d unikernels in the pool, want 0 or 3", i, len(rows))
			}
		}
	}
	out, err := pull().Output()
	if err != nil {
		t.Fatalf("pull after the kills: %v", err)
	}
	var res PullResult
	json.Unmarshal(out, &res)
	t.Logf("after 4 kills: %+v", res)
	q := mustOpen(t, dst)
	mustVerify(t, q)
	if rows, _ := q.Summaries(); len(rows) != 3 {
		t.Errorf("pool holds %d unikernels after the rerun, want 3", len(rows))
	}
	if _, err := q.GC(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dst, stagingDir)); len(ents) != 0 {
		t.Errorf("gc left %d files in the staging folder", len(ents))
	}
}

func TestConcurrentPushersOfPoolsWithDifferentMapsLeaveTheRegistryAMapThatPlacesEveryLibrary(t *testing.T) {
	f := pooltest.Images(t)
	reg := startRegistry(t, false)
	ctx := context.Background()
	// Three pools, each whose map places only the libraries of its one
	// unikernel; pushed at once, round after round, to one repository.
	type src struct {
		image string
		libs  []pooltest.Lib
	}
	srcs := []src{{f.Hello, []pooltest.Lib{pooltest.LibA, pooltest.LibB}}, {f.Big, []pooltest.Lib{pooltest.LibA, f.BigLib}}, {f.World, []pooltest.Lib{pooltest.LibA, pooltest.LibB, pooltest.LibC}}}
	var pools []*pool.Pool
	for _, s := range srcs {
		dir := filepath.Join(t.TempDir(), "pool")
		pooltest.WriteMap(t, dir, s.libs...)
		mustAdd(t, dir, s.image, pool.AddOptions{})
		pools = append(pools, mustOpen(t, dir))
	}
	for round := 0; round < 3; round++ {
		repo := fmt.Sprintf("%s/race%d", reg.Host, round)
		var wg sync.WaitGroup
		errs := make([]error, len(pools))
		for i, p := range pools {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = Push(ctx, p, repo, nil, reg.opt)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		// A fresh pool pulls all three: every library is placed.
		dst := filepath.Join(t.TempDir(), "dst")
		res, err := Pull(ctx, dst, repo, nil, reg.opt)
		if err != nil {
			t.Fatalf("round %d: pull of what three concurrent pushers pushed: %v", round, err)
		}
		if len(res.Names) != 3 {
			t.Errorf("round %d: pulled %v", round, res.Names)
		}
		m, err := libmap.Load(filepath.Join(dst, pool.MapFile))
		if err != nil || len(m.Libraries) != 4 {
			t.Errorf("round %d: the pulled map has %v (%v), want libA, libB, libC, libBig", round, m, err)
		}
	}
}

// A snapshot's page packs are layers of its manifest, its own and the
// ones it references pages in: pulled alone, world brings hello's pack
// too, and the pulled pool verifies (each packed page against its
// digest) and lets a new snapshot reference the pulled pages.
func TestPullOfASnapshotBringsThePacksOfOtherSnapshotsItReferences(t *testing.T) {
	f := pooltest.Images(t)
	reg := startRegistry(t, false)
	ctx := context.Background()
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.Hello, pool.AddOptions{})
	mustAdd(t, dir, f.World, pool.AddOptions{})
	p := mustOpen(t, dir)
	s := &desc.Snapshot{Monitor: "process", MemSize: 1 << 20, BootArea: 1 << 16}
	if _, err := p.SetSnapshot("hello", s, map[uint64][]byte{0x2002_0000: page(1), 0x2002_1000: page(2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SetSnapshot("world", s, map[uint64][]byte{0x2002_0000: page(2), 0x2002_1000: page(3)}); err != nil {
		t.Fatal(err)
	}
	repo := reg.Host + "/unipool/snap"
	if _, err := Push(ctx, p, repo, nil, reg.opt); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	if _, err := Pull(ctx, other, repo, []string{"world"}, reg.opt); err != nil {
		t.Fatal(err)
	}
	q := mustOpen(t, other)
	mustVerify(t, q)
	w, err := q.Resolve("world")
	if err != nil {
		t.Fatal(err)
	}
	h, err := p.Resolve("hello")
	if err != nil {
		t.Fatal(err)
	}
	if w.Snapshot.Pages[0].Blob != h.Snapshot.Pages[0].Blob {
		t.Fatalf("world's page 2 %+v is not in hello's pack %s", w.Snapshot.Pages[0], h.Snapshot.Pages[0].Blob)
	}
	if _, err := os.Stat(q.BlobPath(h.Snapshot.Pages[0].Blob)); err != nil {
		t.Fatalf("hello's pack was not pulled with world: %v", err)
	}
	if _, err := Pull(ctx, other, repo, []string{"hello"}, reg.opt); err != nil {
		t.Fatal(err)
	}
	r, err := q.SetSnapshot("hello", s, map[uint64][]byte{0x2002_0000: page(1), 0x2002_1000: page(3)})
	if err != nil {
		t.Fatal(err)
	}
	nh, err := q.Resolve("hello")
	if err != nil {
		t.Fatal(err)
	}
	if r.NewPages != 0 || nh.Snapshot.Pages[0] != h.Snapshot.Pages[0] || nh.Snapshot.Pages[1].Blob != w.Snapshot.Pages[1].Blob {
		t.Errorf("hello's snapshot in the pulled pool %+v (%d new pages): want pages 1 and 3 where world's pull put them", nh.Snapshot.Pages, r.NewPages)
	}
	mustVerify(t, q)
}
