package loader

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/monitor"
)

// snapshotOf gives u a snapshot with a page at each of pages (each a blob
// of its own, the letter of its index over and over) and a zero blob.
func snapshotOf(t *testing.T, u monitor.Unikernel, pages ...uint64) monitor.Unikernel {
	t.Helper()
	s := &desc.Snapshot{Monitor: "process", MemSize: 1 << 20, StackBootArea: SnapshotBootArea, StackBootRoom: BootStackRoom,
		Regs: desc.Regs{RIP: abi.MapBase + 7, RSP: 0x2001_0000}, Console: "early\n", Zero: desc.SnapshotZeroDigest()}
	dir := t.TempDir()
	files := map[string]string{s.Zero: filepath.Join(dir, "zero")}
	pages = slices.Sorted(slices.Values(pages)) // (ascending, as a snapshot lists them)
	if err := os.WriteFile(files[s.Zero], make([]byte, desc.SnapshotZeroSize), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, a := range pages {
		d := "sha256:" + strings.Repeat(string(rune('a'+i)), 64)
		s.Pages = append(s.Pages, desc.Page{Addr: a, Digest: d})
		files[d] = filepath.Join(dir, d)
		if err := os.WriteFile(files[d], bytes.Repeat([]byte{byte('a' + i)}, abi.PageSize), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := *u.Config
	cfg.Snapshot = s
	u.Config = &cfg
	base := u.BlobPath
	u.BlobPath = func(d string) string {
		if p, ok := files[d]; ok {
			return p
		}
		return base(d)
	}
	u.Checked = true
	return u
}

// heapPage is the first page of u's heap in a cold layout of its
// snapshot's shape.
func heapPage(t *testing.T, u monitor.Unikernel) uint64 {
	t.Helper()
	cold, err := Plan(u, Options{MemSize: 1 << 20, BootArea: SnapshotBootArea, Cmdline: "x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range cold.Mappings {
		if m.Part == PartHeap {
			return m.Addr
		}
	}
	t.Fatal("no heap")
	return 0
}

// An instance started from a snapshot lays out the same from
// PrepareSnapshot (the private blob not read, the cold layout's private
// ranges without their bytes) as from PrepareChecked: every mapping, its
// data and patches, the boot info, the registers. Only the garbage
// differs: the blob, its tables and data and the arena pages are not made.
func TestPrepareSnapshotPlansWhatPrepareCheckedPlans(t *testing.T) {
	dense := arenaUnikernel(t)
	for _, tc := range []struct {
		name string
		u    monitor.Unikernel
		at   []uint64 // snapshot pages (the heap's first added)
	}{
		{"tramp tables, data parts with and without init blobs", testUnikernel(t), []uint64{abi.AppRegionBase + 5*abi.PageSize}},
		{"no stored page but the heap's", testUnikernel(t), nil},
		{"a data arena in the private blob", dense, []uint64{abi.DataArenaBase}},
		{"a data arena, its page not stored", dense, nil},
	} {
		u := snapshotOf(t, tc.u)
		u = snapshotOf(t, tc.u, append(tc.at, heapPage(t, u)+abi.PageSize)...)
		full, err := PrepareChecked(u, false)
		if err != nil {
			t.Fatal(err)
		}
		only, err := PrepareSnapshot(u)
		if err != nil {
			t.Fatal(err)
		}
		opt := func() Options {
			return Options{Load: monitor.LoadShared, Snapshot: true, Cmdline: "own request", InstanceID: 3, Rand: rand.New(rand.NewPCG(5, 8))}
		}
		want, err := full.Plan(opt())
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := only.Plan(opt())
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: from PrepareSnapshot:\n%+v\nfrom PrepareChecked:\n%+v", tc.name, got.Mappings, want.Mappings)
		}
		if last, err := only.PlanLast(opt()); err != nil || !reflect.DeepEqual(last, want) {
			t.Errorf("%s: PlanLast from PrepareSnapshot: %v, or another layout", tc.name, err)
		}
		if only.private != nil {
			t.Errorf("%s: PrepareSnapshot read the private blob", tc.name)
		}
		if _, err := only.Plan(Options{Load: monitor.LoadShared, Cmdline: "cold"}); err == nil || !strings.Contains(err.Error(), "snapshot starts only") {
			t.Errorf("%s: a cold start from PrepareSnapshot: %v, want refused", tc.name, err)
		}
	}
	u := testUnikernel(t)
	if _, err := PrepareSnapshot(u); err == nil {
		t.Errorf("PrepareSnapshot of a unikernel not checked: no error")
	}
}

// A snapshot start planned from PrepareSnapshot allocates none of the
// bytes the snapshot replaces: its allocations do not grow with the
// private blob, the data parts or the data-arena pages.
func TestPlanningFromPrepareSnapshotMakesNoPrivateBytes(t *testing.T) {
	const pages = 64 // a data arena of 64 pages, all in the private blob
	u := denseUnikernel(t)
	cfg := *u.Config
	libs := append([]desc.Library(nil), cfg.Libraries...)
	libs[1].Region.PrivateSize, libs[1].Private.MemSize = pages*abi.PageSize-32, pages*abi.PageSize-32
	cfg.Libraries = libs
	blob := make([]byte, (pages+1)*abi.PageSize)
	copy(blob, "AAAAAAAABBBBBBBB")
	if err := os.WriteFile(u.BlobPath("sha256:p"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Private = &desc.BlobRef{Digest: "sha256:p", Size: int64(len(blob))}
	cfg.Arena = []desc.ArenaRun{{Addr: abi.DataArenaBase, Size: pages * abi.PageSize, BlobOff: abi.PageSize}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	u.Config = &cfg
	u = snapshotOf(t, u)
	u = snapshotOf(t, u, heapPage(t, u)+abi.PageSize)
	bytesOf := func(prepare func() (*Prepared, error)) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range 4 {
			p, err := prepare()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.PlanLast(Options{Load: monitor.LoadShared, Snapshot: true, Cmdline: "x"}); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / 4
	}
	full := bytesOf(func() (*Prepared, error) { return PrepareChecked(u, false) })
	only := bytesOf(func() (*Prepared, error) { return PrepareSnapshot(u) })
	t.Logf("a snapshot start with a %d-page arena: %d bytes from PrepareChecked, %d from PrepareSnapshot", pages, full, only)
	// The blob (65 pages), the arena pages and their run: ~3 x 260 KB from
	// PrepareChecked; the layout itself (boot area, mappings) is ~70 KB.
	if only > 128<<10 || full < only+2*pages*abi.PageSize {
		t.Errorf("planned from PrepareSnapshot: %d bytes allocated, want < 128 KiB and below PrepareChecked's %d by twice the arena's bytes", only, full)
	}
}
