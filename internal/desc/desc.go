// Package desc defines the unikernel description: what an aligned image
// carries in its ".unipool" section (written by the linker) and, with blob
// digests filled in, the config blob of a pooled unikernel (written by the
// pool, read by the monitors). It is the one contract between the
// toolchain, the pool and the monitors.
//
// A library region is laid out as
//
//	Region.Start                                   tramp table  (private, per instance)
//	Region.Start+TrampSize                         shared part  (code + rodata: one pool blob)
//	Region.Start+TrampSize+SharedSize              private part (data + bss)
//
// Every address a loader must compute is an Addr: an offset from the start
// of some library's region, so a loader that moves regions (ASLR) only needs
// each region's base.
package desc

import (
	"encoding/json"
	"fmt"
	"unique"
)

// Media types of the pool (an OCI image layout).
const (
	ArtifactType     = "application/vnd.unipool.unikernel.v1"
	MediaTypeConfig  = "application/vnd.unipool.unikernel.config.v1+json"
	MediaTypeShared  = "application/vnd.unipool.library.shared.v1"
	MediaTypePrivate = "application/vnd.unipool.image.private.v1"
	MediaTypeInit    = "application/vnd.unipool.library.init.v1"
	SectionName      = ".unipool" // the image section holding a Config
	// SchemaVersion is what a description without dense regions says;
	// SchemaVersionDense one with (Region.PrivateStart), so that a
	// loader knowing only 1 refuses it instead of misplacing private
	// parts.
	SchemaVersion      = 1
	SchemaVersionDense = 2
	// SchemaVersionPack is a description with packs (Library.Pack), so
	// that a loader knowing only 2 refuses it instead of mapping a pack
	// member's code from a sub-page address.
	SchemaVersionPack = 3
	ProtRX            = "r-x"
	ProtR             = "r--"
	ProtRW            = "rw-"
)

// Config describes one unikernel.
type Config struct {
	SchemaVersion int    `json:"schema_version"`
	Name          string `json:"name,omitempty"`    // set by the pool
	Layout        string `json:"layout"`            // "aligned"
	Cmdline       string `json:"cmdline,omitempty"` // default command line
	MemSize       uint64 `json:"mem_size"`          // default guest heap+stack bytes
	Entry         Addr   `json:"entry"`
	// Boot is how a monitor starts the image: "" for the unipool guest
	// ABI (docs/guest-abi.md), BootLinux64 for the Linux x86-64 boot
	// protocol as Firecracker does it (Unikraft's kvm platform).
	Boot string `json:"boot,omitempty"`
	// BootInfoVersion is the boot-info layout the guest accepts
	// (abi.BootInfoVersionSymbol in its image); 0, in descriptions
	// made before it was recorded, means 1.
	BootInfoVersion uint32    `json:"boot_info_version,omitempty"`
	TLS             *TLS      `json:"tls,omitempty"`
	Libraries       []Library `json:"libraries"`
	// Private is the image's private blob: every library's tramp table
	// (pre-filled for the map's addresses) and initialised data. Set by the pool.
	Private *BlobRef `json:"private,omitempty"`
	// Arena (pool only) lists where the private blob holds, as whole
	// pages, the data-arena pages of this image: its dense private parts
	// (desc.Region.Dense) with their initial contents, as they lie at
	// the map's addresses. A loader maps them copy-on-write, so the
	// instances of one unikernel share the arena pages none of them
	// writes; without it (older descriptions) the loader copies them.
	Arena []ArenaRun `json:"arena,omitempty"`
	// Image names the image file the description was made from (pool only).
	Image *BlobRef `json:"image,omitempty"`
	// Snapshot, when set (pool only, `unipool snapshot`), is the unikernel
	// booted to its ready point; `run --snapshot` starts instances from it.
	Snapshot *Snapshot `json:"snapshot,omitempty"`
}

// ArenaRun is Size bytes of data-arena pages at Addr (the map's
// addresses), held at BlobOff in the private blob; all three page
// multiples.
type ArenaRun struct {
	Addr    uint64 `json:"addr"`
	Size    uint64 `json:"size"`
	BlobOff uint64 `json:"blob_off"`
}

