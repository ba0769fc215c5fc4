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
		m := &Monitor{Threads: 1, ran: func(in []*instance) { insts = in }}
		opt := monitor.Options{N: 6, Load: tc.load, ASLR: tc.aslr, Timeout: guestTimeout}
		uk := calls
		if tc.aslr {
			uk = alone
		}
		if _, err := m.Run(context.Background(), []monitor.Unikernel{uk}, opt); err != nil {
			t.Fatal(err)
		}
		shapes, kept := map[*loader.Mapping]bool{}, map[*loader.Mapping]bool{}
		for _, in := range insts {
			if in.lay.Mappings != nil {
				shapes[&in.lay.Mappings[0]] = true
				for i := range in.lay.Mappings {
					kept[&in.lay.Mappings[i]] = true
				}
			}
		}
		for _, in := range insts {
			if in.err != "" || in.exitCode != 7 || string(in.output) != "L" {
				t.Fatalf("%s aslr=%v instance %d: exit %d output %q error %q", tc.load, tc.aslr, in.index, in.exitCode, in.output, in.err)
			}
			if in.plan != nil {
				t.Errorf("%s instance %d still holds its planning closure", tc.load, in.index)
			}
			if in.lay.Mappings == nil {
				if !tc.aslr || len(in.lay.Placed) == 0 {
					t.Fatalf("%s aslr=%v instance %d keeps neither mappings nor their places", tc.load, tc.aslr, in.index)
				}
				for _, p := range in.lay.Placed {
					if !kept[p.M] {
						t.Errorf("instance %d: %s/%s at %#x is no kept mapping", in.index, p.M.Library, p.M.Part, p.Addr)
					}
				}
				// Find names what lies at the instance's own addresses.
				for _, part := range []string{loader.PartStack, loader.PartHeap, loader.PartBootInfo} {
					a := in.lay.Areas[part]
					if m := in.lay.Find(a + 8); m == nil || m.Part != part || m.Addr != a {
						t.Errorf("instance %d: Find(%s+8) = %+v, want the %s at %#x", in.index, part, m, part, a)
					}
				}
			}
			for _, mp := range in.lay.AllMappings() {
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
