package measure

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
)

// PageSize is the page the census counts.
const PageSize = abi.PageSize

// Area says what a guest page holds.
type Area uint8

const (
	// Outside is not guest memory (the stub, the vDSO): not counted.
	Outside Area = iota
	// Image pages come from an image: code, rodata, data, tramp tables,
	// bss.
	Image
	// Runtime pages are made per instance: boot info, stack, heap.
	Runtime
)

// InstanceArea classifies an address of a process monitor's instance (the
// guest address space of internal/abi).
func InstanceArea(addr uint64) Area {
	switch {
	case addr >= abi.LegacyPrivateBase && addr < abi.MapBase, addr >= abi.PrivateBase && addr < abi.PrivateLimit:
		return Runtime
	case addr >= 16*abi.PageSize && addr < abi.LegacyPrivateBase, addr >= abi.MapBase && addr < abi.ASLRBase+abi.ASLRSize:
		return Image
	}
	return Outside
}

// AreaOf is Runtime for run-time memory, else Image.
func AreaOf(runtime bool) Area {
	if runtime {
		return Runtime
	}
	return Image
}

// LayoutArea classifies a loader mapping by its part.
func LayoutArea(m loader.Mapping) Area {
	if loader.IsRuntime(m.Part) {
		return Runtime
	}
	return Image
}

// Census counts the present pages of a fleet's instances by what they
// hold. Every page falls in exactly one class:
//
//   - all-zero pages (ZeroPages), whatever their area: they need no memory
//     of their own (the kernel's zero page; KSM's use_zero_pages);
//   - image pages whose content an image had at load time (ImageLoaded):
//     what sharing at load time can share;
//   - image pages with a content no image had (ImageWritten): data the
//     instance wrote, or words patched at load (ASLR);
//   - run-time pages (Runtime): boot info, stack, heap.
//
// and the ideals follow from the classes (Ideals), defined here only.
type Census struct {
	Counts
	loaded     map[[32]byte]struct{} // contents the images have at load time
	seen       map[[32]byte]struct{}
	seenLoaded map[[32]byte]struct{}
	files      map[string][]byte // file ranges read for AddLoaded
	// Private counts, by place (placer), the pages that are an
	// instance's own (anonymous: not in the page cache), as AddProcess
	// finds them.
	Private map[string]PrivatePages
	// Tables counts, by the places whose present pages share it, the
	// last-level page-table pages (one per 2 MiB with a present guest
	// page) of each process AddProcess reads: "app+boot info+stack" is a
	// page table the app and the per-instance memory share.
	Tables     map[string]uint64
	private    map[[32]byte]struct{} // contents seen in private pages
	kpageflags *os.File
	// What the repeats census (Repeats) needs: every non-zero private
	// page's content and group, the contents of the file pages the
	// instances map, and the contents the pool stores (AddStoredLayout).
	privatePages []privatePage
	filePages    map[[32]byte]struct{}
	stored       map[[32]byte]struct{}
}

// privatePage is one non-zero private page as AddProcess found it.
type privatePage struct {
	hash  [32]byte
	group PageGroup
}

// PageGroup names a group of private pages for the repeats census: the
// app (the instance's process name up to its last '-': "lz4pack" of
// "lz4pack-0001"), the place (as in Private) and the page within the
// place: for the heap its index from the heap's start ("0" to "3", then
// "4+"), for the stack from its top ("top", "top-1", then "below");
// empty elsewhere.
type PageGroup struct {
	App   string `json:"app"`
	Place string `json:"place"`
	Page  string `json:"page,omitempty"`
}