// BootLinux64 is the Linux 64-bit boot protocol: the entry gets a zero
// page (struct boot_params: setup header, command line, e820 map) in
// %rsi, with guest-physical memory identity-mapped below 4 GiB.
const BootLinux64 = "linux64"

// Addr is an address relative to the region of library Lib (an index into
// Config.Libraries).
type Addr struct {
	Lib int    `json:"lib"`
	Off uint64 `json:"off"`
}

// BlobRef names a content-addressed blob.
type BlobRef struct {
	Digest string `json:"digest"` // "sha256:<hex>"
	Size   int64  `json:"size"`
}

// Region is a library's address range. Sizes are capacities (page multiples).
//
// A dense region (PrivateStart set) keeps its private part apart, in the
// library map's data arena (abi.DataArenaBase), at PrivateStart: PrivateSize
// bytes (a multiple of 16, not of a page) packed next to other libraries'
// private parts, so the libraries of an image share private pages. The
// two ranges move together (one base per library): Addr offsets into the
// private part are PrivateStart-Start and up.
type Region struct {
	Start        uint64 `json:"start"`
	TrampSize    uint64 `json:"tramp_size"`
	SharedSize   uint64 `json:"shared_size"`
	PrivateSize  uint64 `json:"private_size"`
	PrivateStart uint64 `json:"private_start,omitempty"`
}

// TrampAddr, SharedAddr and PrivateAddr are the parts' link-time addresses.
func (r Region) TrampAddr() uint64  { return r.Start }
func (r Region) SharedAddr() uint64 { return r.Start + r.TrampSize }
func (r Region) PrivateAddr() uint64 {
	if r.Dense() {
		return r.PrivateStart
	}
	return r.Start + r.TrampSize + r.SharedSize
}

// Dense reports whether the private part lies in the data arena.
func (r Region) Dense() bool { return r.PrivateStart != 0 }

// End is the first address after the region's contiguous range (for a
// dense region: after its shared part).
func (r Region) End() uint64 {
	if r.Dense() {
		return r.Start + r.TrampSize + r.SharedSize
	}
	return r.Start + r.TrampSize + r.SharedSize + r.PrivateSize
}

// PrivateEnd is the first address after the private part.
func (r Region) PrivateEnd() uint64 { return r.PrivateAddr() + r.PrivateSize }

// Holds reports whether va lies in one of the region's parts.
func (r Region) Holds(va uint64) bool {
	return (va >= r.Start && va < r.End()) || (r.Dense() && va >= r.PrivateStart && va < r.PrivateEnd())
}

// Extent bounds the offsets (Addr.Off) into the region: its last part's end, from Start.
func (r Region) Extent() uint64 { return max(r.End(), r.PrivateEnd()) - r.Start }

// Library is one library (or the image's app) inside a unikernel.
type Library struct {
	Name         string `json:"name"`
	Version      string `json:"version,omitempty"`
	Origin       string `json:"origin,omitempty"` // "unipool" or a Debian package
	ObjectSHA256 string `json:"object_sha256,omitempty"`
	App          bool   `json:"app,omitempty"` // lives at abi.AppRegionBase, not in the map
	Region       Region `json:"region"`
	Tramp        Tramp  `json:"tramp"`
	Shared       Shared `json:"shared"`
	Private      Part   `json:"private"`
	// Relocs are the absolute addresses stored in the private part.
	Relocs []Reloc `json:"relocs,omitempty"`
	// Init, when set (pool only), is the library's initial private memory
	// as a blob of its own: the tramp table at offset 0, the initialised
	// data at InitDataOff(). Identical libraries of different images share
	// it, and a loader maps it copy-on-write, so an instance's table and
	// data pages stay one physical copy until the guest writes them.
	Init *BlobRef `json:"init,omitempty"`
	// Members, set for a group unit (libraries linked as one: one
	// region, one code stream, one base), are its libraries in link
	// order; Name, Version and ObjectSHA256 are then the unit's own
	// (names and versions joined by "+", the sha256 of the unit's object).
	Members []Member `json:"members,omitempty"`
	// Shift is how far this image placed the library from its region in
	// the library map (whole pages, either way; Region is where it is):
	// a dense library moves with its private part, its pages unchanged,
	// so that the image's private parts share fewer pages. The map's
	// region is Region moved back by Shift.
	Shift int64 `json:"shift,omitempty"`
	// Pack, set for a library whose code lies in a pack of the library
	// map (pages holding the shared parts of small libraries side by
	// side), is the pack's start in the map. Such a library (a pack
	// member) has a region at a 16-byte aligned address with no tramp
	// part and a shared part of Shared.Size bytes but no blob of its own:
	// its pages are mapped by pack page entries (PackPage) of the same
	// pack, each a shared part of whole pages holding the pack's bytes
	// there. An image's own description (the linker's) has one entry per
	// page its members touch; a pooled one (pool add) one entry for the
	// whole pack, its sealed pages in one blob, so an instance maps a
	// pack with one host mapping whichever members it uses (descriptions
	// pooled before that keep an entry per page, and load as they are).
	// A pack and its members move together (one base).
	Pack     uint64 `json:"pack,omitempty"`
	PackPage bool   `json:"pack_page,omitempty"`
	// NoASLR, when set, says why this library cannot be moved (the loader
	// then keeps it at Region.Start even under --aslr).
	NoASLR string `json:"no_aslr,omitempty"`
}

