package loader

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"unsafe"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/monitor"
)

// plainImage is a packed or dce image: loaded by copying its PT_LOAD
// segments, the way a stock unikernel loader does.
type plainImage struct {
	imageHeaders
	segments []Mapping // page-aligned, merged, with their bytes
	// reads, when set, stand for the segments' Data (PrepareReads).
	reads *ImageReads
}

// imageHeaders is what a plain image's ELF headers say, read and checked
// once (readImageHeaders): all its loads need besides its bytes. A
// monitor keeps them from the check before its run to the image's first
// instance (ImageHeaders) instead of parsing the image again: elf.NewFile
// makes a Section, a reader and a name per section header, and buffers
// sized by the image's header counts, ~35 KB of garbage per parse of an
// aligned image (99 sections) against ~8 KB of a DCE one (25).
type imageHeaders struct {
	path  string
	entry uint64
	// progs are its PT_LOADs that take memory (Memsz != 0), in file
	// order (stock loading maps them so).
	progs []elf.ProgHeader
	tls   elf.ProgHeader // its PT_TLS; Type 0 (PT_NULL) if none
	linux bool           // boots by the Linux protocol (a Unikraft image)
	// multiboot: an ELF32 multiboot kernel (Unikraft's QEMU flavour),
	// loaded by its physical addresses.
	multiboot bool
	bootInfo  uint32 // the boot-info version its guest accepts
	// dead are the pages its link found nothing reachable on
	// (elfimage.DeadSectionName): a copying load leaves them out.
	dead []elfimage.PageRange
	// The file's size and modification time when read: a load from
	// these headers refuses a file that changed since.
	size    int64
	modTime int64
	store   *HeaderStore // where progs came from, and its reads go (nil: slices of their own)
}

// imageRead is what readPlainImage reads of an image besides its headers.
type imageRead int

const (
	imageHeadersOnly imageRead = iota // the headers only (Check)
	imageData                         // the segments' bytes (Mapping.Data)
	imageReads                        // where they are in the file, all-zero pages left out (Layout.Reads)
)

func readPlainImage(path string, read imageRead) (*plainImage, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	defer fh.Close()
	h, err := readImageHeaders(path, fh, nil)
	if err != nil {
		return nil, err
	}
	return h.image(fh, read)
}

// readImageHeaders reads and checks the ELF headers of the image file fh
// (path, for messages), with debug/elf; its PT_LOAD list is taken from
// store (nil: a slice of its own).
func readImageHeaders(path string, fh *os.File, store *HeaderStore) (*imageHeaders, error) {
	fi, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	f, err := elf.NewFile(fh)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	multiboot, err := isMultibootImage(f, fh)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	if !multiboot && (f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64) {
		return nil, fmt.Errorf("image %s: not an ELF64 x86-64 executable (nor an ELF32 multiboot kernel)", path)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil, fmt.Errorf("image %s: ELF type %v is not an executable", path, f.Type)
	}
	h := &imageHeaders{path: path, entry: f.Entry, multiboot: multiboot, linux: !multiboot && isUnikraftImage(f),
		size: fi.Size(), modTime: fi.ModTime().UnixNano()}
	if !h.linux && !h.multiboot {
		if h.bootInfo, err = elfimage.BootInfoVersion(f); err != nil {
			return nil, fmt.Errorf("image %s: %w", path, err)
		}
	}
	if h.dead, err = elfimage.ReadDeadPages(f, path); err != nil {
		return nil, err
	}
	n := 0
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Memsz != 0 {
			n++
		}
	}
	h.progs, h.store = store.take(n), store
	for _, p := range f.Progs {
		if p.Type == elf.PT_TLS {
			h.tls = p.ProgHeader
		}
		if p.Type == elf.PT_LOAD && p.Memsz != 0 {
			h.progs = append(h.progs, p.ProgHeader)
		}
	}
	if err := h.check(); err != nil {
		return nil, err
	}
	return h, nil
}

