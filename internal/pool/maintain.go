package pool

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/libmap"
)

// Remove drops a unikernel from the index. Its blobs stay until GC.
func (p *Pool) Remove(name string) error {
	l, err := p.lock(true)
	if err != nil {
		return err
	}
	defer l.unlock()
	idx, err := p.readIndex()
	if err != nil {
		return err
	}
	kept := idx.Manifests[:0]
	for _, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] != name {
			kept = append(kept, m)
		}
	}
	if len(kept) == len(idx.Manifests) {
		return fmt.Errorf("pool %s: %w %q", p.dir, ErrNotFound, name)
	}
	idx.Manifests = kept
	return p.writeIndex(idx)
}

// GCResult says what GC removed.
type GCResult struct {
	Blobs     int   `json:"blobs"`      // unreferenced blobs removed
	Bytes     int64 `json:"bytes"`      // their bytes
	TempFiles int   `json:"temp_files"` // leftovers of killed writers removed
	Kept      int   `json:"kept"`       // blobs still referenced
}

// referenced returns every blob the index reaches: manifests, configs and
// layers. It fails if any manifest cannot be read, since then what it
// references is unknown.
func (p *Pool) referenced() (map[digest.Digest]bool, error) {
	idx, err := p.readIndex()
	if err != nil {
		return nil, err
	}
	refs := map[digest.Digest]bool{}
	for _, md := range idx.Manifests {
		refs[md.Digest] = true
		data, err := p.readBlob(md)
		if err != nil {
			return nil, fmt.Errorf("pool %s: unikernel %q: manifest: %w", p.dir, md.Annotations[ocispec.AnnotationRefName], err)
		}
		m, err := parseManifest(data)
		if err != nil {
			return nil, fmt.Errorf("pool %s: unikernel %q: manifest %s: %w", p.dir, md.Annotations[ocispec.AnnotationRefName], md.Digest, err)
		}
		refs[m.Config.Digest] = true
		for _, l := range m.Layers {
			refs[l.Digest] = true
		}
	}
	return refs, nil
}

// GC removes every blob no pooled unikernel references, and the temporary
// files of writers that were killed. It removes nothing if it cannot read
// every manifest.
func (p *Pool) GC() (*GCResult, error) {
	l, err := p.lock(true)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	refs, err := p.referenced()
	if err != nil {
		return nil, fmt.Errorf("gc: nothing removed: %w", err)
	}
	res := &GCResult{}
	ents, err := os.ReadDir(p.blobDir())
	if err != nil {
		return nil, fmt.Errorf("pool %s: gc: %w", p.dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(p.blobDir(), name)
		switch {
		case isTemp(name):
			if err := os.Remove(path); err != nil {
				return res, fmt.Errorf("pool %s: gc: %w", p.dir, err)
			}
			res.TempFiles++
		case isBlobName(name) && !refs[digest.NewDigestFromEncoded(digest.SHA256, name)]:
			info, err := e.Info()
			if err != nil {
				return res, fmt.Errorf("pool %s: gc: %w", p.dir, err)
			}
			if err := os.Remove(path); err != nil {
				return res, fmt.Errorf("pool %s: gc: %w", p.dir, err)
			}
			res.Blobs++
			res.Bytes += info.Size()
		case isBlobName(name):
			res.Kept++
		}
	}
	// Only the pool's own temporary files at the top: map.json's writer
	// (internal/libmap) does not hold this lock.
	top, err := os.ReadDir(p.dir)
	if err != nil {
		return res, fmt.Errorf("pool %s: gc: %w", p.dir, err)
	}
	for _, e := range top {
		n := e.Name()
		if strings.HasPrefix(n, tmpPrefix+ocispec.ImageIndexFile+"-") || strings.HasPrefix(n, tmpPrefix+ocispec.ImageLayoutFile+"-") {
			if err := os.Remove(filepath.Join(p.dir, n)); err != nil {
				return res, fmt.Errorf("pool %s: gc: %w", p.dir, err)
			}
			res.TempFiles++
		}
	}
	n, err := p.emptyStaging()
	res.TempFiles += n
	if err != nil {
		return res, err
	}
	if err := syncDir(p.blobDir()); err != nil {
		return res, err
	}
	return res, syncDir(p.dir)
}

// emptyStaging removes what interrupted pulls left in the staging folder,
// unless a pull is using it.
func (p *Pool) emptyStaging() (int, error) {
	dir := p.path(stagingDir)
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pool %s: gc: %w", p.dir, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return 0, nil // a pull is running: its files are not leftovers
	}
	ents, err := f.ReadDir(-1)
	if err != nil {
		return 0, fmt.Errorf("pool %s: gc: %w", p.dir, err)
	}
	n := 0
	for _, e := range ents {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return n, fmt.Errorf("pool %s: gc: %w", p.dir, err)
		}
		n++
	}
	return n, nil
}