// InPack reports whether the library is a pack member (its code mapped
// by its pack's pages, not a blob of its own).
func (l *Library) InPack() bool { return l.Pack != 0 && !l.PackPage }

// MaxPackSize bounds a pack page entry's shared part: a pack's room in
// the library map (libmap.PackRoom) at most.
const MaxPackSize = 16 << 12

// PackPageName is the name of the pack page entry for the page at addr
// (of a whole pack's entry: the pack's first page).
func PackPageName(addr uint64) string { return fmt.Sprintf("pack-%x", addr) }

// MapRegion is the library's region in the library map: Region moved
// back by Shift.
func (l *Library) MapRegion() Region {
	r := l.Region
	r.Start = uint64(int64(r.Start) - l.Shift)
	if r.Dense() {
		r.PrivateStart = uint64(int64(r.PrivateStart) - l.Shift)
	}
	return r
}

// Within reports whether r is m, or m with smaller dense parts (an
// image's region whose library version needs less room than the map's
// region keeps for its versions): the same start and private start.
func (r Region) Within(m Region) bool {
	if r == m {
		return true
	}
	if !r.Dense() || r.SharedSize > m.SharedSize || r.PrivateSize > m.PrivateSize {
		return false
	}
	r.SharedSize, r.PrivateSize = m.SharedSize, m.PrivateSize
	return r == m
}

// Member is one library of a group unit.
type Member struct {
	Name         string `json:"name"`
	Version      string `json:"version,omitempty"`
	Origin       string `json:"origin,omitempty"`
	ObjectSHA256 string `json:"object_sha256,omitempty"`
}

// InitDataOff is where the initialised data starts in the Init blob.
func (l *Library) InitDataOff() uint64 { return (l.Tramp.Size + 0xfff) &^ 0xfff }

// Tramp is a library's trampoline table: constant stubs plus 8-byte slots
// holding absolute addresses that the loader fills per instance.
//
// An image either keeps the table in the region's tramp area (Split
// false: Size bytes at Region.TrampAddr(), slots listed in Slots), or
// splits it (Split true, the dense layout): the stubs are code, so they
// follow the read-only data at the end of the shared part (StubSize bytes
// at StubOff of the shared part, in the shared blob, shared by every
// instance), and the slots are private words at the start of the private
// part (SlotSize bytes), which the description lists as Relocs like any
// other absolute address there. A split library needs no tramp page of
// its own: the table costs the bytes it uses in pages the library already
// has. Before the trampoline pass the linker sets StubSize and SlotSize to
// the room it reserved; the pass sets them to what the table uses.
type Tramp struct {
	Size    uint64 `json:"size"`               // used bytes (<= Region.TrampSize)
	BlobOff uint64 `json:"blob_off,omitempty"` // offset in the private blob (pool only)
	Slots   []Slot `json:"slots,omitempty"`
	Split   bool   `json:"split,omitempty"`
	// StubOff is where the stubs start, from the shared part's start.
	StubOff  uint64 `json:"stub_off,omitempty"`
	StubSize uint64 `json:"stub_size,omitempty"`
	// SlotSize is the slot words' bytes at the private part's start.
	SlotSize uint64 `json:"slot_size,omitempty"`
}

