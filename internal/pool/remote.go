package pool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/libmap"
)

// The registry side of push and pull (the oras-go client, HTTP, TLS,
// credentials) lives in package pool/distribution, so that what links
// package pool (the monitor, unipool-vmm) does not link it. Here stay
// what the pool enforces on what enters it: the checks of manifests and
// descriptions, the staging folder, the commit under the pool's lock.

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

// PullStats says what PullFrom did (distribution.PullResult adds what
// went over the wire).
type PullStats struct {
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
	Continued     int   `json:"continued_blobs"`
	ContinuedFrom int64 `json:"continued_from_bytes"`
}

// Registry is a repository as PullFrom reads it; package
// pool/distribution implements it over an oras-go client.
type Registry interface {
	// Tags lists the repository's tags.
	Tags(ctx context.Context) ([]string, error)
	// Maps returns the union of the repository's library maps (MapTag and
	// every MapTagPrefix tag among tags), or nil if it has none; local is
	// the pool's map file, read instead of the registry's copy when it is
	// the same map.
	Maps(ctx context.Context, tags []string, local string) (*libmap.Map, error)
	// FetchManifest reads the manifest ref names (at most MaxMetaSize
	// bytes), checked against its digest.
	FetchManifest(ctx context.Context, ref string) (ocispec.Descriptor, []byte, error)
	// FetchBlob reads blob d whole, checked against its size and digest.
	FetchBlob(ctx context.Context, d ocispec.Descriptor) ([]byte, error)
	// GetBlob GETs blob d from byte off on (a Range request when off > 0).
	// whole says the body is the whole blob (the registry ignored the
	// range, or none was asked for); else it starts at off. Unchecked: the
	// staging folder verifies what it keeps.
	GetBlob(ctx context.Context, d ocispec.Descriptor, off int64) (body io.ReadCloser, whole bool, err error)
	// Explain turns the client's errors into what to do about them.
	Explain(err error) error
}

// MaxMetaSize bounds what is read whole (manifests, configs, maps).
const MaxMetaSize = maxMetaSize

// IsMapTag says whether a tag names a library map, not a unikernel.
func IsMapTag(tag string) bool { return tag == MapTag || strings.HasPrefix(tag, MapTagPrefix) }

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

// PullFrom brings the unikernels tagged names (every tag but the maps' if
// names is empty) from the repository repo, read through r, into the pool
// at dir (creating it), with jobs downloads at once. distribution.Pull
// opens r and calls it.
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
func PullFrom(ctx context.Context, dir, repo string, r Registry, names []string, jobs int) (*PullStats, error) {
	fail := func(err error) (*PullStats, error) {
		return nil, fmt.Errorf("pull %s: %w", repo, r.Explain(err))
	}
	tags, err := r.Tags(ctx)
	if err != nil {
		return fail(fmt.Errorf("list tags: %w", err))
	}
	if names, err = pullNames(names, tags); err != nil {
		return nil, fmt.Errorf("pull %s: %w", repo, err)
	}

	// The maps: refuse a disagreement before anything is downloaded.
	mapPath := filepath.Join(dir, MapFile)
	remoteMap, err := r.Maps(ctx, tags, mapPath)
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
	plan, err := planPull(ctx, r, dir, names, merged, mapPath, jobs)
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
	res := &PullStats{}
	for _, u := range plan {
		if u.localConfig {
			res.LocalConfigs++
		}
	}

	// The blobs, each once, in the order the manifests list them.
	needs := pullNeeds(plan)
	ps, err := stageBlobs(ctx, r, p, st, needs, jobs, res)
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
	return res, nil
}

// pullNames checks the names a pull asks for (every tag but the maps' if
// none), each once.
func pullNames(names, tags []string) ([]string, error) {
	if len(names) == 0 {
		for _, t := range tags {
			if !IsMapTag(t) {
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
func planPull(ctx context.Context, r Registry, dir string, names []string, merged *libmap.Map, mapPath string, jobs int) ([]pulled, error) {
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
func stageBlobs(ctx context.Context, r Registry, p *Pool, st *staging, needs []pullNeed, jobs int, res *PullStats) (*pullState, error) {
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
func commitPull(ctx context.Context, r Registry, p *Pool, st *staging, plan []pulled, needs []pullNeed, ps *pullState, remoteMap *libmap.Map, mapName string, res *PullStats) error {
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
				return fmt.Errorf("%s: %w", n.what, r.Explain(err))
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
func fetchUnikernel(ctx context.Context, r Registry, name string, local localBlobs) (*pulled, error) {
	root, mData, err := r.FetchManifest(ctx, name)
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
				if gz, err = r.FetchBlob(ctx, packed); err != nil { // checks size and digest
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
		root = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mData), Size: int64(len(mData))}
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
			if cData, err = r.FetchBlob(ctx, m.Config); err != nil { // checks size and digest
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
func (s *staging) fetch(ctx context.Context, r Registry, d ocispec.Descriptor) error {
	_, err := s.fetchFrom(ctx, r, d)
	return err
}

// fetchFrom is fetch, also saying from which byte the download continued
// (0: the whole blob came).
func (s *staging) fetchFrom(ctx context.Context, r Registry, d ocispec.Descriptor) (from int64, err error) {
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
func (s *staging) download(ctx context.Context, r Registry, d ocispec.Descriptor, f *os.File, cont bool) (hash.Hash, int64, error) {
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
		body, whole, err := r.GetBlob(ctx, d, off)
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
