// Package loader turns a unikernel (a pooled description, or a plain ELF
// image) into the memory layout of one instance: which guest addresses map
// which pool blob, which hold private copies, where the tramp tables and
// relocations land under the chosen region bases, and the boot info. Both
// monitors make exactly these mappings, so one image runs the same on both.
package loader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strings"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/monitor"
)

// Protections, with Linux's PROT_* values.
const (
	ProtRead  = 1
	ProtWrite = 2
	ProtExec  = 4
)

// Parts of a mapping, for fault reports and measurements.
const (
	PartTramp    = "tramp"
	PartShared   = "shared"
	PartPrivate  = "private"
	PartBootInfo = "bootinfo"
	PartStack    = "stack"
	PartHeap     = "heap"
	PartTLS      = "tls"   // the TLS block and TCB (below the boot info at the stack mapping's top)
	PartImage    = "image" // a segment of a plain ELF image
)

// The groups of regions --aslr places (Layout.Groups).
const (
	GroupImage = "image" // every library and the app: one slide
	GroupAreas = "areas" // boot info, TLS and stack: one mapping in a 2 MiB chunk
	GroupHeap  = "heap"
)

// IsRuntime says whether a part is run-time memory (boot info, stack,
// heap, TLS), not an image's.
func IsRuntime(part string) bool {
	return part == PartBootInfo || part == PartStack || part == PartHeap || part == PartTLS
}

// DefaultMemSize is the guest heap + stack when neither the description
// nor the caller names one.
const DefaultMemSize = abi.DefaultMemSize

// Mapping is one page-aligned range of guest memory.
type Mapping struct {
	Addr uint64
	Size uint64 // page multiple
	Prot int
	// File, when set, is a pool blob mapped read-only and shared at Offset.
	// Digest names it, so a monitor can map each blob once per process.
	File   string
	Digest string
	Offset uint64
	// Data is copied to Addr when File is empty; the rest up to Size is zero.
	Data []byte
	// COW marks a File mapped private (copy-on-write) instead of shared:
	// a library's tramp table and initialised data from its init blob.
	// Patches are the 8-byte words where this instance differs from the
	// file (slots and relocations under ASLR); writing them copies only
	// their pages. Data then holds the same bytes with the patches
	// applied, for a monitor that copies instead.
	COW bool
	// JoinNext (a plain image's segments, and its last one before the
	// boot-info page in the same 2 MiB) says that a monitor whose
	// mappings are the host's (the process monitor) may map this
	// mapping, the gap after it and the next one as one anonymous
	// mapping, the gap zero and never written: both are anonymous with
	// the same protection and the gap lies in one 2 MiB, so the join
	// costs no page and no page-table page, and the instance one kernel
	// mapping instead of two (a VMA with its anon_vma: 384 bytes of
	// kernel memory charged to the instance's memory cgroup, measured).
	// An aligned image run as a plain image (the KSM baselines) has a
	// segment per library region: 10-19 mappings an instance, 2-3 so.
	JoinNext bool
	Patches  []Patch
	// Library and Part say what the range holds.
	Library string
	Part    string
}

// ImageReads stand for the image mappings' Data in the layout of a plain
// image prepared by PrepareReads (the process monitor's copying loads):
// the instance reads the bytes from the image file itself, so the
// monitor holds none of them. Each Read puts From's bytes [FileOff,
// FileOff+Len) at Addr, in an image mapping (no Data, no File) whose
// other bytes are zero; all-zero pages are left out, as DataRuns leaves
// them out of Data. (A pointer in the Layout, not a field per Mapping: a
// monitor keeps every instance's mappings for the whole run.)
type ImageReads struct {
	From string
	Runs []Read // sorted by Addr
}

// Read is a run of a plain image's file bytes an instance reads into its
// memory (ImageReads).
type Read struct {
	Addr    uint64
	FileOff uint64
	Len     uint64
}

// Placed is a mapping (M, its Addr aside) at Addr.
type Placed struct {
	Addr uint64
	M    *Mapping
}

// Patch is an 8-byte little-endian word to store at Off in a mapping.
type Patch struct {
	Off   uint64
	Value uint64
}

// Layout is one instance's memory and entry state.
type Layout struct {
	Mappings []Mapping // sorted by Addr, non-overlapping
	// Placed, when Mappings is nil, stands for them in a layout a monitor
	// keeps after the build (Find, Describe, AllMappings): each mapping's
	// address and the mapping placed there, whose other fields (its Addr
	// aside) are shared with other instances of the unikernel, sorted by
	// address.
	Placed []Placed
	// Reads, when set, fill the image mappings (PrepareReads).
	Reads    *ImageReads
	Entry    uint64
	StackTop uint64
	BootInfo uint64 // address of struct uk_bootinfo (%rdi); BootLinux64: of the zero page (%rsi)
	// BootEnd, when not 0, is the end of the boot area [BootInfo,
	// BootEnd) at the top of the stack mapping (boot info, command line,
	// the rest zero): the instance's own in a page the stack shares
	// (Options.LegacyBootPage unset). 0: the boot info has a mapping of
	// its own (PartBootInfo).
	BootEnd uint64
	Bases   map[string]uint64 // region base per library (descriptions only)
	// Areas is where each per-instance area starts ("bootinfo", "stack",
	// "heap", "tls" if the instance has one).
	Areas map[string]uint64
	// Entropy is the bits of randomness of each region's base (library
	// names and the Areas' names; 0 for a region at a fixed address),
	// of the "canary" and of the guest's "seed".
	Entropy map[string]float64
	// EntropyGiven (under ASLR) is what is left of each region's
	// entropy to someone who knows another region's base of the same
	// instance, whichever it is (the least): 0 for a library when the
	// image has another (they slide as one), 0 for the stack, boot info
	// and TLS area (at fixed offsets in one mapping; with
	// LegacyBootPage, the bits within the area chunk for the boot info
	// and stack), the bits within the span for the heap.
	EntropyGiven map[string]float64
	// EntropyGroup (under ASLR) is what is left of each region's entropy
	// to someone who knows the base of a region outside its group
	// (Groups): its bits within the span.
	EntropyGroup map[string]float64
	// Groups (under ASLR) are the regions that do not move independently
	// of each other: GroupImage (one slide), GroupAreas (boot info, TLS,
	// stack: one mapping in a 2 MiB chunk), GroupHeap.
	Groups map[string][]string
	// TLSSize is the size of the TLS area at Areas["tls"] (right below
	// the boot info at the top of the stack mapping).
	TLSSize uint64
	// ASLRSpan (under ASLR) is the size of the span of the window that
	// holds all of the instance's regions (aligned to its size).
	ASLRSpan uint64
	// Canary and Seed are what the boot info handed the guest: its stack
	// canary and its random seed (the guest clears both once taken).
	Canary, Seed uint64
	// Seeded: the secrets came from a caller's source (--seed), not the
	// host CSPRNG.
	Seeded bool
	// Resume, when set, is the register state to start with instead of
	// the entry state: the instance comes from a snapshot (and Console
	// is the output its snapshot had already written).
	Resume  *desc.Regs
	Console string
	// Boot is "" for the unipool guest ABI, BootLinux64 for the Linux
	// 64-bit boot protocol (guest-physical = guest-virtual, no stack:
	// the kernel sets up its own).
	Boot string
}

// Report fills in what run --json says of the layout.
func (lay *Layout) Report(r *monitor.Result) {
	if len(lay.Bases) > 0 {
		r.Bases = lay.Bases
	}
	r.Areas, r.EntropyBits, r.EntropyBitsGivenAnother = lay.Areas, lay.Entropy, lay.EntropyGiven
	r.EntropyBitsGivenAnotherGroup, r.ASLRGroups = lay.EntropyGroup, lay.Groups
	if lay.Seeded {
		r.InsecureSeed = SeededWarning
	}
}

