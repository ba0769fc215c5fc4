package elfimage

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
)

func TestDeadPagesRoundTrip(t *testing.T) {
	in := []PageRange{{0x4000_0000, 0x4000_2000}, {0x4000_3000, 0x4000_4000}, {0x4010_0000, 0x4010_5000}}
	got, err := ParseDeadPages("img", EncodeDeadPages(in))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, in) {
		t.Fatalf("got %v, want %v", got, in)
	}
	if got, err := ParseDeadPages("img", EncodeDeadPages(nil)); err != nil || got != nil {
		t.Fatalf("no ranges: got %v, %v", got, err)
	}
	for _, c := range []struct {
		va   uint64
		dead bool
	}{{0x3fff_f000, false}, {0x4000_0000, true}, {0x4000_1fff, true}, {0x4000_2000, false}, {0x4000_3000, true}, {0x4000_4000, false}, {0x4010_4fff, true}, {0x4010_5000, false}} {
		if IsDead(in, c.va) != c.dead {
			t.Errorf("IsDead(%#x) = %v, want %v", c.va, !c.dead, c.dead)
		}
	}
}

func TestDeadPagesRejects(t *testing.T) {
	good := EncodeDeadPages([]PageRange{{0x1000, 0x2000}, {0x3000, 0x4000}})
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"short", good[:5], "shorter than"},
		{"magic", edit(func(b []byte) []byte { b[0] = 'X'; return b }), "magic"},
		{"version", edit(func(b []byte) []byte { b[4] = 2; return b }), "version 2"},
		{"reserved", edit(func(b []byte) []byte { b[6] = 1; return b }), "reserved"},
		{"count", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 3); return b }), "want 60"},
		{"huge count", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 1<<31); return b }), "more than"},
		{"trailing", append(append([]byte(nil), good...), 0), "want 44"},
		{"unaligned", edit(func(b []byte) []byte { b[12] = 1; return b }), "not page-aligned"},
		{"empty", edit(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[20:], 0x1000); return b }), "empty or reversed"},
		{"overlap", edit(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[28:], 0x1000); return b }), "overlaps"},
	} {
		_, err := ParseDeadPages("some/image", c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "some/image") {
			t.Errorf("%s: error %v, want one naming the image and saying %q", c.name, err, c.want)
		}
	}
}

// FuzzParseDeadPages: the parser never panics, and what it accepts is
// sorted, page-aligned, non-overlapping and encodes back to its input.
func FuzzParseDeadPages(f *testing.F) {
	f.Add(EncodeDeadPages(nil))
	f.Add(EncodeDeadPages([]PageRange{{0x4000_0000, 0x4000_2000}, {0x4000_3000, 0x4000_4000}}))
	f.Add([]byte("UPDP\x01\x00\x00\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := ParseDeadPages("fuzz", data)
		if err != nil {
			return
		}
		for i, r := range rs {
			if r.Start%0x1000 != 0 || r.End%0x1000 != 0 || r.Start >= r.End || (i > 0 && r.Start < rs[i-1].End) {
				t.Fatalf("accepted bad range %d %v", i, r)
			}
			if !IsDead(rs, r.Start) || !IsDead(rs, r.End-1) || IsDead(rs, r.End) && (i+1 == len(rs) || rs[i+1].Start != r.End) {
				t.Fatalf("IsDead disagrees with range %d %v", i, r)
			}
		}
		if string(EncodeDeadPages(rs)) != string(data) {
			t.Fatalf("accepted %x, encodes back to %x", data, EncodeDeadPages(rs))
		}
	})
}
