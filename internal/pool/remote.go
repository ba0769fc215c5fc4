package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/libmap"
)

// Registry artifacts besides the unikernels.
const (
	// MapTag is the tag under which push stores the library map, so a pool
	// pulled elsewhere keeps placing new libraries where the images expect.
	MapTag = "unipool-map"
	// ArtifactTypeMap is the artifact type of the pushed map; its one layer
	// (MediaTypeMap) is map.json as is.
	ArtifactTypeMap = "application/vnd.unipool.map.v1"
	MediaTypeMap    = "application/vnd.unipool.map.v1+json"
)

// tagRE is the OCI distribution spec's tag grammar.
var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// RemoteOptions are how to reach a registry.
type RemoteOptions struct {
	PlainHTTP bool // http instead of https (a registry on localhost)
}

func repository(repo string, opt RemoteOptions) (*remote.Repository, error) {
	r, err := remote.NewRepository(repo)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", repo, err)
	}
	r.PlainHTTP = opt.PlainHTTP
	return r, nil
}

// Push copies the named unikernels (every one if names is empty) to the
// repository repo ("host[:port]/path"), each tagged with its name, and the
// library map tagged MapTag. Blobs the registry has are not sent again.
func (p *Pool) Push(ctx context.Context, repo string, names []string, opt RemoteOptions) error {
	dst, err := repository(repo, opt)
	if err != nil {
		return err
	}
	l, err := p.lock(false)
	if err != nil {
		return err
	}
	defer l.unlock()
	idx, err := p.readIndex()
	if err != nil {
		return err
	}
	if len(names) == 0 {
		for _, m := range idx.Manifests {
			names = append(names, m.Annotations[ocispec.AnnotationRefName])
		}
	}
	src := &poolSource{p: p, idx: idx}
	for _, name := range names {
		if !tagRE.MatchString(name) {
			return fmt.Errorf("push %s: unikernel name %q is not a valid registry tag", repo, name)
		}
		md, ok := src.find(name)
		if !ok {
			return fmt.Errorf("pool %s: %w %q", p.dir, ErrNotFound, name)
		}
		// Push only what verifies: a registry must not receive a damaged blob
		// under a digest it does not match.
		if _, _, err := p.loadDescription(md); err != nil {
			return fmt.Errorf("push %s: unikernel %q: %w", repo, name, err)
		}
		if _, err := oras.Copy(ctx, src, name, dst, name, oras.DefaultCopyOptions); err != nil {
			return fmt.Errorf("push %s: unikernel %q: %w", repo, name, err)
		}
	}
	mapData, err := os.ReadFile(p.MapPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("push %s: %w", repo, err)
	}
	if _, err := libmap.Parse(mapData); err != nil {
		return fmt.Errorf("push %s: library map %s: %w", repo, p.MapPath(), err)
	}
	layer := content.NewDescriptorFromBytes(MediaTypeMap, mapData)
	if err := pushIfMissing(ctx, dst, layer, mapData); err != nil {
		return fmt.Errorf("push %s: library map: %w", repo, err)
	}
	md, err := oras.PackManifest(ctx, dst, oras.PackManifestVersion1_1, ArtifactTypeMap, oras.PackManifestOptions{Layers: []ocispec.Descriptor{layer}})
	if err != nil {
		return fmt.Errorf("push %s: library map: %w", repo, err)
	}
	if err := dst.Tag(ctx, md, MapTag); err != nil {
		return fmt.Errorf("push %s: library map: %w", repo, err)
	}
	return nil
}

func pushIfMissing(ctx context.Context, dst content.Storage, d ocispec.Descriptor, data []byte) error {
	ok, err := dst.Exists(ctx, d)
	if err != nil || ok {
		return err
	}
	return dst.Push(ctx, d, bytes.NewReader(data))
}

