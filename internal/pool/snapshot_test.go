package pool

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/desc"
)

func page(b byte) []byte { return bytes.Repeat([]byte{b}, desc.SnapshotPageSize) }

func TestSnapshotPagesAreStoredOnceAcrossUnikernelsAndVerify(t *testing.T) {
	f := images(t)
	dir := newPool(t)
	mustAdd(t, dir, f.hello, AddOptions{})
	mustAdd(t, dir, f.world, AddOptions{})
	p := mustOpen(t, dir)
	s := &desc.Snapshot{Monitor: "process", MemSize: 1 << 20, BootArea: 1 << 16, Regs: desc.Regs{RIP: 0x1000_0000}}
	r1, err := p.SetSnapshot("hello", s, map[uint64][]byte{0x2002_0000: page(1), 0x2002_1000: page(2), 0x2003_0000: page(1)})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := p.SetSnapshot("world", s, map[uint64][]byte{0x2002_0000: page(1), 0x2005_0000: page(3)})
	if err != nil {
		t.Fatal(err)
	}
	if r1.NewPages != 2 || r2.NewPages != 1 {
		t.Errorf("new pages %d then %d, want 2 (one page twice in hello) then 1 (page 1 is hello's)", r1.NewPages, r2.NewPages)
	}
	mustVerify(t, p)
	h, err := p.Resolve("hello")
	if err != nil {
		t.Fatal(err)
	}
	if h.Snapshot == nil || len(h.Snapshot.Pages) != 3 || h.Snapshot.Pages[0].Digest != h.Snapshot.Pages[2].Digest || h.Snapshot.Regs.RIP != 0x1000_0000 {
		t.Fatalf("hello's description has snapshot %+v", h.Snapshot)
	}
	st, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	sn := st.Snapshots
	if sn.Unikernels != 2 || sn.PageUses != 5 || sn.PageBlobs != 3 || sn.SharedBy[2] != 1 || sn.SharedBy[1] != 2 {
		t.Errorf("snapshot stats %+v: want 2 unikernels, 5 page uses, 3 pages, one of them used by both", sn)
	}
	// GC keeps every page a snapshot uses.
	if _, err := p.GC(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, p)
	// A damaged page is named.
	os.WriteFile(p.BlobPath(h.Snapshot.Pages[1].Digest), page(9), 0o644)
	if err := p.VerifyBlob(h.Snapshot.Pages[1].Digest); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("damaged page: %v", err)
	}
}

func TestSnapshotOfAnUnknownNameOrABadPageIsRefused(t *testing.T) {
	f := images(t)
	dir := newPool(t)
	mustAdd(t, dir, f.hello, AddOptions{})
	p := mustOpen(t, dir)
	s := &desc.Snapshot{Monitor: "process", MemSize: 1 << 20, BootArea: 1 << 16}
	if _, err := p.SetSnapshot("nope", s, nil); err == nil {
		t.Error("snapshot of a name not in the pool accepted")
	}
	if _, err := p.SetSnapshot("hello", s, map[uint64][]byte{0x2002_0000: {1, 2, 3}}); err == nil || !strings.Contains(err.Error(), "want 4096") {
		t.Errorf("short page: %v", err)
	}
	if _, err := p.SetSnapshot("hello", s, map[uint64][]byte{0x2002_0001: page(1)}); err == nil || !strings.Contains(err.Error(), "not page-aligned") {
		t.Errorf("unaligned page: %v", err)
	}
	mustVerify(t, p)
}

// Every snapshot names the same zero blob: stored once, a layer of each
// manifest (so verify, GC and push see it), and a snapshot naming any other
// digest as its zero blob is refused.
func TestSnapshotZeroBlobIsStoredOnceAndKeptWithItsSnapshots(t *testing.T) {
	f := images(t)
	dir := newPool(t)
	mustAdd(t, dir, f.hello, AddOptions{})
	mustAdd(t, dir, f.world, AddOptions{})
	p := mustOpen(t, dir)
	s := &desc.Snapshot{Monitor: "process", MemSize: 1 << 20, BootArea: 1 << 16, Zero: desc.SnapshotZeroDigest()}
	r1, err := p.SetSnapshot("hello", s, map[uint64][]byte{0x2002_0000: page(1)})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := p.SetSnapshot("world", s, map[uint64][]byte{0x2002_0000: page(1)})
	if err != nil {
		t.Fatal(err)
	}
	if r1.NewBytes < desc.SnapshotZeroSize || r2.NewBytes >= desc.SnapshotZeroSize {
		t.Errorf("new bytes %d then %d: the zero blob (%d bytes) not stored once", r1.NewBytes, r2.NewBytes, desc.SnapshotZeroSize)
	}
	if _, err := p.GC(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, p)
	data, err := os.ReadFile(p.BlobPath(desc.SnapshotZeroDigest()))
	if err != nil || len(data) != desc.SnapshotZeroSize || !bytes.Equal(data, make([]byte, desc.SnapshotZeroSize)) {
		t.Fatalf("zero blob: %d bytes, %v", len(data), err)
	}
	w, err := p.Resolve("world")
	if err != nil || w.Snapshot.Zero != desc.SnapshotZeroDigest() {
		t.Fatalf("world's snapshot %+v, %v: no zero blob", w.Snapshot, err)
	}
	bad := *s
	bad.Zero = "sha256:" + strings.Repeat("a", 64)
	if _, err := p.SetSnapshot("hello", &bad, nil); err == nil || !strings.Contains(err.Error(), "zero blob") {
		t.Errorf("a zero blob that is not zeros: %v", err)
	}
	mustVerify(t, p)
}
