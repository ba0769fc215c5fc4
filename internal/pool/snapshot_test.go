package pool

import (
	"bytes"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/pool/pooltest"
)

func page(b byte) []byte { return bytes.Repeat([]byte{b}, desc.SnapshotPageSize) }

func TestSnapshotPagesAreStoredOnceAcrossUnikernelsAndVerify(t *testing.T) {
	p := helloWorldPool(t)
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
	os.WriteFile(p.BlobPath(h.Snapshot.Pages[1].BlobDigest()), page(9), 0o644)
	if err := p.VerifyBlob(h.Snapshot.Pages[1].BlobDigest()); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("damaged page: %v", err)
	}
}

func TestSnapshotOfAnUnknownNameOrABadPageIsRefused(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.Hello, AddOptions{})
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
	p := helloWorldPool(t)
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

// A snapshot's pages new to the pool are one page pack, in address order;
// a page another snapshot stored is referenced in that one's pack, so the
// page is stored once and a snapshot's pages lie in few files. The pack
// stays while any description references a page in it (GC), and the page
// index behind the lookup is rebuilt from the descriptions when missing,
// and not trusted when wrong.
func TestSnapshotNewPagesAreOnePackAndOthersPagesAreReferencedInTheirs(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.Hello, AddOptions{})
	mustAdd(t, dir, f.World, AddOptions{})
	mustAdd(t, dir, f.Solo, AddOptions{})
	p := mustOpen(t, dir)
	s := &desc.Snapshot{Monitor: "process", MemSize: 1 << 20, BootArea: 1 << 16}
	if _, err := p.SetSnapshot("hello", s, map[uint64][]byte{0x2002_0000: page(1), 0x2002_1000: page(2), 0x2003_0000: page(1)}); err != nil {
		t.Fatal(err)
	}
	h, err := p.Resolve("hello")
	if err != nil {
		t.Fatal(err)
	}
	hp := h.Snapshot.Pages
	pack := hp[0].Blob
	if pack == "" || hp[1].Blob != pack || hp[2].Blob != pack || hp[0].Offset != 0 || hp[1].Offset != 0x1000 || hp[2].Offset != 0 {
		t.Fatalf("hello's pages %+v: want one pack, page 1 at 0 (twice), page 2 at 0x1000", hp)
	}
	data, err := os.ReadFile(p.BlobPath(pack))
	if err != nil || !bytes.Equal(data, append(page(1), page(2)...)) {
		t.Fatalf("hello's pack: %d bytes, %v; want pages 1 and 2", len(data), err)
	}
	r, err := p.SetSnapshot("world", s, map[uint64][]byte{0x2002_0000: page(3), 0x2002_1000: page(2), 0x2002_2000: page(4)})
	if err != nil {
		t.Fatal(err)
	}
	w, err := p.Resolve("world")
	if err != nil {
		t.Fatal(err)
	}
	wp := w.Snapshot.Pages
	if r.NewPages != 2 || wp[1].Blob != pack || wp[1].Offset != 0x1000 || wp[0].Blob == pack || wp[2].Blob != wp[0].Blob || wp[0].Offset != 0 || wp[2].Offset != 0x1000 {
		t.Fatalf("world's pages %+v (%d new): want pages 3 and 4 in a pack of its own, page 2 in hello's at 0x1000", wp, r.NewPages)
	}
	st, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if sn := st.Snapshots; sn.Files != 2 || sn.Packs != 2 || sn.FileUses != 3 || sn.PageBlobs != 4 || sn.PageUses != 6 {
		t.Errorf("snapshot stats %+v: want 4 pages in 2 packs, mapped from 3 (unikernel, file) pairs", sn)
	}
	// hello goes; its pack stays for world.
	if err := p.Remove("hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.GC(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.BlobPath(pack)); err != nil {
		t.Fatalf("hello's pack went with hello, world references it: %v", err)
	}
	mustVerify(t, p)
	// The page index is derived: gone, it is rebuilt (solo's page 4 is
	// world's); wrong, it is not believed (page 3 said to be at hello's
	// page 2: solo stores it anew).
	os.Remove(dir + "/" + SnapPagesFile)
	cachePages(dir, nil)
	if _, err := p.SetSnapshot("solo", s, map[uint64][]byte{0x2002_0000: page(4)}); err != nil {
		t.Fatal(err)
	}
	so, err := p.Resolve("solo")
	if err != nil {
		t.Fatal(err)
	}
	if pg := so.Snapshot.Pages[0]; pg.Blob != wp[0].Blob || pg.Offset != 0x1000 {
		t.Errorf("solo's page 4 %+v: want world's pack at 0x1000 (index rebuilt)", pg)
	}
	raw, err := os.ReadFile(dir + "/" + SnapPagesFile)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := parseSnapPages(raw)
	if err != nil {
		t.Fatal(err)
	}
	d3 := string(digest.SHA256.FromBytes(page(3)))
	sp.Pages[d3] = pageAt{Blob: pack, Offset: 0x1000, Pack: true}
	if err := sp.write(dir+"/"+SnapPagesFile, sp.Index); err != nil {
		t.Fatal(err)
	}
	cachePages(dir, nil) // as another process: read from the file
	if _, err := p.SetSnapshot("solo", s, map[uint64][]byte{0x2002_0000: page(3)}); err != nil {
		t.Fatal(err)
	}
	if so, err = p.Resolve("solo"); err != nil {
		t.Fatal(err)
	}
	if pg := so.Snapshot.Pages[0]; pg.Blob == pack || pg.Digest != d3 {
		t.Errorf("solo's page 3 %+v: referenced where a wrong index said", pg)
	}
	mustVerify(t, p)
}

