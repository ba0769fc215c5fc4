package pool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
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
)

// Registry artifacts besides the unikernels.
const (
	// MapTag is the tag under which push stores the library map, so a pool
	// pulled elsewhere keeps placing new libraries where the images expect.
	MapTag = "unipool-map"
	// MapTagPrefix starts the tag of each map a push wrote, named by its
	// content (MapTagPrefix + the hex of its manifest digest): never
	// overwritten, so a concurrent pusher cannot lose another's libraries.
	// Pull merges every one of them with MapTag's.
	MapTagPrefix = MapTag + "-"
	// ArtifactTypeMap is the artifact type of the pushed map; its one layer
	// (MediaTypeMap) is map.json as is.
	ArtifactTypeMap = "application/vnd.unipool.map.v1"
	MediaTypeMap    = "application/vnd.unipool.map.v1+json"
)

// stagingDir is where pull keeps the blobs it has downloaded and verified
// until it commits them: a pull killed midway finds them there and does
// not download them again. `pool gc` empties it when no pull runs.
const stagingDir = ".pull"

// tagRE is the OCI distribution spec's tag grammar.
var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// PushResult says what Push sent.
type PushResult struct {
	Names    []string `json:"names"`
	Transfer Transfer `json:"transfer"`
}

// Push copies the named unikernels (every one if names is empty) to the
// repository repo ("host[:port]/path"), each tagged with its name, and the
// library map tagged MapTag. Blobs the registry has are not sent again. A
// registry map that disagrees with the pool's (a library placed elsewhere)
// is refused, naming the library; otherwise the registry gets the union.
func (p *Pool) Push(ctx context.Context, repo string, names []string, opt RemoteOptions) (*PushResult, error) {
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
	l, err := p.lock(false)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	idx, err := p.readIndex()
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
		if !tagRE.MatchString(name) || isMapTag(name) {
			return nil, fmt.Errorf("push %s: unikernel name %q is not a valid registry tag", repo, name)
		}
		md, ok := src.find(name)
		if !ok {
			return nil, fmt.Errorf("pool %s: %w %q", p.dir, ErrNotFound, name)
		}
		// Push only what verifies: a registry must not receive a damaged blob
		// under a digest it does not match.
		m, _, err := p.loadDescription(md)
		if err != nil {
			return nil, fmt.Errorf("push %s: unikernel %q: %w", repo, name, err)
		}
		// The wire form (wire.go): the description compressed, in the
		// manifest.
		mData, err1 := p.readBlob(md)
		cData, err2 := p.readBlob(m.Config)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("push %s: unikernel %q: %w", repo, name, err)
		}
		if wire, gz, ok := wireManifest(mData, cData); ok && !opt.PlainDescriptions {
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
		if err := local.Merge(remoteMap, "the registry's map ("+repo+":"+MapTag+"*)"); err != nil {
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
// (which no other pusher overwrites: pull merges them all) and as MapTag.
func putMap(ctx context.Context, r *remoteRepo, m *libmap.Map) error {
	// The layout only: this host's use counts (a placement hint) would
	// give the registry a new map tag for every link that raised one.
	mapData, err := m.MarshalLayout()
	if err != nil {
		return err
	}
	layer := content.NewDescriptorFromBytes(MediaTypeMap, mapData)
	return retryStorageRace(ctx, func() error {
		if err := pushIfMissing(ctx, r, layer, mapData); err != nil {
			return err
		}
		md, err := oras.PackManifest(ctx, r, oras.PackManifestVersion1_1, ArtifactTypeMap, oras.PackManifestOptions{Layers: []ocispec.Descriptor{layer}})
		if err != nil {
			return err
		}
		if err := r.Tag(ctx, md, MapTagPrefix+md.Digest.Encoded()); err != nil {
			return err
		}
		return r.Tag(ctx, md, MapTag)
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

// isMapTag says whether a tag names a library map, not a unikernel.
func isMapTag(tag string) bool { return tag == MapTag || strings.HasPrefix(tag, MapTagPrefix) }

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
	p   *Pool
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
	return fileExists(s.p.BlobPath(string(d.Digest))), nil
}

// fetchMaps returns the union of the registry's library maps (MapTag and
// every MapTagPrefix tag; tags lists the repository's tags, nil to list
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
		if !isMapTag(tag) {
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
		md, data, err = oras.FetchBytes(ctx, r, tag, oras.FetchBytesOptions{MaxBytes: maxMetaSize})
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
	if err := decodeStrict(data, &m); err != nil || m.ArtifactType != ArtifactTypeMap || len(m.Layers) != 1 || m.Layers[0].MediaType != MediaTypeMap {
		return md, nil, fmt.Errorf("library map %s: manifest %s is not a unipool map (%v)", tag, md.Digest, err)
	}
	if m.Layers[0].Size > 256<<20 {
		return md, nil, fmt.Errorf("library map %s: %d bytes, too large", tag, m.Layers[0].Size)
	}
	mapData := readMatching(local, m.Layers[0])
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

// PullResult says what Pull did.
type PullResult struct {
	Names []string `json:"names"`
	// MapChanged: the pool's map took libraries, regions or versions
	// from the registry's.
	MapChanged bool `json:"map_changed"`
	// NewBlobs, NewBytes: blobs that entered the pool.
	NewBlobs int   `json:"new_blobs"`
	NewBytes int64 `json:"new_bytes"`
	// Fetched, FetchedBytes: blobs downloaded by this run (the pool
	// lacked them; manifests are always read).
	Fetched      int   `json:"fetched_blobs"`
	FetchedBytes int64 `json:"fetched_bytes"`
	// LocalConfigs: descriptions read from the pool or the staging folder
	// rather than from the registry (the manifest names their digest).
	LocalConfigs int `json:"configs_read_locally"`
	// Resumed: blobs an interrupted pull had downloaded and verified.
	Resumed int `json:"resumed_blobs"`
	// Continued: downloads an interrupted pull had begun, continued from
	// where it stopped; ContinuedFrom: the bytes they already had (not
	// counted in FetchedBytes).
	Continued     int      `json:"continued_blobs"`
	ContinuedFrom int64    `json:"continued_from_bytes"`
	Transfer      Transfer `json:"transfer"`
}

// pulled is one unikernel as the registry describes it, checked.
type pulled struct {
	name     string
	root     ocispec.Descriptor
	manifest *ocispec.Manifest
	mData    []byte
	cData    []byte
	config   *desc.Config
	// localConfig: the description came from the pool or the staging
	// folder, not the registry.
	localConfig bool
}

// Pull brings the unikernels tagged names (every tag but the maps' if
// names is empty) from the repository into the pool at dir (creating it).
//
// It reads every manifest and description first and checks them as add
// does, and merges the registry's library map with the pool's: a library
// the two place differently is refused, by name, before any blob moves.
// Then it downloads only the blobs the pool lacks, several at a time, each
// verified against its digest as it streams into the staging folder
// (.pull). Last, under the pool's lock, it merges the map, moves the
// blobs into place and writes index.json once: the new unikernels appear
// together or not at all, and until then nothing of theirs is in the pool.
// A pull that is interrupted keeps what it verified in .pull and the next
// pull resumes from there. Pulls into one pool may run at once.
func Pull(ctx context.Context, dir, repo string, names []string, opt RemoteOptions) (*PullResult, error) {
	r, err := openRemote(repo, opt)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", repo, err)
	}
	fail := func(err error) (*PullResult, error) {
		return nil, fmt.Errorf("pull %s: %w", repo, r.explain(err))
	}
	var tags []string
	if err := r.Tags(ctx, "", func(t []string) error { tags = append(tags, t...); return nil }); err != nil {
		return fail(fmt.Errorf("list tags: %w", err))
	}
	if names, err = pullNames(names, tags); err != nil {
		return nil, fmt.Errorf("pull %s: %w", repo, err)
	}

	// The maps: refuse a disagreement before anything is downloaded.
	mapPath := filepath.Join(dir, MapFile)
	remoteMap, err := fetchMaps(ctx, r, repo, tags, mapPath)
	if err != nil {
		return fail(err)
	}
	mapName := "the registry's map (" + repo + ":" + MapTag + "*)"
	merged, err := libmap.Load(mapPath)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", repo, err)
	}
	if remoteMap != nil {
		if err := merged.Merge(remoteMap, mapName); err != nil {
			return nil, fmt.Errorf("pull %s: the pool's library map %s disagrees with the registry's: %w", repo, mapPath, err)
		}
	}

	// Every manifest and description, checked.
	plan, err := planPull(ctx, r, dir, names, merged, mapPath, opt.jobs())
	if err != nil {
		return fail(err)
	}

	p, err := Init(dir)
	if err != nil {
		return nil, err
	}
	st, err := p.openStaging()
	if err != nil {
		return nil, err
	}
	defer st.close()
	res := &PullResult{}
	for _, u := range plan {
		if u.localConfig {
			res.LocalConfigs++
		}
	}

	// The blobs, each once, in the order the manifests list them.
	needs := pullNeeds(plan)
	ps, err := stageBlobs(ctx, r, p, st, needs, opt.jobs(), res)
	if err != nil {
		return fail(err)
	}

	// Every packed snapshot page against its digest, before the pool
	// takes any of it.
	if err := checkPulledPages(p, st, plan, ps); err != nil {
		return nil, fmt.Errorf("pull %s: %w", repo, err)
	}

	// Commit, under the pool's lock.
	if err := commitPull(ctx, r, p, st, plan, needs, ps, remoteMap, mapName, res); err != nil {
		return nil, fmt.Errorf("pull %s: %w", repo, err)
	}
	res.Transfer = r.transfer.snapshot()
	return res, nil
}

// pullNames checks the names a pull asks for (every tag but the maps' if
// none), each once.
func pullNames(names, tags []string) ([]string, error) {
	if len(names) == 0 {
		for _, t := range tags {
			if !isMapTag(t) {
				names = append(names, t)
			}
		}
	}
	seen := map[string]bool{}
	for _, name := range names {
		if err := checkName(name); err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, fmt.Errorf("%q named twice", name)
		}
		seen[name] = true
	}
	return names, nil
}

// planPull reads every named unikernel's manifest and description, several
// at a time, and checks each description against the merged map.
func planPull(ctx context.Context, r *remoteRepo, dir string, names []string, merged *libmap.Map, mapPath string, jobs int) ([]pulled, error) {
	plan := make([]pulled, len(names))
	local := localBlobs{dir}
	// Pack blobs against the merged map's sealed bytes: a pack the map on
	// disk has at commit has the same bytes (Merge refuses a pack that
	// differs), so this check holds there too.
	sealed := newSealedPages(merged, mapPath)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for i, name := range names {
		g.Go(func() error {
			u, err := fetchUnikernel(gctx, r, name, local)
			if err != nil {
				return fmt.Errorf("unikernel %s: %w", name, err)
			}
			if err := checkConfigAgainstMap(merged, mapPath, dir, "unikernel "+name, u.config); err != nil {
				return err
			}
			if err := sealed.check("unikernel "+name, u.config); err != nil {
				return fmt.Errorf("%w: refused", err)
			}
			plan[i] = *u
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return plan, nil
}

// pullNeed is one blob a pull needs.
type pullNeed struct {
	d    ocispec.Descriptor
	data []byte // manifests and configs: already read and verified
	what string
}

// pullNeeds lists the blobs of plan, each once, in the order the manifests
// list them: layers, then each unikernel's config and manifest.
func pullNeeds(plan []pulled) []pullNeed {
	var needs []pullNeed
	have := map[digest.Digest]bool{}
	for _, u := range plan {
		for _, l := range u.manifest.Layers {
			if !have[l.Digest] {
				have[l.Digest] = true
				what := "unikernel " + u.name + " " + l.MediaType
				if lib := l.Annotations[AnnotationLibrary]; lib != "" {
					what += " of library " + lib
				}
				needs = append(needs, pullNeed{d: l, what: what})
			}
		}
		for _, n := range []pullNeed{{d: u.manifest.Config, data: u.cData, what: "unikernel " + u.name + " config"}, {d: u.root, data: u.mData, what: "unikernel " + u.name + " manifest"}} {
			if !have[n.d.Digest] {
				have[n.d.Digest] = true
				needs = append(needs, n)
			}
		}
	}
	return needs
}

// pullState says where each needed blob was found verified.
type pullState struct {
	inPool map[digest.Digest]bool // verified in the pool
	staged map[digest.Digest]bool // verified in the staging folder
}

// stageBlobs brings every needed blob the pool lacks into the staging
// folder, several at a time, each verified as it streams; it counts what
// it fetched, resumed and continued in res.
func stageBlobs(ctx context.Context, r *remoteRepo, p *Pool, st *staging, needs []pullNeed, jobs int, res *PullResult) (*pullState, error) {
	var mu sync.Mutex
	ps := &pullState{inPool: map[digest.Digest]bool{}, staged: map[digest.Digest]bool{}}
	mark := func(m map[digest.Digest]bool, d digest.Digest) {
		mu.Lock()
		m[d] = true
		mu.Unlock()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, n := range needs {
		g.Go(func() error {
			if p.hasBlob(n.d) {
				mark(ps.inPool, n.d.Digest)
				return nil
			}
			if st.has(n.d) {
				mark(ps.staged, n.d.Digest)
				mu.Lock()
				res.Resumed++
				mu.Unlock()
				return nil
			}
			if n.data != nil {
				if err := st.put(n.d, bytes.NewReader(n.data)); err != nil {
					return err
				}
				mark(ps.staged, n.d.Digest)
				return nil
			}
			from, err := st.fetchFrom(gctx, r, n.d)
			if err != nil {
				return fmt.Errorf("%s: %w", n.what, err)
			}
			mark(ps.staged, n.d.Digest)
			mu.Lock()
			res.Fetched++
			res.FetchedBytes += n.d.Size - from
			if from > 0 {
				res.Continued++
				res.ContinuedFrom += from
			}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return ps, nil
}

// checkPulledPages hashes each snapshot page that plan's descriptions
// place in a page pack against the digest they give it, in the pack as
// the pull verified it (in the pool or the staging folder; a pack's
// bytes are fixed by its digest, so the file the commit moves into place
// holds the same). Pack digests alone leave a page's own digest
// unchecked: a description that names a page of a pack by a digest its
// bytes do not have maps the right bytes (the pack's), but the pool's
// snapshot page index (snapshot-pages.json, which believes the digests
// of the pool's descriptions) would then place that digest there, and
// every later snapshot holding the page would store it again. Pages
// that are blobs of their own are named by their digest, verified as
// they were staged. A (pack, offset, digest) is hashed once per pull.
func checkPulledPages(p *Pool, st *staging, plan []pulled, ps *pullState) error {
	type at struct {
		blob   string
		offset uint64
		digest string
	}
	checked := map[at]bool{}
	for _, u := range plan {
		if u.config.Snapshot == nil {
			continue
		}
		for _, pg := range u.config.Snapshot.Pages {
			k := at{pg.Blob, pg.Offset, pg.Digest}
			if pg.Blob == "" || checked[k] {
				continue
			}
			path := st.path(digest.Digest(pg.Blob))
			if ps.inPool[digest.Digest(pg.Blob)] {
				path = p.BlobPath(pg.Blob)
			}
			if err := checkPackedPage(path, pg.Offset, pg.Digest); err != nil {
				return fmt.Errorf("unikernel %s: snapshot page at %#x in pack %s: %w: refused", u.name, pg.Addr, pg.Blob, err)
			}
			checked[k] = true
		}
	}
	return nil
}

// commitPull, under the pool's lock, merges the registry's map into the
// pool's, checks every description against the map now on disk, moves the
// staged blobs into place and writes index.json once.
func commitPull(ctx context.Context, r *remoteRepo, p *Pool, st *staging, plan []pulled, needs []pullNeed, ps *pullState, remoteMap *libmap.Map, mapName string, res *PullResult) error {
	l, err := p.lock(true)
	if err != nil {
		return err
	}
	defer l.unlock()
	if remoteMap != nil {
		err := libmap.Update(p.MapPath(), func(m *libmap.Map) error {
			before, _ := m.MarshalLayout()
			if err := m.Merge(remoteMap, mapName); err != nil {
				return err
			}
			after, _ := m.MarshalLayout()
			res.MapChanged = !bytes.Equal(before, after)
			return nil
		})
		if err != nil {
			return fmt.Errorf("the pool's library map %s disagrees with the registry's: %w", p.MapPath(), err)
		}
	}
	for _, u := range plan {
		// The map on disk now, which a concurrent link may have grown.
		if err := p.checkMapConfig("unikernel "+u.name, u.config); err != nil {
			return err
		}
	}
	idx, err := p.readIndex()
	if err != nil {
		return err
	}
	for _, n := range needs {
		dst := p.BlobPath(string(n.d.Digest))
		if ps.inPool[n.d.Digest] && fileExists(dst) {
			continue
		}
		if !ps.staged[n.d.Digest] || !fileExists(st.path(n.d.Digest)) {
			// Moved into the pool by a concurrent pull, or removed by a gc,
			// since it was checked.
			if p.hasBlob(n.d) {
				continue
			}
			if err := st.fetch(ctx, r, n.d); err != nil {
				return fmt.Errorf("%s: %w", n.what, r.explain(err))
			}
		}
		if err := os.Rename(st.path(n.d.Digest), dst); err != nil {
			return fmt.Errorf("pool %s: %w", p.dir, err)
		}
		res.NewBlobs++
		res.NewBytes += n.d.Size
	}
	for _, u := range plan {
		ent := ocispec.Descriptor{
			MediaType:    ocispec.MediaTypeImageManifest,
			ArtifactType: desc.ArtifactType,
			Digest:       u.root.Digest,
			Size:         u.root.Size,
			Annotations:  map[string]string{ocispec.AnnotationRefName: u.name},
		}
		replaced := false
		for i, e := range idx.Manifests {
			if e.Annotations[ocispec.AnnotationRefName] == u.name {
				idx.Manifests[i], replaced = ent, true
			}
		}
		if !replaced {
			idx.Manifests = append(idx.Manifests, ent)
		}
		res.Names = append(res.Names, u.name)
	}
	return p.writeIndex(idx) // fsyncs the blob folder first
}

// localBlobs reads blobs a pool at dir (which need not exist) already
// holds, in blobs/ or in its staging folder, verified.
type localBlobs struct{ dir string }

// read returns d's content if the pool or its staging folder holds it
// intact, else nil.
func (l localBlobs) read(d ocispec.Descriptor) []byte {
	if d.Digest.Validate() != nil || d.Digest.Algorithm() != digest.SHA256 || d.Size > maxMetaSize {
		return nil
	}
	for _, path := range []string{
		filepath.Join(l.dir, "blobs", "sha256", d.Digest.Encoded()),
		filepath.Join(l.dir, stagingDir, d.Digest.Encoded()),
	} {
		if data := readMatching(path, d); data != nil {
			return data
		}
	}
	return nil
}

// readDigest is read for a blob of unknown size.
func (l localBlobs) readDigest(d digest.Digest) []byte {
	if d.Validate() != nil || d.Algorithm() != digest.SHA256 {
		return nil
	}
	for _, path := range []string{
		filepath.Join(l.dir, "blobs", "sha256", d.Encoded()),
		filepath.Join(l.dir, stagingDir, d.Encoded()),
	} {
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() <= maxMetaSize {
			if data := readMatching(path, ocispec.Descriptor{Digest: d, Size: fi.Size()}); data != nil {
				return data
			}
		}
	}
	return nil
}

// readMatching reads the file at path whole if it has d's size and digest.
func readMatching(path string, d ocispec.Descriptor) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, d.Size+1))
	if err != nil || int64(len(data)) != d.Size || digest.SHA256.FromBytes(data) != d.Digest {
		return nil
	}
	return data
}

// fetchUnikernel reads a unikernel's manifest from the registry and its
// description from the pool at local when it holds it (else from the
// registry), and checks them.
func fetchUnikernel(ctx context.Context, r *remoteRepo, name string, local localBlobs) (*pulled, error) {
	root, mData, err := oras.FetchBytes(ctx, r, name, oras.FetchBytesOptions{MaxBytes: maxMetaSize})
	if err != nil {
		return nil, err
	}
	if root.MediaType != ocispec.MediaTypeImageManifest {
		return nil, fmt.Errorf("manifest %s: media type %q, not an image manifest", root.Digest, root.MediaType)
	}
	wData := mData
	mData, wc, err := poolManifest(wData)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", root.Digest, err)
	}
	var cData []byte
	fromPool := false
	if wc != nil {
		// The wire form: the description from the pool, else unpacked
		// from the manifest (or its blob); the manifest as the pool has it.
		cData = local.readDigest(wc.Digest)
		fromPool = cData != nil
		if cData == nil {
			gz := wc.Packed.Data
			packed := ocispec.Descriptor{MediaType: wc.Packed.MediaType, Digest: wc.Packed.Digest, Size: wc.Packed.Size}
			if packed.Size > maxMetaSize {
				return nil, fmt.Errorf("config %s: %d bytes, too large for a description", packed.Digest, packed.Size)
			}
			if int64(len(gz)) != packed.Size || digest.SHA256.FromBytes(gz) != packed.Digest {
				if len(gz) > 0 {
					return nil, fmt.Errorf("manifest %s: config %s: the data it embeds does not match its digest: refused", root.Digest, packed.Digest)
				}
				if gz, err = content.FetchAll(ctx, r, packed); err != nil { // checks size and digest
					return nil, fmt.Errorf("config %s: %w", packed.Digest, err)
				}
			}
			if cData, err = unpackConfig(gz, wc.Digest); err != nil {
				return nil, fmt.Errorf("manifest %s: config %s: %w", root.Digest, packed.Digest, err)
			}
		}
		if mData, err = withConfig(wData, wc, cData); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", root.Digest, err)
		}
		root = content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, mData)
	}
	m, err := parseManifest(mData)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", root.Digest, err)
	}
	if m.Config.Size > maxMetaSize {
		return nil, fmt.Errorf("config %s: %d bytes, too large for a description", m.Config.Digest, m.Config.Size)
	}
	if cData == nil {
		cData = local.read(m.Config)
		fromPool = cData != nil
		if cData == nil {
			if cData, err = content.FetchAll(ctx, r, m.Config); err != nil { // checks size and digest
				return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
			}
		}
	}
	c, err := desc.Parse(cData)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if err := checkDescription(m, c); err != nil {
		return nil, fmt.Errorf("config %s: description: %w", m.Config.Digest, err)
	}
	return &pulled{name: name, root: ocispec.Descriptor{MediaType: root.MediaType, Digest: root.Digest, Size: root.Size}, manifest: m, mData: mData, cData: cData, config: c, localConfig: fromPool}, nil
}

// hasBlob reports whether the pool holds d intact (a damaged copy counts
// as missing: pull replaces it).
func (p *Pool) hasBlob(d ocispec.Descriptor) bool {
	return fileMatches(p.BlobPath(string(d.Digest)), d)
}

// fileMatches reports whether the file at path has d's size and digest.
func fileMatches(path string, d ocispec.Descriptor) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != d.Size {
		return false
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return d.Digest.Algorithm() == digest.SHA256 && hex.EncodeToString(h.Sum(nil)) == d.Digest.Encoded()
}

// staging is the pool's .pull folder, held with a shared flock while a
// pull uses it (gc empties it only when it gets the lock exclusively).
type staging struct {
	dir string
	f   *os.File
}

func (p *Pool) openStaging() (*staging, error) {
	dir := p.path(stagingDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pool %s: %w", p.dir, err)
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", p.dir, err)
	}
	if err := flock(f, syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("pool %s: lock %s: %w", p.dir, dir, err)
	}
	return &staging{dir: dir, f: f}, nil
}

func (s *staging) close() { s.f.Close() }

func (s *staging) path(d digest.Digest) string {
	if d.Validate() != nil || d.Algorithm() != digest.SHA256 {
		return filepath.Join(s.dir, "invalid-digest")
	}
	return filepath.Join(s.dir, d.Encoded())
}

func (s *staging) has(d ocispec.Descriptor) bool { return fileMatches(s.path(d.Digest), d) }

// partialSuffix names a blob being downloaded in the staging folder: what
// has arrived so far, which the next download continues (HTTP Range).
const partialSuffix = ".partial"

// fetch downloads d into the staging folder. The bytes go to
// <digest>.partial as they arrive, so a download cut off (a kill, a lost
// connection) is continued by the next from where it stopped, with a
// Range request; a registry that ignores the range sends the whole blob
// again. The whole file is hashed and checked against d's size and digest
// before it is renamed to its digest: nothing unverified is ever taken as
// a blob. One pull at a time writes a partial file (flock).
func (s *staging) fetch(ctx context.Context, r *remoteRepo, d ocispec.Descriptor) error {
	_, err := s.fetchFrom(ctx, r, d)
	return err
}

// fetchFrom is fetch, also saying from which byte the download continued
// (0: the whole blob came).
func (s *staging) fetchFrom(ctx context.Context, r *remoteRepo, d ocispec.Descriptor) (from int64, err error) {
	final := s.path(d.Digest)
	if d.Digest.Validate() != nil || d.Digest.Algorithm() != digest.SHA256 {
		return 0, fmt.Errorf("blob %q: not a sha256 digest", d.Digest)
	}
	part := final + partialSuffix
	f, err := s.lockPartial(part)
	if err != nil {
		return 0, err
	}
	defer f.Close() // releases the flock
	if s.has(d) {
		// Another pull finished it while this one waited.
		return from, nil
	}
	for attempt := 0; ; attempt++ {
		var h hash.Hash
		h, from, err = s.download(ctx, r, d, f, attempt == 0)
		if err != nil {
			return from, err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != d.Digest.Encoded() {
			if from > 0 && attempt == 0 {
				// The bytes kept from before may be what is wrong (a crash
				// before they reached the disk): download it whole once.
				continue
			}
			os.Remove(part)
			return from, fmt.Errorf("blob %s: the registry sent content that hashes to sha256:%s, not to its digest: refused (the registry's copy is damaged or tampered with)", d.Digest, got)
		}
		break
	}
	// Read-only, as every pool blob: the commit renames it into place.
	if err := f.Chmod(blobPerm); err != nil {
		return from, fmt.Errorf("staging %s: %w", s.dir, err)
	}
	if err := f.Sync(); err != nil {
		return from, fmt.Errorf("staging %s: %w", s.dir, err)
	}
	if err := os.Rename(part, final); err != nil {
		return from, fmt.Errorf("staging %s: %w", s.dir, err)
	}
	return from, nil
}

// lockPartial opens the partial file at path (creating it) and takes its
// flock. A pull that waited for the lock may find the file it opened
// renamed meanwhile (to its digest, by the pull that held it): then it
// opens the path again, never writing a file that is no longer the
// partial one.
func (s *staging) lockPartial(path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("staging %s: %w", s.dir, err)
		}
		if err := flock(f, syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("staging %s: lock %s: %w", s.dir, path, err)
		}
		held, err1 := f.Stat()
		named, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, named) {
			return f, nil
		}
		f.Close()
		if err1 != nil {
			return nil, fmt.Errorf("staging %s: %w", s.dir, err1)
		}
	}
}