// poolSource is the pool as an oras source: unikernels resolve by name,
// blobs are the pool's files.
type poolSource struct {
	p   *Pool
	idx *ocispec.Index
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
	if d, ok := s.find(ref); ok {
		return ocispec.Descriptor{MediaType: d.MediaType, ArtifactType: d.ArtifactType, Digest: d.Digest, Size: d.Size}, nil
	}
	return ocispec.Descriptor{}, fmt.Errorf("%s: %w", ref, errdef.ErrNotFound)
}

func (s *poolSource) Fetch(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
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
	return fileExists(s.p.BlobPath(string(d.Digest))), nil
}

// PullResult says what Pull stored.
type PullResult struct {
	Names     []string `json:"names"`
	MapLoaded bool     `json:"map_loaded"` // the pool had no map and took the registry's
	NewBlobs  int      `json:"new_blobs"`
	NewBytes  int64    `json:"new_bytes"`
}

// Pull copies unikernels tagged names (every tag but MapTag if names is
// empty) from the repository into the pool at dir (creating it), as Add
// would store them: each description is checked, and refused if its
// libraries disagree with the pool's map. A pool without a map first takes
// the registry's. Blobs the pool holds are not downloaded again.
func Pull(ctx context.Context, dir, repo string, names []string, opt RemoteOptions) (*PullResult, error) {
	src, err := repository(repo, opt)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		err := src.Tags(ctx, "", func(tags []string) error {
			for _, t := range tags {
				if t != MapTag {
					names = append(names, t)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("pull %s: list tags: %w", repo, err)
		}
	}
	p, err := Init(dir)
	if err != nil {
		return nil, err
	}
	res := &PullResult{}
	if _, err := os.Stat(p.MapPath()); errors.Is(err, fs.ErrNotExist) {
		loaded, err := p.pullMap(ctx, src)
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", repo, err)
		}
		res.MapLoaded = loaded
	}
	for _, name := range names {
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("pull %s: %w", repo, err)
		}
		dst := &pullTarget{p: p, blobs: map[digest.Digest][]byte{}}
		root, err := oras.Copy(ctx, src, name, dst, name, oras.DefaultCopyOptions)
		if err != nil {
			return nil, fmt.Errorf("pull %s: %s: %w", repo, name, err)
		}
		if err := p.storePulled(name, root, dst, res); err != nil {
			return nil, fmt.Errorf("pull %s: %s: %w", repo, name, err)
		}
		res.Names = append(res.Names, name)
	}
	return res, nil
}

// pullMap writes the registry's map as the pool's, if the pool still has
// none (libmap's writer takes its own lock and re-reads the file).
func (p *Pool) pullMap(ctx context.Context, src *remote.Repository) (bool, error) {
	md, data, err := oras.FetchBytes(ctx, src, MapTag, oras.DefaultFetchBytesOptions)
	if errors.Is(err, errdef.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("library map: %w", err)
	}
	var m ocispec.Manifest
	if err := decodeStrict(data, &m); err != nil || m.ArtifactType != ArtifactTypeMap || len(m.Layers) != 1 || m.Layers[0].MediaType != MediaTypeMap {
		return false, fmt.Errorf("library map: manifest %s is not a unipool map (%v)", md.Digest, err)
	}
	rc, err := src.Fetch(ctx, m.Layers[0])
	if err != nil {
		return false, fmt.Errorf("library map: %w", err)
	}
	defer rc.Close()
	mapData, err := content.ReadAll(rc, m.Layers[0])
	if err != nil {
		return false, fmt.Errorf("library map: %w", err)
	}
	remoteMap, err := libmap.Parse(mapData)
	if err != nil {
		return false, fmt.Errorf("library map %s: %w", m.Layers[0].Digest, err)
	}
	loaded := false
	err = libmap.Update(p.MapPath(), func(local *libmap.Map) error {
		if len(local.Libraries) == 0 {
			*local = *remoteMap
			loaded = true
		}
		return nil
	})
	return loaded, err
}