// setOldSnapshot stores a snapshot as pools did before page packs: each
// page a blob of its own, named by its digest alone.
func setOldSnapshot(t *testing.T, p *Pool, name string, s *desc.Snapshot, pages map[uint64][]byte) {
	t.Helper()
	idx, err := p.readIndex()
	if err != nil {
		t.Fatal(err)
	}
	at := -1
	for i, md := range idx.Manifests {
		if md.Annotations[ocispec.AnnotationRefName] == name {
			at = i
		}
	}
	m, c, err := p.loadDescription(idx.Manifests[at])
	if err != nil {
		t.Fatal(err)
	}
	res := &AddResult{}
	snap := *s
	var addrs []uint64
	for a := range pages {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
	nm := *m
	for _, a := range addrs {
		d, err := p.storeBlob(pages[a], res)
		if err != nil {
			t.Fatal(err)
		}
		snap.Pages = append(snap.Pages, desc.Page{Addr: a, Digest: string(d)})
		nm.Layers = append(nm.Layers, ocispec.Descriptor{MediaType: desc.MediaTypeSnapshotPage, Digest: d, Size: desc.SnapshotPageSize})
	}
	nc := *c
	nc.Snapshot = &snap
	cfg, cd, err := p.storeConfig(&nc, name, "", res)
	if err != nil {
		t.Fatal(err)
	}
	nm.Config = ocispec.Descriptor{MediaType: desc.MediaTypeConfig, Digest: cd, Size: int64(len(cfg))}
	mData, _ := json.Marshal(nm)
	md, err := p.storeBlob(mData, res)
	if err != nil {
		t.Fatal(err)
	}
	idx.Manifests[at].Digest, idx.Manifests[at].Size = md, int64(len(mData))
	if err := p.writeIndex(idx); err != nil {
		t.Fatal(err)
	}
}

// A pool's snapshots from before page packs (a blob per page) stay
// valid, and a new snapshot references their page blobs instead of
// storing those pages again.
func TestSnapshotReferencesPageBlobsOfSnapshotsTakenBeforePacks(t *testing.T) {
	p := helloWorldPool(t)
	s := &desc.Snapshot{Monitor: "process", MemSize: 1 << 20, BootArea: 1 << 16}
	setOldSnapshot(t, p, "hello", s, map[uint64][]byte{0x2002_0000: page(1), 0x2002_1000: page(2)})
	mustVerify(t, p)
	r, err := p.SetSnapshot("world", s, map[uint64][]byte{0x2002_0000: page(1), 0x2002_1000: page(5)})
	if err != nil {
		t.Fatal(err)
	}
	w, err := p.Resolve("world")
	if err != nil {
		t.Fatal(err)
	}
	d1 := string(digest.SHA256.FromBytes(page(1)))
	if pg := w.Snapshot.Pages[0]; r.NewPages != 1 || pg.Blob != "" || pg.Digest != d1 || w.Snapshot.Pages[1].Blob == "" {
		t.Errorf("world's pages %+v (%d new): want page 1 as hello's page blob, page 5 in a pack", w.Snapshot.Pages, r.NewPages)
	}
	if err := p.Remove("hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.GC(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.BlobPath(d1)); err != nil {
		t.Errorf("hello's page blob went, world references it: %v", err)
	}
	mustVerify(t, p)
}

// Pool upkeep of page packs: verify names the pack's file when one byte of
// a page in it is wrong (for the snapshot that stored it and the one that
// references its page there), and when a description says a page that is
// not what its offset holds; GC keeps a pack while any snapshot references
// a page in it and removes it once none does.
func TestVerifyAndGCOfPagePacks(t *testing.T) {
	p := helloWorldPool(t)
	s := &desc.Snapshot{Monitor: "process", MemSize: 1 << 20, BootArea: 1 << 16}
	if _, err := p.SetSnapshot("hello", s, map[uint64][]byte{0x2002_0000: page(1), 0x2002_1000: page(2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SetSnapshot("world", s, map[uint64][]byte{0x2002_0000: page(2), 0x2002_1000: page(3)}); err != nil {
		t.Fatal(err)
	}
	h, err := p.Resolve("hello")
	if err != nil {
		t.Fatal(err)
	}
	w, err := p.Resolve("world")
	if err != nil {
		t.Fatal(err)
	}
	pack, own := h.Snapshot.Pages[0].Blob, w.Snapshot.Pages[1].Blob
	if pg := w.Snapshot.Pages[0]; pg.Blob != pack || pg.Offset != 0x1000 || own == pack {
		t.Fatalf("world's pages %+v: want page 2 in hello's pack %s at 0x1000", w.Snapshot.Pages, pack)
	}
	mustVerify(t, p)
	path := p.BlobPath(pack)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	bad[0x1000+17] ^= 0x80
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, bad, 0o444); err != nil {
		t.Fatal(err)
	}
	r, err := p.Verify()
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]bool{}
	for _, pr := range r.Problems {
		if pr.File != path || pr.Blob != pack {
			t.Errorf("verify: %s; want problems naming %s only", pr, path)
		}
		users[pr.Unikernel] = true
	}
	if !users["hello"] || !users["world"] {
		t.Errorf("verify of a pack with a byte flipped: %v; want it named for hello and world", r.Problems)
	}
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, good, 0o444); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, p)
	// rm then gc: hello's pack stays for world, and goes with it.
	for _, n := range []string{"hello", "world"} {
		if err := p.Remove(n); err != nil {
			t.Fatal(err)
		}
		if _, err := p.GC(); err != nil {
			t.Fatal(err)
		}
		_, err := os.Stat(path)
		if _, ownErr := os.Stat(p.BlobPath(own)); (n == "hello") != (err == nil) || (n == "hello") != (ownErr == nil) {
			t.Fatalf("after rm %s and gc: hello's pack: %v, world's: %v", n, err, ownErr)
		}
	}
	mustVerify(t, p)
}

