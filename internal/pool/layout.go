package pool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/unipool/unipool/internal/desc"
)

// maxMetaSize bounds the JSON files the pool reads whole (index.json,
// manifests, configs), so a corrupt or hostile pool cannot make a reader
// allocate without limit.
const maxMetaSize = 64 << 20

// DecodeStrict decodes one JSON value into v and refuses trailing data
// (anything but white space after the value). The pool reads its own JSON
// (index.json, manifests, configs) so; package distribution reads what it
// pulls the same way.
func DecodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err == nil {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// parseLayout checks the oci-layout file.
func parseLayout(data []byte) error {
	var l ocispec.ImageLayout
	if err := DecodeStrict(data, &l); err != nil {
		return fmt.Errorf("not valid JSON: %w", err)
	}
	if l.Version != ocispec.ImageLayoutVersion {
		return fmt.Errorf("imageLayoutVersion %q, want %q", l.Version, ocispec.ImageLayoutVersion)
	}
	return nil
}

// checkDescriptor checks what every descriptor the pool follows must hold:
// a sha256 digest of the right form (so it names a file in blobs/sha256)
// and a size that is not negative.
func checkDescriptor(d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", d.Digest, err)
	}
	if d.Digest.Algorithm() != digest.SHA256 {
		return fmt.Errorf("digest %q: only sha256 is used", d.Digest)
	}
	if d.Size < 0 {
		return fmt.Errorf("digest %s: negative size %d", d.Digest, d.Size)
	}
	return nil
}

// parseIndex decodes index.json and checks every entry names a unikernel
// manifest: an image manifest with a sha256 digest and a unique ref name.
func parseIndex(data []byte) (*ocispec.Index, error) {
	var idx ocispec.Index
	if err := DecodeStrict(data, &idx); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("schemaVersion %d, want 2", idx.SchemaVersion)
	}
	if idx.MediaType != "" && idx.MediaType != ocispec.MediaTypeImageIndex {
		return nil, fmt.Errorf("mediaType %q, want %q", idx.MediaType, ocispec.MediaTypeImageIndex)
	}
	seen := map[string]bool{}
	for i, m := range idx.Manifests {
		if err := checkDescriptor(m); err != nil {
			return nil, fmt.Errorf("manifests[%d]: %w", i, err)
		}
		if m.MediaType != ocispec.MediaTypeImageManifest {
			return nil, fmt.Errorf("manifests[%d]: mediaType %q, want %q", i, m.MediaType, ocispec.MediaTypeImageManifest)
		}
		name := m.Annotations[ocispec.AnnotationRefName]
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("manifests[%d]: %w", i, err)
		}
		if seen[name] {
			return nil, fmt.Errorf("manifests[%d]: name %q appears twice", i, name)
		}
		seen[name] = true
	}
	return &idx, nil
}

// checkName restricts unikernel names to what reads well on a command line
// and in a file listing, and what OCI allows as a ref name.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("no name (annotation %s)", ocispec.AnnotationRefName)
	}
	if len(name) > 128 {
		return fmt.Errorf("name %.20q...: longer than 128 bytes", name)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '+' || c == ':' || c == '@' || c == '/'
		if !ok {
			return fmt.Errorf("name %q: character %q not allowed (letters, digits and . _ - + : @ /)", name, c)
		}
	}
	return nil
}

