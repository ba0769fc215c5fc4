// Package abi holds the guest ABI shared by the guest (guest/plat), the
// toolchain and both monitors: fixed guest addresses, I/O ports and the
// boot-info structure. guest/plat/include/uk/bootinfo.h mirrors BootInfo
// byte for byte; change both together.
package abi

import (
	"encoding/binary"
)

// I/O ports the guest writes to. Both monitors trap them.
const (
	// PortCOM1 receives console bytes (outb).
	PortCOM1 = 0x3f8
	// PortExit ends the guest: the value written (outl, or outb) is the exit code.
	// QEMU's isa-debug-exit uses the same port.
	PortExit = 0x501
	// PortReady is the ready point (guest/plat ukplat_ready): boot is
	// done and the guest has read nothing of its own instance yet (command
	// line, seed, clock). A cold boot ignores the write; `unipool
	// snapshot` stops the guest there and keeps its memory, and an
	// instance started from that snapshot resumes right after the write,
	// with its own boot info.
	PortReady = 0x502
	// PortDiscard is free-page reporting (guest/plat ukplat_discard): the
	// guest no longer needs the whole pages of [%rdi, %rdi+%rsi). A monitor
	// gives back those of them that lie in the instance's heap or stack
	// (loader.Layout.Discardable), after which each reads as zero or as
	// the snapshot the instance started from had it; the guest treats
	// their bytes as undefined. A monitor may ignore the write.
	PortDiscard = 0x503
)

// Guest virtual address layout. Monitors and the linker agree on these.
const (
	// PackedBase is where ld's default script puts packed/dce images.
	// Packed images must fit below LegacyAppRegionBase.
	PackedBase = 0x0040_0000
	// AppRegionBase is the region of an aligned image's own code (its app):
	// every image puts its app here, because no other image shares it, so it
	// needs no slot in the global library map. It lies in the map's GiB,
	// below the data arena, and the per-instance memory (PrivateBase)
	// follows it in the same 2 MiB: an instance's app, boot info, stack
	// and first heap pages share one page-table page, and the instance
	// needs no page-middle-directory page for GiB 0 (8 KiB of kernel
	// memory per instance process less than with the legacy addresses).
	// The map hands out no region from here to DataArenaLimit.
	AppRegionBase = 0x6000_0000
	// AppRegionLimit bounds the app's code (tramp, code, read-only data:
	// at most 512 KiB) in an image linked since the near arena exists:
	// the near arena follows it. (Images linked before may have their app
	// up to PrivateBase; none of them uses a library whose private part
	// is in the near arena, which did not exist when they were linked.)
	AppRegionLimit = NearArenaBase
	// NearArenaBase and NearArenaLimit bound the near part of the map's
	// data arena: between the app and the per-instance memory, in the
	// same 2 MiB, so an instance's libraries' private parts, its app and
	// its boot info, stack and first heap pages share one page-table
	// page (with the far arena alone, the private parts took one more
	// per instance). The map hands out private parts here first, and in
	// the far arena (DataArenaBase) once the near one is full.
	NearArenaBase  = 0x6008_0000
	NearArenaLimit = PrivateBase
	// PrivateBase is the start of per-instance guest memory of an image
	// whose app is at AppRegionBase: a guard page, the stack (the boot
	// info in its top page), a guard page, the heap, up to PrivateLimit (heap + stack of about 255 MiB at
	// most). The app's code must end below it (its private part lies in
	// the data arena).
	PrivateBase  = 0x6010_0000
	PrivateLimit = DataArenaBase
	// LegacyAppRegionBase and LegacyPrivateBase are where images linked
	// before AppRegionBase moved (and Unikraft images, whose app keeps its
	// private part in the app region) have their app, and where their
	// instances' per-instance memory starts; so are plain images' (below
	// LegacyAppRegionBase). A Linux-boot guest's boot area starts at
	// LegacyPrivateBase too. The loader picks by the image's app region
	// (PrivateBaseFor).
	LegacyAppRegionBase = 0x1000_0000
	LegacyPrivateBase   = 0x2000_0000
	// MapBase is the first address the global library map hands out.
	MapBase = 0x4000_0000
	// MapLimit bounds the library map (the map refuses to grow past it).
	MapLimit = 0x1_0000_0000
	// DataArenaBase and DataArenaLimit bound the map's (far) data arena: the
	// private parts (trampoline slots, data, bss) of libraries placed
	// densely (desc.Region.PrivateStart), packed next to each other so
	// that the libraries of an image share private pages. A library's
	// code reaches its private part PC-relatively, and the app's code
	// reaches any library's data PC-relatively until the trampoline pass
	// redirects it, so every byte of the arena lies within a rel32 of
	// the app region and of every dense region (MapBase up to
	// DataArenaBase). Maps filled before the near arena existed have
	// their private parts here; the map goes on here once the near arena
	// is full.
	DataArenaBase  = 0x7000_0000
	DataArenaLimit = 0x8000_0000
	// ASLRBase and ASLRSize bound the window where --aslr places library
	// regions (page granular: 2^24 page slots, 24 bits of entropy).
	ASLRBase = 0x1_0000_0000
	ASLRSize = 0x10_0000_0000
	// ASLRSpan is the part of the ASLR window that holds all of one
	// instance's regions: an aligned GiB drawn at random per instance
	// (larger, by powers of two, until the image fits it), so the
	// instance touches as few GiB (page-middle-directory pages) as
	// without --aslr. Inside it the image slides as one, the heap at its
	// own random place and the stack (boot info in its top page) at a
	// random page of a random 2 MiB chunk
	// (internal/loader/random.go says what that leaves to whom).
	ASLRSpan = 1 << 30
	// PageSize is the only page size unipool uses for layout.
	PageSize = 0x1000
	// DefaultStackSize is the guest stack the monitors give.
	DefaultStackSize = 256 << 10
	// DefaultMemSize is the guest heap + stack when nobody names one: the
	// description an aligned link writes and the loader of a plain
	// (packed, dce) image use the same, so a unikernel gets the same
	// memory whichever layout it was linked with and measurements compare
	// layouts, not heap sizes (a guest allocator's run-time pages grow
	// with its heap: the buddy allocator's block table is heap/33 bytes).
	DefaultMemSize = 8 << 20
)