// helloWorldPool is a new pool holding the fixture's hello and world, the
// two unikernels the snapshot tests snapshot.
func helloWorldPool(t *testing.T) *Pool {
	t.Helper()
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.Hello, AddOptions{})
	mustAdd(t, dir, f.World, AddOptions{})
	return mustOpen(t, dir)
}

// A batch of snapshots stores the new pages of all of them as one pack: a
// page two of them have is stored once (where the first put it), a page an
// earlier snapshot stored is referenced in its pack; verify and GC keep
// the batch's pack while any of them references it.
func TestSnapshotBatchStoresItsNewPagesAsOnePack(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.Hello, AddOptions{})
	mustAdd(t, dir, f.World, AddOptions{})
	mustAdd(t, dir, f.Solo, AddOptions{})
	p := mustOpen(t, dir)
	s := &desc.Snapshot{Monitor: "process", MemSize: 1 << 20, BootArea: 1 << 16}
	if _, err := p.SetSnapshot("solo", s, map[uint64][]byte{0x2002_0000: page(9)}); err != nil {
		t.Fatal(err)
	}
	so, err := p.Resolve("solo")
	if err != nil {
		t.Fatal(err)
	}
	old := so.Snapshot.Pages[0].Blob
	res, err := p.SetSnapshots([]SnapshotItem{
		{Name: "hello", Snapshot: s, Pages: map[uint64][]byte{0x2002_0000: page(1), 0x2002_1000: page(2)}},
		{Name: "world", Snapshot: s, Pages: map[uint64][]byte{0x2002_0000: page(3), 0x2002_1000: page(2), 0x2002_2000: page(9)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := p.Resolve("hello")
	if err != nil {
		t.Fatal(err)
	}
	w, err := p.Resolve("world")
	if err != nil {
		t.Fatal(err)
	}
	hp, wp := h.Snapshot.Pages, w.Snapshot.Pages
	pack := hp[0].Blob
	if pack == "" || pack == old || hp[1].Blob != pack || hp[0].Offset != 0 || hp[1].Offset != 0x1000 {
		t.Fatalf("hello's pages %+v: want pages 1 and 2 at 0 and 0x1000 of a new pack", hp)
	}
	if wp[0].Blob != pack || wp[0].Offset != 0x2000 || wp[1].Blob != pack || wp[1].Offset != 0x1000 || wp[2].Blob != old || wp[2].Offset != 0 {
		t.Fatalf("world's pages %+v: want page 3 at 0x2000 of the batch's pack %s, page 2 at hello's 0x1000 there, page 9 in solo's pack", wp, pack)
	}
	data, err := os.ReadFile(p.BlobPath(pack))
	if err != nil || !bytes.Equal(data, bytes.Join([][]byte{page(1), page(2), page(3)}, nil)) {
		t.Fatalf("the batch's pack: %d bytes, %v; want pages 1, 2, 3", len(data), err)
	}
	if res[0].NewPages != 2 || res[1].NewPages != 1 || res[0].NewBlobs+res[1].NewBlobs != 2+2+1 {
		// each: a description and a manifest; the pack once
		t.Errorf("results %+v %+v: want 2 and 1 new pages, the pack counted once", res[0], res[1])
	}
	st, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if sn := st.Snapshots; sn.Files != 2 || sn.Packs != 2 || sn.FileUses != 4 {
		t.Errorf("snapshot stats %+v: want 2 packs, mapped from 4 (unikernel, file) pairs", sn)
	}
	mustVerify(t, p)
	if err := p.Remove("hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.GC(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.BlobPath(pack)); err != nil {
		t.Fatalf("the batch's pack went with hello, world references it: %v", err)
	}
	mustVerify(t, p)
	if err := p.Remove("world"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.GC(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.BlobPath(pack)); !os.IsNotExist(err) {
		t.Errorf("the batch's pack is kept with no snapshot referencing it: %v", err)
	}
	if _, err := os.Stat(p.BlobPath(old)); err != nil {
		t.Errorf("solo's pack went: %v", err)
	}
	mustVerify(t, p)
	// A name twice, or one the pool does not hold, is refused, and
	// nothing is stored.
	before, err := os.ReadFile(dir + "/index.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, items := range [][]SnapshotItem{
		{{Name: "solo", Snapshot: s, Pages: map[uint64][]byte{0x2002_0000: page(5)}}, {Name: "solo", Snapshot: s}},
		{{Name: "solo", Snapshot: s, Pages: map[uint64][]byte{0x2002_0000: page(5)}}, {Name: "nobody", Snapshot: s}},
	} {
		if _, err := p.SetSnapshots(items); err == nil {
			t.Errorf("%s, %s: stored", items[0].Name, items[1].Name)
		}
	}
	if after, err := os.ReadFile(dir + "/index.json"); err != nil || !bytes.Equal(before, after) {
		t.Errorf("a refused batch changed index.json (%v)", err)
	}
}