// parseManifest decodes a unikernel manifest and checks its shape: an image
// manifest of artifactType desc.ArtifactType whose config is a description
// and whose layers are shared blobs plus exactly one private blob.
func parseManifest(data []byte) (*ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := DecodeStrict(data, &m); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("schemaVersion %d, want 2", m.SchemaVersion)
	}
	if m.MediaType != ocispec.MediaTypeImageManifest {
		return nil, fmt.Errorf("mediaType %q, want %q", m.MediaType, ocispec.MediaTypeImageManifest)
	}
	if m.ArtifactType != desc.ArtifactType {
		return nil, fmt.Errorf("artifactType %q, want %q", m.ArtifactType, desc.ArtifactType)
	}
	if m.Config.MediaType != desc.MediaTypeConfig {
		return nil, fmt.Errorf("config: mediaType %q, want %q", m.Config.MediaType, desc.MediaTypeConfig)
	}
	if err := checkDescriptor(m.Config); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	private := 0
	for i, l := range m.Layers {
		if err := checkDescriptor(l); err != nil {
			return nil, fmt.Errorf("layers[%d]: %w", i, err)
		}
		switch l.MediaType {
		case desc.MediaTypeShared, desc.MediaTypeInit, desc.MediaTypeSnapshotPage, desc.MediaTypeSnapshotPack, desc.MediaTypeSnapshotZero:
		case desc.MediaTypePrivate:
			private++
		default:
			return nil, fmt.Errorf("layers[%d]: mediaType %q, want %q, %q, %q, %q, %q or %q", i, l.MediaType, desc.MediaTypeShared, desc.MediaTypeInit, desc.MediaTypePrivate, desc.MediaTypeSnapshotPage, desc.MediaTypeSnapshotPack, desc.MediaTypeSnapshotZero)
		}
	}
	if private != 1 {
		return nil, fmt.Errorf("%d private layers, want 1", private)
	}
	return &m, nil
}

