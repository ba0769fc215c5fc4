package loader

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/monitor"
)

func withSnapshot(t testing.TB, pages ...uint64) monitor.Unikernel {
	u := testUnikernel(t)
	s := &desc.Snapshot{Monitor: "process", MemSize: 1 << 20, StackBootArea: SnapshotBootArea, StackBootRoom: BootStackRoom,
		Regs: desc.Regs{RIP: abi.MapBase + abi.PageSize + 7, RSP: 0x2001_0000}, Console: "early\n"}
	// The pages' blobs are files (the stack's and heap's are read), each
	// page the letter of its digest over and over.
	dir := t.TempDir()
	stored := map[string]bool{}
	for i, a := range pages {
		d := "sha256:" + strings.Repeat(string(rune('a'+i)), 64)
		s.Pages = append(s.Pages, desc.Page{Addr: a, Digest: d})
		stored[d] = true
		if err := os.WriteFile(filepath.Join(dir, d), bytes.Repeat([]byte{byte('a' + i)}, abi.PageSize), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	u.Config.Snapshot = s
	base := u.BlobPath
	u.BlobPath = func(d string) string {
		if p := base(d); p != "" {
			return p
		}
		if stored[d] {
			return filepath.Join(dir, d)
		}
		return "/pool/" + d
	}
	return u
}

func TestSnapshotMapsItsPagesCopyOnWriteAndTheRestZero(t *testing.T) {
	cold, err := Plan(withSnapshot(t), Options{MemSize: 1 << 20, BootArea: SnapshotBootArea, Cmdline: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var heap Mapping
	for _, m := range cold.Mappings {
		if m.Part == PartHeap {
			heap = m
		}
	}
	appData := uint64(abi.AppRegionBase + 5*abi.PageSize) // app region: tramp, shared x4, private
	u := withSnapshot(t, appData, heap.Addr+abi.PageSize)
	lay, err := Plan(u, Options{Snapshot: true, Cmdline: "own request", Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	if lay.Resume == nil || lay.Resume.RIP != abi.MapBase+abi.PageSize+7 || lay.Console != "early\n" {
		t.Fatalf("resume %+v console %q: not the snapshot's", lay.Resume, lay.Console)
	}
	pages := 0
	for _, m := range lay.Mappings {
		switch {
		case m.Part == PartShared:
			if m.COW || m.File == "" {
				t.Errorf("shared part %+v is not the shared blob", m)
			}
		case m.Addr <= lay.BootInfo && lay.BootInfo < m.Addr+m.Size:
			if m.Part != PartStack || !strings.Contains(string(m.Data), "own request") || m.Addr+m.Size != lay.BootEnd ||
				lay.BootEnd-lay.BootInfo != SnapshotBootArea-BootStackRoom || lay.BootInfo != cold.BootInfo {
				t.Errorf("boot info is not this instance's own, in the snapshot's boot area at the stack's top: %+v", m)
			}
		case m.COW:
			pages++
			if m.Size != abi.PageSize || m.File != u.BlobPath(m.Digest) || m.Data != nil || len(m.Patches) > 0 {
				t.Errorf("page %+v is not its blob mapped copy-on-write", m)
			}
			if m.Addr != appData {
				t.Errorf("a page at %#x mapped from a blob, which the snapshot does not have or the instance copies", m.Addr)
			}
		case m.Addr == heap.Addr+abi.PageSize:
			pages++
			if m.Size != abi.PageSize || m.File != "" || !bytes.Equal(m.Data, bytes.Repeat([]byte("b"), abi.PageSize)) {
				t.Errorf("the heap's stored page %+v is not a copy of its blob", m)
			}
		default:
			if m.File != "" || m.Data != nil {
				t.Errorf("%s at %#x: private range not zero: %+v", m.Part, m.Addr, m)
			}
		}
	}
	if pages != 2 {
		t.Errorf("%d snapshot pages placed, want 2", pages)
	}
	if got := lay.Find(heap.Addr); got == nil || got.Part != PartHeap || got.Size != abi.PageSize || got.Data != nil {
		t.Errorf("the heap's first page is %+v, want a zero page of its own", got)
	}
}

// With a zero blob, the zero pages of a library's private part (bss that
// an instance may only read) map it copy-on-write, every range from its
// start, as many mappings as a long run needs; the stack's and heap's zero
// pages stay anonymous memory (written before they are read).
func TestSnapshotMapsPrivatePartZeroRunsFromTheZeroBlobButNotStackOrHeap(t *testing.T) {
	appData := uint64(abi.AppRegionBase + 5*abi.PageSize)
	u := withSnapshot(t, appData)
	u.Config.Snapshot.Zero = desc.SnapshotZeroDigest()
	lay, err := Plan(u, Options{Snapshot: true, Cmdline: "own request"})
	if err != nil {
		t.Fatal(err)
	}
	zeroBlob, anon := 0, map[string]bool{}
	for _, m := range lay.Mappings {
		switch {
		case m.Digest == desc.SnapshotZeroDigest():
			zeroBlob++
			if !m.COW || m.Offset != 0 || m.Size > desc.SnapshotZeroSize || m.File != "/pool/"+m.Digest || m.Data != nil {
				t.Errorf("%s at %#x: %+v is not the zero blob mapped copy-on-write from its start", m.Part, m.Addr, m)
			}
			if m.Part == PartStack || m.Part == PartHeap || m.Part == PartBootInfo {
				t.Errorf("the %s maps the zero blob", m.Part)
			}
		case m.File == "" && m.Data == nil:
			anon[m.Part] = true
		}
	}
	if zeroBlob == 0 {
		t.Errorf("no private part maps the zero blob: %+v", lay.Mappings)
	}
	if !anon[PartStack] || !anon[PartHeap] {
		t.Errorf("anonymous zero runs in %v, want the stack and the heap", anon)
	}
	if m := lay.Find(appData); m == nil || m.Digest == desc.SnapshotZeroDigest() || !m.COW {
		t.Errorf("the stored page at %#x is %+v, not its own blob", appData, m)
	}

	// A run longer than the blob takes several mappings of it.
	long := &Layout{Mappings: []Mapping{{Addr: 0x7000_0000, Size: desc.SnapshotZeroSize + 3*abi.PageSize, Prot: ProtRead | ProtWrite, Part: PartPrivate}}}
	if err := long.applySnapshot(&desc.Snapshot{Zero: desc.SnapshotZeroDigest()}, func(d string) string { return "/pool/" + d }); err != nil {
		t.Fatal(err)
	}
	if len(long.Mappings) != 2 || long.Mappings[0].Size != desc.SnapshotZeroSize || long.Mappings[1].Size != 3*abi.PageSize ||
		long.Mappings[1].Addr != 0x7000_0000+desc.SnapshotZeroSize || long.Mappings[1].Offset != 0 {
		t.Errorf("a run of %#x bytes: %+v", desc.SnapshotZeroSize+3*abi.PageSize, long.Mappings)
	}
}

// The stack's top page holds the snapshot's frames and TCB below the boot
// info (stored without the boot area: ScrubBootArea) and this instance's
// boot info and command line from it: one copied page, both.
func TestSnapshotStackTopPageIsTheSnapshotsBelowTheBootInfoAndTheInstancesAbove(t *testing.T) {
	cold, err := Plan(withSnapshot(t), Options{MemSize: 1 << 20, BootArea: SnapshotBootArea, Cmdline: "x"})
	if err != nil {
		t.Fatal(err)
	}
	first := cold.BootInfo &^ (abi.PageSize - 1)
	u := withSnapshot(t, first-abi.PageSize, first)
	lay, err := Plan(u, Options{Snapshot: true, Cmdline: "own request", InstanceID: 5})
	if err != nil {
		t.Fatal(err)
	}
	m := lay.Find(first)
	boot := lay.BootInfo - first
	if m == nil || m.Addr != first || m.File != "" || uint64(len(m.Data)) <= boot || m.Addr+m.Size != lay.BootEnd {
		t.Fatalf("the stack's top %+v", m)
	}
	if !bytes.Equal(m.Data[:boot], bytes.Repeat([]byte("b"), int(boot))) {
		t.Errorf("below the boot info: not the snapshot's page")
	}
	bi := m.Data[boot:]
	if binary.LittleEndian.Uint64(bi) != abi.BootInfoMagic || binary.LittleEndian.Uint64(bi[64:]) != 5 || !strings.Contains(string(bi), "own request\x00") {
		t.Errorf("from the boot info: not this instance's own: %q", bi)
	}
	if below := lay.Find(first - abi.PageSize); below == nil || !bytes.Equal(below.Data, bytes.Repeat([]byte("a"), abi.PageSize)) {
		t.Errorf("the page below: %+v", below)
	}

	// What a capture stores of that page: nothing from the boot info up.
	page := bytes.Repeat([]byte{0xff}, 3*abi.PageSize)
	lay.ScrubBootArea(first-abi.PageSize, page)
	if bytes.Count(page, []byte{0xff}) != abi.PageSize+int(boot) || bytes.Count(page[abi.PageSize+boot:], []byte{0}) != 2*abi.PageSize-int(boot) {
		t.Errorf("scrubbed: %d bytes left", bytes.Count(page, []byte{0xff}))
	}
}

// A snapshot taken before the boot info moved into the stack's top page
// (boot_area, no stack_boot_area in its description) keeps its layout: a
// boot-info area of its own at the per-instance base, the stack after a
// guard page.
func TestSnapshotWithoutBootInfoLayoutKeepsTheBootInfoPage(t *testing.T) {
	u := withSnapshot(t)
	u.Config.Snapshot.BootArea, u.Config.Snapshot.StackBootArea, u.Config.Snapshot.StackBootRoom = SnapshotBootArea, 0, 0
	lay, err := Plan(u, Options{Snapshot: true, Cmdline: "own request"})
	if err != nil {
		t.Fatal(err)
	}
	m := lay.Find(lay.BootInfo)
	if lay.BootInfo != abi.PrivateBase || lay.BootEnd != 0 || m == nil || m.Part != PartBootInfo || m.Size != SnapshotBootArea ||
		lay.Areas[PartStack] != abi.PrivateBase+SnapshotBootArea+abi.PageSize || !strings.Contains(string(m.Data), "own request") {
		t.Errorf("boot info at %#x (%+v), stack at %#x: not the legacy layout", lay.BootInfo, m, lay.Areas[PartStack])
	}
	u.Config.Snapshot.StackBootArea = SnapshotBootArea
	if err := u.Config.Snapshot.Validate(); err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Errorf("both boot areas: %v", err)
	}
}

// A snapshot is laid out with the boot room it was taken with, whatever
// BootStackRoom is now: the frames and TCB it resumes with stay where it
// had them.
func TestSnapshotKeepsItsBootRoom(t *testing.T) {
	u := withSnapshot(t)
	for _, room := range []uint64{0x800, BootStackRoom, 0xe00} {
		u.Config.Snapshot.StackBootRoom = room
		lay, err := Plan(u, Options{Snapshot: true, Cmdline: "own request"})
		if err != nil {
			t.Fatal(err)
		}
		if lay.BootInfo%abi.PageSize != room || lay.BootEnd-lay.BootInfo != SnapshotBootArea-room {
			t.Errorf("room %#x: boot info at %#x, end %#x", room, lay.BootInfo, lay.BootEnd)
		}
	}
	u.Config.Snapshot.StackBootRoom = 0
	if err := u.Config.Snapshot.Validate(); err == nil || !strings.Contains(err.Error(), "stack_boot_room") {
		t.Errorf("no room: %v", err)
	}
}

func TestSnapshotRefusesASLRMemorySizeAndLongCommandLines(t *testing.T) {
	u := withSnapshot(t)
	for _, c := range []struct {
		opt  Options
		want string
	}{
		{Options{Snapshot: true, ASLR: true}, "fixes the layout"},
		{Options{Snapshot: true, MemSize: 2 << 20}, "taken with 1048576 bytes"},
		{Options{Snapshot: true, Cmdline: strings.Repeat("x", SnapshotBootArea)}, "does not fit the boot-info area"},
		{Options{Snapshot: true, Load: monitor.LoadNaive}, "does not apply"},
	} {
		if _, err := Plan(u, c.opt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", c.opt, err, c.want)
		}
	}
	u.Config.Snapshot = nil
	if _, err := Plan(u, Options{Snapshot: true}); err == nil || !strings.Contains(err.Error(), "has no snapshot") {
		t.Errorf("no snapshot: err %v", err)
	}
}

func TestSnapshotPageOutsidePrivateMemoryIsRefused(t *testing.T) {
	for _, at := range []uint64{abi.MapBase + abi.PageSize /* library a's code */, abi.ASLRBase /* nowhere */} {
		if _, err := Plan(withSnapshot(t, at), Options{Snapshot: true}); err == nil {
			t.Errorf("snapshot page at %#x accepted", at)
		}
	}
}

// Free-page reporting: a guest names any range; what a monitor may drop is
// only the whole pages of it in the heap and the stack, cold or from a
// snapshot (whose heap is copy-on-write pages and zero memory side by
// side), never the boot info, a library's data or a shared blob.
func TestDiscardableIsTheHeapAndStackPagesOfARangeOnly(t *testing.T) {
	cold, err := Plan(withSnapshot(t), Options{MemSize: 1 << 20, BootArea: SnapshotBootArea, Cmdline: "x"})
	if err != nil {
		t.Fatal(err)
	}
	heap, stack := cold.Areas[PartHeap], cold.Areas[PartStack]
	heapSize := uint64(1<<20) - abi.DefaultStackSize
	u := withSnapshot(t, heap+abi.PageSize)
	restored, err := Plan(u, Options{Snapshot: true, Cmdline: "own request"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		lay  *Layout
	}{{"cold", cold}, {"from a snapshot", restored}} {
		lay := c.lay
		check := func(what string, addr, size uint64, want [][2]uint64) {
			t.Helper()
			got := lay.Discardable(addr, size)
			if len(got) != len(want) {
				t.Fatalf("%s: %s: got %x, want %x", c.name, what, got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%s: %s: got %x, want %x", c.name, what, got, want)
				}
			}
		}
		check("the heap's pages, partial ones kept", heap+8, 3*abi.PageSize, [][2]uint64{{heap + abi.PageSize, heap + 3*abi.PageSize}})
		check("the whole heap and beyond", heap-abi.PageSize, heapSize+2*abi.PageSize, [][2]uint64{{heap, heap + heapSize}})
		check("the stack", stack, abi.DefaultStackSize, [][2]uint64{{stack, stack + abi.DefaultStackSize}})
		check("boot info", lay.BootInfo, abi.PageSize, nil)
		check("a library's data and code", abi.MapBase, 64*abi.PageSize, nil)
		check("the app region", abi.AppRegionBase, 16*abi.PageSize, nil)
		check("less than a page", heap+1, abi.PageSize, nil)
		check("a wrapping range", heap+abi.PageSize, ^uint64(0), [][2]uint64{{heap + abi.PageSize, heap + heapSize}})
		check("the stack's top page, with the boot info", lay.BootInfo&^(abi.PageSize-1), abi.PageSize, nil)
		check("everything", 0, ^uint64(0), [][2]uint64{{stack, lay.StackTop &^ (abi.PageSize - 1)}, {heap, heap + heapSize}})
	}
}

// The stack's and heap's stored pages (the frames the guest resumes in,
// the TCB at the stack's top; the init phase's blocks) are written by
// (nearly) every instance: they are copied into its anonymous memory, no
// mapping of their own, while a library's stored pages stay their blobs
// mapped copy-on-write; a missing or short blob is an error naming the
// page.
func TestSnapshotCopiesItsStackAndHeapPagesIntoAnonymousMemory(t *testing.T) {
	cold, err := Plan(withSnapshot(t), Options{MemSize: 1 << 20, BootArea: SnapshotBootArea, Cmdline: "x"})
	if err != nil {
		t.Fatal(err)
	}
	heap, stack := cold.Areas[PartHeap], cold.Areas[PartStack]
	top := stack + abi.DefaultStackSize - abi.PageSize
	appData := uint64(abi.AppRegionBase + 5*abi.PageSize) // app region: tramp, shared x4, private
	u := withSnapshot(t, appData, top, heap+abi.PageSize)
	var pages [][]byte
	for _, pg := range u.Config.Snapshot.Pages {
		page, err := os.ReadFile(u.BlobPath(pg.Digest))
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, page)
	}
	stackBlob := u.BlobPath(u.Config.Snapshot.Pages[1].Digest)
	lay, err := Plan(u, Options{Snapshot: true, Cmdline: "own request"})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		addr uint64
		part string
	}{{top, PartStack}, {heap + abi.PageSize, PartHeap}} {
		if m := lay.Find(c.addr); m == nil || m.File != "" || m.COW || m.Addr != c.addr || !bytes.Equal(m.Data, pages[i+1]) || m.Part != c.part {
			t.Errorf("the %s's stored page is %+v, want an anonymous copy of its blob", c.part, m)
		}
		if m := lay.Find(c.addr - abi.PageSize); m == nil || m.File != "" || m.Data != nil || m.Part != c.part {
			t.Errorf("the %s below its stored page is %+v, want anonymous zero memory", c.part, m)
		}
	}
	if m := lay.Find(appData); m == nil || !m.COW || m.File != u.BlobPath(u.Config.Snapshot.Pages[0].Digest) {
		t.Errorf("the app's stored data page is %+v, want its blob copy-on-write", m)
	}
	if got := lay.Discardable(stack, abi.DefaultStackSize); len(got) != 1 || got[0] != [2]uint64{stack, stack + abi.DefaultStackSize} || lay.BootInfo != cold.BootInfo {
		t.Errorf("discardable stack %x, want the whole stack as one range", got)
	}

	if err := os.WriteFile(stackBlob, pages[1][:100], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Plan(u, Options{Snapshot: true}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("stack page at %#x", top)) || !strings.Contains(err.Error(), "not a page") {
		t.Errorf("a short stack page blob: err %v", err)
	}
	os.Remove(stackBlob)
	if _, err := Plan(u, Options{Snapshot: true}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("stack page at %#x", top)) {
		t.Errorf("a missing stack page blob: err %v", err)
	}
}

// withPack is withSnapshot with every page in one page pack (a blob whose
// page at offset o holds 'A'+o/4096 over and over), at the offsets given,
// and library a's private part two pages long.
func withPack(t testing.TB, pages map[uint64]uint64) (monitor.Unikernel, string) {
	u := withSnapshot(t)
	u.Config.Libraries[0].Private.MemSize = 2 * abi.PageSize
	pack := "sha256:" + strings.Repeat("9", 64)
	var data []byte
	for i := 0; i < 8; i++ {
		data = append(data, bytes.Repeat([]byte{byte('A' + i)}, abi.PageSize)...)
	}
	path := filepath.Join(t.TempDir(), "pack")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var addrs []uint64
	for a := range pages {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	for _, a := range addrs {
		off := pages[a]
		u.Config.Snapshot.Pages = append(u.Config.Snapshot.Pages, desc.Page{Addr: a, Digest: "sha256:" + strings.Repeat(string(rune('a'+off/abi.PageSize)), 64), Blob: pack, Offset: off})
	}
	base := u.BlobPath
	u.BlobPath = func(d string) string {
		if d == pack {
			return path
		}
		return base(d)
	}
	return u, pack
}

// Consecutive pages of a page pack at consecutive addresses of one private
// part are one copy-on-write mapping of the pack at the first one's offset
// (an instance maps the pack once, not a file per page); pages that are
// not consecutive in the pack are mappings of their own; a heap page in
// the pack is copied from its offset.
func TestSnapshotMapsConsecutivePackPagesAsOneMapping(t *testing.T) {
	aPriv := uint64(abi.MapBase + 5*abi.PageSize)
	appData := uint64(abi.AppRegionBase + 5*abi.PageSize)
	cold, err := Plan(withSnapshot(t), Options{MemSize: 1 << 20, BootArea: SnapshotBootArea, Cmdline: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var heap uint64
	for _, m := range cold.Mappings {
		if m.Part == PartHeap {
			heap = m.Addr
		}
	}
	for _, tc := range []struct {
		name  string
		pages map[uint64]uint64
		want  []Mapping // the pack's mappings
	}{
		{"consecutive", map[uint64]uint64{aPriv: 0x1000, aPriv + abi.PageSize: 0x2000, appData: 0x3000, heap: 0x5000},
			[]Mapping{{Addr: aPriv, Size: 2 * abi.PageSize, Offset: 0x1000}, {Addr: appData, Size: abi.PageSize, Offset: 0x3000}}},
		{"reversed", map[uint64]uint64{aPriv: 0x2000, aPriv + abi.PageSize: 0x1000, appData: 0x3000, heap: 0x5000},
			[]Mapping{{Addr: aPriv, Size: abi.PageSize, Offset: 0x2000}, {Addr: aPriv + abi.PageSize, Size: abi.PageSize, Offset: 0x1000},
				{Addr: appData, Size: abi.PageSize, Offset: 0x3000}}},
		{"same page twice", map[uint64]uint64{aPriv: 0x1000, aPriv + abi.PageSize: 0x1000, appData: 0x2000, heap: 0x5000},
			[]Mapping{{Addr: aPriv, Size: abi.PageSize, Offset: 0x1000}, {Addr: aPriv + abi.PageSize, Size: abi.PageSize, Offset: 0x1000},
				{Addr: appData, Size: abi.PageSize, Offset: 0x2000}}},
	} {
		u, pack := withPack(t, tc.pages)
		lay, err := Plan(u, Options{Snapshot: true, Cmdline: "own request"})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []Mapping
		for _, m := range lay.Mappings {
			if m.Digest == pack {
				if !m.COW || m.File != u.BlobPath(pack) {
					t.Errorf("%s: %+v is not the pack mapped copy-on-write", tc.name, m)
				}
				got = append(got, Mapping{Addr: m.Addr, Size: m.Size, Offset: m.Offset})
			}
			if m.Addr == heap && (m.File != "" || !bytes.Equal(m.Data, bytes.Repeat([]byte{'F'}, abi.PageSize))) {
				t.Errorf("%s: the heap's page %+v is not a copy of the pack's page at 0x5000", tc.name, m)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: the pack's mappings %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
