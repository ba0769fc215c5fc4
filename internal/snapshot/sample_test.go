package snapshot

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/unipool/unipool/guest"
	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/corpus"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/link"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/monitor/process"
	"github.com/unipool/unipool/internal/pool"
)

// slice8Tables is what ukcrc32's slicing-by-8 variant derives for a
// polynomial (reflected): eight 256-entry tables, little-endian words.
func slice8Tables(poly uint32) []byte {
	var t [8][256]uint32
	for i := range 256 {
		c := uint32(i)
		for range 8 {
			c = c>>1 ^ poly&(0-(c&1))
		}
		t[0][i] = c
	}
	for i := range 256 {
		for k := 1; k < 8; k++ {
			t[k][i] = t[k-1][i]>>8 ^ t[0][t[k-1][i]&0xff]
		}
	}
	out := make([]byte, 0, 8*256*4)
	for k := range t {
		for _, w := range t[k] {
			out = binary.LittleEndian.AppendUint32(out, w)
		}
	}
	return out
}

// sampleApps are the apps of the sample: lz and lz4pack (every request
// computes a CRC-32 with ukcrc32) and hello (never does).
var sampleApps = []string{"hello", "lz", "lz4pack"}

// sampleGuest is the embedded guest tree with sampleApps only, ukcrc32 in
// its slicing-by-8 variant only, drawn into every unikernel (hello links it
// as an extra its app never calls), and ukallocbuddy the only allocator.
func sampleGuest() (fs.FS, error) {
	out := fstest.MapFS{}
	err := fs.WalkDir(guest.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		parts := strings.Split(p, "/")
		if parts[0] == "apps" && !slices.Contains(sampleApps, parts[1]) || parts[0] == "lib" && parts[1] == "ukalloctlsf" {
			return nil
		}
		data, err := fs.ReadFile(guest.FS(), p)
		if err != nil {
			return err
		}
		if p == "lib/ukcrc32/lib.json" {
			data = []byte(`{"name": "ukcrc32", "popularity": 1, "deps": [],
  "variants": [{"id": "slice8", "defines": ["CRC32_SLICE8=1"]}]}`)
		}
		out[p] = &fstest.MapFile{Data: data, Mode: 0o644}
		return nil
	})
	return out, err
}

// sample is a pool of one unikernel per app of sampleGuest, each with its
// boot snapshot, built once for the package's tests.
type sample struct {
	pool   string
	byApp  map[string]corpus.Unikernel
	corpus *corpus.Corpus
}

var (
	sampleOnce  sync.Once
	sampleDir   string
	sampleBuilt *sample
	sampleErr   error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sampleDir != "" {
		os.RemoveAll(sampleDir)
	}
	os.Exit(code)
}

func pooledSample(t *testing.T) *sample {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("the process monitor needs root (ptrace, namespaces)")
	}
	sampleOnce.Do(func() { sampleBuilt, sampleErr = buildSample() })
	if sampleErr != nil {
		t.Fatal(sampleErr)
	}
	return sampleBuilt
}

func buildSample() (*sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "unipool-snapshot-test-")
	if err != nil {
		return nil, err
	}
	sampleDir = dir
	g, err := sampleGuest()
	if err != nil {
		return nil, err
	}
	c, err := corpus.Build(ctx, corpus.Options{Count: len(sampleApps), Seed: 1, Out: filepath.Join(dir, "corpus"), Guest: g,
		Extras: corpus.ExtrasDrawn, Jobs: 2})
	if err != nil {
		return nil, err
	}
	s := &sample{pool: filepath.Join(dir, "pool"), byApp: map[string]corpus.Unikernel{}, corpus: c}
	p, err := pool.Init(s.pool)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, u := range c.Unikernels {
		objs, sums, err := link.ObjectsFromCorpus(c.Dir, u.Name)
		if err != nil {
			return nil, err
		}
		img := filepath.Join(dir, u.Name+".img")
		if _, err := link.Link(ctx, link.Options{Layout: link.LayoutAligned, Objects: objs, SHA256: sums, Output: img,
			MapPath: p.MapPath(), Cmdline: u.Input, Fragments: c.Fragments(&u)}); err != nil {
			return nil, err
		}
		if _, err := pool.Add(s.pool, img, pool.AddOptions{Name: u.Name, Cmdline: u.Input, InitBlobs: true}); err != nil {
			return nil, err
		}
		s.byApp[u.App] = u
		names = append(names, u.Name)
	}
	// One batch: the sample's snapshots' new pages in one pack.
	if _, err := TakeMany(ctx, s.pool, names, Options{Timeout: time.Minute}, nil); err != nil {
		return nil, fmt.Errorf("snapshots: %w", err)
	}
	if len(s.byApp) != len(sampleApps) {
		return nil, fmt.Errorf("want one unikernel per app of %v, got %+v", sampleApps, c.Unikernels)
	}
	return s, nil
}

