package desc

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
)

// MediaTypeSnapshotPage is a layer holding one 4 KiB page of a snapshot.
const MediaTypeSnapshotPage = "application/vnd.unipool.snapshot.page.v1"

// SnapshotPageSize is the size of every snapshot page (and of every page
// blob of MediaTypeSnapshotPage).
const SnapshotPageSize = 0x1000

// MediaTypeSnapshotPack is a layer holding a page pack: the pages one
// snapshot stored that the pool did not hold before, in guest-address
// order, SnapshotPageSize bytes each. Pages of any later snapshot that
// are the same reference them there (Page.Blob, Page.Offset).
const MediaTypeSnapshotPack = "application/vnd.unipool.snapshot.pages.v1"

// MaxSnapshotPackSize bounds a page pack (and a page's offset in one).
const MaxSnapshotPackSize = 1 << 36

// MediaTypeSnapshotZero is the layer of a snapshot's zero blob
// (Snapshot.Zero): SnapshotZeroSize bytes of zeros.
const MediaTypeSnapshotZero = "application/vnd.unipool.snapshot.zero.v1"

// SnapshotZeroSize is the size of the zero blob: the longest zero run one
// mapping of it covers (longer runs take several).
const SnapshotZeroSize = 256 << 10

// Snapshot is a unikernel booted up to its ready point (abi.PortReady) and
// stopped there: its vCPU state, its devices' state and its private memory.
// The memory is content-addressed page by page: every page that is not all
// zeros has its digest (Pages) and lies in a pool blob: the pages a
// snapshot stored first are one page pack (MediaTypeSnapshotPack), and a
// page some other snapshot stored before is referenced in that one's pack,
// so a page that is the same in many unikernels is stored, and mapped
// copy-on-write, once, and an instance maps few files (consecutive pages
// of one pack as one mapping). Snapshots taken before packs existed have
// each page as a blob of its own (Page.Blob empty). Pages of the
// private ranges not listed are zero. The layout is the one the snapshot
// was taken with: the map's region bases (no ASLR), MemSize, BootArea or
// StackBootArea.
type Snapshot struct {
	// Monitor names the monitor it was taken under ("process").
	Monitor string `json:"monitor"`
	// MemSize is the guest heap+stack it was taken with; instances from
	// the snapshot get the same.
	MemSize uint64 `json:"mem_size"`
	// BootArea (snapshots taken before session 15) is the bytes at the
	// per-instance memory's base (abi.PrivateBaseFor the image's app)
	// given to the boot info and the command line: it bounds the command
	// line of a restored instance. The loader keeps that layout for such
	// a snapshot (Options.LegacyBootPage). 0 in a snapshot with a
	// StackBootArea, so that a unipool from before session 15 refuses it
	// (its check wants a positive boot_area) instead of laying it out
	// the old way.
	BootArea uint64 `json:"boot_area"`
	// StackBootArea (since session 15) is the top bytes of the stack
	// mapping given to the boot info and command line (the boot info
	// StackBootRoom into them, the TLS area and the stack right below). The stored pages hold nothing of it (zeroed at capture):
	// every instance writes its own. Exactly one of BootArea and
	// StackBootArea is set.
	StackBootArea uint64 `json:"stack_boot_area,omitempty"`
	// StackBootRoom (with StackBootArea) is how far into the boot area
	// the boot info starts (loader.BootStackRoom when it was taken): the
	// TLS area and the stack's first frames lie below it.
	StackBootRoom uint64 `json:"stack_boot_room,omitempty"`
	// Regs is the vCPU state at the ready point, %rip after the port write.
	Regs Regs `json:"regs"`
	// Console is what the guest wrote to COM1 before the ready point (the
	// console's only state); a restored instance's output starts with it.
	Console string `json:"console,omitempty"`
	// Pages are the non-zero pages, ascending by guest address.
	Pages []Page `json:"pages"`
	// Zero, when set, is the zero blob (SnapshotZeroSize bytes of zeros,
	// the same blob in every snapshot): the zero pages of the private
	// parts (data, bss, tramp tables: not the stack or heap) are mapped
	// copy-on-write from it, so a page an instance only reads is the page
	// cache's one copy, not a page of its own (as the kernel's shared zero
	// page would be, on a host that has one). Unset: those pages are
	// anonymous memory.
	Zero string `json:"zero,omitempty"`
}