// checkDescription checks that a description and its manifest agree: every
// library's shared part is a shared layer of exactly its size, its init
// blob (if any) an init layer of whole pages, the private blob is the
// manifest's private layer, every part placed in the private blob lies
// inside it, and no layer goes unused.
func checkDescription(m *ocispec.Manifest, c *desc.Config) error {
	if c.Layout != "aligned" {
		return fmt.Errorf("layout %q, want \"aligned\"", c.Layout)
	}
	// By media type and digest: the same bytes may be a shared part of one
	// library and the init blob of another.
	type key struct {
		mediaType string
		digest    digest.Digest
	}
	layers := map[key]ocispec.Descriptor{}
	used := map[key]bool{}
	var priv ocispec.Descriptor
	for _, l := range m.Layers {
		if l.MediaType == desc.MediaTypePrivate {
			priv = l
		} else {
			layers[key{l.MediaType, l.Digest}] = l
		}
	}
	if c.Private == nil {
		return errors.New("no private blob")
	}
	if digest.Digest(c.Private.Digest) != priv.Digest || c.Private.Size != priv.Size {
		return fmt.Errorf("private blob %s (%d bytes) is not the manifest's private layer %s (%d bytes)", c.Private.Digest, c.Private.Size, priv.Digest, priv.Size)
	}
	within := func(what, lib string, off, size uint64) error {
		if size == 0 {
			return nil
		}
		if off+size < off || off+size > uint64(priv.Size) {
			return fmt.Errorf("library %q: %s (%#x bytes at %#x) outside the private blob (%#x bytes)", lib, what, size, off, priv.Size)
		}
		return nil
	}
	for _, l := range c.Libraries {
		if l.InPack() {
			// Its code is mapped by its pack's page entries.
			if l.Shared.Digest != "" {
				return fmt.Errorf("library %q: in a pack, but has a shared blob %s", l.Name, l.Shared.Digest)
			}
		} else if l.Shared.Size&pageMask != 0 {
			return fmt.Errorf("library %q: shared size %#x is not a page multiple", l.Name, l.Shared.Size)
		}
		if l.InPack() {
		} else if l.Shared.Size == 0 {
			if l.Shared.Digest != "" {
				return fmt.Errorf("library %q: empty shared part has a blob %s", l.Name, l.Shared.Digest)
			}
		} else {
			k := key{desc.MediaTypeShared, digest.Digest(l.Shared.Digest)}
			ld, ok := layers[k]
			if !ok {
				return fmt.Errorf("library %q: shared blob %q is not a layer of the manifest", l.Name, l.Shared.Digest)
			}
			if uint64(ld.Size) != l.Shared.Size {
				return fmt.Errorf("library %q: shared part is %#x bytes, its layer %s %#x", l.Name, l.Shared.Size, ld.Digest, ld.Size)
			}
			used[k] = true
		}
		if l.Init != nil {
			k := key{desc.MediaTypeInit, digest.Digest(l.Init.Digest)}
			ld, ok := layers[k]
			if !ok {
				return fmt.Errorf("library %q: init blob %q is not a layer of the manifest", l.Name, l.Init.Digest)
			}
			// A loader maps the table's and the data's pages from it.
			need := l.InitDataOff() + pageUp(l.Private.FileSize)
			if ld.Size != l.Init.Size || uint64(l.Init.Size) < need || l.Init.Size&pageMask != 0 {
				return fmt.Errorf("library %q: init blob %s is %#x bytes (layer %#x), want whole pages holding %#x", l.Name, l.Init.Digest, l.Init.Size, ld.Size, need)
			}
			used[k] = true
		}
		if err := within("tramp table", l.Name, l.Tramp.BlobOff, l.Tramp.Size); err != nil {
			return err
		}
		if err := within("private data", l.Name, l.Private.BlobOff, l.Private.FileSize); err != nil {
			return err
		}
	}
	for _, a := range c.Arena {
		// Mapped from the blob: whole pages inside it.
		if a.BlobOff&pageMask != 0 || a.BlobOff+a.Size < a.BlobOff || a.BlobOff+a.Size > uint64(priv.Size) {
			return fmt.Errorf("arena pages (%#x bytes at %#x) at %#x outside the private blob (%#x bytes) or not page-aligned", a.Size, a.Addr, a.BlobOff, priv.Size)
		}
	}
	if c.Snapshot != nil {
		for _, pg := range c.Snapshot.Pages {
			if pg.Blob != "" {
				// In a page pack: whole pages, this one inside it.
				k := key{desc.MediaTypeSnapshotPack, digest.Digest(pg.Blob)}
				ld, ok := layers[k]
				if !ok {
					return fmt.Errorf("snapshot page at %#x: pack %q is not a layer of the manifest", pg.Addr, pg.Blob)
				}
				if ld.Size <= 0 || ld.Size&pageMask != 0 || ld.Size > desc.MaxSnapshotPackSize || pg.Offset+desc.SnapshotPageSize > uint64(ld.Size) {
					return fmt.Errorf("snapshot page at %#x: offset %#x is not a page of its pack %s (%d bytes)", pg.Addr, pg.Offset, ld.Digest, ld.Size)
				}
				used[k] = true
				continue
			}
			k := key{desc.MediaTypeSnapshotPage, digest.Digest(pg.Digest)}
			ld, ok := layers[k]
			if !ok {
				return fmt.Errorf("snapshot page at %#x: blob %q is not a layer of the manifest", pg.Addr, pg.Digest)
			}
			if ld.Size != desc.SnapshotPageSize {
				return fmt.Errorf("snapshot page at %#x: layer %s is %d bytes, want %d", pg.Addr, ld.Digest, ld.Size, desc.SnapshotPageSize)
			}
			used[k] = true
		}
		if z := c.Snapshot.Zero; z != "" {
			k := key{desc.MediaTypeSnapshotZero, digest.Digest(z)}
			ld, ok := layers[k]
			if !ok {
				return fmt.Errorf("snapshot zero blob %q is not a layer of the manifest", z)
			}
			if ld.Size != desc.SnapshotZeroSize {
				return fmt.Errorf("snapshot zero blob: layer %s is %d bytes, want %d", ld.Digest, ld.Size, desc.SnapshotZeroSize)
			}
			used[k] = true
		}
	}
	for k := range layers {
		if !used[k] {
			return fmt.Errorf("%s layer %s belongs to no library", k.mediaType, k.digest)
		}
	}
	return nil
}

const pageMask = 0xfff

func pageUp(n uint64) uint64 { return (n + pageMask) &^ pageMask }

// privateAlign is the alignment of the pieces of a private blob: enough
// for the 8-byte slots and relocations inside them to stay aligned.
const privateAlign = 16