// check makes the checks of h that need nothing but h (the file's size
// included), whoever parsed the image: readImageHeaders here, or the
// image checker process (CheckImages), whose answer the monitor trusts
// no further than these checks and layOut's.
func (h *imageHeaders) check() error {
	path := h.path
	if h.linux || h.multiboot {
		if h.bootInfo != 0 {
			return fmt.Errorf("image %s: a unipool boot-info version for an image that boots otherwise", path)
		}
	} else if h.bootInfo == 0 || h.bootInfo > abi.BootInfoVersion {
		return fmt.Errorf("image %s: the guest accepts boot info version %d; this unipool writes versions 1 to %d", path, h.bootInfo, abi.BootInfoVersion)
	}
	if h.tls.Type != elf.PT_NULL && h.tls.Type != elf.PT_TLS {
		return fmt.Errorf("image %s: a TLS header of type %v", path, h.tls.Type)
	}
	if elfimage.IsDead(h.dead, h.entry) {
		return fmt.Errorf("image %s: %s section lists the entry's page %#x as dead", path, elfimage.DeadSectionName, pageDown(h.entry))
	}
	for _, p := range h.progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			return fmt.Errorf("image %s: a %v header of %#x bytes among the loads", path, p.Type, p.Memsz)
		}
		if p.Filesz > p.Memsz || p.Vaddr+p.Memsz < p.Vaddr {
			return fmt.Errorf("image %s: bad PT_LOAD at %#x", path, p.Vaddr)
		}
		if h.multiboot && p.Paddr != p.Vaddr {
			// Multiboot loads by physical address and enters with
			// paging off: guest-physical = guest-virtual here.
			return fmt.Errorf("image %s: multiboot segment linked at %#x but loaded at physical %#x; only identity-linked kernels are loaded", path, p.Vaddr, p.Paddr)
		}
		if p.Off+p.Filesz < p.Off || p.Off+p.Filesz > uint64(h.size) {
			return fmt.Errorf("image %s: segment at %#x: %w", path, p.Vaddr, io.ErrUnexpectedEOF)
		}
	}
	return nil
}

// HeaderStore hands out the PT_LOAD lists of the images a monitor checks
// (CheckImage) and keeps until their first instances, and their reads
// (PrepareReadsFrom, kept until their instances are built), from shared
// chunks of a fixed size, instead of a slice per image sized by its
// PT_LOAD or read count: kept across the collections of a fleet's start,
// those fell in size classes the monitor used for nothing else (an
// aligned image has ~27 PT_LOADs, 1.7 KB, and up to 32 reads, grown
// through 768 bytes; a DCE image 4 of each, in the classes every process
// uses), and the Go runtime keeps span-set metadata for every size class
// a process ever used: 4 span sets of the 2,048-byte class and 2 of the
// 768-byte one were the aligned-ksm monitor's only (Session 16). A chunk
// goes when every image given a part of it has gone. Safe for concurrent
// use.
type HeaderStore struct {
	mu    sync.Mutex
	progs []elf.ProgHeader // what is left of the current chunks
	runs  []Read
}

// The chunks: at most 4,096 bytes, the 4,096-byte size class.
// (Constants: a variable read from the binary's data maps a 64 KiB
// window of it that the monitor touched nowhere else.)
const (
	headerChunk = 4096 / int(unsafe.Sizeof(elf.ProgHeader{}))
	runsChunk   = 4096 / int(unsafe.Sizeof(Read{}))
)