// PageRepeats counts the private pages of a group by whether their
// content is held elsewhere too: what merging identical pages (KSM) takes
// back and what the loader could have shared instead of copying.
type PageRepeats struct {
	PageGroup
	Pages uint64 `json:"pages"` // non-zero private pages (Private counts the all-zero ones)
	// Repeated pages hold a non-zero content that another private page
	// (any instance, any place) holds too; every copy counts (Duplicate
	// of PrivatePages counts all but the first).
	Repeated uint64 `json:"repeated_pages"`
	// OtherApp pages (of Repeated) hold a content a private page of
	// another app holds too.
	OtherApp uint64 `json:"other_app_pages"`
	// Stored pages hold a content the pool stores for the fleet (an
	// image page as loaded, a snapshot page: AddStoredLayout), whether
	// repeated or not: a page the instance left as it got it, or wrote
	// back as it was.
	Stored uint64 `json:"stored_pages"`
	// FilePage pages hold the content of a file page an instance maps
	// (a pool blob's page in the page cache).
	FilePage uint64 `json:"file_page_pages"`
}

// Counts are a census's numbers, in pages.
type Counts struct {
	Pages          uint64 `json:"pages"` // present pages seen, all classes
	ZeroPages      uint64 `json:"zero_pages"`
	ImageLoaded    uint64 `json:"image_loaded_pages"`
	ImageWritten   uint64 `json:"image_written_pages"`
	Runtime        uint64 `json:"runtime_pages"`
	Distinct       uint64 `json:"distinct_pages"`              // distinct contents among the non-zero pages
	LoadedDistinct uint64 `json:"image_loaded_distinct_pages"` // distinct contents among ImageLoaded
	// TableLeaves and TableMiddles are the page-table pages the present
	// guest pages of the processes AddProcess reads need at the last
	// level (one per 2 MiB that holds one) and at the level above it
	// (one per GiB): what a layout decides of the kernel's page tables.
	// The processes' other mappings (the stub, the vDSO) and the levels
	// above are the same in every layout and not counted.
	TableLeaves  uint64 `json:"page_table_leaf_pages,omitempty"`
	TableMiddles uint64 `json:"page_table_middle_pages,omitempty"`
}

// PrivatePages are the private pages of one place.
type PrivatePages struct {
	Pages uint64 `json:"pages"`
	Zero  uint64 `json:"zero_pages"` // all zero: written (or read, on a host without a shared zero page) and holding nothing
	// Duplicate pages hold a non-zero content that a private page counted
	// before (of any instance, any place) holds too: what merging
	// identical pages (KSM) takes back, beyond the zero pages.
	Duplicate uint64 `json:"duplicate_pages"`
	// KSM pages are merged already (kpageflags), counted in Pages too.
	KSM uint64 `json:"ksm_pages"`
}

// Ideals are the floors a fleet's memory is compared with.
type Ideals struct {
	// Ideal is every distinct non-zero page content once: what merging
	// every identical page, wherever and whenever it appears, reaches.
	Ideal uint64 `json:"ideal_bytes"`
	// LoadTime is what sharing at load time reaches at best: every
	// distinct content the images had at load once, every page written
	// (or patched) in an image and every run-time page in full.
	LoadTime uint64 `json:"ideal_load_time_bytes"`
	// Zero is the all-zero pages, counted in neither.
	Zero uint64 `json:"zero_bytes"`
}

// NewCensus makes an empty census.
func NewCensus() *Census {
	return &Census{loaded: map[[32]byte]struct{}{}, seen: map[[32]byte]struct{}{}, seenLoaded: map[[32]byte]struct{}{},
		files: map[string][]byte{}, private: map[[32]byte]struct{}{}}
}

// AddStoredLayout records every page of lay (run-time pages too: a
// snapshot's stack and heap) as a content the pool stores, for Repeats.
func (c *Census) AddStoredLayout(lay *loader.Layout) error {
	if c.stored == nil {
		c.stored = map[[32]byte]struct{}{}
	}
	for _, m := range lay.Mappings {
		data := m.Data
		if m.File != "" && len(m.Data) == 0 {
			f, err := os.Open(m.File)
			if err != nil {
				return fmt.Errorf("measure: %w", err)
			}
			data = make([]byte, m.Size)
			n, _ := f.ReadAt(data, int64(m.Offset))
			f.Close()
			data = data[:n]
		}
		for off := uint64(0); off < uint64(len(data)); off += PageSize {
			page := data[off:min(uint64(len(data)), off+PageSize)]
			if !isZero(page) {
				c.stored[hashPage(page)] = struct{}{}
			}
		}
	}
	return nil
}