// LinuxBootPinned is why the loader does not slide a Linux-boot
// (Unikraft) image, whatever the trampoline pass made of its libraries.
const LinuxBootPinned = "a Linux-boot (Unikraft) image runs identity-mapped (guest-virtual = guest-physical) on the page tables " +
	"Unikraft's boot code builds over the first 4 GiB, its .uk_bootinfo lists its memory at the link addresses, " +
	"and the ASLR window lies above 4 GiB"

// BootLinux64 is desc.BootLinux64 as a Layout says it.
const BootLinux64 = desc.BootLinux64

// Options choose how an instance is laid out.
type Options struct {
	MemSize uint64 // heap + stack; 0: the description's, else DefaultMemSize
	Load    string // monitor.LoadShared or monitor.LoadNaive
	// ASLR randomises every region (each library, the app, boot info,
	// stack, heap, TLS) in groups (random.go): the image by one slide,
	// the heap, and the stack (boot info and TLS in its top page) in a
	// 2 MiB chunk.
	ASLR bool
	// ASLRPerLibrary (with ASLR) gives each library and the app a base
	// of its own instead of one slide for the image: an address of one
	// library then tells nothing of another's (only the span), at the
	// cost of a page-table page and a private page per library (random.go).
	ASLRPerLibrary bool
	// Rand is where every secret of the instance is drawn from, each
	// value a draw of its own: region bases, canary, guest seed. nil:
	// the host CSPRNG (HostRand); SeededRand only for reproducible runs.
	Rand       *rand.Rand
	InstanceID uint64
	// Seed and Canary, when not 0, are used instead of drawing them
	// (tests).
	Seed    uint64
	Canary  uint64
	seeded  bool   // Rand was the caller's
	Monitor uint64 // abi.MonitorKVM or abi.MonitorProcess
	TSCKHz  uint64
	Cmdline string
	// BootArea is the least size of the boot-info area (boot info and
	// command line); 0: what the command line needs.
	BootArea uint64
	// Snapshot starts the instance from the description's snapshot
	// (snapshot.go) instead of its entry point.
	Snapshot bool
	// BootRoom, when not 0, is the boot area's first bytes left to the
	// TLS area and the stack instead of BootStackRoom (a snapshot's,
	// desc.Snapshot.StackBootRoom).
	BootRoom uint64
	// LegacyBootPage lays the boot info out as before session 15: a
	// boot-info area of its own at the per-instance memory's base (under
	// ASLR: its own page in the areas chunk), the stack after a guard
	// page. Only a snapshot taken with that layout needs it.
	LegacyBootPage bool
	// snapshotCold is planSnapshot's cold plan, whose private ranges
	// the snapshot's pages replace.
	snapshotCold bool
}

// Prepared is a unikernel whose files have been read once, so that planning
// many instances costs no I/O.
type Prepared struct {
	u           monitor.Unikernel
	cfg         *desc.Config
	private     []byte            // the private blob
	privateSize uint64            // its size
	blobs       map[string][]byte // shared blob contents, for naive loading only
	image       *plainImage
	// snapshotOnly: prepared for starts from the snapshot only
	// (PrepareSnapshot): the private blob was not read, and a plan lays
	// out its private ranges without their bytes (the snapshot's pages
	// replace them).
	snapshotOnly bool
}

// Prepare reads what every instance of u needs. Shared blobs are only read
// when naive is true (naive loading copies them).
func Prepare(u monitor.Unikernel, naive bool) (*Prepared, error) {
	return prepare(u, naive, imageData, true)
}

// PrepareReads is Prepare for a monitor whose instances read a plain
// image's bytes from the image file themselves (the process monitor's
// copying loads: Layout.Reads instead of the mappings' Data). The image is
// read once, through one small buffer, to leave its all-zero pages out;
// the monitor keeps none of its bytes. Read into the monitor's heap, the
// bytes of a fleet's images were garbage that set how often the collector
// ran and how much runtime metadata the monitor kept for its whole run
// (20 aligned images, 3.8 MB: the monitor's anonymous memory ~150 KiB
// above the same fleet's DCE images, whose bytes are half as many). Such
// an image cannot be loaded stock (its last file page's tail is zeroed
// by a patch made of the bytes): use Prepare for that.
func PrepareReads(u monitor.Unikernel, naive bool) (*Prepared, error) {
	return prepare(u, naive, imageReads, true)
}

// PrepareChecked is Prepare for a unikernel whose description has passed
// Check already (monitor.Unikernel.Checked: Describe returns the
// description Check passed, or an error): the description is not
// validated again (its blobs are still stat'ed and read as Prepare's are).
func PrepareChecked(u monitor.Unikernel, naive bool) (*Prepared, error) {
	if !u.Checked {
		return nil, fmt.Errorf("unikernel %q: PrepareChecked of a unikernel not checked", u.Name)
	}
	return prepare(u, naive, imageData, false)
}

// PrepareSnapshot is PrepareChecked for a unikernel whose instances all
// start from its snapshot (Options.Snapshot): the private blob is stat'ed
// as Check stats it, not read. A snapshot's instance maps or copies the
// snapshot's pages over every private range (applySnapshot), so the cold
// layout it starts from needs the ranges, not their bytes: the tramp
// tables, data parts and data-arena pages a plan copied out of the blob,
// relocated and compared with it page by page were thrown away at once.
// That was over a quarter of the garbage a snapshot monitor made to a held
// fleet of 1000 (the blob read whole, a 4 KiB copy per arena page, each
// arena run's bytes: ~120 of 445 MB; docs/notes/monitor-memory.md,
// Session 17 (snapmon17)). Plans from it are the plans from
// PrepareChecked's; it plans nothing but snapshot starts.
func PrepareSnapshot(u monitor.Unikernel) (*Prepared, error) {
	if !u.Checked || u.Config == nil || u.Image != "" {
		return nil, fmt.Errorf("unikernel %q: PrepareSnapshot of a unikernel not checked, or not pooled", u.Name)
	}
	p, err := prepare(u, false, imageHeadersOnly, false)
	if err != nil {
		return nil, err
	}
	p.snapshotOnly = true
	return p, nil
}

// Check makes Prepare's checks without reading what Prepare reads (a
// plain image's segments: their headers only; a description's private
// blob, and its shared ones for naive loads: their sizes), so that a
// monitor can refuse a bad unikernel before it starts any instance and
// read its files only when it plans the first (process monitor: a fleet's
// files were all in its heap at once otherwise).
func Check(u monitor.Unikernel, naive bool) error {
	_, err := prepare(u, naive, imageHeadersOnly, true)
	return err
}

// ImageHeaders are a plain image's ELF headers as CheckImage read and
// checked them: what PrepareReadsFrom lays its instances out from.
type ImageHeaders struct{ h *imageHeaders }

// CheckImage is Check of a plain image (u.Image) that keeps what it read
// of it: the few headers its loads need (its PT_LOADs, entry, TLS, boot
// protocol), for PrepareReadsFrom, so that a monitor that checks its
// unikernels before its run and prepares each at its first instance
// parses each image once.
// The headers' PT_LOAD list is taken from store (nil: a slice of its own).
func CheckImage(u monitor.Unikernel, store *HeaderStore) (*ImageHeaders, error) {
	if u.Image == "" {
		return nil, fmt.Errorf("unikernel %q: CheckImage of a unikernel without an image", u.Name)
	}
	fh, err := os.Open(u.Image)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", u.Image, err)
	}
	defer fh.Close()
	h, err := readImageHeaders(u.Image, fh, store)
	if err != nil {
		return nil, err
	}
	// Laid out once, for the checks of its segments (they are not kept).
	if _, err := h.image(fh, imageHeadersOnly); err != nil {
		return nil, err
	}
	return &ImageHeaders{h}, nil
}

