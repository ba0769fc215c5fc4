package desc

import (
	"strings"
	"testing"
)

func TestAMovedLibrarysMapRegionIsItsRegionMovedBackAndWithinTheMaps(t *testing.T) {
	m := Region{Start: 0x4000_6000, SharedSize: 0x6000, PrivateStart: 0x7000_0100, PrivateSize: 0x400}
	l := Library{Name: "ukx", Shift: 0x3000, Region: Region{Start: 0x4000_9000, SharedSize: 0x1000, PrivateStart: 0x7000_3100, PrivateSize: 0x40}}
	if got := l.MapRegion(); !got.Within(m) {
		t.Errorf("map region %+v not within %+v", got, m)
	}
	for _, bad := range []Region{
		{Start: 0x4000_7000, SharedSize: 0x1000, PrivateStart: 0x7000_1100, PrivateSize: 0x40},  // another start
		{Start: 0x4000_6000, SharedSize: 0x7000, PrivateStart: 0x7000_0100, PrivateSize: 0x40},  // more code room than the map's
		{Start: 0x4000_6000, SharedSize: 0x1000, PrivateStart: 0x7000_0100, PrivateSize: 0x800}, // more private room
		{Start: 0x4000_6000, SharedSize: 0x1000, PrivateStart: 0x7000_0110, PrivateSize: 0x40},  // another offset in its page
	} {
		if bad.Within(m) {
			t.Errorf("%+v within %+v", bad, m)
		}
	}
}

func TestValidateRefusesAShiftThatIsNotWholePagesOrOfALibraryThatCannotMove(t *testing.T) {
	lib := func(shift int64, dense bool) Library {
		l := Library{Name: "ukx", Shift: shift, Region: Region{Start: 0x4000_0000, SharedSize: 0x1000, PrivateSize: 0x1000}}
		if dense {
			l.Region.PrivateStart, l.Region.PrivateSize = 0x7000_0000, 0x40
		}
		return l
	}
	for _, c := range []struct {
		l    Library
		want string
	}{
		{lib(0x800, true), "by whole pages"},
		{lib(0x1000, false), "only a dense library moves"},
	} {
		cfg := Config{SchemaVersion: SchemaVersionDense, Libraries: []Library{c.l}}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("shift %#x (dense %v): %v, want %q", c.l.Shift, c.l.Region.Dense(), err, c.want)
		}
	}
	cfg := Config{SchemaVersion: SchemaVersionDense, Libraries: []Library{lib(-0x2000, true)}}
	if err := cfg.Validate(); err != nil && strings.Contains(err.Error(), "shift") {
		t.Errorf("a dense library moved by -2 pages: %v", err)
	}
}

func TestValidateRefusesMoreLibrariesThanTheBoundBeforeComparingThem(t *testing.T) {
	libs := make([]Library, MaxLibraries+1)
	for i := range libs {
		// All at one address: a pairwise check would report an overlap.
		libs[i] = Library{Name: "ukx", Region: Region{Start: 0x4000_0000, SharedSize: 0x1000, PrivateSize: 0x1000}}
	}
	cfg := Config{SchemaVersion: SchemaVersionDense, Libraries: libs}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "at most 4096") {
		t.Errorf("%d libraries: %v, want refused by the bound", len(libs), err)
	}
	cfg.Libraries = libs[:2]
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("2 overlapping libraries: %v, want an overlap", err)
	}
}
