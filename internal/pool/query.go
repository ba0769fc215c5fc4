package pool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/desc"
)

// Entry is one pooled unikernel as index.json names it.
type Entry struct {
	Name     string        `json:"name"`
	Manifest digest.Digest `json:"manifest"`
}

// List returns the pooled unikernels in index order.
func (p *Pool) List() ([]Entry, error) {
	l, err := p.lock(false)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	idx, err := p.readIndex()
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(idx.Manifests))
	for _, m := range idx.Manifests {
		out = append(out, Entry{Name: m.Annotations[ocispec.AnnotationRefName], Manifest: m.Digest})
	}
	return out, nil
}

// Summary is a line of `pool ls`: a unikernel, how many libraries it has
// and how many bytes of blobs it references, or why its description
// cannot be read.
type Summary struct {
	Entry
	Libraries int    `json:"libraries"`
	Bytes     int64  `json:"bytes"`
	Error     string `json:"error,omitempty"`
}

// Summaries describes every pooled unikernel in one pass over the index.
// A description that cannot be read is reported in its Summary, not as an
// error, so one bad entry does not hide the others.
func (p *Pool) Summaries() ([]Summary, error) {
	l, err := p.lock(false)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	idx, err := p.readIndex()
	if err != nil {
		return nil, err
	}
	out := make([]Summary, 0, len(idx.Manifests))
	for _, md := range idx.Manifests {
		s := Summary{Entry: Entry{Name: md.Annotations[ocispec.AnnotationRefName], Manifest: md.Digest}}
		if m, c, err := p.loadDescription(md); err != nil {
			s.Error = err.Error()
		} else {
			s.Libraries = len(c.Libraries)
			s.Bytes = md.Size + m.Config.Size
			for _, l := range m.Layers {
				s.Bytes += l.Size
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// ErrNotFound is wrapped by Resolve's error when no unikernel has the name.
var ErrNotFound = errors.New("no such unikernel")

// Resolve returns the description of the unikernel called name, with its
// manifest and config checked against their digests and each other. The
// blobs it names (Shared.Digest, Private) are files at BlobPath; a caller
// that maps one checks it first with VerifyBlob.
func (p *Pool) Resolve(name string) (*desc.Config, error) {
	_, _, c, err := p.resolve(name, desc.Parse)
	return c, err
}

// Ref is what reads a resolved unikernel's description again
// (Describe): its manifest's digest and size, nothing of the index.
type Ref struct {
	Manifest digest.Digest
	Size     int64
	// config is the description's config blob as its manifest named it
	// when ResolveRef read, parsed and checked the two against their
	// digests and each other: Describe reads that blob alone, by its
	// digest (the bytes checked then, or an error), not the manifest
	// again. Empty in a Ref made elsewhere: Describe reads both.
	config ocispec.Descriptor
}

// RefState is a Ref as plain values (JSON), for a process that hands the
// unikernels it resolved to the program it execs (vmmproc: a monitor
// process that sheds its checking phase's runtime state); Ref gives the
// Ref back, reading as the original does.
type RefState struct {
	Manifest digest.Digest      `json:"manifest"`
	Size     int64              `json:"size"`
	Config   ocispec.Descriptor `json:"config"`
}

// State is r as a RefState.
func (r Ref) State() RefState { return RefState{Manifest: r.Manifest, Size: r.Size, Config: r.config} }

// Ref is the Ref s is the state of.
func (s RefState) Ref() Ref { return Ref{Manifest: s.Manifest, Size: s.Size, config: s.Config} }

// ResolveRef is Resolve that also returns the description's Ref, so that a
// caller can let the description go and read it again when it needs it
// (a monitor starting a thousand unikernels holds none of them at once).
func (p *Pool) ResolveRef(name string) (Ref, *desc.Config, error) {
	return p.resolveRef(name, desc.Parse)
}

// ResolveRefOnce is ResolveRef for a caller that checks the description
// and lets it go, reading it again by its Ref when it needs it
// (launch.ResolveLater): the description is for that one use
// (desc.ParseOnce: not compacted).
func (p *Pool) ResolveRefOnce(name string) (Ref, *desc.Config, error) {
	return p.resolveRef(name, desc.ParseOnce)
}

func (p *Pool) resolveRef(name string, parse func([]byte) (*desc.Config, error)) (Ref, *desc.Config, error) {
	md, m, c, err := p.resolve(name, parse)
	if err != nil {
		return Ref{}, nil, err
	}
	return Ref{Manifest: md.Digest, Size: md.Size, config: m.Config}, c, nil
}

// Describe reads the description r names again, checked against its
// digest as Resolve checks it: the same description, or an error. A Ref
// from ResolveRef reads the config blob alone (its manifest was read and
// checked against it then, and the monitor plans from the config only);
// any other reads the manifest and checks the two as Resolve does. The
// description is for one use (desc.ParseOnce: not compacted).
func (p *Pool) Describe(r Ref) (*desc.Config, error) {
	if r.config.Digest == "" {
		_, c, err := p.loadDescriptionWith(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: r.Manifest, Size: r.Size}, desc.ParseOnce)
		if err != nil {
			return nil, fmt.Errorf("pool %s: manifest %s: %w", p.dir, r.Manifest, err)
		}
		return c, nil
	}
	var c *desc.Config
	readErr, err := p.withBlob(r.config, func(data []byte) (err error) {
		c, err = desc.ParseOnce(data)
		return err
	})
	if readErr != nil {
		return nil, fmt.Errorf("pool %s: manifest %s: config: %w", p.dir, r.Manifest, readErr)
	}
	if err != nil {
		return nil, fmt.Errorf("pool %s: manifest %s: config %s (%s): %w", p.dir, r.Manifest, r.config.Digest, p.BlobPath(string(r.config.Digest)), err)
	}
	return c, nil
}

func (p *Pool) resolve(name string, parse func([]byte) (*desc.Config, error)) (*ocispec.Descriptor, *ocispec.Manifest, *desc.Config, error) {
	l, err := p.lock(false)
	if err != nil {
		return nil, nil, nil, err
	}
	defer l.unlock()
	idx, err := p.sharedIndex() // read only
	if err != nil {
		return nil, nil, nil, err
	}
	for i := range idx.Manifests {
		if idx.Manifests[i].Annotations[ocispec.AnnotationRefName] != name {
			continue
		}
		md := idx.Manifests[i]
		m, c, err := p.loadDescriptionWith(md, parse)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("pool %s: unikernel %q: %w (`unipool pool add` of its image again replaces its description)", p.dir, name, err)
		}
		return &md, m, c, nil
	}
	return nil, nil, nil, fmt.Errorf("pool %s: %w %q", p.dir, ErrNotFound, name)
}

// VerifyBlob re-hashes a blob's file and fails, naming the digest and the
// file, unless its content matches its digest.
func (p *Pool) VerifyBlob(dgst string) error {
	f, err := p.OpenBlob(dgst)
	if err != nil {
		return err
	}
	return f.Close()
}

// OpenBlob opens a blob's file read-only and checks it on that descriptor:
// a regular file (a symlink is not followed), writable by no one but its
// owner, whose content matches its digest. What a caller then maps or
// reads through the descriptor is what was checked; the path is never
// opened again, so a file swapped in after the check is never used.
func (p *Pool) OpenBlob(dgst string) (*os.File, error) {
	return openBlob("pool "+p.dir, p.BlobPath(dgst), dgst)
}

// OpenBlobFile is OpenBlob for a blob file at path outside a pool (a
// jail's link to it); where names the place in errors.
func OpenBlobFile(where, path, dgst string) (*os.File, error) {
	return openBlob(where, path, dgst)
}

// copyBuffers are openBlob's read buffers, reused: io.Copy made a 32 KiB
// buffer per blob, 280 MB of garbage for a monitor verifying the blobs
// and snapshot pages of 1000 unikernels.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func openBlob(where, path, dgst string) (*os.File, error) {
	d := digest.Digest(dgst)
	if err := d.Validate(); err != nil || d.Algorithm() != digest.SHA256 {
		return nil, fmt.Errorf("%s: blob %q: not a sha256 digest", where, dgst)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("%s: blob %s missing (no %s)", where, d, path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: blob %s (%s): %w", where, d, path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	fail := func(format string, args ...any) (*os.File, error) {
		f.Close()
		return nil, fmt.Errorf("%s: blob %s (%s): "+format, append([]any{where, d, path}, args...)...)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail("%w", err)
	}
	if !fi.Mode().IsRegular() {
		return fail("not a regular file (%v)", fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fail("writable by group or others (mode %v); pool files are immutable: chmod 0444 it", fi.Mode().Perm())
	}
	v := d.Verifier()
	buf := copyBuffers.Get().(*[]byte)
	_, err = io.CopyBuffer(v, io.NewSectionReader(f, 0, fi.Size()), *buf)
	copyBuffers.Put(buf)
	if err != nil {
		return fail("%w", err)
	}
	if !v.Verified() {
		return fail("content does not match its digest")
	}
	return f, nil
}

// Blob is one blob a description references.
type Blob struct {
	Role    string        `json:"role"` // "manifest", "config", "shared", "init", "private", "snapshot"
	Library string        `json:"library,omitempty"`
	Digest  digest.Digest `json:"digest"`
	Size    int64         `json:"size"`
}

// Description is what Inspect shows of a pooled unikernel.
type Description struct {
	Name     string        `json:"name"`
	Manifest digest.Digest `json:"manifest"`
	Config   *desc.Config  `json:"config"`
	Blobs    []Blob        `json:"blobs"`
}

// Inspect returns a unikernel's description and the blobs it references.
func (p *Pool) Inspect(name string) (*Description, error) {
	md, m, c, err := p.resolve(name, desc.Parse)
	if err != nil {
		return nil, err
	}
	d := &Description{Name: name, Manifest: md.Digest, Config: c}
	d.Blobs = append(d.Blobs, Blob{Role: "manifest", Digest: md.Digest, Size: md.Size})
	d.Blobs = append(d.Blobs, Blob{Role: "config", Digest: m.Config.Digest, Size: m.Config.Size})
	for _, l := range c.Libraries {
		if l.Shared.Digest != "" {
			d.Blobs = append(d.Blobs, Blob{Role: "shared", Library: l.Name, Digest: digest.Digest(l.Shared.Digest), Size: int64(l.Shared.Size)})
		}
	}
	for _, l := range c.Libraries {
		if l.Init != nil {
			d.Blobs = append(d.Blobs, Blob{Role: "init", Library: l.Name, Digest: digest.Digest(l.Init.Digest), Size: l.Init.Size})
		}
	}
	d.Blobs = append(d.Blobs, Blob{Role: "private", Digest: digest.Digest(c.Private.Digest), Size: c.Private.Size})
	if c.Snapshot != nil {
		// The blobs its pages lie in, each once: page packs and (taken
		// before packs) page blobs of their own.
		for _, l := range m.Layers {
			switch l.MediaType {
			case desc.MediaTypeSnapshotPack:
				d.Blobs = append(d.Blobs, Blob{Role: "snapshot pack", Digest: l.Digest, Size: l.Size})
			case desc.MediaTypeSnapshotPage:
				d.Blobs = append(d.Blobs, Blob{Role: "snapshot", Digest: l.Digest, Size: l.Size})
			}
		}
		if z := c.Snapshot.Zero; z != "" {
			d.Blobs = append(d.Blobs, Blob{Role: "snapshot zero", Digest: digest.Digest(z), Size: desc.SnapshotZeroSize})
		}
	}
	return d, nil
}