// PrepareReadsFrom is PrepareReads of u from the headers CheckImage read
// of its image (h), without parsing the image again. It refuses an image
// file whose size or modification time changed since.
func PrepareReadsFrom(u monitor.Unikernel, h *ImageHeaders) (*Prepared, error) {
	if h == nil || h.h.path != u.Image {
		return nil, fmt.Errorf("unikernel %q: PrepareReadsFrom without the headers of its image %s", u.Name, u.Image)
	}
	fh, err := os.Open(u.Image)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", u.Image, err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", u.Image, err)
	}
	if fi.Size() != h.h.size || fi.ModTime().UnixNano() != h.h.modTime {
		return nil, fmt.Errorf("image %s: changed since it was checked", u.Image)
	}
	img, err := h.h.image(fh, imageReads)
	if err != nil {
		return nil, err
	}
	return &Prepared{u: u, image: img}, nil
}

func prepare(u monitor.Unikernel, naive bool, read imageRead, validate bool) (*Prepared, error) {
	withData := read != imageHeadersOnly
	if u.Image != "" {
		img, err := readPlainImage(u.Image, read)
		if err != nil {
			return nil, err
		}
		return &Prepared{u: u, image: img}, nil
	}
	p := &Prepared{u: u, blobs: map[string][]byte{}}
	if u.Config == nil {
		return nil, fmt.Errorf("unikernel %q: no description and no image", u.Name)
	}
	if validate {
		if err := u.Config.Validate(); err != nil {
			return nil, fmt.Errorf("unikernel %q: %w", u.Name, err)
		}
	}
	p.cfg = u.Config
	if u.Config.Private != nil {
		var data []byte
		var err error
		if withData {
			data, err = readBlob(u, u.Config.Private.Digest)
			p.privateSize = uint64(len(data))
		} else {
			var fi os.FileInfo
			if fi, err = statBlob(u, u.Config.Private.Digest); err == nil {
				p.privateSize = uint64(fi.Size())
			}
		}
		if err != nil {
			return nil, fmt.Errorf("unikernel %q: private blob: %w", u.Name, err)
		}
		p.private = data
	}
	for _, l := range u.Config.Libraries {
		if l.Shared.Size == 0 || l.InPack() {
			continue
		}
		if l.Shared.Digest == "" {
			return nil, fmt.Errorf("unikernel %q: library %q: shared part has no blob", u.Name, l.Name)
		}
		path := u.BlobPath(l.Shared.Digest)
		fi, err := statBlob(u, l.Shared.Digest)
		if err != nil {
			return nil, fmt.Errorf("unikernel %q: library %q: %w", u.Name, l.Name, err)
		}
		if uint64(fi.Size()) < l.Shared.Size {
			return nil, fmt.Errorf("unikernel %q: library %q: blob %s is %d bytes, description says %d",
				u.Name, l.Name, path, fi.Size(), l.Shared.Size)
		}
		if naive && withData {
			if _, ok := p.blobs[l.Shared.Digest]; !ok {
				data, err := readBlob(u, l.Shared.Digest)
				if err != nil {
					return nil, fmt.Errorf("unikernel %q: library %q: %w", u.Name, l.Name, err)
				}
				p.blobs[l.Shared.Digest] = data
			}
		}
	}
	return p, nil
}

// Plan lays out one instance of u (Prepare + Plan in one step).
func Plan(u monitor.Unikernel, opt Options) (*Layout, error) {
	p, err := Prepare(u, opt.Load == monitor.LoadNaive)
	if err != nil {
		return nil, err
	}
	return p.PlanLast(opt)
}

// Plan lays out one instance.
func (p *Prepared) Plan(opt Options) (*Layout, error) { return p.plan(opt, false) }

// PlanLast is Plan for the last instance its caller plans from p: a plain
// image's layout takes p's bytes as its own instead of a copy of them (p
// must not be planned from again). For a fleet of distinct plain images
// that is every instance: the copy was a fifth of the garbage a plain
// image's instance made.
func (p *Prepared) PlanLast(opt Options) (*Layout, error) { return p.plan(opt, true) }