// resolved is u from the sample pool, ready to start from its snapshot.
func (s *sample) resolved(t *testing.T, u corpus.Unikernel) monitor.Unikernel {
	t.Helper()
	uks, err := launch.ResolveSnapshots(s.pool, []string{u.Name}, u.Input)
	if err != nil {
		t.Fatal(err)
	}
	return uks[0]
}

// snapshotMemory is a snapshot's stored pages in address order, adjacent
// ones joined: runs of what the guest had written at its ready point.
func snapshotMemory(t *testing.T, u monitor.Unikernel) [][]byte {
	t.Helper()
	pages := append([]desc.Page(nil), u.Config.Snapshot.Pages...)
	sort.Slice(pages, func(i, j int) bool { return pages[i].Addr < pages[j].Addr })
	var runs [][]byte
	var end uint64
	for _, pg := range pages {
		data := storedPage(t, u, pg)
		if len(runs) > 0 && pg.Addr == end {
			runs[len(runs)-1] = append(runs[len(runs)-1], data...)
		} else {
			runs = append(runs, data)
		}
		end = pg.Addr + uint64(len(data))
	}
	return runs
}

// storedPage is a snapshot page as the pool stores it: at its offset in
// its page pack (or its blob of its own), checked against its digest.
func storedPage(t *testing.T, u monitor.Unikernel, pg desc.Page) []byte {
	t.Helper()
	data, err := os.ReadFile(u.BlobPath(pg.BlobDigest()))
	if err != nil {
		t.Fatal(err)
	}
	if pg.Offset+abi.PageSize > uint64(len(data)) {
		t.Fatalf("page at %#x: offset %#x outside its %d-byte blob", pg.Addr, pg.Offset, len(data))
	}
	page := data[pg.Offset : pg.Offset+abi.PageSize]
	if d := digest.FromBytes(page); string(d) != pg.Digest {
		t.Fatalf("page at %#x hashes to %s, the description says %s", pg.Addr, d, pg.Digest)
	}
	return page
}

func holds(runs [][]byte, b []byte) bool {
	for _, r := range runs {
		if bytes.Contains(r, b) {
			return true
		}
	}
	return false
}