// Arenas are the parts of the map's data arena, nearest first: a dense
// private part lies wholly inside one of them.
var Arenas = [2][2]uint64{{NearArenaBase, NearArenaLimit}, {DataArenaBase, DataArenaLimit}}

// ArenaLimit is the end of the arena part [start, start+size) lies in, 0
// when it lies in none (or straddles two).
func ArenaLimit(start, size uint64) uint64 {
	for _, a := range Arenas {
		if start >= a[0] && start < a[1] && size <= a[1]-start {
			return a[1]
		}
	}
	return 0
}

// InArena says whether [start, start+size) lies inside one arena part.
func InArena(start, size uint64) bool { return ArenaLimit(start, size) != 0 }

// IsArena says whether addr lies in the data arena (either part).
func IsArena(addr uint64) bool {
	for _, a := range Arenas {
		if addr >= a[0] && addr < a[1] {
			return true
		}
	}
	return false
}

// PrivateBaseFor is where the per-instance memory of an image whose app
// region starts at appStart begins: PrivateBase for an app at
// AppRegionBase, else (legacy images, Unikraft images, plain images: 0)
// LegacyPrivateBase.
func PrivateBaseFor(appStart uint64) uint64 {
	if appStart == AppRegionBase {
		return PrivateBase
	}
	return LegacyPrivateBase
}

// AppLimitFor is the end of the room for the code (tramp, code,
// read-only data) of an app whose region starts at appStart:
// AppRegionLimit for an app at AppRegionBase (the near arena follows),
// else LegacyPrivateBase.
func AppLimitFor(appStart uint64) uint64 {
	if appStart == AppRegionBase {
		return AppRegionLimit
	}
	return LegacyPrivateBase
}