func (p *Prepared) plan(opt Options, last bool) (*Layout, error) {
	if opt.Load == "" {
		opt.Load = monitor.LoadShared
	}
	if err := monitor.CheckLoad(opt.Load, p.image != nil); err != nil {
		return nil, fmt.Errorf("unikernel %q: %w", p.u.Name, err)
	}
	if opt.Cmdline == "" {
		opt.Cmdline = p.u.Cmdline
	}
	if p.image != nil {
		return p.planImage(opt, last)
	}
	if opt.Cmdline == "" {
		opt.Cmdline = p.cfg.Cmdline
	}
	if opt.Snapshot {
		return p.planSnapshot(opt)
	}
	if p.snapshotOnly && !opt.snapshotCold {
		return nil, fmt.Errorf("unikernel %q: prepared for snapshot starts only (loader.PrepareSnapshot)", p.u.Name)
	}
	// Without the private blob's bytes (PrepareSnapshot): the private
	// ranges are laid out, their contents not made.
	withData := !p.snapshotOnly
	if opt.MemSize == 0 {
		opt.MemSize = p.cfg.MemSize
	}
	if p.cfg.Boot == BootLinux64 && opt.ASLR {
		return nil, fmt.Errorf("unikernel %q: --aslr: its libraries are pinned: %s", p.u.Name, LinuxBootPinned)
	}
	opt.secrets()
	pl := &placer{rng: opt.Rand}
	img := p.imageParts()
	if opt.ASLR {
		total := privateTotal(opt)
		for _, sp := range img.parts {
			total += sp.hi - sp.lo + 2*abi.PageSize
		}
		extent := img.extent()
		if opt.ASLRPerLibrary {
			// Each library on its own: the span must hold the
			// largest one (its code and its private part).
			extent = p.largestLibraryExtent()
		}
		if err := pl.drawSpan(extent, total); err != nil {
			return nil, fmt.Errorf("unikernel %q: %w", p.u.Name, err)
		}
	}
	bases, err := p.bases(opt, pl, img)
	if err != nil {
		return nil, err
	}
	lay := &Layout{Bases: map[string]uint64{}, Entropy: map[string]float64{}, ASLRSpan: pl.spanSize}
	if opt.ASLR {
		lay.EntropyGiven, lay.EntropyGroup, lay.Groups = map[string]float64{}, map[string]float64{}, map[string][]string{}
	}
	addr := func(a desc.Addr) uint64 { return bases[a.Lib] + a.Off }
	arena := arenaPages{}
	// (Without the blob's bytes, the private parts' tables and data are
	// not made: nil.)
	for i, l := range p.cfg.Libraries {
		base := bases[i]
		lay.Bases[l.Name] = base
		lay.Entropy[l.Name] = 0
		if opt.ASLR && l.NoASLR == "" && opt.ASLRPerLibrary {
			// A base of its own: another library's base gives only
			// the span.
			ext := libraryExtent(l.Region)
			lay.Entropy[l.Name] = pl.EntropyBits(ext)
			lay.EntropyGroup[l.Name] = pl.GivenSpanBits(ext)
			lay.EntropyGiven[l.Name] = pl.GivenSpanBits(ext)
			lay.Groups[l.Name] = []string{l.Name}
		} else if opt.ASLR && l.NoASLR == "" {
			// Every moving library and the app slide as one: each
			// base has the image's positions in the window, and
			// one of them gives all the others (the map is public).
			lay.Entropy[l.Name] = pl.EntropyBits(img.extent())
			lay.EntropyGroup[l.Name] = pl.GivenSpanBits(img.extent())
			lay.EntropyGiven[l.Name] = lay.EntropyGroup[l.Name]
			if img.moving > 1 {
				lay.EntropyGiven[l.Name] = 0
			}
			lay.Groups[GroupImage] = append(lay.Groups[GroupImage], l.Name)
		}
		r := l.Region
		if l.Tramp.Size > 0 {
			table, err := p.slice(l.Tramp.BlobOff, l.Tramp.Size, l.Name, "tramp table")
			if err != nil {
				return nil, err
			}
			var patches []Patch
			if withData {
				table = append([]byte(nil), table...)
				for _, s := range l.Tramp.Slots {
					v := addr(s.Target)
					if binary.LittleEndian.Uint64(table[s.Off:]) != v {
						patches = append(patches, Patch{s.Off, v})
					}
					binary.LittleEndian.PutUint64(table[s.Off:], v)
				}
			}
			m := Mapping{Addr: base, Size: pageUp(l.Tramp.Size),
				Prot: ProtRead | ProtExec, Data: table, Library: l.Name, Part: PartTramp}
			if l.Init != nil && opt.Load == monitor.LoadShared {
				m.File, m.Digest, m.COW, m.Patches = p.u.BlobPath(l.Init.Digest), l.Init.Digest, true, patches
			}
			lay.Mappings = append(lay.Mappings, m)
		}
		if l.Shared.Size > 0 && !l.InPack() { // (a pack member's code: its pack's pages)
			shared := base + r.TrampSize
			segs := l.Shared.Segments
			if len(segs) == 0 {
				segs = []desc.Segment{{Off: 0, Size: l.Shared.Size, Prot: desc.ProtRX}}
			}
			for _, s := range segs {
				m := Mapping{Addr: shared + s.Off, Size: pageUp(s.Size), Prot: parseProt(s.Prot),
					Library: l.Name, Part: PartShared, Digest: l.Shared.Digest}
				if m.Prot&ProtWrite != 0 {
					return nil, fmt.Errorf("unikernel %q: library %q: writable shared segment", p.u.Name, l.Name)
				}
				if opt.Load == monitor.LoadNaive {
					blob := p.blobs[l.Shared.Digest]
					m.Data = blob[s.Off:min(uint64(len(blob)), s.Off+s.Size)]
				} else {
					m.File = p.u.BlobPath(l.Shared.Digest)
					m.Offset = s.Off
				}
				lay.Mappings = append(lay.Mappings, m)
			}
		}
		if l.Private.MemSize > 0 {
			init, err := p.slice(l.Private.BlobOff, l.Private.FileSize, l.Name, "private part")
			if err != nil {
				return nil, err
			}
			var data []byte
			var patches []Patch
			if withData {
				data = make([]byte, l.Private.FileSize, max(l.Private.FileSize, 8))
				copy(data, init)
				for _, rl := range l.Relocs {
					if rl.Off+8 > uint64(len(data)) {
						data = append(data, make([]byte, rl.Off+8-uint64(len(data)))...)
					}
					v := addr(rl.Target)
					if binary.LittleEndian.Uint64(data[rl.Off:]) != v {
						patches = append(patches, Patch{rl.Off, v})
					}
					binary.LittleEndian.PutUint64(data[rl.Off:], v)
				}
			}
			at := base + (r.PrivateAddr() - r.Start)
			size := pageUp(l.Private.MemSize)
			if r.Dense() {
				// Packed with other libraries' private parts: copied
				// into the pages they share (one page per library
				// only where ASLR moved them apart).
				arena.put(at, l.Private.MemSize, data, l.Name, at-r.PrivateAddr(), withData)
				continue
			}
			if l.Init != nil && opt.Load == monitor.LoadShared && l.Private.FileSize > 0 {
				// The initialised pages come from the init blob,
				// copy-on-write; the bss beyond them is anonymous.
				fsize := pageUp(l.Private.FileSize)
				var fp []Patch
				for _, pt := range patches {
					if pt.Off < fsize {
						fp = append(fp, pt)
					}
				}
				lay.Mappings = append(lay.Mappings, Mapping{Addr: at, Size: fsize, Prot: ProtRead | ProtWrite,
					Data: data[:min(uint64(len(data)), fsize)], File: p.u.BlobPath(l.Init.Digest), Digest: l.Init.Digest,
					Offset: l.InitDataOff(), COW: true, Patches: fp, Library: l.Name, Part: PartPrivate})
				if size > fsize {
					var rest []byte
					if uint64(len(data)) > fsize {
						rest = data[fsize:] // relocations in the bss (none in practice)
					}
					lay.Mappings = append(lay.Mappings, Mapping{Addr: at + fsize, Size: size - fsize, Prot: ProtRead | ProtWrite,
						Data: rest, Library: l.Name, Part: PartPrivate})
				}
			} else {
				lay.Mappings = append(lay.Mappings, Mapping{Addr: at, Size: size, Prot: ProtRead | ProtWrite, Data: data,
					Library: l.Name, Part: PartPrivate})
			}
		}
	}
	lay.Mappings = append(lay.Mappings, p.arenaMappings(arena, opt)...)
	lay.Entry = addr(p.cfg.Entry)
	if p.cfg.Boot == BootLinux64 {
		if err := lay.addLinuxBootMemory(opt); err != nil {
			return nil, fmt.Errorf("unikernel %q: %w", p.u.Name, err)
		}
	} else {
		bi := abi.BootInfo{Version: max(p.cfg.BootInfoVersion, 1)}
		if t := p.cfg.TLS; t != nil {
			bi.TLSImage, bi.TLSFileSz, bi.TLSMemSz, bi.TLSAlign = addr(t.Image), t.FileSize, t.MemSize, t.Align
		}
		if err := lay.addPrivateMemory(bi, opt, pl, p.appStart()); err != nil {
			return nil, fmt.Errorf("unikernel %q: %w", p.u.Name, err)
		}
	}
	if err := lay.check(); err != nil {
		return nil, fmt.Errorf("unikernel %q: %w", p.u.Name, err)
	}
	return lay, nil
}

func (p *Prepared) slice(off, n uint64, lib, what string) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	if off+n < off || off+n > p.privateSize {
		return nil, fmt.Errorf("unikernel %q: library %q: %s [%#x,+%#x) outside the private blob (%d bytes)",
			p.u.Name, lib, what, off, n, p.privateSize)
	}
	if p.private == nil {
		return nil, nil // (PrepareSnapshot: not read)
	}
	return p.private[off : off+n], nil
}

// secrets fills in the instance's secrets that the caller did not set,
// each an independent draw.
func (opt *Options) secrets() {
	opt.seeded = opt.Rand != nil
	if opt.Rand == nil {
		opt.Rand = HostRand()
	}
	if opt.Canary == 0 {
		opt.Canary = canaryOf(opt.Rand)
	}
	for opt.Seed == 0 {
		opt.Seed = opt.Rand.Uint64()
	}
}

// imageRanges are the ranges of an image's moving regions (every library
// without NoASLR, the app among them), as offsets from the lowest one's
// start, sorted by their ends.
type imageRanges struct {
	lo     uint64 // the lowest moving region's link-time start
	parts  []span
	moving int // regions that move
}

func (r imageRanges) extent() uint64 {
	if len(r.parts) == 0 {
		return 0
	}
	return r.parts[len(r.parts)-1].hi
}

func (p *Prepared) imageParts() imageRanges {
	r := imageRanges{lo: ^uint64(0)}
	for _, l := range p.cfg.Libraries {
		if l.NoASLR == "" {
			r.lo = min(r.lo, l.Region.Start)
			r.moving++
		}
	}
	for _, l := range p.cfg.Libraries {
		if l.NoASLR == "" {
			for _, sp := range regionSpans(l.Region) {
				r.parts = append(r.parts, span{l.Region.Start - r.lo + sp.lo, l.Region.Start - r.lo + sp.hi})
			}
		}
	}
	sort.Slice(r.parts, func(i, j int) bool { return r.parts[i].hi < r.parts[j].hi })
	return r
}

