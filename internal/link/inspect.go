package link

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/loader"
)

// Inspection is what `unipool inspect` reports about an image.
type Inspection struct {
	Path   string `json:"path"`
	Layout string `json:"layout"` // "aligned", or "packed" for any image without a description
	Type   string `json:"elf_type"`
	Entry  uint64 `json:"entry"`
	// FileSize is the file's size; LoadedSize the memory its segments
	// occupy (distinct pages), LoadedBytes the bytes they hold.
	FileSize    int64               `json:"file_size"`
	LoadedSize  uint64              `json:"loaded_size"`
	LoadedBytes uint64              `json:"loaded_bytes"`
	Segments    []InspectSegment    `json:"segments"`
	Libraries   []LibraryInspection `json:"libraries,omitempty"` // aligned only
	TLS         *desc.TLS           `json:"tls,omitempty"`
	Padding     uint64              `json:"padding"` // LoadedSize - LoadedBytes
	// DensePrivatePages is the pages (bytes) the dense private parts
	// (desc.Region.Dense) take together, shared between libraries.
	DensePrivatePages uint64 `json:"dense_private_pages,omitempty"`
	// DensePrivateBytes is what those parts hold (with bss);
	// MapPrivatePages the pages they would take at the map's addresses
	// (no library moved, desc.Library.Shift; the app's part after the
	// highest), and Moved how many libraries the link moved.
	DensePrivateBytes uint64 `json:"dense_private_bytes,omitempty"`
	MapPrivatePages   uint64 `json:"map_private_pages,omitempty"`
	Moved             int    `json:"moved_libraries,omitempty"`
	// PackPages is the pack pages (bytes) the image maps
	// (desc.Library.PackPage), PackBytes the code of its pack members
	// (desc.Library.InPack) they hold, Packed how many those are.
	PackPages uint64 `json:"pack_pages,omitempty"`
	PackBytes uint64 `json:"pack_bytes,omitempty"`
	Packed    int    `json:"packed_libraries,omitempty"`
	// NonZeroPages is the pages with a non-zero byte, which a copying
	// load (the KSM baselines) copied; DeadPages those of them the
	// image's link found nothing reachable on (elfimage.DeadSectionName),
	// which it leaves out. DeadListed is every page the section lists.
	NonZeroPages int `json:"nonzero_pages"`
	DeadPages    int `json:"dead_pages"`
	DeadListed   int `json:"dead_listed,omitempty"`
	// ASLR says what `run --aslr` randomises in this image and how much.
	ASLR   string       `json:"aslr,omitempty"`
	Config *desc.Config `json:"-"`
}

// InspectSegment is one PT_LOAD.
type InspectSegment struct {
	Vaddr    uint64 `json:"vaddr"`
	FileSize uint64 `json:"file_size"`
	MemSize  uint64 `json:"mem_size"`
	Prot     string `json:"prot"`
	Library  string `json:"library,omitempty"`
	Part     string `json:"part,omitempty"` // tramp, code, rodata, private
}

// LibraryInspection is one library of an aligned image: what it uses of
// each part against the part's capacity, and what page alignment cost it.
type LibraryInspection struct {
	Name    string      `json:"name"`
	Version string      `json:"version,omitempty"`
	Origin  string      `json:"origin,omitempty"`
	App     bool        `json:"app,omitempty"`
	Region  desc.Region `json:"region"`
	// Shift is how far the image moved it from its map region (whole
	// pages, desc.Library.Shift).
	Shift int64 `json:"shift,omitempty"`
	// Members are a group unit's libraries (desc.Library.Members).
	Members []desc.Member `json:"members,omitempty"`
	// Bytes used (not page-rounded). Tramp is the whole trampoline
	// table; a split one (desc.Tramp.Split) has its Stubs in the shared
	// part (not counted in Code) and its Slots in the private part
	// (counted in Data and Private too).
	Tramp   uint64 `json:"tramp"`
	Stubs   uint64 `json:"stubs,omitempty"`
	Slots   uint64 `json:"slots,omitempty"`
	Code    uint64 `json:"code"`
	Rodata  uint64 `json:"rodata"`
	Data    uint64 `json:"data"`    // initialised private bytes
	Private uint64 `json:"private"` // with bss
	// Pages the library's parts occupy, in bytes: tramp table, shared
	// part, private part.
	TrampPages   uint64 `json:"tramp_pages"`
	SharedPages  uint64 `json:"shared_pages"`
	PrivatePages uint64 `json:"private_pages"`
	// Padding is the bytes of those pages that hold nothing: the cost of
	// page-aligning each part. A dense private part (desc.Region.Dense)
	// shares pages with other libraries': each such page counts for
	// the first library in it.
	Padding uint64 `json:"padding"`
	NoASLR  string `json:"no_aslr,omitempty"`
	// Pack is the start of the pack holding its code (a pack member or a
	// pack page, desc.Library.Pack).
	Pack uint64 `json:"pack,omitempty"`
	// ASLRBits is the entropy of the library's base under `run --aslr`
	// (whole bits: the image's slide, which moves every library that is
	// not pinned and the app as one): 0 if it is pinned.
	ASLRBits int `json:"aslr_bits"`
}