// Fork is an empty census that knows c's load-time contents (shared, not
// copied: add no more of them to either).
func (c *Census) Fork() *Census {
	return &Census{loaded: c.loaded, seen: map[[32]byte]struct{}{}, seenLoaded: map[[32]byte]struct{}{}, files: c.files,
		private: map[[32]byte]struct{}{}, stored: c.stored}
}

// Ideals computes the ideals from the classes.
func (c Counts) Ideals() Ideals {
	return Ideals{
		Ideal:    c.Distinct * PageSize,
		LoadTime: (c.LoadedDistinct + c.ImageWritten + c.Runtime) * PageSize,
		Zero:     c.ZeroPages * PageSize,
	}
}

// AddLoaded records page (a page of an image as loaded, before the
// instance ran) as a load-time content. Call it for every image page
// before adding instance pages.
func (c *Census) AddLoaded(page []byte) {
	c.loaded[hashPage(page)] = struct{}{}
}

// AddLoadedLayout records the image pages of an instance's layout as
// planned (pool blobs read from their files).
func (c *Census) AddLoadedLayout(lay *loader.Layout) error {
	buf := make([]byte, PageSize)
	for _, m := range lay.Mappings {
		if LayoutArea(m) != Image {
			continue
		}
		data := m.Data
		if m.File != "" && len(m.Data) == 0 {
			key := fmt.Sprintf("%s@%d+%d", m.File, m.Offset, m.Size)
			d, ok := c.files[key]
			if !ok {
				f, err := os.Open(m.File)
				if err != nil {
					return fmt.Errorf("measure: %w", err)
				}
				d = make([]byte, m.Size)
				n, _ := f.ReadAt(d, int64(m.Offset))
				f.Close()
				d = d[:n]
				c.files[key] = d
			}
			data = d
		}
		for off := uint64(0); off < m.Size; off += PageSize {
			clear(buf)
			if off < uint64(len(data)) {
				copy(buf, data[off:])
			}
			c.AddLoaded(buf)
		}
	}
	return nil
}

// Add counts one present page of an instance.
func (c *Census) Add(page []byte, a Area) {
	if a == Outside {
		return
	}
	c.Pages++
	if isZero(page) {
		c.ZeroPages++
		return
	}
	h := hashPage(page)
	if _, ok := c.seen[h]; !ok {
		c.seen[h] = struct{}{}
		c.Distinct++
	}
	if a == Runtime {
		c.Runtime++
		return
	}
	if _, ok := c.loaded[h]; !ok {
		c.ImageWritten++
		return
	}
	c.ImageLoaded++
	if _, ok := c.seenLoaded[h]; !ok {
		c.seenLoaded[h] = struct{}{}
		c.LoadedDistinct++
	}
}

