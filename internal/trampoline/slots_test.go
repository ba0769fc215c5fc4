package trampoline

import (
	"testing"

	"github.com/unipool/unipool/internal/desc"
)

// Two images link the same library object; in one, the two weak symbols
// it calls are undefined (both the constant 0, and ld's relocations no
// longer name them), in the other two libraries define them. Their
// tables must be laid out alike, or the library's code (which encodes
// slot and stub offsets) differs between the images and its pages are
// not shared.
func TestTableLayoutDoesNotDependOnHowTheImageResolvesSymbols(t *testing.T) {
	rw := &rewriter{cfg: &desc.Config{Libraries: []desc.Library{{Region: desc.Region{Start: 0x4000_0000, TrampSize: 0x1000}}}}}
	sites := func(a, b word) []*site {
		return []*site{
			{addr: 0x4000_1000, target: a.addr, konst: a.konst, val: a.val},
			{addr: 0x4000_1010, target: b.addr, konst: b.konst, val: b.val},
			{addr: 0x4000_1020, target: desc.Addr{Lib: 0, Off: 0x1234}}, // a local target
		}
	}
	undefined := sites(word{konst: true}, word{konst: true})
	defined := sites(word{addr: desc.Addr{Lib: 1, Off: 0x10}}, word{addr: desc.Addr{Lib: 2, Off: 0x20}})
	t1, t2 := newTable(rw, 0, undefined), newTable(rw, 0, defined)
	if len(t1.slots) != len(t2.slots) {
		t.Fatalf("tables of %d and %d words", len(t1.slots), len(t2.slots))
	}
	for i := range undefined {
		if a, b := t1.slot(undefined[i].key()), t2.slot(defined[i].key()); a != b {
			t.Errorf("site %d: slot %#x in one image, %#x in the other", i, a, b)
		}
	}
}
