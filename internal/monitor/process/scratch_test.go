package process

import (
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/loader"
)

// A build's scratch lists have one of two sizes, whatever an instance
// needs: scratchSmall bytes (a size class of its own), or more than the
// runtime's largest small object (a large object: one span class for
// every size). Grown by appends they took a size class per mapping count
// of the fleet; each class costs the monitor span-set metadata for good.
func TestScratchListsAreOneSmallSizeOrLarge(t *testing.T) {
	check := func(what string, size int, capOf func(have, n int) int) {
		t.Helper()
		for _, have := range []int{0, 1, 5} {
			for n := 1; n <= 1200; n++ {
				c := capOf(have, n)
				if c < have+n {
					t.Fatalf("%s: %d more after %d: capacity %d", what, n, have, c)
				}
				if bytes := c * size; bytes != scratchSmall/size*size && bytes <= scratchLarge {
					t.Fatalf("%s: %d more after %d: %d bytes, neither %d nor past %d", what, n, have, bytes, scratchSmall/size*size, scratchLarge)
				}
			}
		}
	}
	check("batch calls", int(unsafe.Sizeof(batchCall{})), func(have, n int) int {
		return cap(reserve(make([]batchCall, have), n))
	})
	check("memory writes", int(unsafe.Sizeof(memWrite{})), func(have, n int) int {
		return cap(reserve(make([]memWrite, have), n))
	})
	check("iovecs", int(unsafe.Sizeof(unix.Iovec{})), func(have, n int) int {
		return cap(reserve(make([]unix.Iovec, have), n))
	})
	check("bytes", 1, func(have, n int) int { return cap(reserve(make([]byte, have), n)) })
	// What a list holds survives its growth; one with room is itself.
	s := reserve([]byte(nil), 3)
	s = append(s, 1, 2, 3)
	s = reserve(s, scratchSmall)
	if string(s) != "\x01\x02\x03" {
		t.Fatalf("grown: %v", s)
	}
	if r := reserve(s, 1); &r[:1][0] != &s[:1][0] {
		t.Fatal("a list with room was copied")
	}
	if g := grow(s, 2); len(g) != 0 || &g[:1][0] != &s[:1][0] {
		t.Fatal("grow of a list with room: not itself, emptied")
	}
}

// Reusing a tracer's scratch, a build of an instance like the last makes
// no new lists: the scratch's lists allocate nothing once grown.
func TestScratchListsOfTheNextBuildAllocateNothing(t *testing.T) {
	var sc buildScratch
	fill := func() {
		first, second := grow(sc.first, 80), grow(sc.second, 62)
		for i := range 80 {
			first = append(reserve(first, 1), batchCall{nr: uintptr(i)})
		}
		for i := range 62 {
			second = append(reserve(second, 1), batchCall{nr: uintptr(i)})
		}
		writes, words := sc.writes[:0], sc.words[:0]
		for i := range 40 {
			words = append(reserve(words, 8), make([]byte, 8)...)
			writes = append(reserve(writes, 1), memWrite{uint64(i), words[len(words)-8:]})
		}
		sc.table = grow(sc.table, len(first)*batchEntrySize)
		sc.local, sc.remote = grow(sc.local, len(writes)), grow(sc.remote, len(writes))
		sc.first, sc.second, sc.writes, sc.words = first[:0], second[:0], writes[:0], words[:0]
	}
	fill()
	if n := testing.AllocsPerRun(10, fill); n != 0 {
		t.Fatalf("a build like the last: %v allocations of its lists, want 0", n)
	}
}

// A batch call names what it was for only when it fails: its mapping's
// description, made then, or its own words.
func TestBatchCallNamesItsMappingWhenItFails(t *testing.T) {
	m := loader.Mapping{Addr: 0x400000, Library: "libc", Part: loader.PartShared}
	if got, want := (&batchCall{of: &m}).describe(), "mapping "+what(m); got != want {
		t.Fatalf("describe = %q, want %q", got, want)
	}
	if got := (&batchCall{of: &m}).describe(); !strings.Contains(got, "libc/shared at 0x400000") {
		t.Fatalf("describe = %q", got)
	}
	if got := (&batchCall{what: "read of the image file", file: "/x/img"}).describe(); got != "read of the image file /x/img" {
		t.Fatalf("describe = %q", got)
	}
	if got := (&batchCall{what: "the discard page"}).describe(); got != "the discard page" {
		t.Fatalf("describe = %q", got)
	}
}