// download writes d into f (the partial file, locked): when cont, after
// what f already holds (a Range request), else from the start. It returns
// the hash of all of f and the byte the download continued from. A cut
// download keeps what arrived. The size is checked here, the digest by
// the caller.
func (s *staging) download(ctx context.Context, r *remoteRepo, d ocispec.Descriptor, f *os.File, cont bool) (hash.Hash, int64, error) {
	h := sha256.New()
	var off int64
	if !cont {
		if err := f.Truncate(0); err != nil {
			return nil, 0, fmt.Errorf("staging %s: %w", s.dir, err)
		}
	}
	if cont {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, 0, fmt.Errorf("staging %s: %w", s.dir, err)
		}
		n, err := io.Copy(h, io.LimitReader(f, d.Size+1))
		if err != nil {
			return nil, 0, fmt.Errorf("staging %s: %w", s.dir, err)
		}
		off = n
	}
	restart := func() error {
		off, h = 0, sha256.New()
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("staging %s: %w", s.dir, err)
		}
		return nil
	}
	if off > d.Size {
		if err := restart(); err != nil {
			return nil, 0, err
		}
	}
	from := off
	if off < d.Size {
		body, whole, err := r.getBlob(ctx, d, off)
		if err != nil {
			return nil, from, err
		}
		defer body.Close()
		if whole && off > 0 {
			// The registry sent the whole blob, not the rest.
			if err := restart(); err != nil {
				return nil, 0, err
			}
			from = 0
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return nil, from, fmt.Errorf("staging %s: %w", s.dir, err)
		}
		n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, d.Size-off+1))
		off += n
		if err != nil {
			// Keep what arrived: the next pull continues from there.
			return nil, from, fmt.Errorf("blob %s: %w (%d of %d bytes kept to continue from)", d.Digest, err, off, d.Size)
		}
	}
	if off != d.Size {
		os.Remove(f.Name())
		return nil, from, fmt.Errorf("blob %s: the registry sent %d bytes, the manifest says %d: refused", d.Digest, off, d.Size)
	}
	return h, from, nil
}

