package distribution

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/libmap"
	"github.com/unipool/unipool/internal/pool"
)

// tagRE is the OCI distribution spec's tag grammar.
var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// PushResult says what Push sent.
type PushResult struct {
	Names    []string `json:"names"`
	Transfer Transfer `json:"transfer"`
}

// Push copies the named unikernels (every one if names is empty) to the
// repository repo ("host[:port]/path"), each tagged with its name, and the
// library map tagged pool.MapTag. Blobs the registry has are not sent again. A
// registry map that disagrees with the pool's (a library placed elsewhere)
// is refused, naming the library; otherwise the registry gets the union.
func Push(ctx context.Context, p *pool.Pool, repo string, names []string, opt RemoteOptions) (*PushResult, error) {
	r, err := openRemote(repo, opt)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", repo, err)
	}
	fail := func(what string, err error) (*PushResult, error) {
		if what != "" {
			what += ": "
		}
		return nil, fmt.Errorf("push %s: %s%w", repo, what, r.explain(err))
	}
	unlock, err := p.LockShared()
	if err != nil {
		return nil, err
	}
	defer unlock()
	idx, err := p.Index()
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		for _, m := range idx.Manifests {
			names = append(names, m.Annotations[ocispec.AnnotationRefName])
		}
	}
	src := &poolSource{p: p, idx: idx, wire: map[string]ocispec.Descriptor{}, extra: map[digest.Digest][]byte{}}
	for _, name := range names {
		if !tagRE.MatchString(name) || pool.IsMapTag(name) {
			return nil, fmt.Errorf("push %s: unikernel name %q is not a valid registry tag", repo, name)
		}
		md, ok := src.find(name)
		if !ok {
			return nil, fmt.Errorf("pool %s: %w %q", p.Dir(), pool.ErrNotFound, name)
		}
		// Push only what verifies: a registry must not receive a damaged blob
		// under a digest it does not match.
		mData, cData, err := p.ReadVerified(md)
		if err != nil {
			return nil, fmt.Errorf("push %s: unikernel %q: %w", repo, name, err)
		}
		// The wire form (pool's wire.go): the description compressed, in
		// the manifest.
		if wire, gz, ok := pool.WireManifest(mData, cData); ok && !opt.PlainDescriptions {
			wd := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, wire)
			wd.ArtifactType = desc.ArtifactType
			src.wire[name] = wd
			src.extra[wd.Digest] = wire
			src.extra[digest.SHA256.FromBytes(gz)] = gz
		}
	}
	// The map first: a registry must never hold unikernels its map
	// does not place.
	local, err := libmap.Load(p.MapPath())
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", repo, err)
	}
	remoteMap, err := fetchMaps(ctx, r, repo, nil, p.MapPath())
	if err != nil {
		return fail("", err)
	}
	if remoteMap != nil {
		if err := local.Merge(remoteMap, "the registry's map ("+repo+":"+pool.MapTag+"*)"); err != nil {
			return nil, fmt.Errorf("push %s: the pool's library map %s disagrees with the registry's: %w", repo, p.MapPath(), err)
		}
	}
	if len(local.Libraries) > 0 {
		if err := putMap(ctx, r, local); err != nil {
			return fail("library map", err)
		}
	}
	// Every unikernel shares most of its blobs with the others: ask the
	// registry about each blob once, not once per unikernel.
	dst := &onceTarget{Target: r, known: map[digest.Digest]bool{}}
	// Several unikernels at once: each has only a few blobs the registry
	// lacks, so one at a time leaves the wire idle between requests.
	copyOpt := oras.DefaultCopyOptions
	copyOpt.Concurrency = 2
	res := &PushResult{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opt.jobs())
	for _, name := range names {
		g.Go(func() error {
			err := retryStorageRace(gctx, func() error {
				_, err := oras.Copy(gctx, src, name, dst, name, copyOpt)
				return err
			})
			if err != nil {
				return fmt.Errorf("unikernel %s: %w", name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fail("", err)
	}
	res.Names = append(res.Names, names...)
	res.Transfer = r.transfer.snapshot()
	return res, nil
}

// putMap stores m as the registry's map: under a tag of its own content
// (which no other pusher overwrites: pull merges them all) and as pool.MapTag.
func putMap(ctx context.Context, r *remoteRepo, m *libmap.Map) error {
	// The layout only: this host's use counts (a placement hint) would
	// give the registry a new map tag for every link that raised one.
	mapData, err := m.MarshalLayout()
	if err != nil {
		return err
	}
	layer := content.NewDescriptorFromBytes(pool.MediaTypeMap, mapData)
	return retryStorageRace(ctx, func() error {
		if err := pushIfMissing(ctx, r, layer, mapData); err != nil {
			return err
		}
		md, err := oras.PackManifest(ctx, r, oras.PackManifestVersion1_1, pool.ArtifactTypeMap, oras.PackManifestOptions{Layers: []ocispec.Descriptor{layer}})
		if err != nil {
			return err
		}
		if err := r.Tag(ctx, md, pool.MapTagPrefix+md.Digest.Encoded()); err != nil {
			return err
		}
		return r.Tag(ctx, md, pool.MapTag)
	})
}

// retryStorageRace runs fn again, at most 5 more times after a short random
// pause, while it fails with what the registry's filesystem storage answers
// a request that races with another pusher writing the same blob into the
// same repository: it rewrites the blob's link file in place (truncate, then
// write), so a reader in between finds it empty. A manifest put then fails
// 400 "blob unknown" (or "digest invalid") for a blob that is there; a blob
// HEAD fails 500, which the client's transport already retries (client.go).
// Any other error, and the same error once the tries are spent, is returned.
func retryStorageRace(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || attempt >= 5 || !isStorageRace(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(10+mrand.IntN(40)<<attempt) * time.Millisecond):
		}
	}
}

// isStorageRace says whether err is a registry's answer that a blob it
// holds is unknown (see retryStorageRace).
func isStorageRace(err error) bool {
	var er *errcode.ErrorResponse
	if !errors.As(err, &er) {
		return false
	}
	for _, e := range er.Errors {
		switch e.Code {
		case errcode.ErrorCodeManifestBlobUnknown, errcode.ErrorCodeBlobUnknown, errcode.ErrorCodeDigestInvalid:
			return true
		}
	}
	return false
}

func pushIfMissing(ctx context.Context, dst content.Storage, d ocispec.Descriptor, data []byte) error {
	ok, err := dst.Exists(ctx, d)
	if err != nil || ok {
		return err
	}
	return dst.Push(ctx, d, bytes.NewReader(data))
}

// onceTarget remembers which blobs a registry has (asked or pushed), and
// never asks about a blob while it is being pushed: the registry answers a
// HEAD that races with the upload of the same blob with a 500 ("invalid
// checksum digest format"), and a manifest's layers may repeat a digest
// (one content, two media types) as unikernels pushed at once share blobs.
type onceTarget struct {
	oras.Target
	mu    sync.Mutex
	known map[digest.Digest]bool
	// busy: a blob being asked about or pushed; closed when that ends.
	busy map[digest.Digest]chan struct{}
}

func (t *onceTarget) Exists(ctx context.Context, d ocispec.Descriptor) (bool, error) {
	if d.MediaType == ocispec.MediaTypeImageManifest {
		// Manifests are always asked about: they carry the tag.
		return t.Target.Exists(ctx, d)
	}
	for {
		t.mu.Lock()
		if t.known[d.Digest] {
			t.mu.Unlock()
			return true, nil
		}
		if ch, ok := t.busy[d.Digest]; ok {
			t.mu.Unlock()
			select {
			case <-ch:
				continue // pushed (known now) or failed (ask again)
			case <-ctx.Done():
				return false, ctx.Err()
			}
		}
		if t.busy == nil {
			t.busy = map[digest.Digest]chan struct{}{}
		}
		t.busy[d.Digest] = make(chan struct{})
		t.mu.Unlock()
		break
	}
	ok, err := t.Target.Exists(ctx, d)
	if err != nil || ok {
		t.done(d.Digest, ok && err == nil)
		return ok, err
	}
	// Missing: it stays busy until this caller's Push ends.
	return false, nil
}

func (t *onceTarget) done(dg digest.Digest, known bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if known {
		t.known[dg] = true
	}
	if ch, ok := t.busy[dg]; ok {
		delete(t.busy, dg)
		close(ch)
	}
}

func (t *onceTarget) Push(ctx context.Context, d ocispec.Descriptor, r io.Reader) error {
	err := t.Target.Push(ctx, d, r)
	if d.MediaType != ocispec.MediaTypeImageManifest {
		t.done(d.Digest, err == nil || errors.Is(err, errdef.ErrAlreadyExists))
	}
	return err
}

// poolSource is the pool as an oras source: unikernels resolve by name,
// blobs are the pool's files.
type poolSource struct {
	p   *pool.Pool
	idx *ocispec.Index
	// wire: the manifest each unikernel is pushed as, when not the pool's
	// own; extra: the content of those manifests and their compressed
	// descriptions.
	wire  map[string]ocispec.Descriptor
	extra map[digest.Digest][]byte
}

func (s *poolSource) find(name string) (ocispec.Descriptor, bool) {
	for _, m := range s.idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == name {
			return m, true
		}
	}
	return ocispec.Descriptor{}, false
}

