package process

import (
	"os"
	"path/filepath"
	"testing"
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