// take is a slice of length 0 and capacity n.
func (s *HeaderStore) take(n int) []elf.ProgHeader {
	if s == nil {
		return make([]elf.ProgHeader, 0, n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return chunkOf(&s.progs, n, headerChunk)
}

// keepRuns is a copy of runs, in a chunk.
func (s *HeaderStore) keepRuns(runs []Read) []Read {
	if s == nil {
		return slices.Clone(runs)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(chunkOf(&s.runs, len(runs), runsChunk), runs...)
}

// chunkOf is n elements' room (length 0, capacity n) taken from *chunk,
// or from a new chunk of size elements if it has not that much left (a
// slice of its own if n is more than size).
func chunkOf[T any](chunk *[]T, n, size int) []T {
	if n > size {
		return make([]T, 0, n)
	}
	if len(*chunk) < n {
		*chunk = make([]T, size)
	}
	p := (*chunk)[:0:n]
	*chunk = (*chunk)[n:]
	return p
}

// protOf is a segment's protection (Prot*) from its ELF flags.
func protOf(f elf.ProgFlag) int {
	prot := 0
	if f&elf.PF_R != 0 {
		prot |= ProtRead
	}
	if f&elf.PF_W != 0 {
		prot |= ProtWrite
	}
	if f&elf.PF_X != 0 {
		prot |= ProtExec
	}
	return prot
}

// maxSegsOnStack is how many PT_LOADs image sorts in an array on its
// stack (an aligned image has ~27; more go to the heap).
const maxSegsOnStack = 64

// plainMappingsExtra is room for the mappings planImage adds to a plain
// image's segments (boot info, stack, heap, TLS; multiboot and Linux
// boot memory), so that an instance's layout takes them without growing.
const plainMappingsExtra = 8

// image lays the image out from its headers and reads what read says of
// its bytes from fh, the file h was read from (not used for
// imageHeadersOnly).
func (h *imageHeaders) image(fh io.ReaderAt, read imageRead) (*plainImage, error) {
	path := h.path
	img := &plainImage{imageHeaders: *h}
	if read == imageReads {
		img.reads = &ImageReads{From: path}
	}
	// Sorted by address in an array on the stack: the list is the
	// image's shape (a few PT_LOADs in a DCE image, ~27 in an aligned
	// one), let go at once.
	var onStack [maxSegsOnStack]loadSeg
	segs := onStack[:0]
	if len(h.progs) > len(onStack) {
		segs = make([]loadSeg, 0, len(h.progs))
	}
	for i := range h.progs {
		p := &h.progs[i]
		segs = append(segs, loadSeg{lo: pageDown(p.Vaddr), hi: pageUp(p.Vaddr + p.Memsz), vaddr: p.Vaddr, prot: protOf(p.Flags), prog: p})
	}
	// By insertion: PT_LOADs come sorted (the ELF spec asks it), and
	// slices.SortFunc's code for this type was 12 KB of the monitor
	// binary.
	for i := 1; i < len(segs); i++ {
		for j := i; j > 0 && segs[j].vaddr < segs[j-1].vaddr; j-- {
			segs[j], segs[j-1] = segs[j-1], segs[j]
		}
	}
	// The merged segments, with room for what an instance's layout adds
	// (planImage takes them as its mappings).
	merged := 0
	for i := 0; i < len(segs); i, _, _ = pageGroup(segs, i) {
		merged++
	}
	if read == imageHeadersOnly && merged <= maxSegsOnStack/2 {
		// Checked only: the mappings are made on the stack and let go.
		var checkOnly [maxSegsOnStack / 2]Mapping
		if _, _, err := h.layOut(checkOnly[:0], segs, fh, read, nil); err != nil {
			return nil, err
		}
		return img, nil
	}
	// The reads are listed on the stack (an aligned image has up to ~32,
	// a DCE one ~4), then kept at their length in the store's chunks.
	var runsOnStack [64]Read
	var runs []Read
	var err error
	if img.segments, runs, err = h.layOut(make([]Mapping, 0, merged+plainMappingsExtra), segs, fh, read, runsOnStack[:0]); err != nil {
		return nil, err
	}
	if read == imageReads {
		img.reads.Runs = h.store.keepRuns(runs)
	}
	return img, nil
}

// pageGroup is the run segs[i:j] of segments (sorted by address) that
// share pages with the one before, from segs[i]: one mapping, up to hi,
// with the union of their protections.
func pageGroup(segs []loadSeg, i int) (j int, hi uint64, prot int) {
	j, hi, prot = i+1, segs[i].hi, segs[i].prot
	for j < len(segs) && segs[j].lo < hi {
		hi, prot = max(hi, segs[j].hi), prot|segs[j].prot
		j++
	}
	return j, hi, prot
}

// layOut appends to segments the image's mappings, made of segs (sorted
// by address): what read says of their bytes from fh, in their Data or as
// reads appended to runs (imageReads), and checks them.
func (h *imageHeaders) layOut(segments []Mapping, segs []loadSeg, fh io.ReaderAt, read imageRead, runs []Read) ([]Mapping, []Read, error) {
	path := h.path
	var buf []byte // imageReads: one buffer for every segment
	var err error
	// Segments that share a page become one mapping with the union of
	// their protections; each segment's bytes land at their exact address.
	for i := 0; i < len(segs); {
		j, hi, prot := pageGroup(segs, i)
		lo := segs[i].lo
		var data []byte
		if read == imageReads {
			if buf == nil {
				buf = make([]byte, readsBuffer)
			}
			if runs, err = fileReads(runs, fh, lo, hi-lo, segs[i:j], h.dead, buf); err != nil {
				return nil, nil, fmt.Errorf("image %s: %w", path, err)
			}
		}
		if read == imageData {
			// Sized once and each segment read in place: the garbage of
			// loading 1000 images sets how often the monitor's collector
			// runs (growing the merged bytes segment by segment, with a
			// buffer per segment, was ~650 KB per aligned image of 220 KB).
			size := uint64(0)
			for _, s := range segs[i:j] {
				size = max(size, s.vaddr-lo+s.prog.Filesz)
			}
			if size > 0 {
				data = make([]byte, size)
			}
			for _, s := range segs[i:j] {
				if _, err := fh.ReadAt(data[s.vaddr-lo:s.vaddr-lo+s.prog.Filesz], int64(s.prog.Off)); err != nil {
					if err == io.EOF {
						err = io.ErrUnexpectedEOF
					}
					return nil, nil, fmt.Errorf("image %s: segment at %#x: %w", path, s.vaddr, err)
				}
			}
			// Dead pages read as zero: DataRuns leaves them out.
			for off := uint64(0); off < size; off += abi.PageSize {
				if elfimage.IsDead(h.dead, lo+off) {
					clear(data[off:min(off+abi.PageSize, size)])
				}
			}
		}
		segments = append(segments, Mapping{Addr: lo, Size: hi - lo, Prot: prot, Data: data, Part: PartImage})
		i = j
	}
	if len(segments) == 0 {
		return nil, nil, fmt.Errorf("image %s: no loadable segments", path)
	}
	if !h.linux && !h.multiboot {
		// Consecutive segments of one protection in one 2 MiB may be
		// one host mapping (Mapping.JoinNext): an aligned image has a
		// segment per library region, slack between them. (Unikraft
		// images keep theirs: the KVM monitor makes guest memory of
		// them.)
		for i := 0; i+1 < len(segments); i++ {
			segments[i].JoinNext = joinable(segments[i], segments[i+1])
		}
	}
	// Packed images live below the app region, aligned images (run as
	// plain images by the KSM baselines) in the app region and the map:
	// anything but the per-instance area and the ASLR window.
	for _, s := range segments {
		end := s.Addr + s.Size
		if s.Addr < abi.PageSize*16 || end > abi.MapLimit || (s.Addr < abi.MapBase && end > abi.LegacyPrivateBase) {
			return nil, nil, fmt.Errorf("image %s: segment [%#x,%#x) overlaps the per-instance area [%#x,%#x) or lies outside [%#x,%#x)",
				path, s.Addr, end, abi.LegacyPrivateBase, abi.MapBase, abi.PageSize*16, abi.MapLimit)
		}
	}
	return segments, runs, nil
}

// loadSeg is a PT_LOAD segment of a plain image, its pages [lo, hi).
type loadSeg struct {
	lo, hi, vaddr uint64
	prot          int
	prog          *elf.ProgHeader
}

// readsBuffer is the buffer fileReads reads an image through: a page (a
// read a page costs little beside the garbage of a larger buffer per
// image).
const readsBuffer = abi.PageSize

// fileReads appends to reads those that fill the mapping [lo, lo+size)
// made of segs (sorted by address) from the image file: each segment's
// file bytes at its place, less the pages that are all zero once loaded,
// as DataRuns leaves them out of Data (a page that two segments share is
// left out only if the bytes of both are zero), and less the pages in
// dead (not read at all). Runs adjacent in memory and the file are one
// read. It reads the file through buf (a page multiple).
func fileReads(reads []Read, fh io.ReaderAt, lo, size uint64, segs []loadSeg, dead []elfimage.PageRange, buf []byte) ([]Read, error) {
	// A bit per page of the mapping, on the stack up to 16 MiB (a slice
	// of a byte per page, sized by the mapping, was a size class an
	// aligned image's big mappings used and a DCE image's did not).
	var onStack [64]uint64
	nonzero := onStack[:]
	if words := (size/abi.PageSize + 63) / 64; words > uint64(len(onStack)) {
		nonzero = make([]uint64, words)
	}
	isNonzero := func(pg uint64) bool { return nonzero[pg/64]&(1<<(pg%64)) != 0 }
	for _, s := range segs {
		at, left, off := s.vaddr-lo, s.prog.Filesz, s.prog.Off
		for left > 0 {
			// Up to the end of buf's worth of the mapping's pages.
			n := min(left, uint64(len(buf))-at%abi.PageSize)
			if len(dead) > 0 {
				// Page by page; a dead page is not read (and stays
				// out: nonzero false).
				n = min(n, abi.PageSize-at%abi.PageSize)
				if elfimage.IsDead(dead, lo+at) {
					at, left, off = at+n, left-n, off+n
					continue
				}
			}
			if _, err := fh.ReadAt(buf[:n], int64(off)); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return nil, fmt.Errorf("segment at %#x: %w", s.vaddr, err)
			}
			for b := uint64(0); b < n; {
				pg := (at + b) / abi.PageSize
				end := min(n, (pg+1)*abi.PageSize-at)
				if !isNonzero(pg) && !bytes.Equal(buf[b:end], zeroPage[:end-b]) {
					nonzero[pg/64] |= 1 << (pg % 64)
				}
				b = end
			}
			at, left, off = at+n, left-n, off+n
		}
	}
	first := len(reads) // (no read of an earlier mapping is joined with one of this)
	for _, s := range segs {
		at, end := s.vaddr-lo, s.vaddr-lo+s.prog.Filesz
		for at < end {
			pg := at / abi.PageSize
			next := min(end, (pg+1)*abi.PageSize)
			if isNonzero(pg) {
				fileOff := s.prog.Off + (at - (s.vaddr - lo))
				if k := len(reads); k > first && reads[k-1].Addr+reads[k-1].Len == lo+at && reads[k-1].FileOff+reads[k-1].Len == fileOff {
					reads[k-1].Len += next - at
				} else {
					reads = append(reads, Read{Addr: lo + at, FileOff: fileOff, Len: next - at})
				}
			}
			at = next
		}
	}
	return reads, nil
}

// appStart is abi.AppRegionBase for an image whose code starts there (an
// aligned image), else 0.
func (img *plainImage) appStart() uint64 {
	for _, s := range img.segments {
		if s.Addr == abi.AppRegionBase {
			return abi.AppRegionBase
		}
	}
	return 0
}

// planImage lays out an instance of a plain image; last: p is not planned
// from again, so the layout may own its bytes (PlanLast).
func (p *Prepared) planImage(opt Options, last bool) (*Layout, error) {
	lay := &Layout{Entry: p.image.entry, Reads: p.image.reads}
	if opt.Load == monitor.LoadStock {
		if p.image.reads != nil {
			return nil, fmt.Errorf("image %s: prepared for reads (PrepareReads): stock loading needs its bytes (Prepare)", p.u.Image)
		}
		if err := p.image.stockMappings(lay); err != nil {
			return nil, err
		}
	} else if last {
		// The prepared segments (made with room for the mappings added
		// below) are the layout's own: no copy, no growth.
		lay.Mappings = p.image.segments
	} else {
		lay.Mappings = make([]Mapping, len(p.image.segments), cap(p.image.segments))
		copy(lay.Mappings, p.image.segments)
		for i := range lay.Mappings {
			// The prepared bytes stay p's: other instances' layouts
			// are made from them.
			if d := lay.Mappings[i].Data; d != nil {
				lay.Mappings[i].Data = append([]byte(nil), d...)
			}
		}
	}
	if p.image.multiboot {
		// A multiboot loader's command line starts with the kernel's
		// name (QEMU's -kernel: "FILE APPEND"; GRUB: the path), and
		// Unikraft makes all of it argv.
		opt.Cmdline = p.u.Image + " " + opt.Cmdline
		if err := lay.addMultibootMemory(opt); err != nil {
			return nil, fmt.Errorf("image %s: %w", p.u.Image, err)
		}
	} else if p.image.linux {
		if err := lay.addLinuxBootMemory(opt); err != nil {
			return nil, fmt.Errorf("image %s: %w", p.u.Image, err)
		}
	} else {
		bi := abi.BootInfo{Version: p.image.bootInfo}
		if t := p.image.tls; t.Type == elf.PT_TLS {
			bi.TLSImage, bi.TLSFileSz, bi.TLSMemSz, bi.TLSAlign = t.Vaddr, t.Filesz, t.Memsz, t.Align
		}
		opt.secrets()
		pl := &placer{rng: opt.Rand}
		if opt.ASLR {
			if err := pl.drawSpan(0, privateTotal(opt)); err != nil {
				return nil, fmt.Errorf("image %s: %w", p.u.Image, err)
			}
			lay.ASLRSpan = pl.spanSize
			// The image itself stays where it was linked; its
			// per-instance areas move.
			for i, m := range lay.Mappings {
				end := m.Addr + m.Size
				if m.JoinNext {
					// The gap to the next segment is mapped with them.
					end = lay.Mappings[i+1].Addr
				}
				pl.reserve(m.Addr, end)
			}
		}
		// A plain image's per-instance memory is at the legacy base:
		// packed images lie below it, in the same GiB. An aligned image
		// (the KSM baselines run them as plain images) has it after its
		// app, as when it is loaded from the pool: else each of its
		// instances pays a page-table page and a page-middle directory
		// (GiB 0) more than the same image loaded from the pool.
		if err := lay.addPrivateMemory(bi, opt, pl, p.image.appStart()); err != nil {
			return nil, fmt.Errorf("image %s: %w", p.u.Image, err)
		}
	}
	if err := lay.check(); err != nil {
		return nil, fmt.Errorf("image %s: %w", p.u.Image, err)
	}
	if !p.image.linux && !p.image.multiboot && opt.Load != monitor.LoadStock {
		// The image's last segment and the boot-info page after it, in
		// one 2 MiB (an aligned image's data arena, and its instance's
		// memory after its app): one host mapping too. (A packed
		// image's memory lies at the legacy base, far from it.)
		for i := 0; i+1 < len(lay.Mappings); i++ {
			if m, next := &lay.Mappings[i], lay.Mappings[i+1]; m.Part == PartImage && next.Part == PartBootInfo && joinable(*m, next) {
				m.JoinNext = true
			}
		}
		if err := lay.check(); err != nil {
			return nil, fmt.Errorf("image %s: %w", p.u.Image, err)
		}
	}
	return lay, nil
}

// load is one PT_LOAD segment as stock loading maps it.
type load struct {
	vaddr, off, filesz, memsz uint64
	prot                      int
}

// stockMappings lays the image out as Linux's ELF loader does
// (binfmt_elf): each PT_LOAD's file pages mapped from the image file
// MAP_PRIVATE, demand-paged; the rest of the last file page zeroed (a
// write, so that page becomes the instance's own); anonymous zero pages
// for the bss beyond.
func (img *plainImage) stockMappings(lay *Layout) error {
	end := uint64(0)
	for _, p := range img.progs {
		l := load{vaddr: p.Vaddr, off: p.Off, filesz: p.Filesz, memsz: p.Memsz, prot: protOf(p.Flags)}
		if (l.vaddr-l.off)%abi.PageSize != 0 {
			return fmt.Errorf("image %s: segment at %#x: file offset %#x not congruent with its address modulo the page size; "+
				"it cannot be mapped from the file", img.path, l.vaddr, l.off)
		}
		lo := pageDown(l.vaddr)
		if lo < end {
			return fmt.Errorf("image %s: segment at %#x shares a page with the one before; it cannot be mapped from the file", img.path, l.vaddr)
		}
		fileEnd := l.vaddr + l.filesz
		fileHi := pageUp(fileEnd)
		memHi := pageUp(l.vaddr + l.memsz)
		end = memHi
		if l.filesz > 0 {
			m := Mapping{Addr: lo, Size: fileHi - lo, Prot: l.prot, File: img.path, Offset: pageDown(l.off), COW: true, Part: PartImage}
			// Data: what the range holds once loaded, for a monitor that
			// copies. The file bytes before the segment in its first page
			// are mapped too, as Linux maps them.
			m.Data = make([]byte, fileEnd-lo)
			copy(m.Data[l.vaddr-lo:], img.bytesAt(l.vaddr, l.filesz))
			if l.memsz > l.filesz && fileEnd < fileHi {
				// padzero: the tail of the last file page is cleared,
				// word by word from the word holding the first bss byte.
				for w := fileEnd &^ 7; w < fileHi; w += 8 {
					var v uint64
					for b := w; b < fileEnd; b++ {
						v |= uint64(m.Data[b-lo]) << (8 * (b - w))
					}
					m.Patches = append(m.Patches, Patch{Off: w - lo, Value: v})
				}
			}
			lay.Mappings = append(lay.Mappings, m)
		}
		if memHi > fileHi {
			lay.Mappings = append(lay.Mappings, Mapping{Addr: fileHi, Size: memHi - fileHi, Prot: l.prot, Part: PartImage})
		}
	}
	return nil
}

// bytesAt is the n loaded bytes at vaddr, from the merged segments.
func (img *plainImage) bytesAt(vaddr, n uint64) []byte {
	for _, s := range img.segments {
		if s.Addr <= vaddr && vaddr < s.Addr+s.Size {
			off := vaddr - s.Addr
			if off >= uint64(len(s.Data)) {
				return nil
			}
			return s.Data[off:min(uint64(len(s.Data)), off+n)]
		}
	}
	return nil
}