// Inspect reads an image (aligned or not) and says how it is laid out.
func Inspect(path string) (*Inspection, error) {
	im, err := elfimage.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	in := &Inspection{Path: path, Layout: LayoutPacked, Type: im.Type().String(), Entry: im.Entry(), FileSize: st.Size()}
	segs := im.Segments()
	pages := map[uint64]bool{}
	for _, s := range segs {
		for p := s.Vaddr &^ (abi.PageSize - 1); p < s.End(); p += abi.PageSize {
			pages[p] = true
		}
		in.LoadedBytes += s.MemSize
		in.Segments = append(in.Segments, InspectSegment{Vaddr: s.Vaddr, FileSize: s.FileSize, MemSize: s.MemSize, Prot: prot(s.Flags)})
	}
	in.LoadedSize = uint64(len(pages)) * abi.PageSize
	in.Padding = in.LoadedSize - in.LoadedBytes
	dead, err := im.DeadPages()
	if err != nil {
		return nil, err
	}
	for _, r := range dead {
		in.DeadListed += int(r.Pages())
	}
	for p := range pages {
		if pg, _ := im.Page(p); !bytes.Equal(pg, zeroPage[:]) {
			in.NonZeroPages++
			if elfimage.IsDead(dead, p) {
				in.DeadPages++
			}
		}
	}
	cfg, err := im.Config()
	if errors.Is(err, elfimage.ErrNoConfig) {
		return in, nil
	}
	if err != nil {
		return nil, err
	}
	in.Layout, in.Config, in.TLS = cfg.Layout, cfg, cfg.TLS
	// For an aligned image, padding counts what the libraries' parts
	// hold against the pages they take (an unused tramp area is padding,
	// though its file bytes are loaded).
	in.Padding = 0
	var pagesSum, bytesSum uint64
	arena := map[uint64]bool{} // dense private pages counted so far
	for _, l := range cfg.Libraries {
		li := LibraryInspection{Name: l.Name, Version: l.Version, Origin: l.Origin, App: l.App, Region: l.Region, Shift: l.Shift,
			Tramp: l.Tramp.Size + l.Tramp.StubSize + l.Tramp.SlotSize, Stubs: l.Tramp.StubSize, Slots: l.Tramp.SlotSize, NoASLR: l.NoASLR, Members: l.Members, Pack: l.Pack}
		stubs := stubStart(l)
		switch {
		case l.NoASLR == "" && cfg.Boot == "":
			li.ASLRBits = int(loader.ImageASLRBits(cfg))
		case l.NoASLR == "":
			li.NoASLR = "the image: " + loader.LinuxBootPinned
		}
		r := l.Region
		shared := map[uint64]bool{} // pages: code and rodata may share one
		if l.InPack() {
			// Its code: its bytes in its pack's pages, which the pack
			// page entries count.
			li.Code = l.Shared.Size
			if l.Tramp.StubSize > 0 {
				li.Code = l.Tramp.StubOff
			}
			in.Packed++
			in.PackBytes += li.Code + li.Stubs
		}
		for i, s := range segs {
			if l.PackPage && s.Vaddr < r.End() && s.End() > r.Start {
				shared[r.Start] = true
				in.PackPages += abi.PageSize
				in.Segments[i].Library, in.Segments[i].Part = "pack", "pack"
				continue
			}
			if !r.Holds(s.Vaddr) || l.PackPage || (l.InPack() && s.Vaddr < r.PrivateAddr()) {
				continue
			}
			part := ""
			switch {
			case s.Vaddr < r.SharedAddr():
				part = "tramp"
				li.TrampPages += pageUp(s.MemSize)
			case l.Tramp.StubSize > 0 && s.Vaddr == stubs:
				part = "stubs"
				addPages(shared, s)
			case s.Vaddr < r.PrivateAddr() && s.Flags&elf.PF_X != 0:
				part = "code"
				li.Code += s.MemSize
				addPages(shared, s)
			case s.Vaddr < r.PrivateAddr():
				part = "rodata"
				li.Rodata += s.MemSize
				addPages(shared, s)
			case r.Dense():
				// Packed with other libraries' private parts: a
				// page counts for the first library in it.
				part = "private"
				li.Data += s.FileSize
				li.Private += s.MemSize
				for p := s.Vaddr &^ (abi.PageSize - 1); p < s.End(); p += abi.PageSize {
					if !arena[p] {
						arena[p] = true
						li.PrivatePages += abi.PageSize
					}
				}
			default:
				part = "private"
				li.Data += s.FileSize
				li.Private += s.MemSize
				li.PrivatePages += pageUp(s.MemSize)
			}
			in.Segments[i].Library, in.Segments[i].Part = l.Name, part
		}
		li.SharedPages = uint64(len(shared)) * abi.PageSize
		pages, bytes := li.TrampPages+li.SharedPages+li.PrivatePages, (li.Tramp-li.Slots)+li.Code+li.Rodata+li.Private
		if pages > bytes {
			li.Padding = pages - bytes
		}
		pagesSum, bytesSum = pagesSum+pages, bytesSum+bytes
		in.Libraries = append(in.Libraries, li)
	}
	if pagesSum > bytesSum {
		in.Padding = pagesSum - bytesSum
	}
	in.DensePrivatePages = uint64(len(arena)) * abi.PageSize
	in.DensePrivateBytes, in.MapPrivatePages, in.Moved = mapPrivatePages(cfg)
	in.ASLR = aslrSummary(in)
	return in, nil
}

