package desc

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSnapshotValidateRefusesWhatALoaderCannotMap(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	good := Snapshot{MemSize: 1 << 20, BootArea: 1 << 16, Pages: []Page{{Addr: 0x2000_0000, Digest: d}, {Addr: 0x2000_1000, Digest: d},
		{Addr: 0x2000_2000, Digest: d, Blob: d, Offset: 0x3000}}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good snapshot refused: %v", err)
	}
	since15 := good
	since15.BootArea, since15.StackBootArea, since15.StackBootRoom = 0, 1<<16, 0xc00
	if err := since15.Validate(); err != nil {
		t.Fatalf("a snapshot with its boot area at the stack's top refused: %v", err)
	}
	if b := good.Pages[0].BlobDigest(); b != d {
		t.Errorf("a page of its own: blob %s, want its digest", b)
	}
	for want, s := range map[string]Snapshot{
		"mem_size":         {MemSize: 0, BootArea: 1 << 16},
		"boot_area":        {MemSize: 1 << 20, BootArea: 100},
		"stack_boot_area":  {MemSize: 1 << 20, StackBootArea: 100, StackBootRoom: 0xc00},
		"stack_boot_room":  {MemSize: 1 << 20, StackBootArea: 1 << 16},
		"exactly one":      {MemSize: 1 << 20, BootArea: 1 << 16, StackBootArea: 1 << 16},
		"want exactly one": {MemSize: 1 << 20},
		"not page-aligned": {MemSize: 1 << 20, BootArea: 1 << 16, Pages: []Page{{Addr: 0x2000_0010, Digest: d}}},
		"does not follow":  {MemSize: 1 << 20, BootArea: 1 << 16, Pages: []Page{{Addr: 0x2000_1000, Digest: d}, {Addr: 0x2000_1000, Digest: d}}},
		"is not sha256":    {MemSize: 1 << 20, BootArea: 1 << 16, Pages: []Page{{Addr: 0x2000_0000, Digest: "sha256:XYZ"}}},
		"64 hex digits":    {MemSize: 1 << 20, BootArea: 1 << 16, Pages: []Page{{Addr: 0x2000_0000, Digest: "md5:" + strings.Repeat("ab", 32)}}},
		"without a pack":   {MemSize: 1 << 20, BootArea: 1 << 16, Pages: []Page{{Addr: 0x2000_0000, Digest: d, Offset: 0x1000}}},
		"pack blob":        {MemSize: 1 << 20, BootArea: 1 << 16, Pages: []Page{{Addr: 0x2000_0000, Digest: d, Blob: "sha256:12"}}},
		"in its pack":      {MemSize: 1 << 20, BootArea: 1 << 16, Pages: []Page{{Addr: 0x2000_0000, Digest: d, Blob: d, Offset: 0x10}}},
		"too large":        {MemSize: 1 << 20, BootArea: 1 << 16, Pages: []Page{{Addr: 0x2000_0000, Digest: d, Blob: d, Offset: MaxSnapshotPackSize}}},
	} {
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: err %v, want %q", s, err, want)
		}
	}
}

// FuzzParse: a description from a pool or a registry is untrusted; Parse
// never panics, and what it accepts validates again after a round trip.
func FuzzParse(f *testing.F) {
	d := "sha256:" + strings.Repeat("0f", 32)
	f.Add([]byte(`{"schema_version":1,"layout":"aligned","mem_size":1048576,"entry":{"lib":0,"off":0},` +
		`"libraries":[{"name":"a","region":{"start":1073741824,"tramp_size":0,"shared_size":4096,"private_size":4096},` +
		`"tramp":{"size":0},"shared":{"size":4096},"private":{"file_size":0,"mem_size":4096}}],` +
		`"snapshot":{"monitor":"process","mem_size":1048576,"boot_area":65536,"regs":{"rip":1073741824},` +
		`"pages":[{"addr":536870912,"digest":"` + d + `"}]}}`))
	f.Add([]byte(`{"schema_version":1,"snapshot":{"pages":[{"addr":1}]}}`))
	f.Add([]byte(`{"schema_version":1,"snapshot":{"monitor":"process","mem_size":1048576,"boot_area":65536,` +
		`"pages":[{"addr":536870912,"digest":"` + d + `","blob":"` + d + `","offset":8192}]}}`))
	if pack, err := json.Marshal(packConfig()); err == nil {
		f.Add(pack)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(again); err != nil {
			t.Fatalf("accepted %s, refused its round trip: %v", data, err)
		}
	})
}