// storePulled checks a pulled unikernel as add checks an image's, then
// stores its blobs, manifest and index entry in that order.
func (p *Pool) storePulled(name string, root ocispec.Descriptor, t *pullTarget, res *PullResult) error {
	l, err := p.lock(true)
	if err != nil {
		return err
	}
	defer l.unlock()
	idx, err := p.readIndex()
	if err != nil {
		return err
	}
	get := func(d ocispec.Descriptor) ([]byte, error) {
		if b, ok := t.get(d.Digest); ok {
			return b, nil
		}
		// Already in the pool: oras did not fetch it.
		return p.readBlobAny(d)
	}
	mData, err := get(root)
	if err != nil {
		return err
	}
	m, err := parseManifest(mData)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", root.Digest, err)
	}
	cData, err := get(m.Config)
	if err != nil {
		return err
	}
	c, err := desc.Parse(cData)
	if err != nil {
		return fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if err := checkDescription(m, c); err != nil {
		return fmt.Errorf("config %s: description: %w", m.Config.Digest, err)
	}
	if err := p.checkMapConfig(name, c); err != nil {
		return err
	}
	add := &AddResult{}
	for _, d := range append(append([]ocispec.Descriptor{}, m.Layers...), m.Config, root) {
		data, err := get(d)
		if err != nil {
			return err
		}
		if _, err := p.storeBlob(data, add); err != nil {
			return err
		}
	}
	res.NewBlobs += add.NewBlobs
	res.NewBytes += add.NewBytes
	ent := ocispec.Descriptor{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: desc.ArtifactType,
		Digest:       root.Digest,
		Size:         root.Size,
		Annotations:  map[string]string{ocispec.AnnotationRefName: name},
	}
	replaced := false
	for i, e := range idx.Manifests {
		if e.Annotations[ocispec.AnnotationRefName] == name {
			idx.Manifests[i], replaced = ent, true
		}
	}
	if !replaced {
		idx.Manifests = append(idx.Manifests, ent)
	}
	return p.writeIndex(idx)
}

// readBlobAny reads a blob of any size and checks it against d.
func (p *Pool) readBlobAny(d ocispec.Descriptor) ([]byte, error) {
	path := p.BlobPath(string(d.Digest))
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	if int64(len(data)) != d.Size || digest.SHA256.FromBytes(data) != d.Digest {
		return nil, fmt.Errorf("blob %s (%s): content does not match its digest", d.Digest, path)
	}
	return data, nil
}

// pullTarget receives what oras copies: blobs the pool already holds
// intact count as present and are not fetched; the rest are kept in
// memory until storePulled has checked the whole unikernel.
type pullTarget struct {
	p     *Pool
	mu    sync.Mutex
	blobs map[digest.Digest][]byte
}

func (t *pullTarget) get(d digest.Digest) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.blobs[d]
	return b, ok
}

func (t *pullTarget) Exists(_ context.Context, d ocispec.Descriptor) (bool, error) {
	if _, ok := t.get(d.Digest); ok {
		return true, nil
	}
	// The root manifest is always fetched (it is small), so the pool checks
	// what it references rather than trusting a file that happens to exist.
	if d.MediaType == ocispec.MediaTypeImageManifest {
		return false, nil
	}
	_, err := t.p.readBlobAny(d)
	return err == nil, nil
}

func (t *pullTarget) Fetch(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	if b, ok := t.get(d.Digest); ok {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	data, err := t.p.readBlobAny(d)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errdef.ErrNotFound, err)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (t *pullTarget) Push(_ context.Context, d ocispec.Descriptor, r io.Reader) error {
	data, err := content.ReadAll(r, d) // checks size and digest
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.blobs[d.Digest] = data
	return nil
}

func (t *pullTarget) Tag(context.Context, ocispec.Descriptor, string) error { return nil }

func (t *pullTarget) Resolve(_ context.Context, ref string) (ocispec.Descriptor, error) {
	return ocispec.Descriptor{}, fmt.Errorf("%s: %w", ref, errdef.ErrNotFound)
}