// AddProcess counts every present page of pid (from /proc/PID/pagemap
// and /proc/PID/mem), classified by area(address).
func (c *Census) AddProcess(pid int, area func(addr uint64) Area) error {
	maps, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return fmt.Errorf("census: %w", err)
	}
	defer maps.Close()
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return fmt.Errorf("census: %w", err)
	}
	defer pm.Close()
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return fmt.Errorf("census: %w", err)
	}
	defer mem.Close()
	app := ""
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		app = strings.TrimSpace(string(b))
		if i := strings.LastIndexByte(app, '-'); i > 0 {
			app = app[:i]
		}
	}
	if c.filePages == nil {
		c.filePages = map[[32]byte]struct{}{}
	}
	sc := bufio.NewScanner(maps)
	page := make([]byte, PageSize)
	var places placer
	// The private pages of this process, their page in the place named
	// once the place's extent is known.
	type found struct {
		addr  uint64
		place string
		hash  [32]byte
	}
	var mine []found
	extent := map[string][2]uint64{}
	chunks := map[uint64]map[string]bool{}
	defer c.addTables(chunks)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.HasPrefix(f[1], "r") {
			continue
		}
		if len(f) >= 6 && strings.HasPrefix(f[5], "[v") { // [vvar], [vdso], [vsyscall]
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if len(f) >= 6 && strings.HasPrefix(f[5], "/memfd:unipool-stub") {
			// The process monitor's discard page (the stub's memfd, in
			// the guard page below the stack): not the guest's, and a
			// gap between run-time areas as the guard page was.
			places.gap()
			continue
		}
		place := places.of(start, end, len(f) >= 6)
		if e, ok := extent[place]; !ok {
			extent[place] = [2]uint64{start, end}
		} else {
			extent[place] = [2]uint64{min(e[0], start), max(e[1], end)}
		}
		entries := make([]byte, 8*((end-start)/PageSize))
		if _, err := pm.ReadAt(entries, int64(start/PageSize*8)); err != nil {
			continue
		}
		for i, a := 0, start; a < end; i, a = i+1, a+PageSize {
			ar := area(a)
			e := binary.LittleEndian.Uint64(entries[8*i:])
			if ar == Outside || !present(e) {
				continue
			}
			if _, err := mem.ReadAt(page, int64(a)); err != nil {
				continue
			}
			c.Add(page, ar)
			if chunks[a>>21] == nil {
				chunks[a>>21] = map[string]bool{}
			}
			chunks[a>>21][strings.TrimSuffix(place, copiedSuffix)] = true
			if e&PagemapFile == 0 {
				c.addPrivate(page, place, c.isKSM(e))
				if !isZero(page) {
					mine = append(mine, found{a, place, hashPage(page)})
				}
			} else if !isZero(page) {
				c.filePages[hashPage(page)] = struct{}{}
			}
		}
	}
	for _, p := range mine {
		c.privatePages = append(c.privatePages, privatePage{p.hash, PageGroup{App: app, Place: p.place, Page: pageInPlace(p.place, p.addr, extent[p.place])}})
	}
	return sc.Err()
}

// addTables counts the page-table pages of one process's chunks (2 MiB
// areas with a present guest page, by the places they hold).
func (c *Census) addTables(chunks map[uint64]map[string]bool) {
	if c.Tables == nil {
		c.Tables = map[string]uint64{}
	}
	gib := map[uint64]bool{}
	for n, ps := range chunks {
		names := make([]string, 0, len(ps))
		for p := range ps {
			names = append(names, p)
		}
		sort.Strings(names)
		c.Tables[strings.Join(names, "+")]++
		c.TableLeaves++
		gib[n>>9] = true
	}
	c.TableMiddles += uint64(len(gib))
}

// pageInPlace names the page at addr of a place spanning ext: the heap's
// by its index from the start, the stack's from its top.
func pageInPlace(place string, addr uint64, ext [2]uint64) string {
	switch place {
	case "heap":
		if i := (addr - ext[0]) / PageSize; i < 4 {
			return strconv.FormatUint(i, 10)
		}
		return "4+"
	case "stack":
		switch (ext[1] - addr) / PageSize {
		case 1:
			return "top"
		case 2:
			return "top-1"
		}
		return "below"
	}
	return ""
}

// Repeats is the repeats census of the non-zero private pages AddProcess
// found, by group, most repeated first.
func (c *Census) Repeats() []PageRepeats {
	count := map[[32]byte]int{}
	apps := map[[32]byte]map[string]struct{}{}
	for _, p := range c.privatePages {
		count[p.hash]++
		if apps[p.hash] == nil {
			apps[p.hash] = map[string]struct{}{}
		}
		apps[p.hash][p.group.App] = struct{}{}
	}
	by := map[PageGroup]*PageRepeats{}
	var out []*PageRepeats
	for _, p := range c.privatePages {
		r := by[p.group]
		if r == nil {
			r = &PageRepeats{PageGroup: p.group}
			by[p.group] = r
			out = append(out, r)
		}
		r.Pages++
		if count[p.hash] > 1 {
			r.Repeated++
			if len(apps[p.hash]) > 1 {
				r.OtherApp++
			}
		}
		if _, ok := c.stored[p.hash]; ok {
			r.Stored++
		} else if _, ok := c.loaded[p.hash]; ok {
			r.Stored++
		}
		if _, ok := c.filePages[p.hash]; ok {
			r.FilePage++
		}
	}
	res := make([]PageRepeats, len(out))
	for i, r := range out {
		res[i] = *r
	}
	sort.SliceStable(res, func(i, j int) bool {
		if res[i].Repeated != res[j].Repeated {
			return res[i].Repeated > res[j].Repeated
		}
		return res[i].Pages > res[j].Pages
	})
	return res
}

