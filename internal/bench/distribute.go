package bench

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/unipool/unipool/internal/link"
	"github.com/unipool/unipool/internal/pool"
	"github.com/unipool/unipool/internal/pool/distribution"
	"github.com/unipool/unipool/internal/registry"
)

// DistributeOptions say what bench distribute ships.
type DistributeOptions struct {
	Count int    // unikernels of the fleet the second host pulls first
	Add   int    // new unikernels it pulls next
	Seed  uint64 // corpus seed
	Work  string // the fleet: corpus/, images/, pool/
	// Reuse takes the fleet already built in Work (LoadFleet) and only
	// reads it; it must hold at least Count+Add unikernels (the first
	// Count, then the next Add).
	Reuse bool
	// Scratch holds what the run writes: the registry's storage and the
	// second and third hosts (default Work).
	Scratch   string
	Jobs      int // parallel builds and links
	Transfers int // blobs (pool) or images (whole) in flight at once
	// Kills: after the measurement, pull the first fleet into a third
	// empty pool with the CLI (Exe), killed at random points this many
	// times, then once to completion.
	Kills int
	Exe   string
	// ComparePlain also ships the pool the way versions before the wire
	// form did (descriptions as blobs of their own), side by side.
	ComparePlain bool
	Log          io.Writer
}

// Shipment is one way of bringing unikernels to a host, measured.
type Shipment struct {
	Method     string  `json:"method"` // "pool", "whole images" or MethodPlain
	Step       string  `json:"step"`   // "first host" or "add"
	Unikernels int     `json:"unikernels"`
	Requests   int64   `json:"requests"`
	BytesIn    int64   `json:"bytes_in"` // HTTP response bodies received
	Blobs      int     `json:"blobs_downloaded"`
	BlobBytes  int64   `json:"blob_bytes_downloaded"`
	Seconds    float64 `json:"seconds"`
}

// KillRun is the killed-and-resumed pull.
type KillRun struct {
	Kills         int                     `json:"kills"`
	Blobs         int                     `json:"blobs"` // the pull stages this many in all
	KilledAfterMs []int64                 `json:"killed_after_ms"`
	TargetAtKill  []int                   `json:"kill_drawn_at_staged"`  // each kill came once this many blobs were staged
	FinishedFirst int                     `json:"finished_before_kill"`  // runs that completed before their kill
	StagedAtKill  []int                   `json:"staged_at_kill"`        // verified blobs in .pull after each kill
	PartialAtKill []int64                 `json:"partial_bytes_at_kill"` // bytes of cut downloads in .pull after each kill
	PoolAtKill    []int                   `json:"unikernels_at_kill"`    // unikernels in the pool after each kill (0 or all)
	Final         distribution.PullResult `json:"final"`
	Verified      bool                    `json:"verified"`
	Unikernels    int                     `json:"unikernels"`
	SameManifests bool                    `json:"same_manifests"`
}

// MethodPlain is the pool pushed with plain descriptions (--compare-plain).
const MethodPlain = "pool, plain desc."

// DistributeResults are bench distribute's figures.
type DistributeResults struct {
	Count, Add int
	Seed       uint64
	Registry   string `json:"registry"`
	// The fleet's sizes at the source: whole stock (packed) images, and
	// the pool's distinct blobs.
	WholeImageBytes int64      `json:"whole_image_bytes"`
	PoolBlobBytes   int64      `json:"pool_blob_bytes"`
	PushSeconds     [3]float64 `json:"push_seconds"` // pool, whole images, pool with plain descriptions (both steps)
	Shipments       []Shipment `json:"shipments"`
	Verified        bool       `json:"verified"`
	Kill            *KillRun   `json:"kill,omitempty"`
}

