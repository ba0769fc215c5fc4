package process

import (
	"context"
	"testing"

	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
)

// Once its guest runs, an instance costs the monitor its own small state
// and nothing of its layout: not the copies (naive load copies every
// blob), not a mapping list of its own. All instances of a unikernel share
// one kept list; ASLR instances each keep their own, still without bytes.
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
		{monitor.LoadShared, true, 6},
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
		shapes := map[*loader.Mapping]bool{}
		for _, in := range insts {
			if in.err != "" || in.exitCode != 7 || string(in.output) != "L" {
				t.Fatalf("%s aslr=%v instance %d: exit %d output %q error %q", tc.load, tc.aslr, in.index, in.exitCode, in.output, in.err)
			}
			if in.plan != nil {
				t.Errorf("%s instance %d still holds its planning closure", tc.load, in.index)
			}
			shapes[&in.lay.Mappings[0]] = true
			for _, mp := range in.lay.Mappings {
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