// AddMemory counts the present pages of b, memory of this process (the
// kvm monitor's guest memory), all in area a. b starts on a page.
func (c *Census) AddMemory(b []byte, a Area) {
	for i, e := range SelfPagemap(b) {
		if present(e) {
			c.Add(b[i*PageSize:min(len(b), (i+1)*PageSize)], a)
		}
	}
}

// Pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
const (
	PagemapPresent   = 1 << 63
	PagemapSwapped   = 1 << 62
	PagemapFile      = 1 << 61 // file page or shared anonymous
	PagemapExclusive = 1 << 56 // mapped only here: not the zero page, not KSM-merged
)

func present(e uint64) bool { return e&(PagemapPresent|PagemapSwapped) != 0 }

// SelfPagemap reads this process's pagemap entries of b's pages.
func SelfPagemap(b []byte) []uint64 {
	if len(b) == 0 {
		return nil
	}
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil
	}
	defer f.Close()
	n := (len(b) + PageSize - 1) / PageSize
	buf := make([]byte, 8*n)
	off := int64(uintptr(unsafe.Pointer(&b[0])) / PageSize * 8)
	if _, err := f.ReadAt(buf, off); err != nil {
		return nil
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(buf[8*i:])
	}
	return out
}

// addPrivate counts one private page at place.
func (c *Census) addPrivate(page []byte, place string, ksm bool) {
	if c.Private == nil {
		c.Private = map[string]PrivatePages{}
	}
	if c.private == nil {
		c.private = map[[32]byte]struct{}{}
	}
	p := c.Private[place]
	p.Pages++
	if ksm {
		p.KSM++
	}
	if isZero(page) {
		p.Zero++
	} else {
		h := hashPage(page)
		if _, ok := c.private[h]; ok {
			p.Duplicate++
		} else {
			c.private[h] = struct{}{}
		}
	}
	c.Private[place] = p
}

// kpageflags bit KPF_KSM (Documentation/admin-guide/mm/pagemap.rst).
const kpfKSM = 1 << 21

// isKSM says whether the page of pagemap entry e is a KSM page (needs
// the PFN, which only root reads; false without).
func (c *Census) isKSM(e uint64) bool {
	pfn := e & (1<<55 - 1)
	if e&PagemapPresent == 0 || pfn == 0 {
		return false
	}
	if c.kpageflags == nil {
		f, err := os.Open("/proc/kpageflags")
		if err != nil {
			return false
		}
		c.kpageflags = f
	}
	var b [8]byte
	if _, err := c.kpageflags.ReadAt(b[:], int64(pfn*8)); err != nil {
		return false
	}
	return binary.LittleEndian.Uint64(b[:])&kpfKSM != 0
}

// Close releases what the census holds open.
func (c *Census) Close() {
	if c.kpageflags != nil {
		c.kpageflags.Close()
		c.kpageflags = nil
	}
}

// placer names the place of each mapping of an instance of the process
// monitor, in address order (/proc/PID/maps): the app region, the
// run-time memory (boot info, stack, heap: the runs of mappings between
// guard gaps, in that order; no boot-info run when the discard page comes
// first, see gap), the library regions, the map's data arena,
// the ASLR window; "(copied from a pool blob)" for a private copy of a
// file page (a written init or snapshot page).
type placer struct {
	runtimeEnd uint64 // end of the last run-time mapping seen
	runtimeRun int    // runs of run-time mappings seen
}

var runtimePlaces = []string{"boot info", "stack", "heap"}

