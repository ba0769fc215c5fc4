package loader

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/abi"
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

// layoutBytes reads n bytes at addr as a layout's mappings would have the
// guest see them (Data, then zeros).
func layoutBytes(t *testing.T, lay *Layout, addr, n uint64) []byte {
	t.Helper()
	m := lay.Find(addr)
	if m == nil || addr+n > m.Addr+m.Size {
		t.Fatalf("[%#x,+%d) is not within one mapping", addr, n)
	}
	out := make([]byte, n)
	if off := addr - m.Addr; off < uint64(len(m.Data)) {
		copy(out, m.Data[off:])
	}
	return out
}

// firmwareParts is the parts of a firmware-boot layout's mappings, in
// order, with their sizes in pages.
func firmwareParts(lay *Layout) []string {
	var out []string
	for _, m := range lay.Mappings {
		out = append(out, m.Part+":"+strconv.FormatUint(m.Size/abi.PageSize, 10))
	}
	return out
}

// TestALinuxBootCommandLineLiesInTheZeroPagesTailWhenItFits: a command
// line of up to 815 bytes goes into the zero page after its e820 table
// (what boot_params has there, Unikraft's lxboot.h and Linux's EDD
// buffers with zero counts, nobody reads), so an instance's protocol
// memory is one page, not two; one byte more and it gets a page of its
// own after the zero page, as every command line did before. The memory
// map is the same either way: the RAM at 0x2020_0000.
func TestALinuxBootCommandLineLiesInTheZeroPagesTailWhenItFits(t *testing.T) {
	le := binary.LittleEndian
	for _, c := range []struct {
		cmdline string
		parts   []string
		cmdAddr uint64
	}{
		{"helloworld -- a b", []string{"vga:32", "zero page:1", "ram:4096"}, 0x2000_0cd0},
		{"", []string{"vga:32", "zero page:1", "ram:4096"}, 0x2000_0cd0},
		{strings.Repeat("x", 815), []string{"vga:32", "zero page:1", "ram:4096"}, 0x2000_0cd0},
		{strings.Repeat("y", 816), []string{"vga:32", "zero page:1", "cmdline:1", "ram:4096"}, 0x2000_1000},
		{strings.Repeat("z", 5000), []string{"vga:32", "zero page:1", "cmdline:2", "ram:4096"}, 0x2000_1000},
	} {
		lay := &Layout{}
		if err := lay.addLinuxBootMemory(Options{Cmdline: c.cmdline}); err != nil {
			t.Fatalf("%d bytes: %v", len(c.cmdline), err)
		}
		if got := firmwareParts(lay); strings.Join(got, " ") != strings.Join(c.parts, " ") {
			t.Errorf("%d bytes: parts %q, want %q", len(c.cmdline), got, c.parts)
		}
		if lay.Boot != BootLinux64 || lay.BootInfo != abi.LegacyPrivateBase {
			t.Fatalf("boot %q info %#x", lay.Boot, lay.BootInfo)
		}
		zp := layoutBytes(t, lay, lay.BootInfo, abi.PageSize)
		ptr := uint64(le.Uint32(zp[bpCmdLinePtr:])) | uint64(le.Uint32(zp[bpExtCmdLinePtr:]))<<32
		if ptr != c.cmdAddr || le.Uint32(zp[bpCmdLineSize:]) != uint32(len(c.cmdline)) {
			t.Errorf("%d bytes: command line at %#x, %d bytes; want %#x", len(c.cmdline), ptr, le.Uint32(zp[bpCmdLineSize:]), c.cmdAddr)
		}
		if got := layoutBytes(t, lay, ptr, uint64(len(c.cmdline))+1); string(got) != c.cmdline+"\x00" {
			t.Errorf("%d bytes: the guest reads %.40q... at the pointer", len(c.cmdline), got)
		}
		// What Unikraft reads of boot_params is as ZeroPage alone makes
		// it: the command line changes nothing below the e820 table's end.
		alone, err := ZeroPage(ptr, c.cmdline, []E820{{Addr: 0x2020_0000, Size: LinuxMinMem, Type: e820RAM}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(zp[:bpCmdlineOff], alone[:bpCmdlineOff]) {
			t.Errorf("%d bytes: boot_params below %#x differs from the zero page alone", len(c.cmdline), bpCmdlineOff)
		}
		if zp[bpE820Entries] != 1 || le.Uint64(zp[bpE820Table:]) != 0x2020_0000 || le.Uint64(zp[bpE820Table+8:]) != LinuxMinMem {
			t.Errorf("%d bytes: e820 %d entries, first %#x+%#x; want the RAM at 0x2020_0000", len(c.cmdline),
				zp[bpE820Entries], le.Uint64(zp[bpE820Table:]), le.Uint64(zp[bpE820Table+8:]))
		}
		if ram := lay.Find(0x2020_0000); ram == nil || ram.Part != PartRAM || ram.Addr != 0x2020_0000 || ram.Size != LinuxMinMem {
			t.Errorf("%d bytes: RAM mapping %+v", len(c.cmdline), ram)
		}
	}
}

// TestAFirmwareInfoPageThatUsesTheCommandLinesRoomIsRefused: the command
// line only goes where the protocol's info leaves zeros.
func TestAFirmwareInfoPageThatUsesTheCommandLinesRoomIsRefused(t *testing.T) {
	lay := &Layout{}
	err := lay.addFirmwareMemory(Options{Cmdline: "a"}, BootLinux64, PartZeroPage, bpCmdlineOff, func(_, _ uint64, _ []E820) ([]byte, error) {
		p := make([]byte, abi.PageSize)
		p[abi.PageSize-1] = 1
		return p, nil
	})
	if err == nil || !strings.Contains(err.Error(), "command line") {
		t.Errorf("error %v, want a refusal", err)
	}
}