// put writes d's content from rd to the staging folder if it has d's size
// and digest; otherwise nothing is kept and the error says so.
func (s *staging) put(d ocispec.Descriptor, rd io.Reader) error {
	if d.Digest.Validate() != nil || d.Digest.Algorithm() != digest.SHA256 {
		return fmt.Errorf("blob %q: not a sha256 digest", d.Digest)
	}
	f, err := os.CreateTemp(s.dir, tmpPrefix+d.Digest.Encoded()+"-*")
	if err != nil {
		return fmt.Errorf("staging %s: %w", s.dir, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rd, d.Size+1))
	if err != nil {
		return fail(fmt.Errorf("blob %s: %w", d.Digest, err))
	}
	if n != d.Size {
		return fail(fmt.Errorf("blob %s: the registry sent %d bytes, the manifest says %d: refused", d.Digest, n, d.Size))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Digest.Encoded() {
		return fail(fmt.Errorf("blob %s: the registry sent content that hashes to sha256:%s, not to its digest: refused (the registry's copy is damaged or tampered with)", d.Digest, got))
	}
	// Read-only, as every pool blob: the commit renames it into place.
	if err := f.Chmod(blobPerm); err != nil {
		return fail(fmt.Errorf("staging %s: %w", s.dir, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("staging %s: %w", s.dir, err))
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("staging %s: %w", s.dir, err)
	}
	if err := os.Rename(tmp, s.path(d.Digest)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("staging %s: %w", s.dir, err)
	}
	return nil
}
