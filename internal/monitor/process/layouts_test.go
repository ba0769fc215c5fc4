package process

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/measure"
	"github.com/unipool/unipool/internal/monitor"
)

// Once its guest runs, an instance costs the monitor its own small state
// and nothing of its layout: not the copies (naive load copies every
// blob), not a mapping list of its own. All instances of a unikernel share
// one kept list; ASLR instances map the same ranges elsewhere, so each
// keeps only their addresses (loader.Placed), pointing into that list.
// Once finished (held or gone) an instance keeps no mapping at all, and
// its tracer forgets the kept list with the unikernel's last instance.
func TestRunningInstancesKeepNoLayoutBytesAndShareOneShape(t *testing.T) {
	dir := t.TempDir()
	calls := pooled(t, dir, "app", callLibc+exitSeven)
	// Under ASLR libc is elsewhere: an app that does not call it.
	alone := pooled(t, dir, "alone", "mov $'L', %al\nmov $0x3f8, %dx\nout %al, %dx\n"+exitSeven)
	for _, tc := range []struct {
		load   string
		aslr   bool
		shapes int
	}{
		{monitor.LoadNaive, false, 1},
		{monitor.LoadShared, false, 1},
		{monitor.LoadShared, true, 1},
	} {
		var insts []*instance
		// What each instance keeps while its guest runs, as the tracer
		// made it (a finished one keeps less: below).
		lays := map[*instance]loader.Layout{}
		m := &Monitor{Threads: 1, ran: func(in []*instance) { insts = in }, built: func(in *instance) {
			lays[in] = *in.lay
		}}
		// Each instance holds (Hold), so all 6 run at once: they share.
		opt := monitor.Options{N: 6, Load: tc.load, ASLR: tc.aslr, Timeout: guestTimeout, Hold: time.Minute,
			Resident: func([]int) {}}
		uk := calls
		if tc.aslr {
			uk = alone
		}
		if _, err := m.Run(context.Background(), []monitor.Unikernel{uk}, opt); err != nil {
			t.Fatal(err)
		}
		shapes, kept := map[*loader.Mapping]bool{}, map[*loader.Mapping]bool{}
		for _, lay := range lays {
			if lay.Mappings != nil {
				shapes[&lay.Mappings[0]] = true
				for i := range lay.Mappings {
					kept[&lay.Mappings[i]] = true
				}
			}
		}
		if len(lays) != len(insts) {
			t.Fatalf("%s aslr=%v: %d of %d instances were built", tc.load, tc.aslr, len(lays), len(insts))
		}
		for _, in := range insts {
			if in.err != "" || in.exitCode != 7 || string(in.output) != "L" {
				t.Fatalf("%s aslr=%v instance %d: exit %d output %q error %q", tc.load, tc.aslr, in.index, in.exitCode, in.output, in.err)
			}
			if in.plan != nil {
				t.Errorf("%s instance %d still holds its planning closure", tc.load, in.index)
			}
			if in.lay.Mappings != nil || in.lay.Placed != nil || in.traps != nil {
				t.Errorf("%s aslr=%v instance %d, finished, still keeps %d mappings, %d places, %d traps", tc.load, tc.aslr, in.index,
					len(in.lay.Mappings), len(in.lay.Placed), len(in.traps))
			}
			if in.lay.Areas[loader.PartHeap] == 0 || len(in.lay.Entropy) == 0 {
				t.Errorf("%s aslr=%v instance %d, finished, lost what its result reports: areas %v", tc.load, tc.aslr, in.index, in.lay.Areas)
			}
			lay := lays[in]
			if lay.Mappings == nil {
				if !tc.aslr || len(lay.Placed) == 0 {
					t.Fatalf("%s aslr=%v instance %d keeps neither mappings nor their places", tc.load, tc.aslr, in.index)
				}
				for _, p := range lay.Placed {
					if !kept[p.M] {
						t.Errorf("instance %d: %s/%s at %#x is no kept mapping", in.index, p.M.Library, p.M.Part, p.Addr)
					}
				}
				// Find names what lies at the instance's own addresses.
				for _, part := range []string{loader.PartStack, loader.PartHeap} {
					a := lay.Areas[part]
					if m := lay.Find(a + 8); m == nil || m.Part != part || m.Addr != a {
						t.Errorf("instance %d: Find(%s+8) = %+v, want the %s at %#x", in.index, part, m, part, a)
					}
				}
				// The boot info: in the stack's top page.
				if a := lay.Areas[loader.PartBootInfo]; a != lay.BootInfo || lay.Find(a+8) == nil || lay.Find(a+8).Part != loader.PartStack ||
					lay.Find(a+8).Addr+lay.Find(a+8).Size != lay.BootEnd {
					t.Errorf("instance %d: Find(bootinfo+8) = %+v, want the stack's top at %#x", in.index, lay.Find(a+8), a)
				}
			}
			for _, mp := range lay.AllMappings() {
				if len(mp.Data) > 0 || len(mp.Patches) > 0 {
					t.Errorf("%s instance %d keeps %d bytes and %d patches of %s/%s", tc.load, in.index, len(mp.Data), len(mp.Patches), mp.Library, mp.Part)
				}
			}
		}
		if len(shapes) != tc.shapes {
			t.Errorf("%s aslr=%v: %d instances keep %d layouts, want %d", tc.load, tc.aslr, len(insts), len(shapes), tc.shapes)
		}
	}
}

