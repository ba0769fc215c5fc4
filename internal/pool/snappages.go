package pool

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/unipool/unipool/internal/desc"
)

// SnapPagesFile is the pool's snapshot page index: where each snapshot
// page the pool's descriptions reference is stored (page digest -> blob,
// offset), so that a new snapshot references a page some other snapshot
// stored instead of storing it again. It is derived: built from the
// descriptions and rebuilt from them whenever it does not describe the
// current index.json (a pool add, rm, pull or an older binary changed
// it). Nothing trusts it: a page it names is read and hashed before a
// description references it.
const SnapPagesFile = "snapshot-pages.json"

// snapPages is SnapPagesFile's content.
type snapPages struct {
	// Index is the digest of the index.json it was built for.
	Index string `json:"index"`
	// Pages maps a page's digest to where it lies.
	Pages map[string]pageAt `json:"pages"`
	// Sizes are the sizes of the blobs the pages lie in.
	Sizes map[string]int64 `json:"sizes"`
}

// pageAt is where a page lies: a blob (a pack, or the page's own blob:
// Pack false) and its offset there.
type pageAt struct {
	Blob   string `json:"blob"`
	Offset uint64 `json:"offset,omitempty"`
	Pack   bool   `json:"pack,omitempty"`
}

// parseSnapPages parses SnapPagesFile; what it accepts has digests for
// names and page-aligned offsets inside the sizes it gives. It is the
// pool's own file, but a damaged or foreign one must not make a snapshot
// reference a page that is not there: SetSnapshot also hashes each page
// it reuses.
func parseSnapPages(data []byte) (*snapPages, error) {
	var sp snapPages
	if err := DecodeStrict(data, &sp); err != nil {
		return nil, err
	}
	if !isDigestString(sp.Index) {
		return nil, fmt.Errorf("index digest %q", sp.Index)
	}
	for d, at := range sp.Pages {
		size, ok := sp.Sizes[at.Blob]
		switch {
		case !isDigestString(d) || !isDigestString(at.Blob):
			return nil, fmt.Errorf("page %q in blob %q: not digests", d, at.Blob)
		case !ok:
			return nil, fmt.Errorf("page %s: blob %s has no size", d, at.Blob)
		case at.Offset&pageMask != 0 || size <= 0 || size > desc.MaxSnapshotPackSize || at.Offset >= uint64(size) || at.Offset+desc.SnapshotPageSize > uint64(size):
			return nil, fmt.Errorf("page %s: offset %#x outside its blob %s (%d bytes)", d, at.Offset, at.Blob, size)
		case !at.Pack && (at.Blob != d || at.Offset != 0 || size != desc.SnapshotPageSize):
			return nil, fmt.Errorf("page %s: a page blob of its own is %s", d, at.Blob)
		}
	}
	if sp.Pages == nil {
		sp.Pages = map[string]pageAt{}
	}
	if sp.Sizes == nil {
		sp.Sizes = map[string]int64{}
	}
	return &sp, nil
}