// Regs is the general-purpose register state, with the FS and GS bases
// (the guest sets FS with wrmsr). Nothing else is live at the ready point:
// the port write is a call to an assembly function, so no vector register
// is (the SysV ABI makes them all caller-saved), and the guest never
// changes MXCSR or the x87 control word.
type Regs struct {
	RAX    uint64 `json:"rax"`
	RBX    uint64 `json:"rbx"`
	RCX    uint64 `json:"rcx"`
	RDX    uint64 `json:"rdx"`
	RSI    uint64 `json:"rsi"`
	RDI    uint64 `json:"rdi"`
	RSP    uint64 `json:"rsp"`
	RBP    uint64 `json:"rbp"`
	R8     uint64 `json:"r8"`
	R9     uint64 `json:"r9"`
	R10    uint64 `json:"r10"`
	R11    uint64 `json:"r11"`
	R12    uint64 `json:"r12"`
	R13    uint64 `json:"r13"`
	R14    uint64 `json:"r14"`
	R15    uint64 `json:"r15"`
	RIP    uint64 `json:"rip"`
	RFLAGS uint64 `json:"rflags"`
	FSBase uint64 `json:"fs_base"`
	GSBase uint64 `json:"gs_base"`
}

// Page is one stored page of a snapshot.
type Page struct {
	Addr   uint64 `json:"addr"`   // guest virtual address, page-aligned
	Digest string `json:"digest"` // its content, "sha256:<hex>"
	// Blob is the page pack holding it, at Offset (page-aligned). Empty:
	// the page is a blob of its own, Digest (MediaTypeSnapshotPage), and
	// Offset is 0.
	Blob   string `json:"blob,omitempty"`
	Offset uint64 `json:"offset,omitempty"`
}

// BlobDigest is the blob the page lies in: its pack, or its own blob.
func (p *Page) BlobDigest() string {
	if p.Blob != "" {
		return p.Blob
	}
	return p.Digest
}

// Validate checks what a loader relies on: ascending, page-aligned,
// distinct pages, each with a digest, and a usable memory size.
func (s *Snapshot) Validate() error {
	if s.MemSize == 0 || s.MemSize&pageMask != 0 {
		return fmt.Errorf("snapshot: mem_size %#x is not a positive page multiple", s.MemSize)
	}
	if (s.BootArea == 0) == (s.StackBootArea == 0) {
		return fmt.Errorf("snapshot: boot_area %#x and stack_boot_area %#x: want exactly one of them", s.BootArea, s.StackBootArea)
	}
	if s.BootArea&pageMask != 0 || s.StackBootArea&pageMask != 0 {
		return fmt.Errorf("snapshot: boot_area %#x or stack_boot_area %#x is not a page multiple", s.BootArea, s.StackBootArea)
	}
	if (s.StackBootArea == 0) != (s.StackBootRoom == 0) || s.StackBootRoom%64 != 0 || s.StackBootRoom >= pageMask+1 {
		return fmt.Errorf("snapshot: stack_boot_room %#x: want a multiple of 64 below a page, with stack_boot_area and only then", s.StackBootRoom)
	}
	for i, p := range s.Pages {
		if p.Addr&pageMask != 0 {
			return fmt.Errorf("snapshot: page %d at %#x is not page-aligned", i, p.Addr)
		}
		if i > 0 && p.Addr <= s.Pages[i-1].Addr {
			return fmt.Errorf("snapshot: page %d at %#x does not follow the page at %#x", i, p.Addr, s.Pages[i-1].Addr)
		}
		if !isDigest(p.Digest) {
			return fmt.Errorf("snapshot: page at %#x: digest %q is not sha256:<64 hex digits>", p.Addr, p.Digest)
		}
		if p.Blob == "" && p.Offset != 0 {
			return fmt.Errorf("snapshot: page at %#x: offset %#x without a pack blob", p.Addr, p.Offset)
		}
		if p.Blob != "" && !isDigest(p.Blob) {
			return fmt.Errorf("snapshot: page at %#x: pack blob %q is not sha256:<64 hex digits>", p.Addr, p.Blob)
		}
		if p.Offset&pageMask != 0 || p.Offset >= MaxSnapshotPackSize {
			return fmt.Errorf("snapshot: page at %#x: offset %#x in its pack is not page-aligned or too large", p.Addr, p.Offset)
		}
	}
	if s.Zero != "" && !isDigest(s.Zero) {
		return fmt.Errorf("snapshot: zero blob digest %q is not sha256:<64 hex digits>", s.Zero)
	}
	return nil
}

// SnapshotZeroDigest is the digest of the zero blob.
var SnapshotZeroDigest = sync.OnceValue(func() string {
	sum := sha256.Sum256(make([]byte, SnapshotZeroSize))
	return "sha256:" + hex.EncodeToString(sum[:])
})

func isDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, "sha256:")
	return ok && len(hex) == 64 && strings.Trim(hex, "0123456789abcdef") == ""
}
