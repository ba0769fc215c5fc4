// Package pool is the library pool: a directory in the OCI image-layout
// format (oci-layout, index.json, blobs/sha256/…) holding, per pooled
// unikernel, an image manifest whose config blob is its desc.Config and
// whose layers are one blob per library's shared part plus one private
// blob. Identical library parts are stored once. The pool also reserves
// map.json for the library map (internal/libmap) and .lock for the flock
// that serializes writers.
//
// Every write is a temporary file renamed into place after fsync, and the
// order is blobs, then the manifest, then index.json: a writer killed at any
// point leaves a pool that verifies, holding every unikernel it held.
package pool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// File names inside a pool directory.
const (
	MapFile  = "map.json" // the library map, owned by internal/libmap
	lockFile = ".lock"
)

// EnvPool names the environment variable that overrides DefaultDir.
const EnvPool = "UNIPOOL_POOL"

// Pool is an opened pool directory. Its methods may be called from
// several goroutines.
type Pool struct {
	dir string

	mu       sync.Mutex
	idxKey   indexKey // identifies the index.json file cached in idx
	idxCache *ocispec.Index
}

// DefaultDir is where the pool lives when no --pool flag is given:
// $UNIPOOL_POOL, else $XDG_DATA_HOME/unipool/pool, else
// ~/.local/share/unipool/pool.
func DefaultDir() (string, error) {
	if d := os.Getenv(EnvPool); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "unipool", "pool"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("pool: no --pool, no $%s and no home directory: %w", EnvPool, err)
	}
	return filepath.Join(home, ".local", "share", "unipool", "pool"), nil
}

// errNotPool is Open's answer for a directory with no oci-layout file.
var errNotPool = errors.New("not a pool")

// Open opens an existing pool. It fails, naming the directory, if dir is
// not a pool (no oci-layout file, or one of another version).
func Open(dir string) (*Pool, error) {
	p := &Pool{dir: dir}
	data, err := os.ReadFile(p.path(ocispec.ImageLayoutFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pool %s: %w (no %s); `unipool pool add` creates one", dir, errNotPool, ocispec.ImageLayoutFile)
	}
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", dir, err)
	}
	if err := parseLayout(data); err != nil {
		return nil, fmt.Errorf("pool %s: %s: %w", dir, ocispec.ImageLayoutFile, err)
	}
	return p, nil
}

// Init opens the pool at dir, creating an empty one first if dir holds none.
func Init(dir string) (*Pool, error) {
	// Only a missing oci-layout makes a pool to create. Open's own answer
	// decides, not a second look at the file: another process may create
	// the pool between the two, and that must not read as "not a pool".
	if p, err := Open(dir); err == nil {
		return p, nil
	} else if !errors.Is(err, errNotPool) {
		return nil, err
	}
	p := &Pool{dir: dir}
	if err := os.MkdirAll(p.blobDir(), 0o755); err != nil {
		return nil, fmt.Errorf("pool %s: create: %w", dir, err)
	}
	l, err := p.lock(true)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	// Another process may have initialised it while we waited for the lock.
	if _, err := os.Stat(p.path(ocispec.ImageLayoutFile)); err == nil {
		return Open(dir)
	}
	// index.json first: a pool exists once oci-layout does, and by then it
	// must already have an index.
	if _, err := os.Stat(p.indexPath()); errors.Is(err, fs.ErrNotExist) {
		if err := p.writeIndex(&ocispec.Index{}); err != nil {
			return nil, err
		}
	}
	layout := []byte(`{"imageLayoutVersion":"` + ocispec.ImageLayoutVersion + `"}`)
	if err := writeAtomic(p.path(ocispec.ImageLayoutFile), layout); err != nil {
		return nil, fmt.Errorf("pool %s: create: %w", dir, err)
	}
	return p, nil
}

// Dir is the pool's directory.
func (p *Pool) Dir() string { return p.dir }

// MapPath is the file of the library map that lives with the pool.
func (p *Pool) MapPath() string { return p.path(MapFile) }

// BlobPath is the file of a blob ("sha256:<hex>"). It names a file even for
// a malformed digest, one that cannot exist, so callers get a clear "no such
// file" rather than a path outside the pool.
func (p *Pool) BlobPath(dgst string) string {
	d := digest.Digest(dgst)
	if d.Validate() != nil || d.Algorithm() != digest.SHA256 {
		return filepath.Join(p.blobDir(), "invalid-digest")
	}
	return filepath.Join(p.blobDir(), d.Encoded())
}

func (p *Pool) path(name string) string { return filepath.Join(p.dir, name) }
func (p *Pool) indexPath() string       { return p.path(ocispec.ImageIndexFile) }
func (p *Pool) lockPath() string        { return p.path(lockFile) }
func (p *Pool) blobDir() string {
	return filepath.Join(p.dir, ocispec.ImageBlobsDir, string(digest.SHA256))
}