// isDigestString reports whether s is "sha256:" and 64 lower-case hex
// digits (what names a blob file).
func isDigestString(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// lastPages is the page index this process last wrote or read, by pool
// directory: a process taking many snapshots (`unipool snapshot` of a
// fleet, the bench) parses the file once, not once per snapshot (~20 ms
// of CPU each at 1000 snapshots). Used only while index.json is the one
// it describes, under the pool's lock.
var lastPages struct {
	sync.Mutex
	m map[string]*snapPages
}

func cachedPages(dir, idxDigest string) *snapPages {
	lastPages.Lock()
	defer lastPages.Unlock()
	if sp := lastPages.m[dir]; sp != nil && sp.Index == idxDigest {
		return sp
	}
	return nil
}

func cachePages(dir string, sp *snapPages) {
	lastPages.Lock()
	defer lastPages.Unlock()
	if lastPages.m == nil {
		lastPages.m = map[string]*snapPages{}
	}
	lastPages.m[dir] = sp
}

// indexDigest is the digest of index.json as it is now.
func (p *Pool) indexDigest() (string, error) {
	data, err := os.ReadFile(p.indexPath())
	if err != nil {
		return "", fmt.Errorf("pool %s: %w", p.dir, err)
	}
	return string(digest.SHA256.FromBytes(data)), nil
}

// snapshotPages returns the snapshot page index of the pool's index idx
// (whose file hashes to idxDigest): SnapPagesFile if it was built for it,
// else rebuilt from every description. The caller holds the lock.
func (p *Pool) snapshotPages(idx *ocispec.Index, idxDigest string) (*snapPages, error) {
	if sp := cachedPages(p.dir, idxDigest); sp != nil {
		return sp, nil
	}
	data, err := os.ReadFile(p.path(SnapPagesFile))
	if err == nil {
		if sp, err := parseSnapPages(data); err == nil && sp.Index == idxDigest {
			return sp, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pool %s: %w", p.dir, err)
	}
	sp := &snapPages{Index: idxDigest, Pages: map[string]pageAt{}, Sizes: map[string]int64{}}
	for _, md := range idx.Manifests {
		m, c, err := p.loadDescription(md)
		if err != nil {
			return nil, fmt.Errorf("pool %s: unikernel %q: %w", p.dir, md.Annotations[ocispec.AnnotationRefName], err)
		}
		sp.add(m, c)
	}
	return sp, nil
}

// add records where c's snapshot pages lie (the first place a page is
// found stays).
func (sp *snapPages) add(m *ocispec.Manifest, c *desc.Config) {
	if c.Snapshot == nil {
		return
	}
	for _, l := range m.Layers {
		if l.MediaType == desc.MediaTypeSnapshotPack || l.MediaType == desc.MediaTypeSnapshotPage {
			sp.Sizes[string(l.Digest)] = l.Size
		}
	}
	for _, pg := range c.Snapshot.Pages {
		if _, ok := sp.Pages[pg.Digest]; !ok {
			sp.Pages[pg.Digest] = pageAt{Blob: pg.BlobDigest(), Offset: pg.Offset, Pack: pg.Blob != ""}
		}
	}
}

// write stores the index for the index.json that hashes to idxDigest:
// renamed into place, not fsynced (it is derived: after a crash, a file
// that is stale, torn or missing is rebuilt, and what it says is checked
// before it is used; the fsyncs cost a snapshot more than the rest of the
// index's upkeep).
func (sp *snapPages) write(path, idxDigest string) error {
	sp.Index = idxDigest
	data, err := json.Marshal(sp)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), tmpPrefix+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// checkPackedPage reads the page at off in the blob file at path and
// checks it against the page's digest.
func checkPackedPage(path string, off uint64, dgst string) error {
	_, err := readPackedPage(path, off, dgst)
	return err
}

// readPackedPage is the page at off in the blob file at path, checked
// against the page's digest.
func readPackedPage(path string, off uint64, dgst string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	page := make([]byte, desc.SnapshotPageSize)
	if _, err := f.ReadAt(page, int64(off)); err != nil {
		return nil, fmt.Errorf("page at offset %#x: %w", off, err)
	}
	sum := sha256.Sum256(page)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != dgst {
		return nil, fmt.Errorf("page at offset %#x hashes to %s, the description says %s", off, got, dgst)
	}
	return page, nil
}

// reusable reports whether the page with content data lies where sp says,
// intact: only then may a new snapshot reference it there.
func (p *Pool) reusable(sp *snapPages, dgst string, data []byte) (pageAt, bool) {
	at, ok := sp.Pages[dgst]
	if !ok {
		return pageAt{}, false
	}
	page, err := readPackedPage(p.BlobPath(at.Blob), at.Offset, dgst)
	if err != nil || !bytes.Equal(page, data) {
		return pageAt{}, false
	}
	if fi, err := os.Stat(p.BlobPath(at.Blob)); err != nil || fi.Size() != sp.Sizes[at.Blob] {
		return pageAt{}, false
	}
	return at, true
}
