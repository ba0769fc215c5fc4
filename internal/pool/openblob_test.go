package pool

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// putBlob stores data as a blob the way add does and returns its digest.
func putBlob(t *testing.T, p *Pool, data []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p.BlobPath(string(digest.SHA256.FromBytes(data)))), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := p.storeBlob(data, &AddResult{})
	if err != nil {
		t.Fatal(err)
	}
	return string(d)
}

func TestBlobsAreStoredReadOnly(t *testing.T) {
	p, err := Init(filepath.Join(t.TempDir(), "pool"))
	if err != nil {
		t.Fatal(err)
	}
	d := putBlob(t, p, []byte("library code"))
	fi, err := os.Stat(p.BlobPath(d))
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("blob mode %v (%v), want 0444", fi.Mode().Perm(), err)
	}
}

// What OpenBlob checked is what its descriptor reads, even when the path
// is replaced after the check; a writable, linked or damaged blob is
// refused with its digest and file named.
func TestOpenBlobChecksTheDescriptorItReturns(t *testing.T) {
	p, err := Init(filepath.Join(t.TempDir(), "pool"))
	if err != nil {
		t.Fatal(err)
	}
	good := []byte("the verified content")
	d := putBlob(t, p, good)
	path := p.BlobPath(d)
	f, err := p.OpenBlob(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Swap the file at the path for other content.
	tmp := path + ".swap"
	if err := os.WriteFile(tmp, []byte("evil content, swapped in"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	if err != nil || string(got) != string(good) {
		t.Fatalf("descriptor reads %q (%v), want the verified %q", got, err, good)
	}
	if _, err := p.OpenBlob(d); err == nil || !strings.Contains(err.Error(), "does not match its digest") || !strings.Contains(err.Error(), d) {
		t.Fatalf("swapped blob opened: %v", err)
	}

	d2 := putBlob(t, p, []byte("group-writable"))
	os.Chmod(p.BlobPath(d2), 0o664)
	if _, err := p.OpenBlob(d2); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("group-writable blob: %v", err)
	}
	d3 := putBlob(t, p, []byte("linked"))
	target := filepath.Join(t.TempDir(), "target")
	os.WriteFile(target, []byte("linked"), 0o444)
	os.Remove(p.BlobPath(d3))
	os.Symlink(target, p.BlobPath(d3))
	if _, err := p.OpenBlob(d3); err == nil || !strings.Contains(err.Error(), p.BlobPath(d3)) {
		t.Fatalf("symlinked blob: %v", err)
	}
}