// The tracer's cache keeps a unikernel's mapping list, maps and trap cache
// while an instance of it runs, or may still start; after the starts it
// forgets them with the unikernel's last running instance.
func TestLayoutCacheForgetsAUnikernelWithItsLastRunningInstance(t *testing.T) {
	lay := func() *loader.Layout {
		return &loader.Layout{
			Mappings: []loader.Mapping{{Addr: 0x1000_0000, Size: 0x1000, Prot: 5, File: "/pool/blobs/sha256/ab", Library: "app", Part: "shared"}},
			Bases:    map[string]uint64{"app": 0x1000_0000},
			Areas:    map[string]uint64{loader.PartHeap: 0x2004_0000},
			Entropy:  map[string]float64{loader.PartHeap: 0},
		}
	}
	var c layoutCache
	a, b, other := c.keep("uk", lay()), c.keep("uk", lay()), c.keep("other", lay())
	if &a.Mappings[0] != &b.Mappings[0] {
		t.Fatal("two instances of one unikernel keep two mapping lists")
	}
	c.trapsOf("uk", a)[0x1000_0000] = trapInsn{}
	c.release("uk", a)
	c.release("uk", b)
	if a.Mappings != nil || a.Bases["app"] != 0x1000_0000 || a.Areas[loader.PartHeap] == 0 || a.Entropy == nil {
		t.Errorf("a released layout keeps %d mappings, bases %v, areas %v, entropy %v: want no mappings, the rest", len(a.Mappings), a.Bases, a.Areas, a.Entropy)
	}
	if c.mappings["uk"] == nil || len(c.traps["uk"].traps) != 1 {
		t.Fatal("the cache forgot a unikernel while the tracer was still starting instances")
	}
	c.settle()
	if c.mappings["uk"] != nil || c.traps["uk"].traps != nil || c.maps["uk\x00bases"] != nil || c.floats["uk\x00entropy"] != nil {
		t.Error("after the starts, the cache keeps a unikernel none of whose instances runs")
	}
	if c.mappings["other"] == nil {
		t.Fatal("the cache forgot a unikernel whose instance still runs")
	}
	c.release("other", other)
	if len(c.mappings) != 0 || len(c.maps) != 0 || len(c.floats) != 0 || len(c.users) != 0 || len(c.traps) != 0 || len(c.shapes) != 0 {
		t.Errorf("with no instance left the cache keeps %d lists, %d maps, %d float maps, %d users, %d trap caches", len(c.mappings), len(c.maps), len(c.floats), len(c.users), len(c.traps))
	}
}