// TestSnapshotHoldsTheCRCTablesOnlyOfAnAppThatComputesCRCs: ukcrc32's
// slicing-by-8 tables are derived in the init phase of an app whose
// requests compute a CRC (it registers crc32_prepare), so its snapshot
// holds them — the same pages for every such unikernel, stored once in the
// pool — instead of every instance deriving a private copy during its
// request; a unikernel that links the library without calling it derives
// nothing before its ready point (its cold boots pay nothing for it).
// Started from the snapshot, the app prints what its cold boot prints.
func TestSnapshotHoldsTheCRCTablesOnlyOfAnAppThatComputesCRCs(t *testing.T) {
	s := pooledSample(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ieee, castagnoli := slice8Tables(0xedb88320), slice8Tables(0x82f63b78)
	for app, want := range map[string]bool{"lz": true, "lz4pack": true, "hello": false} {
		u := s.byApp[app]
		linked := false
		for _, l := range u.Libraries {
			linked = linked || l.Name == "ukcrc32" && l.Version == "slice8"
		}
		if !linked {
			t.Fatalf("%s does not link ukcrc32's slice8 variant: %+v", u.Name, u.Libraries)
		}
		uk := s.resolved(t, u)
		runs := snapshotMemory(t, uk)
		if got := holds(runs, ieee); got != want {
			t.Errorf("%s (%s): the snapshot holds IEEE's slicing-by-8 tables: %v, want %v", u.Name, app, got, want)
		}
		// No request of these computes a CRC-32C: Castagnoli's stay
		// underived.
		if holds(runs, castagnoli[1024:2048]) {
			t.Errorf("%s (%s): the snapshot holds Castagnoli's tables, which none of its requests computes", u.Name, app)
		}
		outputs := map[bool]string{}
		for _, snap := range []bool{false, true} {
			rs, err := (&process.Monitor{}).Run(ctx, []monitor.Unikernel{uk}, monitor.Options{Snapshot: snap, Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 1 || rs[0].ExitCode != 0 || rs[0].Error != "" || !strings.Contains("\n"+rs[0].Output, "\n"+u.Expect+"\n") {
				t.Fatalf("%s, from its snapshot %v: %+v; want exit 0 and %q", u.Name, snap, rs, u.Expect)
			}
			outputs[snap] = rs[0].Output
		}
		if outputs[true] != outputs[false] {
			t.Errorf("%s: from its snapshot it printed %q, cold %q", u.Name, outputs[true], outputs[false])
		}
	}
}

// TestSnapshotInstancesKeepNoHeapPageTheirRequestLeftAsTheSnapshotHadIt:
// a snapshot's heap and stack pages are copied into every instance (they
// are nearly all written); one that the request leaves as it was is a
// private copy of a page the pool holds. Held after their request, the
// sample's instances (ukallocbuddy) keep none: what the init phase
// allocates and keeps must not leave allocator entries that no request
// changes on pages of their own (lz4pack's two compression states did).
func TestSnapshotInstancesKeepNoHeapPageTheirRequestLeftAsTheSnapshotHadIt(t *testing.T) {
	s := pooledSample(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, app := range sampleApps {
		u := s.byApp[app]
		uk := s.resolved(t, u)
		stored := map[uint64][]byte{}
		for _, pg := range uk.Config.Snapshot.Pages {
			if pg.Addr < abi.PrivateBase || pg.Addr >= abi.PrivateLimit {
				continue // not the heap or stack
			}
			stored[pg.Addr] = storedPage(t, uk, pg)
		}
		var same []string
		held := 0
		rs, err := (&process.Monitor{}).Run(ctx, []monitor.Unikernel{uk}, monitor.Options{Snapshot: true, Timeout: time.Minute,
			Hold: 30 * time.Second, Resident: func(pids []int) {
				for _, pid := range pids {
					held++
					mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
					if err != nil {
						t.Error(err)
						return
					}
					defer mem.Close()
					for addr, want := range stored {
						if !resident(t, pid, addr) {
							continue
						}
						page := make([]byte, abi.PageSize)
						if _, err := mem.ReadAt(page, int64(addr)); err != nil {
							t.Error(err)
							continue
						}
						if bytes.Equal(page, want) {
							same = append(same, fmt.Sprintf("%#x", addr))
						}
					}
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 || rs[0].ExitCode != 0 || held != 1 {
			t.Fatalf("%s: %+v, %d held", u.Name, rs, held)
		}
		if len(same) > 0 {
			sort.Strings(same)
			t.Errorf("%s (%s): held after its request, it keeps %d heap or stack pages as its snapshot had them (%v) of %d stored",
				u.Name, app, len(same), same, len(stored))
		}
	}
}

// resident says whether pid's page at addr is present (pagemap).
func resident(t *testing.T, pid int, addr uint64) bool {
	t.Helper()
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	var e [8]byte
	if _, err := pm.ReadAt(e[:], int64(addr/abi.PageSize*8)); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(e[:])&(1<<63|1<<62) != 0
}

// TestSnapshotsTakenTogetherMapTheirPagesFromOnePack: the sample's
// snapshots, taken by one TakeMany, store their pages in one page pack,
// which each references; started from
// them, each app prints what its cold boot prints (the other tests).
func TestSnapshotsTakenTogetherMapTheirPagesFromOnePack(t *testing.T) {
	s := pooledSample(t)
	files := map[string]bool{}
	for _, u := range s.byApp {
		ru := s.resolved(t, u)
		for _, pg := range ru.Config.Snapshot.Pages {
			if pg.Blob == "" {
				t.Errorf("%s: page at %#x in a page blob of its own, not a pack", u.Name, pg.Addr)
			}
			files[pg.BlobDigest()] = true
			storedPage(t, ru, pg)
		}
	}
	if len(files) != 1 {
		t.Errorf("the sample's %d snapshots map their pages from %d files, want 1 pack", len(s.byApp), len(files))
	}
}