// Slot is an 8-byte absolute address at Off in the tramp table.
type Slot struct {
	Off    uint64 `json:"off"`
	Target Addr   `json:"target"`
}

// Shared is the code + read-only data part: one pool blob, mapped read-only.
type Shared struct {
	Size     uint64    `json:"size"`             // page multiple; 0 if the library has none
	Digest   string    `json:"digest,omitempty"` // pool only
	Segments []Segment `json:"segments,omitempty"`
}

// Segment is a page-aligned piece of a part with one protection.
type Segment struct {
	Off  uint64 `json:"off"` // from the part's start
	Size uint64 `json:"size"`
	Prot string `json:"prot"` // ProtRX, ProtR, ProtRW
}

// Part is the private data + bss part.
type Part struct {
	FileSize uint64 `json:"file_size"`          // initialised bytes
	MemSize  uint64 `json:"mem_size"`           // with bss, page multiple (dense region: multiple of 16)
	BlobOff  uint64 `json:"blob_off,omitempty"` // offset in the private blob (pool only)
}

// Reloc stores Target's absolute address (8 bytes, little-endian) at Off
// from the start of the library's private part.
type Reloc struct {
	Off    uint64 `json:"off"`
	Target Addr   `json:"target"`
}

// TLS is the PT_TLS template: the guest copies it per instance (boot info).
type TLS struct {
	Image    Addr   `json:"image"`
	FileSize uint64 `json:"file_size"`
	MemSize  uint64 `json:"mem_size"`
	Align    uint64 `json:"align"`
}

// Parse decodes and validates a Config. Errors say what is wrong; callers
// add the file name.
func Parse(data []byte) (*Config, error) {
	c, err := ParseOnce(data)
	if err != nil {
		return nil, err
	}
	c.compact()
	return c, nil
}

// ParseOnce decodes and validates a Config as Parse does, without
// compacting it: for a description read to be used once and let go (a
// monitor reads one to plan a unikernel's instances and drops it once
// they are planned), where interning its strings (a snapshot's page
// digests, one per page) and copying its lists to their exact lengths
// only make garbage and work.
func ParseOnce(data []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("description: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// compact makes a parsed description hold what it says and no more: the
// strings many descriptions repeat (library names, versions, digests)
// become one copy per process, and lists lose the spare capacity the
// decoder grew them with. A monitor holds every description of its fleet
// while it starts it (run and serve let them go once their instances are
// planned).
func (c *Config) compact() {
	in := func(ss ...*string) {
		for _, s := range ss {
			if *s != "" {
				*s = unique.Make(*s).Value()
			}
		}
	}
	ref := func(b *BlobRef) {
		if b != nil {
			in(&b.Digest)
		}
	}
	in(&c.Layout, &c.Boot)
	ref(c.Private)
	ref(c.Image)
	c.Libraries = exact(c.Libraries)
	for i := range c.Libraries {
		l := &c.Libraries[i]
		in(&l.Name, &l.Version, &l.Origin, &l.ObjectSHA256, &l.Shared.Digest)
		ref(l.Init)
		l.Relocs = exact(l.Relocs)
		l.Tramp.Slots = exact(l.Tramp.Slots)
		l.Shared.Segments = exact(l.Shared.Segments)
		for j := range l.Shared.Segments {
			in(&l.Shared.Segments[j].Prot)
		}
		l.Members = exact(l.Members)
		for j := range l.Members {
			m := &l.Members[j]
			in(&m.Name, &m.Version, &m.Origin, &m.ObjectSHA256)
		}
	}
	if s := c.Snapshot; s != nil {
		in(&s.Monitor, &s.Zero)
		s.Pages = exact(s.Pages)
		for j := range s.Pages {
			in(&s.Pages[j].Digest)
		}
	}
}

// exact returns s in an array of exactly its length.
func exact[T any](s []T) []T {
	if len(s) == cap(s) {
		return s
	}
	return append(make([]T, 0, len(s)), s...)
}