// bases picks each library's region base: the map's address, or under ASLR
// the map's address moved by the image's slide (placer), one for all
// libraries that may move.
func (p *Prepared) bases(opt Options, pl *placer, img imageRanges) ([]uint64, error) {
	libs := p.cfg.Libraries
	b := make([]uint64, len(libs))
	for i, l := range libs {
		b[i] = l.Region.Start
	}
	if !opt.ASLR || img.moving == 0 {
		return b, nil
	}
	for _, l := range libs {
		if l.NoASLR != "" {
			for _, sp := range regionSpans(l.Region) {
				pl.reserve(l.Region.Start+sp.lo, l.Region.Start+sp.hi)
			}
		}
	}
	if opt.ASLRPerLibrary {
		for _, g := range p.aslrGroups() {
			l := libs[g.libs[0]]
			what := "library " + l.Name
			if l.Pack != 0 {
				what = fmt.Sprintf("the pack at %#x", l.Pack)
			}
			base, err := pl.placeSpans(g.spans, what)
			if err != nil {
				return nil, fmt.Errorf("unikernel %q: %w", p.u.Name, err)
			}
			for _, i := range g.libs {
				b[i] = base + libs[i].Region.Start - g.lo
			}
		}
		return b, nil
	}
	lo, err := pl.placeSpans(img.parts, "the image")
	if err != nil {
		return nil, fmt.Errorf("unikernel %q: %w", p.u.Name, err)
	}
	for i, l := range libs {
		if l.NoASLR == "" {
			b[i] = lo + l.Region.Start - img.lo
		}
	}
	return b, nil
}

// aslrGroup is what --aslr-per-library moves by one base: a library,
// or a pack (desc.Library.Pack) with its members, which must stay where
// their code lies in its pages.
type aslrGroup struct {
	libs  []int  // indices into the description's libraries
	lo    uint64 // the lowest region start
	spans []span // from lo, ascending by their ends
}

// aslrGroups lists the groups of the libraries that move under
// --aslr-per-library.
func (p *Prepared) aslrGroups() []aslrGroup {
	var gs []aslrGroup
	byPack := map[uint64]int{}
	for i, l := range p.cfg.Libraries {
		if l.NoASLR != "" {
			continue
		}
		k, ok := byPack[l.Pack]
		if l.Pack == 0 || !ok {
			k = len(gs)
			gs = append(gs, aslrGroup{lo: l.Region.Start})
			if l.Pack != 0 {
				byPack[l.Pack] = k
			}
		}
		gs[k].libs = append(gs[k].libs, i)
		gs[k].lo = min(gs[k].lo, l.Region.Start&^(abi.PageSize-1))
	}
	for k := range gs {
		g := &gs[k]
		for _, i := range g.libs {
			r := p.cfg.Libraries[i].Region
			for _, sp := range regionSpans(r) {
				g.spans = append(g.spans, span{pageDown(r.Start - g.lo + sp.lo), pageUp(r.Start - g.lo + sp.hi)})
			}
		}
		sort.Slice(g.spans, func(a, b int) bool { return g.spans[a].hi < g.spans[b].hi })
	}
	return gs
}

// libraryExtent is the extent of one library's spans (regionSpans).
func libraryExtent(r desc.Region) uint64 {
	sp := regionSpans(r)
	return sp[len(sp)-1].hi
}

// largestLibraryExtent is the largest extent of what moves on its own
// under --aslr-per-library (a library, or a pack with its members).
func (p *Prepared) largestLibraryExtent() uint64 {
	var ext uint64
	for _, g := range p.aslrGroups() {
		ext = max(ext, g.spans[len(g.spans)-1].hi)
	}
	return ext
}

// regionSpans are the address ranges a library region takes, from its
// start: its contiguous range and, dense, the pages of its private part.
func regionSpans(r desc.Region) []span {
	s := []span{{0, r.End() - r.Start}}
	if r.Dense() {
		lo := r.PrivateStart - r.Start
		s = append(s, span{lo &^ (abi.PageSize - 1), pageUp(lo + r.PrivateSize)})
	}
	return s
}

// arenaPages are the pages of an instance that hold dense private parts
// (desc.Region.Dense), several libraries' to a page.
type arenaPages map[uint64]*arenaPage

type arenaPage struct {
	data []byte
	libs []string
	// delta is how far this instance moved the parts on the page from
	// the map's addresses; mixed says they moved apart (--aslr per
	// library), so no page of the image holds this one's bytes.
	delta uint64
	mixed bool
}

// put copies a private part of size bytes at addr (data, then zeros),
// delta bytes from where the map put it; without withData it only notes
// the pages it lies on (their bytes are not made).
func (a arenaPages) put(addr, size uint64, data []byte, lib string, delta uint64, withData bool) {
	for off := uint64(0); off < size; {
		page := (addr + off) &^ (abi.PageSize - 1)
		pg := a[page]
		if pg == nil {
			pg = &arenaPage{delta: delta}
			if withData {
				pg.data = make([]byte, abi.PageSize)
			}
			a[page] = pg
		}
		pg.mixed = pg.mixed || pg.delta != delta
		if n := len(pg.libs); n == 0 || pg.libs[n-1] != lib {
			pg.libs = append(pg.libs, lib)
		}
		n := min(page+abi.PageSize-(addr+off), size-off)
		if off < uint64(len(data)) && pg.data != nil {
			copy(pg.data[addr+off-page:], data[off:min(off+n, uint64(len(data)))])
		}
		off += n
	}
}

// arenaMappings are the arena pages as mappings. Loading shared, a page
// the description's arena runs hold (desc.Config.Arena: the image's pages
// at the map's addresses, in the private blob) is mapped from the blob
// copy-on-write, with the words this instance changes (relocations moved
// by ASLR) as patches, so the instances of one unikernel share the arena
// pages they never write; any other page is copied.
func (p *Prepared) arenaMappings(a arenaPages, opt Options) []Mapping {
	withData := !p.snapshotOnly
	if opt.Load != monitor.LoadShared || len(p.cfg.Arena) == 0 || p.cfg.Private == nil {
		return a.mappings(nil, withData)
	}
	blobOff := func(page uint64) (uint64, bool) {
		for _, r := range p.cfg.Arena {
			if page >= r.Addr && page-r.Addr < r.Size && r.BlobOff+(page-r.Addr)+abi.PageSize <= p.privateSize {
				return r.BlobOff + (page - r.Addr), true
			}
		}
		return 0, false
	}
	file := func(page uint64, pg *arenaPage) (uint64, bool) {
		if pg.mixed {
			return 0, false
		}
		return blobOff(page - pg.delta)
	}
	ms := a.mappings(file, withData)
	for i := range ms {
		m := &ms[i]
		if !m.COW {
			continue
		}
		m.File, m.Digest = p.u.BlobPath(p.cfg.Private.Digest), p.cfg.Private.Digest
		if !withData {
			continue
		}
		blob := p.private[m.Offset : m.Offset+m.Size]
		for off := uint64(0); off < m.Size; off += 8 {
			if v := binary.LittleEndian.Uint64(m.Data[off:]); v != binary.LittleEndian.Uint64(blob[off:]) {
				m.Patches = append(m.Patches, Patch{off, v})
			}
		}
	}
	return ms
}

// mappings are the pages as mappings, one per run of adjacent pages (and,
// where file gives pages a blob offset, of pages at adjacent offsets:
// those runs are marked COW at their Offset, the blob to be named by the
// caller). Without withData their bytes are not made (put made none).
func (a arenaPages) mappings(file func(page uint64, pg *arenaPage) (uint64, bool), withData bool) []Mapping {
	pages := make([]uint64, 0, len(a))
	for p := range a {
		pages = append(pages, p)
	}
	sort.Slice(pages, func(i, j int) bool { return pages[i] < pages[j] })
	offs := make([]uint64, len(pages))
	inFile := make([]bool, len(pages))
	if file != nil {
		for i, pg := range pages {
			offs[i], inFile[i] = file(pg, a[pg])
		}
	}
	var out []Mapping
	for i := 0; i < len(pages); {
		j := i + 1
		for j < len(pages) && pages[j] == pages[j-1]+abi.PageSize && inFile[j] == inFile[i] &&
			(!inFile[i] || offs[j] == offs[j-1]+abi.PageSize) {
			j++
		}
		m := Mapping{Addr: pages[i], Size: uint64(j-i) * abi.PageSize, Prot: ProtRead | ProtWrite, Part: PartPrivate,
			COW: inFile[i], Offset: offs[i]}
		var libs []string
		seen := map[string]bool{}
		// Sized once: grown page by page, a run's bytes were copied
		// again at every growth (~100 KB of garbage per snapshot
		// instance planned, more than half of what planning it made).
		// A run of 3 to 8 pages would take a size class of its own
		// (desc.Scratch).
		if withData {
			m.Data = desc.Scratch(int64(m.Size))[:0]
		}
		for _, p := range pages[i:j] {
			if withData {
				m.Data = append(m.Data, a[p].data...)
			}
			for _, l := range a[p].libs {
				if !seen[l] {
					seen[l] = true
					libs = append(libs, l)
				}
			}
		}
		m.Library = strings.Join(libs, "+")
		out = append(out, m)
		i = j
	}
	return out
}

