package abi

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

func TestBootInfoLayoutMatchesGuestHeader(t *testing.T) {
	b := BootInfo{Magic: BootInfoMagic, Version: BootInfoVersion, TLSAlign: 0xcd00, Canary: 0x1100, TLSAreaSize: 0x2200}
	raw := b.Marshal()
	if len(raw) != BootInfoSize {
		t.Fatalf("encoded %d bytes, want %d", len(raw), BootInfoSize)
	}
	if string(raw[:8]) != "UNIPOOL1" {
		t.Fatalf("magic reads %q", raw[:8])
	}
	// The offsets bootinfo.h states in its field comments.
	h, err := os.ReadFile("../../guest/plat/include/uk/bootinfo.h")
	if err != nil {
		t.Fatal(err)
	}
	off := map[string]int{}
	for _, m := range regexp.MustCompile(`uint\d+_t (\w+);\s+/\*\s*(\d+)`).FindAllStringSubmatch(string(h), -1) {
		n, _ := strconv.Atoi(m[2])
		off[m[1]] = n
	}
	for field, want := range map[string]byte{"tls_align": 0xcd, "canary": 0x11, "tls_area_size": 0x22} {
		o, ok := off[field]
		if !ok {
			t.Fatalf("bootinfo.h has no %s", field)
		}
		if raw[o+1] != want {
			t.Errorf("%s: bootinfo.h says offset %d, Marshal put %#x there", field, o, raw[o+1])
		}
	}
}

func TestVersionOneBootInfoIsItsFirst128BytesWithoutTheCanary(t *testing.T) {
	b := BootInfo{Magic: BootInfoMagic, Version: 1, Seed: 7, TLSAlign: 64, Canary: 0x1100}
	v1 := b.Marshal()
	b.Version = 2
	v2 := b.Marshal()
	if len(v1) != BootInfoSizeV1 || len(v2) != BootInfoSize {
		t.Fatalf("sizes %d, %d; want %d, %d", len(v1), len(v2), BootInfoSizeV1, BootInfoSize)
	}
	if v1[8] != 1 || string(v1[12:]) != string(v2[12:BootInfoSizeV1]) {
		t.Errorf("version 1 is not version 2's prefix with its own version")
	}
}
