package abi

import "testing"

func TestBootInfoLayoutMatchesGuestHeader(t *testing.T) {
	b := BootInfo{Magic: BootInfoMagic, Version: 1, TLSAlign: 0xabcd}
	raw := b.Marshal()
	if len(raw) != BootInfoSize {
		t.Fatalf("encoded %d bytes, want %d", len(raw), BootInfoSize)
	}
	// tls_align is the last field, at offset 120 in bootinfo.h.
	if raw[120] != 0xcd || raw[121] != 0xab {
		t.Fatalf("tls_align not at offset 120")
	}
	if string(raw[:8]) != "UNIPOOL1" {
		t.Fatalf("magic reads %q", raw[:8])
	}
}