// appStart is where the description puts its app region (0 if it has
// none): it says where the per-instance memory goes (abi.PrivateBaseFor).
func (p *Prepared) appStart() uint64 {
	for _, l := range p.cfg.Libraries {
		if l.App {
			return l.Region.Start
		}
	}
	return 0
}

// BootStackRoom is the part of the boot area's first page left to the
// TLS area and the stack's first frames below the boot info: the boot
// info (and command line) starts BootStackRoom bytes into the first page
// of the boot area, at the top of the stack mapping. 3 KiB: the 300
// unikernels of bench's fleet touch as many stack pages as when the top
// page was the stack's and TLS's alone (2 KiB: 44 more), and the boot
// info and a command line of up to 863 bytes (the fleet's are at most
// 235) fit the rest. A snapshot records the room it was taken with
// (desc.Snapshot.StackBootRoom).
const BootStackRoom = 0xc00

// addPrivateMemory lays out the per-instance areas: the stack mapping,
// whose top page(s) hold the boot info and command line (the boot area:
// opt.BootArea bytes, else the pages they need with BootStackRoom below
// them) with the TLS area (block, TCB) right below the boot info and the
// stack below that, and the heap. The boot info thus shares the page the
// guest's first frames and its TCB write anyway: no page of its own. Without
// ASLR the stack mapping follows a guard page at
// abi.PrivateBaseFor(appStart) and the heap follows it after another, in
// the same 2 MiB as the image's app; under ASLR the stack mapping is
// placed in a 2 MiB chunk at a random page and the heap by pl at a random
// base (with a guard page all around): the boot info and TLS move with the
// stack.
func (lay *Layout) addPrivateMemory(bi abi.BootInfo, opt Options, pl *placer, appStart uint64) error {
	if opt.LegacyBootPage {
		return lay.addPrivateMemoryLegacy(bi, opt, pl, appStart)
	}
	mem, stack, heapSize, err := stackAndHeap(opt)
	if err != nil {
		return err
	}
	if bi.Version == 0 {
		bi.Version = abi.BootInfoVersion
	}
	bi.Magic = abi.BootInfoMagic
	need := uint64(len(bi.Marshal())) + uint64(len(opt.Cmdline)) + 1
	room := uint64(BootStackRoom)
	if opt.BootRoom != 0 {
		room = opt.BootRoom
	}
	if room%tlsMinAlign != 0 || room >= abi.PageSize {
		return fmt.Errorf("boot room %#x: not a multiple of %d below a page", room, tlsMinAlign)
	}
	area := pageUp(need + room)
	if opt.BootArea > 0 {
		if need+room > opt.BootArea {
			return fmt.Errorf("command line of %d bytes does not fit the boot-info area of %d bytes", len(opt.Cmdline), opt.BootArea)
		}
		area = pageUp(opt.BootArea)
	}
	// The TLS area (block, TCB, room to align it) right below the boot
	// info: under ASLR always (ukplat's static reserve lies at a known
	// offset in the image), else when it is small next to the stack (a
	// TLS image too large for it stays where ukplat puts it: its reserve,
	// else the heap). A version-1 guest knows no TLS area.
	var tlsSize uint64
	if bi.Version >= 2 {
		align := max(bi.TLSAlign, tlsMinAlign)
		if size := (bi.TLSMemSz+align-1)&^(align-1) + tlsTCBSize + align; opt.ASLR || size <= stack/8 {
			tlsSize = size
		}
	}
	stackMap := pageUp(stack + tlsSize + area - room)
	if lay.Entropy == nil {
		lay.Entropy = map[string]float64{}
	}
	if opt.ASLR && lay.EntropyGiven == nil {
		lay.EntropyGiven, lay.EntropyGroup, lay.Groups = map[string]float64{}, map[string]float64{}, map[string][]string{}
	}
	lay.Areas = map[string]uint64{}
	var stackAddr, heapAddr uint64
	if opt.ASLR {
		var err error
		if heapAddr, err = lay.placeHeap(pl, heapSize); err != nil {
			return err
		}
		chunk := uint64(AreaChunk)
		for stackMap+2*abi.PageSize > chunk/2 {
			chunk *= 2
		}
		c, err := pl.drawChunk(chunk)
		if err != nil {
			return err
		}
		if stackAddr, err = pl.placeIn(c, chunk, []span{{0, stackMap}}, PartStack); err != nil {
			return err
		}
		// The boot info and the TLS area lie at fixed offsets in the
		// stack mapping: each has the stack's bits, and one of the three
		// gives the others.
		window, group, _ := pl.chunkBits(chunk, stackMap, 0)
		for _, name := range []string{PartBootInfo, PartStack, PartTLS} {
			lay.Entropy[name], lay.EntropyGroup[name], lay.EntropyGiven[name] = window, group, 0
		}
		lay.Groups[GroupAreas] = []string{PartBootInfo, PartTLS, PartStack}
	} else {
		stackAddr = abi.PrivateBaseFor(appStart) + abi.PageSize
		heapAddr = stackAddr + stackMap + abi.PageSize
		if limit := abi.PrivateLimitFor(appStart); heapAddr+heapSize > limit {
			return fmt.Errorf("memory size %d MiB does not fit the per-instance memory [%#x,%#x)", mem>>20, stackAddr, limit)
		}
		for _, name := range []string{PartBootInfo, PartStack, PartHeap} {
			lay.Entropy[name] = 0
		}
	}
	if bi.Version == 1 {
		// A guest linked against version 1 knows no canary field: it
		// derives its canary from the seed, so the report says that one.
		opt.Canary = canaryV1(opt.Seed)
	}
	top := stackAddr + stackMap
	bootAddr := top - area + room
	stackTop := bootAddr - tlsSize
	if tlsSize > 0 {
		bi.TLSArea, bi.TLSAreaSize = stackTop, tlsSize
	}
	bi.Cmdline, bi.CmdlineLen = bootAddr+uint64(len(bi.Marshal())), uint64(len(opt.Cmdline))
	bi.HeapStart, bi.HeapSize = heapAddr, heapSize
	bi.StackStart, bi.StackSize = stackAddr, stackTop-stackAddr
	bi.InstanceID, bi.Seed, bi.TSCKHz, bi.Monitor = opt.InstanceID, opt.Seed, opt.TSCKHz, opt.Monitor
	if bi.Version >= 2 {
		bi.Canary = opt.Canary
	}
	// The stack's top page(s), from the one the stack starts in: zero up
	// to the boot info, then the boot info and command line.
	first := pageDown(stackTop)
	data := make([]byte, bootAddr-first, bootAddr-first+need)
	data = append(data, bi.Marshal()...)
	data = append(data, opt.Cmdline...)
	data = append(data, 0)

	lay.BootInfo, lay.BootEnd = bootAddr, top
	lay.StackTop = stackTop
	lay.Canary, lay.Seed, lay.Seeded = opt.Canary, opt.Seed, opt.seeded
	lay.Entropy["canary"], lay.Entropy["seed"] = CanaryBits, SeedBits
	if bi.Version == 1 {
		// Its canary follows from the seed it reads from its boot info:
		// no secret of its own.
		lay.Entropy["canary"] = 0
	}
	lay.Areas[PartBootInfo], lay.Areas[PartStack], lay.Areas[PartHeap] = bootAddr, stackAddr, heapAddr
	if first > stackAddr {
		lay.Mappings = append(lay.Mappings, Mapping{Addr: stackAddr, Size: first - stackAddr, Prot: ProtRead | ProtWrite, Part: PartStack})
	}
	lay.Mappings = append(lay.Mappings,
		Mapping{Addr: first, Size: top - first, Prot: ProtRead | ProtWrite, Data: data, Part: PartStack},
		Mapping{Addr: heapAddr, Size: heapSize, Prot: ProtRead | ProtWrite, Part: PartHeap},
	)
	if tlsSize > 0 {
		lay.Areas[PartTLS], lay.TLSSize = stackTop, tlsSize
	}
	return nil
}