// gap ends the current run of run-time mappings: a mapping that is not the
// guest's lies between them (the process monitor's discard page, in the
// guard page below the stack). Before any run it says the instance has no
// boot-info run: its boot info lies in the stack's top page (since session
// 15; a snapshot taken before keeps the boot-info page before the
// discard page), so the first run is the stack.
func (pl *placer) gap() {
	pl.runtimeEnd = 0
	if pl.runtimeRun == 0 {
		pl.runtimeRun = 1
	}
}

func (pl *placer) of(start, end uint64, file bool) string {
	var p string
	switch {
	case abi.IsArena(start):
		p = "data arena"
	case start >= abi.LegacyAppRegionBase && start < abi.LegacyPrivateBase, start >= abi.AppRegionBase && start < abi.PrivateBase:
		p = "app"
	case start >= abi.LegacyPrivateBase && start < abi.MapBase, start >= abi.PrivateBase && start < abi.PrivateLimit:
		if pl.runtimeRun == 0 || start != pl.runtimeEnd {
			pl.runtimeRun++
		}
		pl.runtimeEnd = end
		p = "run-time"
		if pl.runtimeRun <= len(runtimePlaces) {
			p = runtimePlaces[pl.runtimeRun-1]
		}
	case start >= abi.MapBase && start < abi.DataArenaBase:
		p = "libraries"
	case start >= abi.ASLRBase && start < abi.ASLRBase+abi.ASLRSize:
		p = "aslr window"
	default:
		p = "other"
	}
	if file {
		p += copiedSuffix
	}
	return p
}

const copiedSuffix = " (copied from a pool blob)"

func hashPage(p []byte) [32]byte {
	if len(p) == PageSize {
		return sha256.Sum256(p)
	}
	full := make([]byte, PageSize)
	copy(full, p)
	return sha256.Sum256(full)
}

func isZero(p []byte) bool {
	for len(p) >= 8 {
		if binary.LittleEndian.Uint64(p) != 0 {
			return false
		}
		p = p[8:]
	}
	for _, b := range p {
		if b != 0 {
			return false
		}
	}
	return true
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

// LoadedContents is a census that knows every image page of uks as a
// loader lays it out (no ASLR): an instance's image page is "as loaded"
// when an image had its content.
func LoadedContents(uks []monitor.Unikernel) (*Census, error) {
	c := NewCensus()
	for _, u := range uks {
		lay, err := loader.Plan(u, loader.Options{Load: monitor.LoadNaive})
		if err != nil {
			return nil, fmt.Errorf("measure: %w", err)
		}
		if err := c.AddLoadedLayout(lay); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Snapshot is a fleet measured while held: what the host pays and, when
// the census ran, the page classes and ideals.
type Snapshot struct {
	Host   Host    `json:"host"`
	Census *Counts `json:"census,omitempty"`
	Ideals *Ideals `json:"ideals,omitempty"`
}

// Take measures f against base; with loaded (from LoadedContents), it
// also takes the census of f's instance processes, or of guests when the
// monitor holds them in its own memory.
func Take(f Fleet, base Baseline, loaded *Census, guests monitor.HeldGuests) (Snapshot, error) {
	h, missing, err := TakeHost(f, base)
	if err != nil {
		return Snapshot{}, err
	}
	if missing > 0 {
		return Snapshot{}, fmt.Errorf("measure: %d of %d processes vanished while measured", missing, len(f.Instances)+len(f.Monitors))
	}
	s := Snapshot{Host: h}
	if loaded == nil {
		return s, nil
	}
	c := loaded.Fork()
	for _, pid := range f.Instances {
		if err := c.AddProcess(pid, InstanceArea); err != nil {
			return s, err
		}
	}
	if guests != nil {
		guests.Ranges(func(b []byte, runtime bool) { c.AddMemory(b, AreaOf(runtime)) })
	}
	for _, g := range f.Guests {
		if err := c.AddGuests(g); err != nil {
			return s, err
		}
	}
	id := c.Ideals()
	s.Census, s.Ideals = &c.Counts, &id
	return s, nil
}