// PrivateLimitFor is the end of the room for per-instance memory from
// PrivateBaseFor(appStart): PrivateLimit, or the library map's base.
func PrivateLimitFor(appStart uint64) uint64 {
	if appStart == AppRegionBase {
		return PrivateLimit
	}
	return MapBase
}

// BootInfoMagic is "UNIPOOL1" read as a little-endian uint64.
const BootInfoMagic = 0x314c4f4f50494e55

// BootInfoVersion is the layout version of BootInfo.
const BootInfoVersion = 2

// BootInfoVersionSymbol names the uint32 in ukplat that says which
// boot-info version the guest accepts. An image without it was linked
// against version 1 (128 bytes, up to TLSAlign; its guest derives the
// canary from Seed).
const BootInfoVersionSymbol = "ukplat_bootinfo_version"

// BootInfoSizeV1 is the encoded size of a version-1 BootInfo.
const BootInfoSizeV1 = 128

// Monitor identifies who started the guest (BootInfo.Monitor).
const (
	MonitorKVM     = 1
	MonitorProcess = 2
)

// BootInfo is what the monitor hands the guest in %rdi at entry. All
// addresses are guest virtual addresses. The struct is 8-byte aligned and
// little-endian; see guest/plat/include/uk/bootinfo.h.
type BootInfo struct {
	Magic      uint64 // BootInfoMagic
	Version    uint32 // BootInfoVersion
	Flags      uint32 // reserved, 0
	Cmdline    uint64 // address of the NUL-terminated command line
	CmdlineLen uint64 // its length without the NUL
	HeapStart  uint64
	HeapSize   uint64
	StackStart uint64 // lowest address of the stack
	StackSize  uint64
	InstanceID uint64
	Seed       uint64 // per-instance random seed, host CSPRNG (ukrand seeds from it, then clears it)
	TSCKHz     uint64 // TSC frequency in kHz, 0 if unknown
	Monitor    uint64 // MonitorKVM or MonitorProcess
	TLSImage   uint64 // address of the PT_TLS initialisation image, 0 if none
	TLSFileSz  uint64
	TLSMemSz   uint64
	TLSAlign   uint64
	// Canary is the stack-protector canary (host CSPRNG, low byte 0,
	// independent of Seed and of every base). _start copies it into the
	// TCB and clears this field, and so does ukplat_ready for a restored
	// instance: no copy stays in the boot info.
	Canary uint64
	// TLSArea..TLSArea+TLSAreaSize, when TLSAreaSize is not 0, is where
	// the guest puts its TLS block and TCB (a region of its own, placed
	// at random under --aslr); 0: ukplat's static reserve.
	TLSArea     uint64
	TLSAreaSize uint64
	Reserved    uint64 // 0
}

// BootInfoSize is the encoded size of BootInfo.
const BootInfoSize = 160

// Marshal encodes b in the guest's layout: version 1's 128 bytes when
// b.Version is 1, else the whole of it.
func (b *BootInfo) Marshal() []byte {
	if b.Version == 1 {
		return b.marshal()[:BootInfoSizeV1]
	}
	return b.marshal()
}

func (b *BootInfo) marshal() []byte {
	out := make([]byte, 0, BootInfoSize)
	le := binary.LittleEndian
	out = le.AppendUint64(out, b.Magic)
	out = le.AppendUint32(out, b.Version)
	out = le.AppendUint32(out, b.Flags)
	for _, v := range []uint64{b.Cmdline, b.CmdlineLen, b.HeapStart, b.HeapSize,
		b.StackStart, b.StackSize, b.InstanceID, b.Seed, b.TSCKHz, b.Monitor,
		b.TLSImage, b.TLSFileSz, b.TLSMemSz, b.TLSAlign, b.Canary, b.TLSArea, b.TLSAreaSize, b.Reserved} {
		out = le.AppendUint64(out, v)
	}
	return out
}
