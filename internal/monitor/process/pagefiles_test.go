package process

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/loader"
)

func TestSnapshotPageFilesAreOpenedOncePerRunUpToTheirBound(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for _, n := range []string{"a", "b", "c"} {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, make([]byte, 4096), 0o444); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	p := newPageFiles()
	p.max = 2
	defer p.close()
	a1, ok1, err1 := p.fd(paths[0])
	a2, ok2, err2 := p.fd(paths[0])
	if err1 != nil || err2 != nil || !ok1 || !ok2 || a1 != a2 {
		t.Fatalf("one path twice: fds %d, %d (held %v, %v; %v, %v), want one held descriptor", a1, a2, ok1, ok2, err1, err2)
	}
	if _, ok, err := p.fd(paths[1]); !ok || err != nil {
		t.Fatalf("second path: held %v, %v", ok, err)
	}
	if _, ok, err := p.fd(paths[2]); ok || err != nil {
		t.Fatalf("third path past the bound of 2: held %v, %v; want not held, no error (the instance opens its own)", ok, err)
	}
	if p.held() != 2 {
		t.Fatalf("held %d, want 2", p.held())
	}
	p.close()
	if p.held() != 0 || p.open != nil {
		t.Fatalf("held %d after close (table kept: %v)", p.held(), p.open != nil)
	}
	// Closed (every instance built): an instance built after opens its own.
	if _, ok, err := p.fd(paths[0]); ok || err != nil {
		t.Fatalf("after close: held %v, %v; want not held, no error", ok, err)
	}
	if _, ok, err := newPageFiles().fd(filepath.Join(dir, "missing")); ok || err == nil {
		t.Fatalf("a missing page file: held %v, error %v; want an error", ok, err)
	}
}

// runtimeKept is the memory the Go runtime keeps outside the heap for
// the process's life once it has it (fixalloc'd specials, weak handles,
// per-file state): /memory/classes/other and metadata/other.
func runtimeKept() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/other:bytes"}, {Name: "/memory/classes/metadata/other:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

// Holding a run's snapshot page files and keeping its instances' layout
// shapes costs no runtime memory per file: a thousand-unikernel snapshot
// fleet maps ~4,000 distinct page blobs, and an os.File per held page
// file (its cleanup special and poller state) and a unique handle per
// blob path and digest of the kept mappings were ~1 MiB the monitor's
// runtime kept for the whole run (~600 bytes per page).
func TestPageFilesAndKeptLayoutsCostTheRuntimeNothingPerFile(t *testing.T) {
	const files = 1000
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < files+200 {
		t.Skipf("open-file limit %d: too low to hold %d files", lim.Cur, files)
	}
	dir := t.TempDir()
	var paths []string
	for i := range files {
		p := filepath.Join(dir, fmt.Sprintf("%064x", i))
		if err := os.WriteFile(p, make([]byte, 16), 0o444); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	before := runtimeKept()
	pages := newPageFiles()
	pages.max = files
	for _, p := range paths {
		if _, ok, err := pages.fd(p); !ok || err != nil {
			t.Fatalf("%s: held %v, %v", p, ok, err)
		}
	}
	var c layoutCache
	var kept []*loader.Layout
	for i, p := range paths {
		uk := fmt.Sprint("uk", i)
		kept = append(kept, c.keep(uk, &loader.Layout{Mappings: []loader.Mapping{{Addr: 0x6000_0000, Size: 0x1000, Prot: 3,
			File: p + "-kept", Digest: fmt.Sprintf("sha256:%064x", i), COW: true, Library: "app", Part: "private"}}}))
	}
	grew := int64(runtimeKept()) - int64(before)
	for i, lay := range kept {
		c.release(fmt.Sprint("uk", i), lay)
	}
	pages.close()
	if grew > files*64 {
		t.Errorf("holding %d page files and keeping %d layouts grew the runtime's own memory by %d bytes (%d per file), want < 64 per file",
			files, files, grew, grew/files)
	}
}
