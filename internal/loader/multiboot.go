package loader

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/unipool/unipool/internal/abi"
)

// Multiboot (version 1, the GNU Multiboot Specification 0.6.96) as QEMU's
// -kernel and GRUB speak it: Unikraft's QEMU flavour of the kvm platform
// (CONFIG_KVM_BOOT_PROTO_MULTIBOOT) makes an ELF32 image (its
// support/scripts/multiboot.py puts ELF32 headers and a multiboot header
// in front of the ELF64 kernel) whose entry runs in 32-bit protected
// mode, paging off, flat segments, with %eax = 0x2BADB002 and %ebx = the
// physical address of the multiboot information. Guest-physical =
// guest-virtual below 4 GiB, as for BootLinux64.

// BootMultiboot is the Multiboot 1 protocol (32-bit entry).
const BootMultiboot = "multiboot"

// Multiboot constants (multiboot.h of the specification).
const (
	MultibootHeaderMagic     = 0x1BADB002
	MultibootBootloaderMagic = 0x2BADB002
	multibootSearch          = 8192

	mbHeaderPageAlign  = 1 << 0  // modules page-aligned (we load none)
	mbHeaderMemInfo    = 1 << 1  // mem_* (and the map) in the info
	mbHeaderVideoMode  = 1 << 2  // a video mode request (optional: ignored)
	mbHeaderAoutKludge = 1 << 16 // load addresses in the header, not ELF

	mbInfoMemory     = 1 << 0
	mbInfoCmdline    = 1 << 2
	mbInfoMemMap     = 1 << 6
	mbInfoLoaderName = 1 << 9

	// Offsets in struct multiboot_info.
	mbiFlags      = 0
	mbiMemLower   = 4
	mbiMemUpper   = 8
	mbiCmdline    = 16
	mbiMmapLength = 44
	mbiMmapAddr   = 48
	mbiLoaderName = 64
	// Where the memory map, the boot loader's name and (when it fits:
	// up to 2031 bytes) the command line go in the info page.
	mbiMmapOff       = 0x100
	mbiLoaderNameOff = 0x800
	mbiCmdlineOff    = 0x810
	mbMmapEntrySize  = 24 // u32 size (= 20, not counting itself), u64 addr, u64 len, u32 type

	// MultibootLoaderName is what the info says loaded the kernel.
	MultibootLoaderName = "unipool"
)

// PartMultibootInfo is the multiboot information page of an instance.
const PartMultibootInfo = "multiboot info"

// multibootHeader finds the multiboot header in the first 8 KiB of an
// image file: the magic at a 4-byte boundary, its flags, and a checksum
// that makes the three words sum to 0. ok is false when there is none;
// err says why a header that is there cannot be honoured.
func multibootHeader(r io.ReaderAt) (flags uint32, ok bool, err error) {
	buf := make([]byte, multibootSearch)
	n, rerr := r.ReadAt(buf, 0)
	if rerr != nil && rerr != io.EOF {
		return 0, false, rerr
	}
	le := binary.LittleEndian
	for off := 0; off+12 <= n; off += 4 {
		if le.Uint32(buf[off:]) != MultibootHeaderMagic {
			continue
		}
		flags = le.Uint32(buf[off+4:])
		if MultibootHeaderMagic+flags+le.Uint32(buf[off+8:]) != 0 {
			continue // the magic by chance, not a header
		}
		// Bits 0-15 are requirements: a loader that cannot meet one
		// must refuse the kernel.
		if req := flags & 0xffff &^ (mbHeaderPageAlign | mbHeaderMemInfo | mbHeaderVideoMode); req != 0 {
			return flags, true, fmt.Errorf("multiboot header at offset %#x requires features %#x this loader lacks", off, req)
		}
		if flags&mbHeaderAoutKludge != 0 {
			return flags, true, fmt.Errorf("multiboot header at offset %#x gives load addresses (a.out kludge); only ELF images are loaded", off)
		}
		return flags, true, nil
	}
	return 0, false, nil
}

// isMultibootImage tells an ELF32 i386 image a multiboot loader boots:
// it has a multiboot header in its first 8 KiB.
func isMultibootImage(f *elf.File, r io.ReaderAt) (bool, error) {
	if f.Class != elf.ELFCLASS32 || f.Machine != elf.EM_386 {
		return false, nil
	}
	_, ok, err := multibootHeader(r)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, fmt.Errorf("an ELF32 image without a multiboot header in its first %d bytes", multibootSearch)
	}
	return true, nil
}

// MultibootInfo encodes the multiboot information for a kernel with this
// command line (at cmdAddr) and memory map, to be placed at infoAddr (one
// page: the info, the map at +0x100, the loader's name at +0x800; the
// layout puts the command line at +0x810 when it fits). Unikraft's
// multiboot.c reads the info's fields, the map, the name and the command
// line by their pointers only.
// mem_lower and mem_upper say 0: the guest has no conventional memory
// below 640 KiB and no RAM contiguous from 1 MiB other than its own
// image; the map is what describes its memory.
func MultibootInfo(infoAddr, cmdAddr uint64, mmap []E820) ([]byte, error) {
	if mbiMmapOff+len(mmap)*mbMmapEntrySize > mbiLoaderNameOff {
		return nil, fmt.Errorf("multiboot memory map of %d entries does not fit the info page", len(mmap))
	}
	if infoAddr+abi.PageSize > 1<<32 || cmdAddr >= 1<<32 {
		return nil, fmt.Errorf("multiboot information at %#x, command line at %#x: above 4 GiB", infoAddr, cmdAddr)
	}
	le := binary.LittleEndian
	mbi := make([]byte, abi.PageSize)
	le.PutUint32(mbi[mbiFlags:], mbInfoMemory|mbInfoCmdline|mbInfoMemMap|mbInfoLoaderName)
	le.PutUint32(mbi[mbiMemLower:], 0)
	le.PutUint32(mbi[mbiMemUpper:], 0)
	le.PutUint32(mbi[mbiCmdline:], uint32(cmdAddr))
	for i, e := range mmap {
		d := mbi[mbiMmapOff+i*mbMmapEntrySize:]
		le.PutUint32(d[0:], mbMmapEntrySize-4)
		le.PutUint64(d[4:], e.Addr)
		le.PutUint64(d[12:], e.Size)
		le.PutUint32(d[20:], e.Type)
	}
	le.PutUint32(mbi[mbiMmapLength:], uint32(len(mmap)*mbMmapEntrySize))
	le.PutUint32(mbi[mbiMmapAddr:], uint32(infoAddr+mbiMmapOff))
	copy(mbi[mbiLoaderNameOff:], MultibootLoaderName+"\x00")
	le.PutUint32(mbi[mbiLoaderName:], uint32(infoAddr+mbiLoaderNameOff))
	return mbi, nil
}

// addMultibootMemory lays out a multiboot instance's own memory as
// addLinuxBootMemory does, with the multiboot info where the zero page
// would be (the command line in its page from +0x810 when it fits).
// BootInfo is the info's address, for %ebx.
func (lay *Layout) addMultibootMemory(opt Options) error {
	return lay.addFirmwareMemory(opt, BootMultiboot, PartMultibootInfo, mbiCmdlineOff, MultibootInfo)
}
