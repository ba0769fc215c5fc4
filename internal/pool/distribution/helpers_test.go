package distribution

import (
	"bytes"
	"testing"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/pool"
)

// Helpers of push and pull's tests that need package pool's API (the
// fixtures both packages' tests share are in pooltest; a test of package
// pool cannot import this package, nor this one see pool's test files).

// stagingDir, blobPerm and partialSuffix are pool's: where pull stages
// blobs, the mode of every blob, the suffix of a download under way.
const (
	stagingDir    = ".pull"
	blobPerm      = 0o444
	partialSuffix = ".partial"
)

func mustAdd(t *testing.T, dir, image string, opt pool.AddOptions) *pool.AddResult {
	t.Helper()
	res, err := pool.Add(dir, image, opt)
	if err != nil {
		t.Fatalf("add %s: %v", image, err)
	}
	return res
}

func mustOpen(t *testing.T, dir string) *pool.Pool {
	t.Helper()
	p, err := pool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustVerify(t *testing.T, p *pool.Pool) {
	t.Helper()
	r, err := p.Verify()
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range r.Problems {
		t.Errorf("verify: %s", pr)
	}
}

func page(b byte) []byte { return bytes.Repeat([]byte{b}, desc.SnapshotPageSize) }
