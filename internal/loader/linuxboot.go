package loader

import (
	"debug/elf"
	"encoding/binary"
	"fmt"

	"github.com/unipool/unipool/internal/abi"
)

// The Linux x86-64 boot protocol as Firecracker speaks it
// (Documentation/arch/x86/boot.rst; Unikraft's plat/kvm/x86/lxboot.c
// reads it): the kernel's ELF entry runs in 64-bit mode with paging on and
// memory identity-mapped, %rsi pointing at a zero page (struct
// boot_params) that holds the setup header, the command line pointer and
// an e820 memory map. Guest-physical addresses equal guest-virtual ones.

// Parts of a Linux-boot layout.
const (
	PartZeroPage = "zero page" // boot_params, and the command line when it fits
	PartCmdline  = "cmdline"   // a command line too long for the info page
	PartRAM      = "ram"       // the e820 RAM the guest allocates from
	// PartVGA is the legacy VGA hole: Unikraft's VGA console writes text
	// to 0xb8000. Private, touched only if written.
	PartVGA = "vga"
)

// Offsets in struct boot_params (arch/x86/include/uapi/asm/bootparam.h).
const (
	bpExtCmdLinePtr = 0x0c8
	bpE820Entries   = 0x1e8
	bpBootFlag      = 0x1fe
	bpHeader        = 0x202
	bpVersion       = 0x206
	bpTypeOfLoader  = 0x210
	bpCmdLinePtr    = 0x228
	bpCmdLineSize   = 0x238
	bpE820Table     = 0x2d0
	e820EntrySize   = 20
	e820MaxEntries  = 128

	hdrSMagic     = 0x53726448 // "HdrS"
	bootFlagMagic = 0xaa55
	bootVersion   = 0x020f // the 2.15 protocol
	e820RAM       = 1
)

// Guest-physical layout of a Linux-boot instance, in its per-instance
// area (abi.LegacyPrivateBase): the zero page (with the command line in
// its tail, or the command line's own pages after it when too long),
// then the RAM on a 2 MiB boundary.
const (
	vgaStart = 0xa0000
	vgaEnd   = 0xc0000
	// LinuxMinMem is the least RAM a Linux-boot guest gets: Unikraft's
	// allocators, stacks and page-table pool come out of it.
	LinuxMinMem = 16 << 20
	ramAlign    = 2 << 20
)

// E820 is one entry of the memory map the zero page carries.
type E820 struct {
	Addr, Size uint64
	Type       uint32
}

// ZeroPage encodes struct boot_params for a kernel with this command line
// (at cmdAddr) and memory map.
func ZeroPage(cmdAddr uint64, cmdline string, e820 []E820) ([]byte, error) {
	if len(e820) > e820MaxEntries {
		return nil, fmt.Errorf("e820 map of %d entries (at most %d)", len(e820), e820MaxEntries)
	}
	le := binary.LittleEndian
	zp := make([]byte, abi.PageSize)
	le.PutUint16(zp[bpBootFlag:], bootFlagMagic)
	le.PutUint32(zp[bpHeader:], hdrSMagic)
	le.PutUint16(zp[bpVersion:], bootVersion)
	zp[bpTypeOfLoader] = 0xff // "undefined" boot loader
	le.PutUint32(zp[bpCmdLinePtr:], uint32(cmdAddr))
	le.PutUint32(zp[bpExtCmdLinePtr:], uint32(cmdAddr>>32))
	le.PutUint32(zp[bpCmdLineSize:], uint32(len(cmdline)))
	zp[bpE820Entries] = byte(len(e820))
	for i, e := range e820 {
		d := zp[bpE820Table+i*e820EntrySize:]
		le.PutUint64(d[0:], e.Addr)
		le.PutUint64(d[8:], e.Size)
		le.PutUint32(d[16:], e.Type)
	}
	return zp, nil
}

// addLinuxBootMemory lays out a Linux-boot instance's own memory: the
// zero page with the command line in its tail, the RAM (the one e820 RAM
// entry; the image's own memory is described by the image, e.g.
// Unikraft's .uk_bootinfo) and the VGA hole.
func (lay *Layout) addLinuxBootMemory(opt Options) error {
	return lay.addFirmwareMemory(opt, BootLinux64, PartZeroPage, bpCmdlineOff, func(_, cmdAddr uint64, ram []E820) ([]byte, error) {
		return ZeroPage(cmdAddr, opt.Cmdline, ram)
	})
}

