package kvm

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