// placeHeap places the heap at a random base under ASLR and records its
// entropy and group.
func (lay *Layout) placeHeap(pl *placer, heapSize uint64) (uint64, error) {
	addr, err := pl.place(heapSize, PartHeap)
	if err != nil {
		return 0, err
	}
	lay.Entropy[PartHeap] = pl.EntropyBits(heapSize)
	lay.EntropyGiven[PartHeap] = pl.GivenSpanBits(heapSize)
	lay.EntropyGroup[PartHeap] = pl.GivenSpanBits(heapSize)
	lay.Groups[GroupHeap] = []string{PartHeap}
	return addr, nil
}

// stackAndHeap splits an instance's memory mem (opt.MemSize,
// DefaultMemSize when 0) into the stack's size and the heap's (the rest,
// whole pages).
func stackAndHeap(opt Options) (mem, stack, heap uint64, err error) {
	mem = opt.MemSize
	if mem == 0 {
		mem = DefaultMemSize
	}
	stack = uint64(abi.DefaultStackSize)
	if mem < stack+abi.PageSize*16 {
		return 0, 0, 0, fmt.Errorf("memory size %d too small (need at least %d)", mem, stack+abi.PageSize*16)
	}
	return mem, stack, pageDown(mem - stack), nil
}

// addPrivateMemoryLegacy is the layout before session 15, which a
// snapshot taken with it still needs (desc.Snapshot.BootArea): the
// per-instance areas are the boot-info
// page(s) with the command line, the stack and the heap. Without ASLR they
// follow each other from abi.PrivateBaseFor(appStart) with a guard page
// between, in the same 2 MiB as the image's app; under ASLR each, and a
// TLS area of its own, is placed by pl at a random base (with a guard page
// all around).
func (lay *Layout) addPrivateMemoryLegacy(bi abi.BootInfo, opt Options, pl *placer, appStart uint64) error {
	mem, stack, heapSize, err := stackAndHeap(opt)
	if err != nil {
		return err
	}
	bootSize := pageUp(abi.BootInfoSize + uint64(len(opt.Cmdline)) + 1)
	if opt.BootArea > 0 {
		if bootSize > opt.BootArea {
			return fmt.Errorf("command line of %d bytes does not fit the boot-info area of %d bytes", len(opt.Cmdline), opt.BootArea)
		}
		bootSize = pageUp(opt.BootArea)
	}
	if lay.Entropy == nil {
		lay.Entropy = map[string]float64{}
	}
	if opt.ASLR && lay.EntropyGiven == nil {
		lay.EntropyGiven, lay.EntropyGroup, lay.Groups = map[string]float64{}, map[string]float64{}, map[string][]string{}
	}
	lay.Areas = map[string]uint64{}
	var bootAddr, stackAddr, heapAddr, tlsAddr, tlsSize uint64
	if opt.ASLR {
		// The TLS area (block, TCB, room to align it) follows the
		// command line in the boot-info area: no page of its own.
		align := max(bi.TLSAlign, tlsMinAlign)
		tlsSize = (bi.TLSMemSz+align-1)&^(align-1) + tlsTCBSize + align
		tlsOff := (uint64(len(bi.Marshal())) + uint64(len(opt.Cmdline)) + 1 + align - 1) &^ (align - 1)
		bootSize = max(bootSize, pageUp(tlsOff+tlsSize))
		var err error
		if heapAddr, err = lay.placeHeap(pl, heapSize); err != nil {
			return err
		}
		chunk := uint64(AreaChunk)
		for bootSize+stack+4*abi.PageSize > chunk/2 {
			chunk *= 2
		}
		c, err := pl.drawChunk(chunk)
		if err != nil {
			return err
		}
		for _, a := range []struct {
			at          *uint64
			size, other uint64
			name        string
		}{{&bootAddr, bootSize, stack, PartBootInfo}, {&stackAddr, stack, bootSize, PartStack}} {
			if *a.at, err = pl.placeIn(c, chunk, []span{{0, a.size}}, a.name); err != nil {
				return err
			}
			lay.Entropy[a.name], lay.EntropyGroup[a.name], lay.EntropyGiven[a.name] = pl.chunkBits(chunk, a.size, a.other)
		}
		tlsAddr = bootAddr + tlsOff
		lay.Entropy[PartTLS], lay.EntropyGroup[PartTLS] = lay.Entropy[PartBootInfo], lay.EntropyGroup[PartBootInfo]
		lay.EntropyGiven[PartTLS] = 0 // the boot info's base gives it
		lay.Groups[GroupAreas] = []string{PartBootInfo, PartTLS, PartStack}
		bi.TLSArea, bi.TLSAreaSize = tlsAddr, tlsSize
	} else {
		bootAddr = abi.PrivateBaseFor(appStart)
		stackAddr = bootAddr + bootSize + abi.PageSize
		heapAddr = stackAddr + stack + abi.PageSize
		if limit := abi.PrivateLimitFor(appStart); heapAddr+heapSize > limit {
			return fmt.Errorf("memory size %d MiB does not fit the per-instance memory [%#x,%#x)", mem>>20, bootAddr, limit)
		}
		for _, name := range []string{PartBootInfo, PartStack, PartHeap} {
			lay.Entropy[name] = 0
		}
	}
	if bi.Version == 0 {
		bi.Version = abi.BootInfoVersion
	}
	bi.Magic = abi.BootInfoMagic
	if bi.Version == 1 {
		// A guest linked against version 1 knows no canary field: it
		// derives its canary from the seed, so the report says that one.
		opt.Canary = canaryV1(opt.Seed)
	}
	cmdAddr := bootAddr + uint64(len(bi.Marshal()))
	stackTop := stackAddr + stack
	if !opt.ASLR && bi.Version >= 2 {
		// The TLS area (block, TCB) at the top of the stack mapping, the
		// stack right below it: the TCB with this instance's canary
		// shares the page the guest's first frames write anyway, instead
		// of taking a data-arena page of its own in every instance (from a
		// snapshot, one page fewer copied each). A TLS image too large
		// for it stays where ukplat puts it (its reserve, else the heap).
		align := max(bi.TLSAlign, tlsMinAlign)
		if size := (bi.TLSMemSz+align-1)&^(align-1) + tlsTCBSize + align; size <= stack/8 {
			tlsSize, tlsAddr = size, stackTop-size
			stackTop = tlsAddr
			bi.TLSArea, bi.TLSAreaSize = tlsAddr, tlsSize
		}
	}

	bi.Cmdline, bi.CmdlineLen = cmdAddr, uint64(len(opt.Cmdline))
	bi.HeapStart, bi.HeapSize = heapAddr, heapSize
	bi.StackStart, bi.StackSize = stackAddr, stackTop-stackAddr
	bi.InstanceID, bi.Seed, bi.TSCKHz, bi.Monitor = opt.InstanceID, opt.Seed, opt.TSCKHz, opt.Monitor
	if bi.Version >= 2 {
		bi.Canary = opt.Canary
	}
	page := append(bi.Marshal(), opt.Cmdline...)
	page = append(page, 0)

	lay.BootInfo = bootAddr
	lay.StackTop = stackTop
	lay.Canary, lay.Seed, lay.Seeded = opt.Canary, opt.Seed, opt.seeded
	lay.Entropy["canary"], lay.Entropy["seed"] = CanaryBits, SeedBits
	if bi.Version == 1 {
		// Its canary follows from the seed it reads from its boot info:
		// no secret of its own.
		lay.Entropy["canary"] = 0
	}
	lay.Areas[PartBootInfo], lay.Areas[PartStack], lay.Areas[PartHeap] = bootAddr, stackAddr, heapAddr
	lay.Mappings = append(lay.Mappings,
		Mapping{Addr: bootAddr, Size: bootSize, Prot: ProtRead | ProtWrite, Data: page, Part: PartBootInfo},
		Mapping{Addr: stackAddr, Size: stack, Prot: ProtRead | ProtWrite, Part: PartStack},
		Mapping{Addr: heapAddr, Size: heapSize, Prot: ProtRead | ProtWrite, Part: PartHeap},
	)
	if tlsSize > 0 {
		lay.Areas[PartTLS], lay.TLSSize = tlsAddr, tlsSize
	}
	return nil
}