func isBlobName(name string) bool {
	if len(name) != 64 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil && strings.ToLower(name) == name
}

// Problem is one thing Verify found wrong.
type Problem struct {
	Unikernel string `json:"unikernel,omitempty"`
	Blob      string `json:"blob,omitempty"`
	File      string `json:"file"`
	What      string `json:"what"`
}

func (pr Problem) String() string {
	s := pr.File
	if pr.Blob != "" {
		s = pr.Blob + " (" + pr.File + ")"
	}
	if pr.Unikernel != "" {
		s = "unikernel " + pr.Unikernel + ": " + s
	}
	return s + ": " + pr.What
}

// VerifyReport is what Verify checked and found.
type VerifyReport struct {
	Blobs      int       `json:"blobs"`
	Unikernels int       `json:"unikernels"`
	Problems   []Problem `json:"problems"`
}

// OK says whether Verify found nothing wrong.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// Verify re-hashes every blob, and checks that every description parses,
// validates, agrees with its manifest, and references only blobs the pool
// holds intact at the right size. Temporary files are ignored. The error is
// for failing to look at all; what is wrong with the pool is in the report.
func (p *Pool) Verify() (*VerifyReport, error) {
	l, err := p.lock(false)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	r := &VerifyReport{Problems: []Problem{}}
	add := func(pr Problem) { r.Problems = append(r.Problems, pr) }

	if data, err := os.ReadFile(p.path(ocispec.ImageLayoutFile)); err != nil {
		add(Problem{File: p.path(ocispec.ImageLayoutFile), What: err.Error()})
	} else if err := parseLayout(data); err != nil {
		add(Problem{File: p.path(ocispec.ImageLayoutFile), What: err.Error()})
	}

	// Every blob file, whether referenced or not: a damaged unreferenced
	// blob would be reused as is by a later add of the same content.
	good := map[digest.Digest]int64{}
	ents, err := os.ReadDir(p.blobDir())
	if err != nil {
		return nil, fmt.Errorf("pool %s: verify: %w", p.dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(p.blobDir(), name)
		if isTemp(name) {
			continue
		}
		if !isBlobName(name) || !e.Type().IsRegular() {
			add(Problem{File: path, What: "not a blob: the name is not a sha256 digest or it is not a regular file"})
			continue
		}
		r.Blobs++
		d := digest.NewDigestFromEncoded(digest.SHA256, name)
		size, err := hashFile(path, d)
		if err != nil {
			add(Problem{Blob: string(d), File: path, What: err.Error()})
			continue
		}
		good[d] = size
	}

	idx, err := p.readIndex()
	if err != nil {
		add(Problem{File: p.indexPath(), What: err.Error()})
		return r, nil
	}
	need := func(u string, d ocispec.Descriptor, role string) bool {
		path := p.BlobPath(string(d.Digest))
		size, ok := good[d.Digest]
		switch {
		case ok && size == d.Size:
			return true
		case ok:
			add(Problem{Unikernel: u, Blob: string(d.Digest), File: path, What: fmt.Sprintf("%s blob is %d bytes, the description says %d", role, size, d.Size)})
		case fileExists(path):
			add(Problem{Unikernel: u, Blob: string(d.Digest), File: path, What: role + " blob is damaged (see above)"})
		default:
			add(Problem{Unikernel: u, Blob: string(d.Digest), File: path, What: role + " blob is missing"})
		}
		return false
	}
	// Pack blobs against the map's sealed bytes, as add makes them and
	// pull checks them; the map read once, when a pack entry needs it.
	var sealed *sealedPages
	mapBad := false
	for _, md := range idx.Manifests {
		u := md.Annotations[ocispec.AnnotationRefName]
		r.Unikernels++
		if !need(u, md, "manifest") {
			continue
		}
		mpath := p.BlobPath(string(md.Digest))
		data, err := p.readBlob(md)
		if err != nil {
			add(Problem{Unikernel: u, Blob: string(md.Digest), File: mpath, What: err.Error()})
			continue
		}
		m, err := parseManifest(data)
		if err != nil {
			add(Problem{Unikernel: u, Blob: string(md.Digest), File: mpath, What: "manifest: " + err.Error()})
			continue
		}
		ok := need(u, m.Config, "config")
		for _, l := range m.Layers {
			role := "private"
			switch l.MediaType {
			case desc.MediaTypeShared:
				role = "shared (" + l.Annotations[AnnotationLibrary] + ")"
			case desc.MediaTypeInit:
				role = "init (" + l.Annotations[AnnotationLibrary] + ")"
			case desc.MediaTypeSnapshotPage:
				role = "snapshot page"
			case desc.MediaTypeSnapshotPack:
				role = "snapshot page pack"
			case desc.MediaTypeSnapshotZero:
				role = "snapshot zero blob"
			}
			need(u, l, role)
		}
		if !ok {
			continue
		}
		_, c, err := p.loadDescription(md)
		if err != nil {
			add(Problem{Unikernel: u, Blob: string(m.Config.Digest), File: p.BlobPath(string(m.Config.Digest)), What: err.Error()})
			continue
		}
		for _, l := range c.Libraries {
			if !l.PackPage || mapBad {
				continue
			}
			if sealed == nil {
				m, err := libmap.Load(p.MapPath())
				if err != nil {
					add(Problem{File: p.MapPath(), What: err.Error()})
					mapBad = true
					continue
				}
				sealed = newSealedPages(m, p.MapPath())
			}
			if err := sealed.checkEntry("description", l); err != nil {
				add(Problem{Unikernel: u, Blob: l.Shared.Digest, File: p.BlobPath(l.Shared.Digest), What: err.Error()})
			}
		}
		// A page in a pack: the pack's digest covers its bytes, the
		// page's own digest (what later snapshots share it by) is
		// checked here.
		if c.Snapshot != nil {
			for _, pg := range c.Snapshot.Pages {
				if pg.Blob == "" || good[digest.Digest(pg.Blob)] == 0 {
					continue // a page blob of its own, or a pack reported above
				}
				if err := checkPackedPage(p.BlobPath(pg.Blob), pg.Offset, pg.Digest); err != nil {
					add(Problem{Unikernel: u, Blob: pg.Blob, File: p.BlobPath(pg.Blob), What: fmt.Sprintf("snapshot page at %#x: %v", pg.Addr, err)})
				}
			}
		}
	}
	return r, nil
}

// hashFile checks a blob file against its digest and returns its size.
func hashFile(path string, d digest.Digest) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	v := d.Verifier()
	n, err := io.Copy(v, f)
	if err != nil {
		return 0, err
	}
	if !v.Verified() {
		return n, errors.New("content does not match its digest")
	}
	return n, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Stats are the pool's sizes.
type Stats struct {
	Unikernels int `json:"unikernels"`
	// Blobs and BytesStored count the blob files (referenced or not).
	Blobs       int   `json:"blobs"`
	BytesStored int64 `json:"bytes_stored"`
	// BytesReferenced is what the descriptions reference, every unikernel
	// counting its blobs in full: what the pool would hold without dedup.
	BytesReferenced int64 `json:"bytes_referenced"`
	// DedupRatio is BytesReferenced / bytes of the distinct referenced blobs.
	DedupRatio float64 `json:"dedup_ratio"`
	// ImageBytes is the sum of the sizes of the images the unikernels were
	// added from.
	ImageBytes int64 `json:"image_bytes"`
	// LibraryUses counts (unikernel, library with a shared part) pairs,
	// apps excluded; LibraryBlobs the distinct shared blobs they use, and
	// the bytes of those uses and of those blobs.
	LibraryUses        int   `json:"library_uses"`
	LibraryBlobs       int   `json:"library_blobs"`
	LibraryBytesUsed   int64 `json:"library_bytes_used"`
	LibraryBytesStored int64 `json:"library_bytes_stored"`
	// AppBlobs and AppBytes are the apps' shared parts (code no other
	// unikernel has); PrivateBytes the private blobs.
	AppBlobs     int   `json:"app_blobs"`
	AppBytes     int64 `json:"app_bytes"`
	PrivateBytes int64 `json:"private_bytes"`
	// InitUses counts libraries with an init blob (add --init-blobs);
	// InitBlobs and InitBytes the distinct init blobs.
	InitUses  int   `json:"init_uses"`
	InitBlobs int   `json:"init_blobs"`
	InitBytes int64 `json:"init_bytes"`
	// Unreferenced blobs are what GC would remove.
	UnreferencedBlobs int   `json:"unreferenced_blobs"`
	UnreferencedBytes int64 `json:"unreferenced_bytes"`
	// Snapshots counts the snapshot pages and how widely they are shared.
	Snapshots SnapshotStats `json:"snapshots"`
}

// Stats sums up the pool. It fails on a description it cannot read (run
// Verify to see what is wrong).
func (p *Pool) Stats() (*Stats, error) {
	l, err := p.lock(false)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	s := &Stats{}
	sizes := map[digest.Digest]int64{}
	ents, err := os.ReadDir(p.blobDir())
	if err != nil {
		return nil, fmt.Errorf("pool %s: stats: %w", p.dir, err)
	}
	for _, e := range ents {
		if !isBlobName(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("pool %s: stats: %w", p.dir, err)
		}
		s.Blobs++
		s.BytesStored += info.Size()
		sizes[digest.NewDigestFromEncoded(digest.SHA256, e.Name())] = info.Size()
	}
	idx, err := p.readIndex()
	if err != nil {
		return nil, err
	}
	refs := map[digest.Digest]int64{}
	libs := map[digest.Digest]int64{}
	apps := map[digest.Digest]int64{}
	privs := map[digest.Digest]int64{}
	inits := map[digest.Digest]int64{}
	for _, md := range idx.Manifests {
		m, c, err := p.loadDescription(md)
		if err != nil {
			return nil, fmt.Errorf("pool %s: stats: unikernel %q: %w", p.dir, md.Annotations[ocispec.AnnotationRefName], err)
		}
		s.Unikernels++
		for _, d := range append([]ocispec.Descriptor{md, m.Config}, m.Layers...) {
			s.BytesReferenced += d.Size
			refs[d.Digest] = d.Size
		}
		for _, l := range c.Libraries {
			switch {
			case l.Shared.Digest == "":
			case l.App:
				apps[digest.Digest(l.Shared.Digest)] = int64(l.Shared.Size)
			default:
				s.LibraryUses++
				s.LibraryBytesUsed += int64(l.Shared.Size)
				libs[digest.Digest(l.Shared.Digest)] = int64(l.Shared.Size)
			}
		}
		privs[digest.Digest(c.Private.Digest)] = c.Private.Size
		for _, l := range c.Libraries {
			if l.Init != nil {
				s.InitUses++
				inits[digest.Digest(l.Init.Digest)] = l.Init.Size
			}
		}
		if c.Image != nil {
			s.ImageBytes += c.Image.Size
		}
		s.Snapshots.add(c)
	}
	s.Snapshots.finish()
	var distinct int64
	for _, n := range refs {
		distinct += n
	}
	if distinct > 0 {
		s.DedupRatio = float64(s.BytesReferenced) / float64(distinct)
	}
	s.LibraryBlobs, s.AppBlobs = len(libs), len(apps)
	for _, n := range libs {
		s.LibraryBytesStored += n
	}
	for _, n := range apps {
		s.AppBytes += n
	}
	for _, n := range privs {
		s.PrivateBytes += n
	}
	s.InitBlobs = len(inits)
	for _, n := range inits {
		s.InitBytes += n
	}
	for d, n := range sizes {
		if _, ok := refs[d]; !ok {
			s.UnreferencedBlobs++
			s.UnreferencedBytes += n
		}
	}
	return s, nil
}