// bpCmdlineOff is where the command line goes in the zero page when it
// fits: right after e820_table (0x2d0 + 128 entries of 20 bytes). What
// boot_params has there (Linux's bootparam.h: _pad8[48], eddbuf[6] at
// 0xd00, _pad9) a kernel uses only as far as eddbuf_entries says, 0 here;
// Unikraft's lxboot.h declares it padding (_pad8[4096 - 3280]) and
// lxboot.c reads nothing of it. 816 bytes: a command line of up to 815
// and its NUL.
const bpCmdlineOff = bpE820Table + e820MaxEntries*e820EntrySize

// addFirmwareMemory lays out the own memory of an instance that boots by
// a firmware-style protocol (Linux, multiboot): the protocol's info page
// (made by info from its address, the command line's and the RAM), the
// command line, the RAM on a 2 MiB boundary, the VGA hole. BootInfo is
// the info page's address.
//
// The command line goes into the info page at cmdOff (a part of it the
// protocol's info leaves unused) when it fits with its NUL, so the guest
// writes one private page for both, not two: the info page's Part stays
// infoPart. A longer one gets pages of its own (Part PartCmdline) right
// after the info page, as before. Either way the RAM starts at the same
// 2 MiB boundary (for any command line under 2 MiB less a page), so the
// memory map is the same.
func (lay *Layout) addFirmwareMemory(opt Options, boot, infoPart string, cmdOff uint64, info func(infoAddr, cmdAddr uint64, ram []E820) ([]byte, error)) error {
	mem := max(opt.MemSize, LinuxMinMem)
	infoAddr := uint64(abi.LegacyPrivateBase)
	cmdAddr, cmdSize := infoAddr+cmdOff, uint64(0) // cmdSize: pages of its own
	if uint64(len(opt.Cmdline))+1 > abi.PageSize-cmdOff {
		cmdAddr = infoAddr + abi.PageSize
		cmdSize = pageUp(uint64(len(opt.Cmdline)) + 1)
	}
	ramAddr := (infoAddr + abi.PageSize + cmdSize + ramAlign - 1) &^ (ramAlign - 1)
	ramSize := pageDown(mem)
	if ramAddr+ramSize > abi.MapBase {
		return fmt.Errorf("memory size %d MiB: the RAM would run into the library map at %#x", mem>>20, uint64(abi.MapBase))
	}
	page, err := info(infoAddr, cmdAddr, []E820{{Addr: ramAddr, Size: ramSize, Type: e820RAM}})
	if err != nil {
		return err
	}
	lay.Boot = boot
	lay.BootInfo = infoAddr
	lay.Mappings = append(lay.Mappings,
		Mapping{Addr: vgaStart, Size: vgaEnd - vgaStart, Prot: ProtRead | ProtWrite, Part: PartVGA},
		Mapping{Addr: infoAddr, Size: abi.PageSize, Prot: ProtRead | ProtWrite, Data: page, Part: infoPart})
	if cmdSize == 0 {
		if len(page) != abi.PageSize || !allZero(page[cmdOff:]) {
			return fmt.Errorf("%s: the info page does not leave [%#x,%#x) to the command line", boot, cmdOff, abi.PageSize)
		}
		copy(page[cmdOff:], opt.Cmdline) // the NUL after it: the page's zeros
	} else {
		lay.Mappings = append(lay.Mappings,
			Mapping{Addr: cmdAddr, Size: cmdSize, Prot: ProtRead | ProtWrite, Data: append([]byte(opt.Cmdline), 0), Part: PartCmdline})
	}
	lay.Mappings = append(lay.Mappings, Mapping{Addr: ramAddr, Size: ramSize, Prot: ProtRead | ProtWrite, Part: PartRAM})
	return nil
}

// isUnikraftImage tells a plain image that boots by the Linux protocol:
// a Unikraft kvm-platform image carries a .uk_bootinfo section.
func isUnikraftImage(f *elf.File) bool {
	return f.Section(".uk_bootinfo") != nil
}

// Boot is the boot protocol of every instance of p: "" (the unipool
// guest ABI), BootLinux64 or BootMultiboot.
func (p *Prepared) Boot() string {
	if p.image != nil {
		if p.image.multiboot {
			return BootMultiboot
		}
		if p.image.linux {
			return BootLinux64
		}
		return ""
	}
	return p.cfg.Boot
}

// allZero tells whether b holds only zero bytes.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