// heapInUse is the Go heap's live bytes after a collection.
func heapInUse() uint64 {
	measure.Settle()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A plain image is read whole to be planned; once its instances run, the
// monitor keeps none of it (the bench's packed and aligned-image modes had
// the monitor hold every image's bytes for the whole run: 150 KiB per
// instance of a one-instance-per-unikernel fleet).
func TestHeldPlainImagesLeaveNoneOfTheirBytesInTheMonitor(t *testing.T) {
	const size = 4 << 20
	img := plainImage(t, fmt.Sprintf(`
	.data
big:	.fill %d, 1, 0x5a
	.text
	.globl _start
_start:
	mov big+%d(%%rip), %%al
	mov $0x501, %%dx
	mov $7, %%eax
	out %%eax, %%dx
	hlt
`, size, size-1))
	var uks []monitor.Unikernel
	for i := range 3 {
		uks = append(uks, monitor.Unikernel{Name: fmt.Sprint("img", i), Image: img})
	}
	for _, load := range []string{monitor.LoadNaive, monitor.LoadStock} {
		before := heapInUse()
		var held uint64
		rs := runPooled(t, uks, monitor.Options{N: 2, Load: load, Hold: time.Minute, Resident: func([]int) { held = heapInUse() }})
		for _, r := range rs {
			if r.Error != "" || r.ExitCode != 7 {
				t.Fatalf("%s %s/%d: exit %d error %q", load, r.Unikernel, r.Instance, r.ExitCode, r.Error)
			}
		}
		if grew := int64(held) - int64(before); grew > size/2 {
			t.Errorf("%s: with 6 instances of 3 images of %d MiB held, the monitor's heap grew by %d KiB", load, size>>20, grew>>10)
		}
	}
}

// A unikernel's files (a plain image's bytes) are read when its first
// instance is planned and dropped with its last, not all read before the
// first start: the monitor of 1000 plain images had all of them in its
// heap at once (200 MB), a peak it keeps part of for the whole run.
func TestAFleetsImagesAreNotAllInTheMonitorAtOnce(t *testing.T) {
	const size, images = 4 << 20, 6
	var uks []monitor.Unikernel
	for i := range images {
		img := plainImage(t, fmt.Sprintf(`
	.data
big:	.fill %d, 1, 0x%02x
	.text
	.globl _start
_start:
	mov big+%d(%%rip), %%al
	mov $0x501, %%dx
	mov $7, %%eax
	out %%eax, %%dx
	hlt
`, size, 0x10+i, size-1))
		uks = append(uks, monitor.Unikernel{Name: fmt.Sprint("img", i), Image: img})
	}
	before := heapInUse()
	var first uint64
	m := &Monitor{Threads: 1, built: func(in *instance) {
		if first == 0 {
			first = heapInUse()
		}
	}}
	rs, err := m.Run(context.Background(), uks, monitor.Options{N: 2, Load: monitor.LoadNaive, Timeout: guestTimeout})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Error != "" || r.ExitCode != 7 {
			t.Fatalf("%s/%d: exit %d error %q", r.Unikernel, r.Instance, r.ExitCode, r.Error)
		}
	}
	// The first unikernel's image (its second instance is still to be
	// planned), and what planning the first made of it; not the others.
	if grew := int64(first) - int64(before); grew > 2*size+size/2 {
		t.Errorf("as the first of %d instances of %d images of %d MiB was built, the monitor's heap had grown by %d KiB (the fleet's images are %d MiB)",
			images*2, images, size>>20, grew>>10, images*size>>20)
	}
}

// A unikernel none of whose instances is left to start needs its kept
// parts only while one runs: they go with its last running instance even
// while the tracer still starts others. Kept to the end of the starts, a
// fleet of 1000 different unikernels had every one's mapping list in the
// monitor at once (a snapshot's ~11 KiB: a 13 MB live-heap peak, which
// set the size of the pool monitor's heap and metadata for its run).
func TestLayoutCacheForgetsAUnikernelNoneOfWhoseInstancesIsLeftToStart(t *testing.T) {
	lay := func(lib string) *loader.Layout {
		return &loader.Layout{
			Mappings: []loader.Mapping{{Addr: 0x1000_0000, Size: 0x1000, Prot: 5, File: "/pool/blobs/sha256/" + lib, Library: lib, Part: "shared"}},
			Bases:    map[string]uint64{lib: 0x1000_0000},
		}
	}
	var c layoutCache
	c.expect([]string{"a", "b", "a", "c"})
	c.starting("a")
	a1 := c.keep("a", lay("a"))
	c.release("a", a1)
	if c.mappings["a"] == nil {
		t.Fatal("the cache forgot a unikernel with an instance still to start")
	}
	c.starting("b")
	b := c.keep("b", lay("b"))
	c.starting("a")
	a2 := c.keep("a", lay("a"))
	if &a2.Mappings[0] != &c.mappings["a"][0] {
		t.Error("the second instance of a does not share the first's kept mappings")
	}
	c.release("b", b)
	if c.mappings["b"] != nil || c.maps["b\x00bases"] != nil {
		t.Error("the cache keeps b's parts after its only instance ended, with the starts not done")
	}
	c.release("a", a2)
	if c.mappings["a"] != nil || c.traps["a"].traps != nil {
		t.Error("the cache keeps a's parts after its last instance ended")
	}
	if len(c.users) != 0 {
		t.Errorf("%d unikernels still counted as kept", len(c.users))
	}
	c.starting("c")
	c.settle()
	if c.left != nil {
		t.Error("the counts of instances left to start outlive the starts")
	}
}