// Distribute measures bringing a second, empty host up to a fleet of
// o.Count unikernels and then adding o.Add new ones, through a real
// registry (Debian's docker-registry, on loopback, TLS and a password),
// two ways side by side: unipool's pool (pull fetches the library blobs
// the host lacks) and whole images as kraftkit ships them (one OCI image
// per unikernel: the stock-linked kernel as an uncompressed tar layer, and
// an image config).
func Distribute(ctx context.Context, o DistributeOptions) (*DistributeResults, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Transfers <= 0 {
		o.Transfers = 4
	}
	if _, err := registry.Find(); err != nil {
		return nil, err
	}
	if o.Scratch == "" {
		o.Scratch = o.Work
	}
	var fleet *Fleet
	var err error
	if o.Reuse {
		if fleet, err = LoadFleet(o.Work, []string{link.LayoutPacked}, ""); err != nil {
			return nil, err
		}
		if len(fleet.Names) < o.Count+o.Add {
			return nil, fmt.Errorf("bench: the fleet in %s has %d unikernels, fewer than --count %d + --add %d", o.Work, len(fleet.Names), o.Count, o.Add)
		}
		fleet.truncate(o.Count + o.Add)
		fmt.Fprintf(o.Log, "the fleet in %s, read only: the first %d unikernels, then the next %d\n", o.Work, o.Count, o.Add)
	} else {
		fleet, err = BuildFleet(ctx, FleetOptions{Count: o.Count + o.Add, Seed: o.Seed, Work: o.Work, Jobs: o.Jobs,
			Layouts: []string{link.LayoutPacked}, Log: o.Log})
		if err != nil {
			return nil, err
		}
	}
	res := &DistributeResults{Count: o.Count, Add: o.Add, Seed: fleet.Corpus.Seed}
	for _, p := range fleet.Images[link.LayoutPacked] {
		if fi, err := os.Stat(p); err == nil {
			res.WholeImageBytes += fi.Size()
		}
	}
	src, err := pool.Open(fleet.PoolDir)
	if err != nil {
		return nil, err
	}
	// The fleet's distinct blobs (a reused pool may hold more unikernels).
	seen := map[string]bool{}
	for _, n := range fleet.Names {
		d, err := src.Inspect(n)
		if err != nil {
			return nil, err
		}
		for _, b := range d.Blobs {
			if !seen[string(b.Digest)] {
				seen[string(b.Digest)] = true
				res.PoolBlobBytes += b.Size
			}
		}
	}

	regDir := filepath.Join(o.Scratch, "registry")
	os.RemoveAll(regDir)
	pw := make([]byte, 16)
	rand.Read(pw)
	reg, err := registry.Start(ctx, registry.Options{Dir: regDir, Users: map[string]string{"unipool": hex.EncodeToString(pw)}})
	if err != nil {
		return nil, err
	}
	defer reg.Stop()
	out, _ := exec.Command(registry.Binary, "--version").Output()
	res.Registry = strings.TrimSpace(string(out)) + ", TLS (own CA), htpasswd"
	fmt.Fprintf(o.Log, "registry %s on %s (log %s)\n", res.Registry, reg.Host, reg.LogFile)
	ropt := distribution.RemoteOptions{CAFile: reg.CAFile, Username: "unipool", Password: hex.EncodeToString(pw), Jobs: o.Transfers}
	poolRepo, imageRepo, plainRepo := reg.Host+"/fleet/pool", reg.Host+"/fleet/images", reg.Host+"/fleet/pool-plain"

	first, added := fleet.Names[:o.Count], fleet.Names[o.Count:]
	hostB := filepath.Join(o.Scratch, "host-b", "pool")
	hostBPlain := filepath.Join(o.Scratch, "host-b", "pool-plain")
	hostBImages := filepath.Join(o.Scratch, "host-b", "images")
	os.RemoveAll(filepath.Join(o.Scratch, "host-b"))
	store, err := oci.New(hostBImages)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	firstBlobs := 0 // blobs the first fleet brings an empty pool
	for step, names := range [][]string{first, added} {
		if len(names) == 0 {
			continue
		}
		stepName := "first host"
		if step == 1 {
			stepName = "add"
		}
		paths := fleet.Images[link.LayoutPacked][step*o.Count : step*o.Count+len(names)]
		fmt.Fprintf(o.Log, "%s: pushing %d unikernels to %s and %d whole images to %s\n", stepName, len(names), poolRepo, len(names), imageRepo)
		t0 := time.Now()
		if _, err := distribution.Push(ctx, src, poolRepo, names, ropt); err != nil {
			return nil, err
		}
		res.PushSeconds[0] += time.Since(t0).Seconds()
		t0 = time.Now()
		if err := pushImages(ctx, imageRepo, ropt, names, paths); err != nil {
			return nil, err
		}
		res.PushSeconds[1] += time.Since(t0).Seconds()

		fmt.Fprintf(o.Log, "%s: pulling into the second host's pool\n", stepName)
		pr, shipped, err := pullPool(ctx, hostB, poolRepo, names, ropt, "pool", stepName)
		if err != nil {
			return nil, err
		}
		if step == 0 {
			firstBlobs = pr.NewBlobs
		}
		res.Shipments = append(res.Shipments, shipped)
		fmt.Fprintf(o.Log, "%s: pulling whole images into the second host's image store\n", stepName)
		t0 = time.Now()
		sh, err := pullImages(ctx, imageRepo, ropt, names, store)
		if err != nil {
			return nil, err
		}
		sh.Step, sh.Seconds = stepName, time.Since(t0).Seconds()
		res.Shipments = append(res.Shipments, *sh)
		if o.ComparePlain {
			// The same pool, pushed the way versions before the wire form
			// did: each description a blob of its own, uncompressed.
			popt := ropt
			popt.PlainDescriptions = true
			t0 = time.Now()
			if _, err := distribution.Push(ctx, src, plainRepo, names, popt); err != nil {
				return nil, err
			}
			res.PushSeconds[2] += time.Since(t0).Seconds()
			fmt.Fprintf(o.Log, "%s: pulling plain descriptions into another pool\n", stepName)
			_, shipped, err := pullPool(ctx, hostBPlain, plainRepo, names, popt, MethodPlain, stepName)
			if err != nil {
				return nil, err
			}
			res.Shipments = append(res.Shipments, shipped)
		}
	}
	b, err := pool.Open(hostB)
	if err != nil {
		return nil, err
	}
	vr, err := b.Verify()
	if err != nil {
		return nil, err
	}
	res.Verified = vr.OK() && vr.Unikernels == len(fleet.Names) && sameManifests(src, b, fleet.Names)
	if !res.Verified {
		return res, fmt.Errorf("bench: the second host's pool does not verify or differs from the source: %v", vr.Problems)
	}
	if o.Kills > 0 {
		k, err := killedPull(ctx, o, reg, poolRepo, ropt, src, first, firstBlobs)
		res.Kill = k
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

func sameManifests(a, b *pool.Pool, names []string) bool {
	for _, n := range names {
		x, err1 := a.Inspect(n)
		y, err2 := b.Inspect(n)
		if err1 != nil || err2 != nil || x.Manifest != y.Manifest {
			return false
		}
	}
	return true
}

// pushImages pushes each image as kraftkit packages a unikernel: an OCI
// image whose one layer is an uncompressed tar holding the kernel, and an
// image config.
func pushImages(ctx context.Context, ref string, ropt distribution.RemoteOptions, names, paths []string) error {
	repo, _, err := distribution.Repository(ref, ropt)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(ropt.Jobs)
	var locks digestLocks
	for i, name := range names {
		g.Go(func() error {
			if err := pushImage(gctx, repo, &locks, name, paths[i]); err != nil {
				return fmt.Errorf("bench: push image %s: %w", name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// digestLocks serialises the pushes of one blob: every image has the same
// config blob, and the registry refuses a manifest whose blob another
// push is still uploading ("blob unknown"), so a blob is checked and
// pushed by one image at a time; different blobs go in parallel.
type digestLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (l *digestLocks) lock(d string) func() {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*sync.Mutex{}
	}
	m := l.locks[d]
	if m == nil {
		m = new(sync.Mutex)
		l.locks[d] = m
	}
	l.mu.Unlock()
	m.Lock()
	return m.Unlock
}

func pushImage(ctx context.Context, repo *remote.Repository, locks *digestLocks, name, path string) error {
	kernel, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Name: "unikraft/bin/kernel", Mode: 0o755, Size: int64(len(kernel)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	tw.Write(kernel)
	if err := tw.Close(); err != nil {
		return err
	}
	cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{Architecture: "amd64", OS: "linux"},
		Config: ocispec.ImageConfig{Cmd: []string{"/unikraft/bin/kernel"}},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: nil}})
	ld := content.NewDescriptorFromBytes(ocispec.MediaTypeImageLayer, layer.Bytes())
	cd := content.NewDescriptorFromBytes(ocispec.MediaTypeImageConfig, cfg)
	for _, b := range []struct {
		d    ocispec.Descriptor
		data []byte
	}{{ld, layer.Bytes()}, {cd, cfg}} {
		unlock := locks.lock(b.d.Digest.String())
		ok, err := repo.Exists(ctx, b.d)
		if err == nil && !ok {
			err = repo.Push(ctx, b.d, bytes.NewReader(b.data))
		}
		unlock()
		if err != nil {
			return err
		}
	}
	md, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "", oras.PackManifestOptions{Layers: []ocispec.Descriptor{ld}, ConfigDescriptor: &cd})
	if err != nil {
		return err
	}
	return repo.Tag(ctx, md, name)
}

// pullImages copies each image into an OCI layout, as a host storing
// whole images does (blobs it already holds are not fetched).
func pullImages(ctx context.Context, ref string, ropt distribution.RemoteOptions, names []string, store *oci.Store) (*Shipment, error) {
	repo, tr, err := distribution.Repository(ref, ropt)
	if err != nil {
		return nil, err
	}
	sh := &Shipment{Method: "whole images", Unikernels: len(names)}
	var fetched [2]int64 // blobs, bytes
	var mu = make(chan struct{}, 1)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(ropt.Jobs)
	for _, name := range names {
		g.Go(func() error {
			opt := oras.DefaultCopyOptions
			opt.Concurrency = 1
			opt.PostCopy = func(_ context.Context, d ocispec.Descriptor) error {
				if d.MediaType != ocispec.MediaTypeImageManifest {
					mu <- struct{}{}
					fetched[0]++
					fetched[1] += d.Size
					<-mu
				}
				return nil
			}
			if _, err := oras.Copy(gctx, repo, name, store, name, opt); err != nil {
				return fmt.Errorf("bench: pull image %s: %w", name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	t := tr.Snapshot()
	sh.Requests, sh.BytesIn, sh.Blobs, sh.BlobBytes = t.Requests, t.BytesIn, int(fetched[0]), fetched[1]
	return sh, nil
}

// killedPull pulls names into a third, empty pool with the CLI, killing it
// (SIGKILL) o.Kills times, each kill drawn within the work that is left:
// the pull is killed once the blobs verified in its staging folder reach
// a count drawn uniformly from those there at its start plus up to twice
// an even share of the rest among the kills left, so every kill lands
// mid-download, on a later blob than the one before, and the last ones
// still find work to cut.
// After each kill the pool must verify and hold all of names or none.
// Then it pulls to completion.
func killedPull(ctx context.Context, o DistributeOptions, reg *registry.Registry, repo string, ropt distribution.RemoteOptions, src *pool.Pool, names []string, total int) (*KillRun, error) {
	dir := filepath.Join(o.Scratch, "host-c", "pool")
	os.RemoveAll(filepath.Dir(dir))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	k := &KillRun{Kills: o.Kills, Blobs: total}
	run := func() *exec.Cmd {
		args := append([]string{"pool", "--pool", dir, "pull", "--json", "--ca-file", reg.CAFile, "--username", ropt.Username,
			"--jobs", fmt.Sprint(ropt.Jobs), repo}, names...)
		cmd := exec.CommandContext(ctx, o.Exe, args...)
		cmd.Stdin = strings.NewReader(ropt.Password)
		return cmd
	}
	staging := filepath.Join(dir, ".pull")
	for i := 0; i < o.Kills; i++ {
		staged := countStaged(staging)
		// A count past those staged now, within this kill's share of the
		// blobs left (drawn uniformly from twice an even share, so the
		// kills after it still find work left): at least one more blob,
		// short of the last.
		target := staged + 1
		if left := total - staged - 1; left > 1 {
			share := max(1, min(left, 2*left/(o.Kills-i+1)))
			target += mrand.IntN(share)
		}
		cmd := run()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			return k, err
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		tick := time.NewTicker(5 * time.Millisecond)
		killed := false
		for !killed {
			select {
			case err := <-done:
				if err != nil {
					tick.Stop()
					return k, fmt.Errorf("bench: pull run %d failed before its kill: %v\n%s", i, err, out.String())
				}
				k.FinishedFirst++
				killed = true
			case <-tick.C:
				if countStaged(staging) >= target {
					cmd.Process.Signal(syscall.SIGKILL)
					<-done
					killed = true
				}
			}
		}
		tick.Stop()
		after := time.Since(t0)
		k.KilledAfterMs = append(k.KilledAfterMs, after.Milliseconds())
		k.TargetAtKill = append(k.TargetAtKill, target)
		n := countStaged(staging)
		k.StagedAtKill = append(k.StagedAtKill, n)
		k.PartialAtKill = append(k.PartialAtKill, partialBytes(staging))
		u := 0
		if p, err := pool.Open(dir); err == nil {
			vr, err := p.Verify()
			if err != nil || !vr.OK() {
				return k, fmt.Errorf("bench: after kill %d the pool does not verify: %v %v", i, err, vr)
			}
			u = vr.Unikernels
		}
		if u != 0 && u != len(names) {
			return k, fmt.Errorf("bench: after kill %d the pool holds %d of %d unikernels", i, u, len(names))
		}
		k.PoolAtKill = append(k.PoolAtKill, u)
		fmt.Fprintf(o.Log, "kill %d after %v (drawn at %d of %d blobs staged): %d staged blobs, %d bytes of cut downloads, %d unikernels in the pool\n", i+1, after.Round(time.Millisecond), target, total, n, k.PartialAtKill[i], u)
	}
	cmd := run()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return k, fmt.Errorf("bench: the pull after the kills: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(out, &k.Final); err != nil {
		return k, fmt.Errorf("bench: the pull after the kills: %v", err)
	}
	p, err := pool.Open(dir)
	if err != nil {
		return k, err
	}
	vr, err := p.Verify()
	if err != nil {
		return k, err
	}
	k.Verified, k.Unikernels = vr.OK(), vr.Unikernels
	k.SameManifests = sameManifests(src, p, names)
	if !k.Verified || k.Unikernels != len(names) || !k.SameManifests {
		return k, fmt.Errorf("bench: after the kills and a rerun the pool is not complete: %+v", k)
	}
	return k, nil
}

// partialBytes sums the downloads cut off in a staging folder.
func partialBytes(dir string) int64 {
	ents, _ := os.ReadDir(dir)
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".partial") {
			n += fi.Size()
		}
	}
	return n
}

// countStaged counts the blobs a pull has verified in its staging folder
// (named by their digest; not its temporary or partial files).
func countStaged(dir string) int {
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		if len(e.Name()) == 64 && strings.Trim(e.Name(), "0123456789abcdef") == "" {
			n++
		}
	}
	return n
}

// Table prints the shipments side by side.
func (r *DistributeResults) Table(w io.Writer) {
	fmt.Fprintf(w, "fleet: %d unikernels, then %d new (seed %d); registry: %s\n", r.Count, r.Add, r.Seed, r.Registry)
	fmt.Fprintf(w, "at the source: whole stock images %.1f MiB; pool blobs %.1f MiB\n", mib(uint64(r.WholeImageBytes)), mib(uint64(r.PoolBlobBytes)))
	fmt.Fprintf(w, "%-11s %-17s %10s %9s %12s %9s\n", "step", "method", "unikernels", "requests", "received", "seconds")
	for _, s := range r.Shipments {
		fmt.Fprintf(w, "%-11s %-17s %10d %9d %8.2f MiB %9.2f\n", s.Step, s.Method, s.Unikernels, s.Requests, mib(uint64(s.BytesIn)), s.Seconds)
	}
	for _, step := range []string{"first host", "add"} {
		var whole *Shipment
		for i, s := range r.Shipments {
			if s.Step == step && s.Method == "whole images" {
				whole = &r.Shipments[i]
			}
		}
		for _, p := range r.Shipments {
			if whole != nil && p.Step == step && p.Method != whole.Method && p.BytesIn > 0 {
				fmt.Fprintf(w, "%s: whole images / %s = %.1fx the bytes, %.2fx the time\n", step, p.Method, float64(whole.BytesIn)/float64(p.BytesIn), whole.Seconds/p.Seconds)
			}
		}
	}
	fmt.Fprintf(w, "second host's pool verified and identical to the source: %v\n", r.Verified)
	if k := r.Kill; k != nil {
		fmt.Fprintf(w, "pull killed %d times at random points of the download left (%d had finished first), then rerun: %d unikernels, verified %v, same manifests %v; the rerun resumed %d blobs, continued %d cut downloads and downloaded %d\n",
			k.Kills, k.FinishedFirst, k.Unikernels, k.Verified, k.SameManifests, k.Final.Resumed, k.Final.Continued, k.Final.Fetched)
	}
}

// pullPool pulls names from repo into the pool at dir and says what the
// pull shipped, as method's shipment of step.
func pullPool(ctx context.Context, dir, repo string, names []string, opt distribution.RemoteOptions, method, step string) (*distribution.PullResult, Shipment, error) {
	t0 := time.Now()
	pr, err := distribution.Pull(ctx, dir, repo, names, opt)
	if err != nil {
		return nil, Shipment{}, err
	}
	return pr, Shipment{Method: method, Step: step, Unikernels: len(names),
		Requests: pr.Transfer.Requests, BytesIn: pr.Transfer.BytesIn, Blobs: pr.Fetched, BlobBytes: pr.FetchedBytes,
		Seconds: time.Since(t0).Seconds()}, nil
}