func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

// indexKey identifies one version of index.json. Writers replace the file
// by rename, so a new version is a new inode.
type indexKey struct {
	ino, size    uint64
	mtime, ctime syscall.Timespec
}

// readIndex reads and parses index.json, or returns the parsed copy of the
// same file version read before: a monitor resolving a thousand names
// would otherwise parse a 300 KiB index a thousand times. The caller owns
// the returned index (its manifest list is a copy).
func (p *Pool) readIndex() (*ocispec.Index, error) {
	cached, err := p.sharedIndex()
	if err != nil {
		return nil, err
	}
	out := *cached
	out.Manifests = append([]ocispec.Descriptor(nil), cached.Manifests...)
	return &out, nil
}

// DropIndex lets the parsed index go (a later lookup reads the file
// again): a caller that has resolved its names and keeps the pool for its
// blobs' paths does not keep ~1 MiB of parsed index for 1000 unikernels.
func (p *Pool) DropIndex() {
	p.mu.Lock()
	p.idxCache, p.idxKey = nil, indexKey{}
	p.mu.Unlock()
}

// sharedIndex is readIndex without the copy: the parsed index shared with
// every other reader of this file version, which the caller must not
// change. A lookup by name (resolve) reads it in place: a copy of the
// manifest list per name was 120 MB of garbage for a monitor resolving
// 1000 names, garbage that fragments the heap it keeps for its run.
func (p *Pool) sharedIndex() (*ocispec.Index, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p.indexPath(), &st); err != nil {
		return nil, fmt.Errorf("pool %s: %w", p.dir, &fs.PathError{Op: "stat", Path: p.indexPath(), Err: err})
	}
	key := indexKey{ino: st.Ino, size: uint64(st.Size), mtime: st.Mtim, ctime: st.Ctim}
	p.mu.Lock()
	cached := p.idxCache
	if p.idxKey != key {
		cached = nil
	}
	p.mu.Unlock()
	if cached == nil {
		data, err := readLimited(p.indexPath())
		if err != nil {
			return nil, fmt.Errorf("pool %s: %w", p.dir, err)
		}
		idx, err := parseIndex(data)
		if err != nil {
			return nil, fmt.Errorf("pool %s: %s: %w", p.dir, p.indexPath(), err)
		}
		// Cache it only if the file did not change while it was read.
		var after syscall.Stat_t
		if syscall.Stat(p.indexPath(), &after) == nil && (indexKey{ino: after.Ino, size: uint64(after.Size), mtime: after.Mtim, ctime: after.Ctim}) == key {
			p.mu.Lock()
			p.idxKey, p.idxCache = key, idx
			p.mu.Unlock()
		}
		cached = idx
	}
	return cached, nil
}

func (p *Pool) writeIndex(idx *ocispec.Index) error {
	idx.SchemaVersion = 2
	idx.MediaType = ocispec.MediaTypeImageIndex
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("pool %s: index: %w", p.dir, err)
	}
	// The blobs the new index names were renamed into place without a
	// directory fsync each (storeBlob): make them durable before it.
	if err := syncDir(p.blobDir()); err != nil {
		return err
	}
	return writeAtomic(p.indexPath(), append(data, '\n'))
}

// readLimited reads a metadata file whole, refusing one past maxMetaSize.
func readLimited(path string) ([]byte, error) { return readLimitedInto(path, nil) }