var zeroPage [abi.PageSize]byte

// mapPrivatePages counts what an aligned image's dense private parts
// hold, the pages they would take with every library at its map region
// (the app's part right after the highest), and the libraries moved.
func mapPrivatePages(cfg *desc.Config) (bytes, pages uint64, moved int) {
	seen := map[uint64]bool{}
	add := func(a, n uint64) {
		for p := a &^ (abi.PageSize - 1); p < a+n; p += abi.PageSize {
			seen[p] = true
		}
	}
	top := uint64(0)
	for _, l := range cfg.Libraries {
		r := l.MapRegion()
		if l.App || !r.Dense() {
			continue
		}
		if l.Shift != 0 {
			moved++
		}
		bytes += l.Private.MemSize
		add(r.PrivateStart, l.Private.MemSize)
		top = max(top, r.PrivateStart+l.Private.MemSize)
	}
	for _, l := range cfg.Libraries {
		if l.App && l.Region.Dense() {
			bytes += l.Private.MemSize
			start, _ := appPrivatePlace(top, l.Private.MemSize)
			add(start, l.Private.MemSize)
		}
	}
	return bytes, uint64(len(seen)) * abi.PageSize, moved
}

// addPages records the pages segment s touches.
func addPages(pages map[uint64]bool, s elfimage.Segment) {
	for p := s.Vaddr &^ (abi.PageSize - 1); p < s.End(); p += abi.PageSize {
		pages[p] = true
	}
}

func prot(f elf.ProgFlag) string {
	b := []byte("---")
	if f&elf.PF_R != 0 {
		b[0] = 'r'
	}
	if f&elf.PF_W != 0 {
		b[1] = 'w'
	}
	if f&elf.PF_X != 0 {
		b[2] = 'x'
	}
	return string(b)
}

// stubStart is where library l's split stubs start (0 if it has none).
func stubStart(l desc.Library) uint64 {
	if !l.Tramp.Split || l.Tramp.StubSize == 0 {
		return 0
	}
	return l.Region.SharedAddr() + l.Tramp.StubOff
}

// aslrSummary says in a sentence what --aslr randomises in an image.
func aslrSummary(in *Inspection) string {
	moving, pinned, grouped, units := 0, 0, 0, 0
	for _, l := range in.Libraries {
		if l.ASLRBits > 0 {
			moving++
		} else {
			pinned++
		}
		if len(l.Members) > 0 {
			units++
			grouped += len(l.Members)
		}
	}
	if moving == 0 && in.Config != nil && in.Config.Boot != "" {
		// Which libraries the trampoline pass left movable: they would
		// move with the image if a Linux-boot image were slid.
		movable, first := 0, ""
		for _, l := range in.Config.Libraries {
			if l.NoASLR == "" {
				movable++
			} else if first == "" {
				first = l.Name + ": " + l.NoASLR
			}
		}
		s := fmt.Sprintf("none: every library is pinned at its map address: %s; of its %d libraries, %d have code the trampoline pass left movable",
			loader.LinuxBootPinned, len(in.Libraries), movable)
		if first != "" {
			s += fmt.Sprintf(", %d are pinned by their own code too (first: %s)", len(in.Libraries)-movable, first)
		}
		return s
	}
	if moving == 0 {
		return "none: every library is pinned at its map address"
	}
	s := fmt.Sprintf("one slide of %.2f bits for %d of %d libraries together (the map fixes their offsets: one base gives the others)",
		loader.ImageASLRBits(in.Config), moving, moving+pinned)
	if units > 0 {
		s += fmt.Sprintf("; %d libraries are linked as %d group unit(s) (one region each)", grouped, units)
	}
	if in.DensePrivatePages > 0 {
		s += "; their dense private parts stay on the pages they share"
	}
	return s
}
