package loader

import (
	"encoding/binary"
	"testing"
)

func TestTheZeroPageCarriesTheBootProtocolHeaderCommandLineAndE820Map(t *testing.T) {
	zp, err := ZeroPage(0x2000_1000, "helloworld -- a b", []E820{{Addr: 0x2020_0000, Size: 16 << 20, Type: e820RAM}})
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	// Offsets as Unikraft's plat/kvm/include/kvm-x86/lxboot.h reads them.
	if le.Uint32(zp[497+17:]) != 0x53726448 || le.Uint16(zp[0x1fe:]) != 0xaa55 {
		t.Fatalf("HdrS or boot_flag missing")
	}
	if le.Uint32(zp[0x228:]) != 0x2000_1000 || le.Uint32(zp[0x238:]) != uint32(len("helloworld -- a b")) {
		t.Fatalf("command line pointer %#x size %d", le.Uint32(zp[0x228:]), le.Uint32(zp[0x238:]))
	}
	if zp[0x1e8] != 1 || le.Uint64(zp[0x2d0:]) != 0x2020_0000 || le.Uint64(zp[0x2d8:]) != 16<<20 || le.Uint32(zp[0x2e0:]) != 1 {
		t.Fatalf("e820 map wrong")
	}
	if _, err := ZeroPage(0, "", make([]E820, 129)); err == nil {
		t.Fatal("a 129-entry e820 map was accepted")
	}
}