func (s *poolSource) Resolve(_ context.Context, ref string) (ocispec.Descriptor, error) {
	if d, ok := s.wire[ref]; ok {
		return d, nil
	}
	if d, ok := s.find(ref); ok {
		return ocispec.Descriptor{MediaType: d.MediaType, ArtifactType: d.ArtifactType, Digest: d.Digest, Size: d.Size}, nil
	}
	return ocispec.Descriptor{}, fmt.Errorf("%s: %w", ref, errdef.ErrNotFound)
}

func (s *poolSource) Fetch(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	if data, ok := s.extra[d.Digest]; ok {
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	f, err := os.Open(s.p.BlobPath(string(d.Digest)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, errdef.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	// oras verifies size and digest of what it reads against d.
	return f, nil
}

func (s *poolSource) Exists(_ context.Context, d ocispec.Descriptor) (bool, error) {
	if _, ok := s.extra[d.Digest]; ok {
		return true, nil
	}
	_, err := os.Stat(s.p.BlobPath(string(d.Digest)))
	return err == nil, nil
}

// fetchMaps returns the union of the registry's library maps (pool.MapTag and
// every pool.MapTagPrefix tag; tags lists the repository's tags, nil to list
// them here), or nil if it has none. Maps that disagree are refused,
// naming the library.
func fetchMaps(ctx context.Context, r *remoteRepo, repo string, tags []string, local string) (*libmap.Map, error) {
	if tags == nil {
		var er *errcode.ErrorResponse
		if err := r.Tags(ctx, "", func(t []string) error { tags = append(tags, t...); return nil }); err != nil && !(errors.As(err, &er) && er.StatusCode == http.StatusNotFound) {
			return nil, fmt.Errorf("list tags: %w", err)
		}
	}
	var union *libmap.Map
	seen := map[digest.Digest]bool{}
	for _, tag := range tags {
		if !pool.IsMapTag(tag) {
			continue
		}
		md, m, err := fetchMap(ctx, r, tag, local)
		if err != nil {
			return nil, err
		}
		if m == nil || seen[md.Digest] {
			continue
		}
		seen[md.Digest] = true
		if union == nil {
			union = m
		} else if err := union.Merge(m, "the registry's map "+repo+":"+tag); err != nil {
			return nil, fmt.Errorf("the registry's library maps disagree: %w", err)
		}
	}
	return union, nil
}

// fetchMap returns the library map tagged tag, or nil if there is none.
// Its content is read from the file at local when that is the same map
// (same digest), else from the registry.
func fetchMap(ctx context.Context, r *remoteRepo, tag, local string) (ocispec.Descriptor, *libmap.Map, error) {
	var md ocispec.Descriptor
	var data []byte
	var err error
	for attempt := 0; ; attempt++ {
		md, data, err = oras.FetchBytes(ctx, r, tag, oras.FetchBytesOptions{MaxBytes: pool.MaxMetaSize})
		// The registry's filesystem storage writes a tag's link file in
		// place: read while another pusher tags the map, it answers 500
		// ("invalid checksum digest format"). Ask again, a few times.
		var er *errcode.ErrorResponse
		if attempt >= 5 || !errors.As(err, &er) || er.StatusCode != http.StatusInternalServerError {
			break
		}
		select {
		case <-ctx.Done():
			return md, nil, ctx.Err()
		case <-time.After(time.Duration(20<<attempt) * time.Millisecond):
		}
	}
	if errors.Is(err, errdef.ErrNotFound) {
		return md, nil, nil
	}
	if err != nil {
		return md, nil, fmt.Errorf("library map %s: %w", tag, err)
	}
	var m ocispec.Manifest
	if err := pool.DecodeStrict(data, &m); err != nil || m.ArtifactType != pool.ArtifactTypeMap || len(m.Layers) != 1 || m.Layers[0].MediaType != pool.MediaTypeMap {
		return md, nil, fmt.Errorf("library map %s: manifest %s is not a unipool map (%v)", tag, md.Digest, err)
	}
	if m.Layers[0].Size > 256<<20 {
		return md, nil, fmt.Errorf("library map %s: %d bytes, too large", tag, m.Layers[0].Size)
	}
	mapData := pool.ReadMatching(local, m.Layers[0])
	if mapData == nil {
		if mapData, err = content.FetchAll(ctx, r, m.Layers[0]); err != nil { // checks size and digest
			return md, nil, fmt.Errorf("library map %s: %w", m.Layers[0].Digest, err)
		}
	}
	remoteMap, err := libmap.Parse(mapData)
	if err != nil {
		return md, nil, fmt.Errorf("library map %s: %w", m.Layers[0].Digest, err)
	}
	return md, remoteMap, nil
}
