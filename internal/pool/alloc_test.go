package pool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// allocated is the heap bytes f allocates per call, over n calls.
func allocated(n int, f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(n)
}

// A monitor resolves every name of its fleet against one index: looking a
// name up reads the parsed index in place. A copy of the manifest list per
// name was 120 MB of garbage for 1000 names, garbage that leaves the
// monitor's heap fragmented for its whole run.
func TestLookingANameUpDoesNotCopyTheIndex(t *testing.T) {
	p, err := Init(filepath.Join(t.TempDir(), "pool"))
	if err != nil {
		t.Fatal(err)
	}
	idx := &ocispec.Index{}
	for i := range 2000 {
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest,
			Digest: digest.SHA256.FromString(fmt.Sprint(i)), Size: 100,
			Annotations: map[string]string{ocispec.AnnotationRefName: fmt.Sprintf("uk-%04d", i)}})
	}
	if err := p.writeIndex(idx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resolve("absent"); !errors.Is(err, ErrNotFound) { // parses and caches the index
		t.Fatalf("resolve an absent name: %v", err)
	}
	per := allocated(20, func() { p.Resolve("absent") })
	// The manifest list alone is 2000 descriptors of ~150 bytes.
	if per > 16<<10 {
		t.Errorf("looking a name up in an index of 2000 allocates %d bytes, want < 16 KiB (no copy of the index)", per)
	}
	if got, _ := p.readIndex(); len(got.Manifests) != 2000 {
		t.Fatalf("the index has %d manifests, want 2000", len(got.Manifests))
	}
}

// OpenBlob hashes a blob through a reused buffer: a 32 KiB buffer per
// blob was 280 MB of garbage for a monitor verifying the blobs and
// snapshot pages of 1000 unikernels.
func TestOpeningABlobAllocatesNoReadBufferOfItsOwn(t *testing.T) {
	p, err := Init(filepath.Join(t.TempDir(), "pool"))
	if err != nil {
		t.Fatal(err)
	}
	d := putBlob(t, p, make([]byte, 4096))
	per := allocated(50, func() {
		f, err := p.OpenBlob(d)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	})
	if per > 8<<10 {
		t.Errorf("opening a 4 KiB blob allocates %d bytes, want < 8 KiB", per)
	}
}

// A description file of 8-32 KiB is read into a large object
// (desc.Scratch), not one of the size classes between, which the runtime
// would keep metadata for after the description is let go.
func TestMidSizedMetadataFilesAreReadOutOfTheSizeClasses(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{300, 9000, 20000, 32 << 10, 40000} {
		path := filepath.Join(dir, fmt.Sprint(n))
		if err := os.WriteFile(path, bytes.Repeat([]byte{'x'}, n), 0o644); err != nil {
			t.Fatal(err)
		}
		data, err := readLimited(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != n {
			t.Fatalf("%d bytes read as %d", n, len(data))
		}
		if n > 8<<10 && n <= 32<<10 && cap(data) <= 32<<10 {
			t.Errorf("a %d-byte file read into capacity %d, want past 32 KiB", n, cap(data))
		}
	}
}

// A manifest or description is read into a reused buffer to be checked
// and parsed (withBlob): reading one allocates no buffer of its size.
// A buffer per read was 85 MB of garbage for a snapshot monitor reading
// the descriptions of 1000 unikernels twice (checked, then planned).
func TestMetadataIsReadIntoAReusedBuffer(t *testing.T) {
	p, err := Init(filepath.Join(t.TempDir(), "pool"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{3000, 20000, 60000} {
		data := bytes.Repeat([]byte{'x'}, n)
		data[n/2] = 'y'
		d := ocispec.Descriptor{Digest: digest.Digest(putBlob(t, p, data)), Size: int64(n)}
		var seen int
		read := func() {
			readErr, err := p.withBlob(d, func(b []byte) error {
				if !bytes.Equal(b, data) {
					t.Fatalf("a %d-byte blob read as %d other bytes", n, len(b))
				}
				seen++
				return nil
			})
			if readErr != nil || err != nil {
				t.Fatal(readErr, err)
			}
		}
		// (allocated collects first: the buffer is made once over the 50.)
		if per := allocated(50, read); per > 2048+uint64(n)/4 {
			t.Errorf("reading a %d-byte blob allocates %d bytes, want < %d (a reused buffer)", n, per, 2048+n/4)
		}
		if seen != 50 {
			t.Fatalf("used %d times, want 50", seen)
		}
	}
	// A blob that does not match its descriptor is refused as readBlob
	// refuses it, and use is not called.
	d := ocispec.Descriptor{Digest: digest.Digest(putBlob(t, p, []byte("abc"))), Size: 4}
	readErr, err := p.withBlob(d, func([]byte) error { t.Fatal("use called on a refused blob"); return nil })
	if readErr == nil || err != nil || !strings.Contains(readErr.Error(), "want 4") {
		t.Errorf("a blob of another size: %v, %v; want the read's error", readErr, err)
	}
	use := errors.New("use's error")
	if _, err := p.withBlob(ocispec.Descriptor{Digest: digest.Digest(putBlob(t, p, []byte("abc"))), Size: 3}, func([]byte) error { return use }); err != use {
		t.Errorf("use's error: %v", err)
	}
}