// canaryV1 is the canary a version-1 guest derives from its seed
// (splitmix64, low byte zeroed): such a guest's canary follows from the
// seed in its boot info, which is why version 2 hands the canary in.
func canaryV1(seed uint64) uint64 {
	z := seed + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return z &^ 0xff
}

// The guest's TCB size and least TLS alignment (guest/plat/tls.h): a TLS
// area holds the block, the TCB above it and room to align the TCB.
const (
	tlsTCBSize  = 0x100
	tlsMinAlign = 64
)

// check sorts the mappings and refuses overlaps and unaligned ranges, so a
// monitor can map them blindly.
func (lay *Layout) check() error {
	sort.Slice(lay.Mappings, func(i, j int) bool { return lay.Mappings[i].Addr < lay.Mappings[j].Addr })
	for i, m := range lay.Mappings {
		if m.Addr%abi.PageSize != 0 || m.Size%abi.PageSize != 0 || m.Size == 0 {
			return fmt.Errorf("mapping %s/%s at %#x+%#x not page-aligned", m.Library, m.Part, m.Addr, m.Size)
		}
		if uint64(len(m.Data)) > m.Size {
			return fmt.Errorf("mapping %s/%s: %d bytes of data for %d bytes", m.Library, m.Part, len(m.Data), m.Size)
		}
		if i > 0 {
			prev := lay.Mappings[i-1]
			if prev.Addr+prev.Size > m.Addr {
				return fmt.Errorf("mappings %s/%s and %s/%s overlap at %#x", prev.Library, prev.Part, m.Library, m.Part, m.Addr)
			}
		}
		if m.JoinNext && (i+1 == len(lay.Mappings) || !joinable(m, lay.Mappings[i+1]) ||
			m.Part != lay.Mappings[i+1].Part && (m.Part != PartImage || lay.Mappings[i+1].Part != PartBootInfo)) {
			return fmt.Errorf("mapping %s/%s at %#x: joined with a next mapping it cannot join", m.Library, m.Part, m.Addr)
		}
	}
	if r := lay.Reads; r != nil {
		if r.From == "" {
			return fmt.Errorf("reads of an image with no file")
		}
		end := uint64(0)
		for _, rd := range r.Runs {
			m := lay.Find(rd.Addr)
			if rd.Len == 0 || rd.Addr < end || rd.Addr+rd.Len < rd.Addr || rd.FileOff+rd.Len < rd.FileOff ||
				m == nil || m.Part != PartImage || m.File != "" || m.Data != nil || rd.Addr+rd.Len > m.Addr+m.Size {
				return fmt.Errorf("read of %d bytes at %#x: not in order, or not inside an image mapping without data", rd.Len, rd.Addr)
			}
			end = rd.Addr + rd.Len
		}
	}
	return nil
}

// joinable says whether a monitor may map a, the gap after it and b as
// one anonymous mapping (Mapping.JoinNext): both anonymous (copied, not a
// file's), the same protection, b after a and the gap in one 2 MiB. A
// layout joins an image's segments, and its last one with the boot-info
// page after it (check refuses other joins).
func joinable(a, b Mapping) bool {
	end := a.Addr + a.Size
	return a.File == "" && b.File == "" && a.Prot == b.Prot && end <= b.Addr &&
		(end == b.Addr || end>>21 == (b.Addr-1)>>21)
}

// zeroPage is a page of zeros, to compare pages with.
var zeroPage [abi.PageSize]byte

// DataRuns are the ranges [from, to) of m.Data, as offsets in it, that a
// monitor must write into fresh (zero) memory: Data without its all-zero
// pages, which read as zero unwritten. A copying loader that writes them
// anyway makes each one a page of the instance's (present: one more page
// for ksmd to track, and to merge, in the KSM baselines).
func (m *Mapping) DataRuns() [][2]uint64 {
	var runs [][2]uint64
	n := uint64(len(m.Data))
	for off := uint64(0); off < n; off += abi.PageSize {
		end := min(off+abi.PageSize, n)
		if bytes.Equal(m.Data[off:end], zeroPage[:end-off]) {
			continue
		}
		if k := len(runs); k > 0 && runs[k-1][1] == off {
			runs[k-1][1] = end
		} else {
			runs = append(runs, [2]uint64{off, end})
		}
	}
	return runs
}

// Find returns the mapping holding addr, or nil: monitors name the library
// a fault falls in with it.
func (lay *Layout) Find(addr uint64) *Mapping {
	if lay.Mappings == nil && lay.Placed != nil {
		i := sort.Search(len(lay.Placed), func(i int) bool {
			p := lay.Placed[i]
			return p.Addr+p.M.Size > addr
		})
		if i < len(lay.Placed) && lay.Placed[i].Addr <= addr {
			m := *lay.Placed[i].M
			m.Addr = lay.Placed[i].Addr
			return &m
		}
		return nil
	}
	i := sort.Search(len(lay.Mappings), func(i int) bool {
		m := lay.Mappings[i]
		return m.Addr+m.Size > addr
	})
	if i < len(lay.Mappings) && lay.Mappings[i].Addr <= addr {
		return &lay.Mappings[i]
	}
	return nil
}

// AllMappings are the layout's mappings, from Placed if it has no
// Mappings.
func (lay *Layout) AllMappings() []Mapping {
	if lay.Mappings != nil || lay.Placed == nil {
		return lay.Mappings
	}
	ms := make([]Mapping, len(lay.Placed))
	for i, p := range lay.Placed {
		ms[i] = *p.M
		ms[i].Addr = p.Addr
	}
	return ms
}

// Describe names what addr falls in, for fault reports.
func (lay *Layout) Describe(addr uint64) string {
	m := lay.Find(addr)
	switch {
	case m == nil:
		return "unmapped memory"
	case m.Library != "":
		return fmt.Sprintf("library %s, %s part", m.Library, m.Part)
	default:
		return m.Part
	}
}

func parseProt(s string) int {
	p := 0
	if len(s) == 3 {
		if s[0] == 'r' {
			p |= ProtRead
		}
		if s[1] == 'w' {
			p |= ProtWrite
		}
		if s[2] == 'x' {
			p |= ProtExec
		}
	}
	return p
}

func pageUp(n uint64) uint64   { return (n + abi.PageSize - 1) &^ (abi.PageSize - 1) }
func pageDown(n uint64) uint64 { return n &^ (abi.PageSize - 1) }

// readBlob reads a whole blob through the descriptor launch verified.
func readBlob(u monitor.Unikernel, digest string) ([]byte, error) {
	f, err := u.OpenBlob(digest)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data := desc.Scratch(fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return data, nil
}

// statBlob stats a blob through the descriptor launch verified.
func statBlob(u monitor.Unikernel, digest string) (os.FileInfo, error) {
	f, err := u.OpenBlob(digest)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}

// privateTotal bounds the bytes the per-instance areas take in the ASLR
// span (addPrivateMemory): heap and stack, boot info, TLS, guard pages.
func privateTotal(opt Options) uint64 {
	mem := opt.MemSize
	if mem == 0 {
		mem = DefaultMemSize
	}
	return pageUp(mem) + pageUp(opt.BootArea) + 1<<20
}