// readLimitedInto is readLimited into buf when its capacity holds the file
// (else into a new buffer, desc.Scratch).
func readLimitedInto(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxMetaSize {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a description file may have", path, st.Size(), maxMetaSize)
	}
	var data []byte
	if int64(cap(buf)) >= st.Size() {
		data = buf[:st.Size()]
	} else {
		data = desc.Scratch(st.Size())
	}
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

// readBlob reads a small blob named by a descriptor and checks its size and
// digest, so what the pool parses is what the index promised.
func (p *Pool) readBlob(d ocispec.Descriptor) ([]byte, error) { return p.readBlobInto(d, nil) }

// readBlobInto is readBlob into buf when its capacity holds the blob.
func (p *Pool) readBlobInto(d ocispec.Descriptor, buf []byte) ([]byte, error) {
	path := p.BlobPath(string(d.Digest))
	if d.Size > maxMetaSize {
		return nil, fmt.Errorf("blob %s (%s): %d bytes, too large for a description", d.Digest, path, d.Size)
	}
	data, err := readLimitedInto(path, buf)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s missing (no %s)", d.Digest, path)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	if int64(len(data)) != d.Size {
		return nil, fmt.Errorf("blob %s (%s): %d bytes, want %d", d.Digest, path, len(data), d.Size)
	}
	if got := digest.SHA256.FromBytes(data); got != d.Digest {
		return nil, fmt.Errorf("blob %s (%s): content does not match its digest (it hashes to %s)", d.Digest, path, got)
	}
	return data, nil
}

// metaBuffers are what a manifest or a description is read into to be
// checked and parsed: the parse copies what it keeps (encoding/json makes
// every string and list its own), so the bytes are garbage once it
// returns, and one buffer serves read after read. A buffer per read
// (desc.Scratch: 33 KB for most descriptions) was 85 MB of the 445 MB of
// garbage a snapshot monitor made to a held fleet of 1000 (each
// description read twice: checked, then planned), collections and CPU;
// measured, it did not change the memory the monitor holds
// (docs/notes/monitor-memory.md, Session 17 (snapmon17)).
var metaBuffers = sync.Pool{New: func() any { return new([]byte) }}

// metaBufferMax bounds a buffer kept for reuse (a larger file's buffer
// goes with its read).
const metaBufferMax = 1 << 20

// withBlob reads the small blob d names as readBlob does, into a reused
// buffer (metaBuffers), and calls use with its bytes, which are use's
// until it returns only (use must copy what it keeps). It returns the
// read's error (use not called) or use's.
func (p *Pool) withBlob(d ocispec.Descriptor, use func([]byte) error) (readErr, useErr error) {
	bp := metaBuffers.Get().(*[]byte)
	defer metaBuffers.Put(bp)
	data, err := p.readBlobInto(d, *bp)
	if err != nil {
		return err, nil
	}
	if cap(data) > cap(*bp) && cap(data) <= metaBufferMax {
		*bp = data[:0] // (a larger buffer from now on)
	}
	return nil, use(data)
}

// loadDescription reads a unikernel's manifest and description and checks
// they agree.
func (p *Pool) loadDescription(md ocispec.Descriptor) (*ocispec.Manifest, *desc.Config, error) {
	return p.loadDescriptionWith(md, desc.Parse)
}

// loadDescriptionWith is loadDescription with the description parsed by
// parse (desc.ParseOnce: a description for one use).
func (p *Pool) loadDescriptionWith(md ocispec.Descriptor, parse func([]byte) (*desc.Config, error)) (*ocispec.Manifest, *desc.Config, error) {
	// Both read into a reused buffer (withBlob): once parsed, their
	// bytes are garbage.
	var m *ocispec.Manifest
	readErr, err := p.withBlob(md, func(data []byte) (err error) {
		m, err = parseManifest(data)
		return err
	})
	if readErr != nil {
		return nil, nil, fmt.Errorf("manifest: %w", readErr)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s (%s): %w", md.Digest, p.BlobPath(string(md.Digest)), err)
	}
	var c *desc.Config
	readErr, err = p.withBlob(m.Config, func(data []byte) (err error) {
		c, err = parse(data)
		return err
	})
	if readErr != nil {
		return nil, nil, fmt.Errorf("config: %w", readErr)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("config %s (%s): %w", m.Config.Digest, p.BlobPath(string(m.Config.Digest)), err)
	}
	if err := checkDescription(m, c); err != nil {
		return nil, nil, fmt.Errorf("config %s (%s): description: %w", m.Config.Digest, p.BlobPath(string(m.Config.Digest)), err)
	}
	return m, c, nil
}
