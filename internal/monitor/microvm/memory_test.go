package microvm

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapsOf returns the lines of /proc/self/maps within [lo, hi).
func mapsOf(t *testing.T, lo, hi uint64) []string {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var a, b uint64
		if _, err := fmt.Sscanf(sc.Text(), "%x-%x", &a, &b); err == nil && a < hi && b > lo {
			out = append(out, sc.Text())
		}
	}
	return out
}

func TestPrivateSlotHasItsCopyOnWritePiecesInPlaceAndLeavesOtherMappingsAlone(t *testing.T) {
	// An init blob of 3 pages, each filled with its own byte.
	blob := filepath.Join(t.TempDir(), "init")
	content := append(append(bytes.Repeat([]byte{0xa1}, pageSize), bytes.Repeat([]byte{0xb2}, pageSize)...), bytes.Repeat([]byte{0xc3}, pageSize)...)
	if err := os.WriteFile(blob, content, 0o444); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(blob)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// Someone else's mapping where the next slot would go: the slot must
	// move on and leave it untouched.
	next := privArenaBase + privArenaNext.Load()
	other, err := unix.MmapPtr(-1, 0, addrPtr(next+3*pageSize), pageSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.MunmapPtr(other, pageSize)
	*(*byte)(other) = 0x5a

	// Slot of 8 pages: pages 1-2 from blob pages 1-2, page 5 from blob page 0.
	pieces := []cowPiece{
		{off: 1 * pageSize, size: 2 * pageSize, fd: int(f.Fd()), fileOff: pageSize},
		{off: 5 * pageSize, size: pageSize, fd: int(f.Fd()), fileOff: 0},
	}
	priv, err := newPrivateMemory(8*pageSize, false, pieces)
	if err != nil {
		t.Fatal(err)
	}
	defer priv.close()
	base := uint64(uintptr(unsafe.Pointer(&priv.mem[0])))
	if base < privArenaBase || base >= privArenaLimit || base == next {
		t.Fatalf("slot at %#x: want it in the arena [%#x, %#x) and not over the mapping at %#x", base, privArenaBase, privArenaLimit, next)
	}
	if *(*byte)(other) != 0x5a {
		t.Fatal("the other mapping was replaced")
	}
	want := map[int]byte{0: 0, 1: 0xb2, 2: 0xc3, 3: 0, 4: 0, 5: 0xa1, 6: 0, 7: 0}
	for pg, b := range want {
		if got := priv.mem[pg*pageSize+17]; got != b {
			t.Errorf("page %d holds %#x, want %#x", pg, got, b)
		}
	}
	// The pieces are the file, private: a write is the slot's own.
	lines := mapsOf(t, base, base+8*pageSize)
	if n := strings.Count(strings.Join(lines, "\n"), blob); n != 2 {
		t.Errorf("slot mappings:\n%s\nwant the blob mapped twice", strings.Join(lines, "\n"))
	}
	priv.mem[5*pageSize] = 0x11
	if b, _ := os.ReadFile(blob); b[0] != 0xa1 {
		t.Error("a write to a piece reached the file")
	}
}

// The memory of a Unikraft VM as its layout places it (uk0001-apphello of
// the 31-configuration fleet, abridged): the low area, VGA, the app, boot
// info and RAM, and the library map, where each library's shared part and
// private part lie apart within its region.
var unikraftLikeSpans = []span{
	{0, gpaPrivateData}, {0xa0000, 0x20000},
	{0x1000_0000, 0x1000}, {0x1000_1000, 0x3000},
	{0x2000_0000, 0x1000}, {0x2000_1000, 0x1000}, {0x2020_0000, 0x100_0000},
	{0x4000_0000, 0x15000}, {0x4001_5000, 0xa000}, {0x4001_f000, 0x4000}, {0x4004_0000, 0x35000},
	{0x4008_f000, 0x1000}, {0x4009_a000, 0x7000}, {0x400a_1000, 0x3000}, {0x400a_c000, 0x1000},
	{0x400b_1000, 0x1000}, {0x400b_8000, 0x1000}, {0x4019_6000, 0x1000}, {0x4019_c000, 0x1000},
}

func TestALinuxBootVMHasOneSlotPerClusterOfMappingsAndHolesBetweenItsMappings(t *testing.T) {
	backed := unionSpans(append([]span(nil), unikraftLikeSpans...))
	slots := identitySlots(backed)
	want := []memSlot{
		{id: 0, gpa: 0, size: 0xc0000},
		{id: 1, gpa: 0x1000_0000, size: 0x4000},
		{id: 2, gpa: 0x2000_0000, size: 0x120_0000},
		{id: 3, gpa: 0x4000_0000, size: 0x19d000},
	}
	if fmt.Sprint(slots) != fmt.Sprint(want) {
		t.Errorf("slots %x\nwant %x", slots, want)
	}
	top := uint64(0x4019_d000)
	holes := holesBetween(backed, top)
	// Every page below top is either backed or a hole, never both, and
	// every hole is either inside a slot or outside all of them.
	covered := map[uint64]int{}
	for _, s := range append(append([]span(nil), backed...), holes...) {
		for pg := s.gpa; pg < s.gpa+s.size; pg += pageSize {
			covered[pg]++
		}
	}
	for pg := uint64(0); pg < top; pg += pageSize {
		if covered[pg] != 1 {
			t.Fatalf("page %#x is covered %d times by the backed ranges and holes", pg, covered[pg])
		}
	}
	for _, s := range unikraftLikeSpans {
		in := false
		for _, sl := range slots {
			in = in || (s.gpa >= sl.gpa && s.gpa+s.size <= sl.gpa+sl.size)
		}
		if !in {
			t.Errorf("mapping [%#x,+%#x) is in no slot", s.gpa, s.size)
		}
	}
	if holes[0] != (span{gpaPrivateData, 0xa0000 - gpaPrivateData}) {
		t.Errorf("first hole %x, want the gap between the low area and VGA", holes[0])
	}
}

func TestAHoleInThePrivateSlotIsMappedWithoutAccessBetweenItsPieces(t *testing.T) {
	blob := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(blob, bytes.Repeat([]byte{0x7e}, 2*pageSize), 0o444); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(blob)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Pages: 0 anonymous, 1-2 the blob, 3-5 a hole, 6 anonymous.
	priv, err := newPrivateMemory(7*pageSize, false, []cowPiece{
		{off: 3 * pageSize, size: 3 * pageSize, fd: -1, hole: true},
		{off: pageSize, size: 2 * pageSize, fd: int(f.Fd())},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer priv.close()
	base := uint64(uintptr(unsafe.Pointer(&priv.mem[0])))
	var perms []string
	for _, l := range mapsOf(t, base, base+7*pageSize) {
		perms = append(perms, strings.Fields(l)[1])
	}
	if strings.Join(perms, " ") != "rw-p rw-p ---p rw-p" {
		t.Errorf("mappings %q, want anonymous, the blob, the hole without access, anonymous", perms)
	}
	priv.mem[0], priv.mem[6*pageSize] = 1, 2
	priv.mem[pageSize] = 0x11 // the blob's page becomes the slot's own
	if b, _ := os.ReadFile(blob); b[0] != 0x7e || priv.mem[2*pageSize] != 0x7e {
		t.Error("a write to the blob's piece reached the file, or the piece does not hold the file")
	}
}

// TestEveryVMReadsTheOneSystemPageAndAWriteStaysInItsOwnVM: two VMs'
// private slots with the system piece both read the memfd's one page
// (a file page, not one of their own); one VM writing its system page
// gets its own copy, and neither the other VM nor the file sees it.
func TestEveryVMReadsTheOneSystemPageAndAWriteStaysInItsOwnVM(t *testing.T) {
	piece, ok := systemPiece()
	if !ok {
		t.Fatal("no shared system page on this kernel")
	}
	var vms [2]*privateMemory
	for i := range vms {
		priv, err := newPrivateMemory(gpaPrivateData, false, []cowPiece{piece})
		if err != nil {
			t.Fatal(err)
		}
		defer priv.close()
		vms[i] = priv
	}
	want := make([]byte, gpaSystem+pageSize)
	writeSystemArea(want)
	for i, vm := range vms {
		if string(vm.mem[gpaSystem:gpaSystem+pageSize]) != string(want[gpaSystem:]) {
			t.Fatalf("VM %d does not read the system area at %#x", i, gpaSystem)
		}
		if e := pagemap(vm.mem[gpaSystem : gpaSystem+pageSize])[0]; e&pagemapPresent == 0 || e&pagemapFile == 0 {
			t.Errorf("VM %d: its system page (pagemap %#x) is not the file's page", i, e)
		}
		if n := anonPresent(vm.mem[:gpaPrivateData]); n != 0 {
			t.Errorf("VM %d: %d bytes of its own in the low area, want 0", i, n)
		}
	}
	vms[0].mem[gpaSystem+8] ^= 0xff
	if anonPresent(vms[0].mem[gpaSystem:gpaSystem+pageSize]) != pageSize {
		t.Error("the written system page did not become the VM's own")
	}
	if vms[1].mem[gpaSystem+8] != want[gpaSystem+8] {
		t.Error("one VM's write to its system page reached another VM")
	}
	f, _ := sharedSystemFile()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 8); err != nil || b[0] != want[gpaSystem+8] {
		t.Errorf("one VM's write to its system page reached the shared file (%v)", err)
	}
}
