package link

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/corpus"
	"github.com/unipool/unipool/internal/elfimage"
)

// Bench layouts: the three layouts, and aligned without the trampoline
// pass, which shows what alignment alone achieves.
const LayoutAlignedAlone = "aligned-alone"

// BenchLayouts are the layouts Bench links, in report order.
var BenchLayouts = []string{LayoutPacked, LayoutDCE, LayoutAlignedAlone, LayoutAligned}

// BenchOptions say what Bench measures.
type BenchOptions struct {
	Corpus string // corpus folder (corpus.json)
	// Out receives the images and the library map (a fresh one: Bench
	// refuses an Out that already has a map). Default: a temporary
	// folder, removed afterwards.
	Out   string
	Limit int // link only the first Limit unikernels (0: all)
	Jobs  int // parallel links (0: 2)
	// Groups are the aligned links' library groups (Options.Groups: nil
	// is DefaultGroups, empty none).
	Groups [][]string
	// MapAddresses keeps the aligned links' libraries at their map
	// regions (Options.MapAddresses).
	MapAddresses bool
	// NoPacks is Options.NoPacks for the aligned links.
	NoPacks bool
	// Progress, if set, is called after each link, never concurrently.
	Progress func(done, total int)
}

// BenchReport is what Bench found.
type BenchReport struct {
	Corpus     string        `json:"corpus"`
	Unikernels int           `json:"unikernels"`
	Layouts    []LayoutBench `json:"layouts"`
	// Overhead of aligned over packed and dce, as ratios of totals.
	FileOverPacked   float64 `json:"file_over_packed"`
	FileOverDCE      float64 `json:"file_over_dce"`
	LoadedOverPacked float64 `json:"loaded_over_packed"`
	LoadedOverDCE    float64 `json:"loaded_over_dce"`
	// LoadedOverPackedAvg is the average over images of each aligned
	// image's loaded size over its packed twin's (small images weigh as
	// much as large ones).
	LoadedOverPackedAvg float64 `json:"loaded_over_packed_avg"`
}

// LayoutBench is one layout's figures over the corpus.
type LayoutBench struct {
	Layout string `json:"layout"`
	// SharablePages counts, over all images, the code and read-only pages
	// of libraries whose object (byte-identical) is in another image too;
	// IdenticalPages those of them that another image with that object
	// holds identically at the same address of the map (an image may
	// move a library by whole pages from its map region, its pages
	// unchanged: desc.Library.Shift).
	SharablePages  int     `json:"sharable_pages"`
	IdenticalPages int     `json:"identical_pages"`
	Share          float64 `json:"share"`
	// Misses counts, per library, its sharable pages no other image
	// holds identically.
	Misses map[string]int `json:"misses,omitempty"`
	// ReadOnlyBytes is the read-only (code, rodata, tramp) memory of all
	// images, DistinctReadOnlyBytes the part of it with distinct contents:
	// what one instance of every image needs once identical pages are
	// merged, wherever they are.
	ReadOnlyBytes         uint64 `json:"read_only_bytes"`
	DistinctReadOnlyBytes uint64 `json:"distinct_read_only_bytes"`
	// Sizes, summed over all images, and the median per image.
	FileBytes        uint64        `json:"file_bytes"`
	LoadedBytes      uint64        `json:"loaded_bytes"`
	MedianFileBytes  uint64        `json:"median_file_bytes"`
	MedianLoaded     uint64        `json:"median_loaded_bytes"`
	LinkTime         time.Duration `json:"link_time_ns"`
	Images           []ImageBench  `json:"images"`
	MaxLoadedOverPkd float64       `json:"max_loaded_over_packed,omitempty"`
	AvgLoadedOverPkd float64       `json:"avg_loaded_over_packed,omitempty"`
	// Pages by part over all images (aligned layouts only): where an
	// aligned image's pages go.
	PageParts
}

// ImageBench is one image of one layout.
type ImageBench struct {
	Unikernel string `json:"unikernel"`
	FileBytes uint64 `json:"file_bytes"`
	Loaded    uint64 `json:"loaded_bytes"`
	// Pages by part of an aligned image's regions (none for packed and
	// dce).
	PageParts
}

// PageParts is where an aligned image's pages go (none for packed and
// dce): tramp tables, shared parts (code + rodata), private parts, in
// pages; what those parts hold (bytes: code, rodata and stubs; data and
// bss); the pages the dense private parts would take at the map's
// addresses and the libraries the link moved from them
// (desc.Library.Shift); pack pages mapped (counted in SharedPages), the
// code of the pack members they hold (bytes, in SharedBytes) and how
// many members (Inspection.PackPages, PackBytes, Packed).
type PageParts struct {
	TrampPages      uint64 `json:"tramp_pages,omitempty"`
	SharedPages     uint64 `json:"shared_pages,omitempty"`
	PrivatePages    uint64 `json:"private_pages,omitempty"`
	SharedBytes     uint64 `json:"shared_bytes,omitempty"`
	PrivateBytes    uint64 `json:"private_bytes,omitempty"`
	MapPrivatePages uint64 `json:"map_private_pages,omitempty"`
	Moved           int    `json:"moved_libraries,omitempty"`
	PackPages       uint64 `json:"pack_pages,omitempty"`
	PackBytes       uint64 `json:"pack_bytes,omitempty"`
	Packed          int    `json:"packed_libraries,omitempty"`
	// NonZeroPages is the pages with a non-zero byte (what a copying
	// load copied), DeadPages those of them the image lists dead
	// (elfimage.DeadSectionName), which it leaves out
	// (Inspection.NonZeroPages, DeadPages).
	NonZeroPages int `json:"nonzero_pages,omitempty"`
	DeadPages    int `json:"dead_pages,omitempty"`
}

// add sums an image's parts into a layout's. An image whose libraries
// stay at the map's addresses counts its private pages as where they
// would be at the map's addresses.
func (p *PageParts) add(o PageParts) {
	p.TrampPages += o.TrampPages
	p.SharedPages += o.SharedPages
	p.PrivatePages += o.PrivatePages
	p.SharedBytes += o.SharedBytes
	p.PrivateBytes += o.PrivateBytes
	p.Moved += o.Moved
	p.PackPages += o.PackPages
	p.PackBytes += o.PackBytes
	p.Packed += o.Packed
	p.NonZeroPages += o.NonZeroPages
	p.DeadPages += o.DeadPages
	if o.Moved > 0 {
		p.MapPrivatePages += o.MapPrivatePages
	} else {
		p.MapPrivatePages += o.PrivatePages
	}
}

// benchImage is one linked image and what the page census needs of it.
type benchImage struct {
	uk     string
	path   string
	res    *Result
	pages  map[uint64][32]byte // page address -> content digest
	libSHA map[string]string   // library name -> object sha256
	shift  map[string]int64    // library name -> its shift from the map region
	size   ImageBench
}

// Bench links every unikernel of a corpus in every layout and measures
// how many library pages end up identical at the same address across
// images, and what each layout costs in file and memory size.
func Bench(ctx context.Context, opt BenchOptions) (*BenchReport, error) {
	c, err := corpus.Load(opt.Corpus)
	if err != nil {
		return nil, err
	}
	uks := c.Unikernels
	if opt.Limit > 0 && opt.Limit < len(uks) {
		uks = uks[:opt.Limit]
	}
	if opt.Jobs <= 0 {
		opt.Jobs = 2
	}
	out := opt.Out
	if out == "" {
		if out, err = os.MkdirTemp("", "unipool-link-bench-"); err != nil {
			return nil, fmt.Errorf("link bench: %w", err)
		}
		defer os.RemoveAll(out)
	}
	mapPath := filepath.Join(out, "map.json")
	for _, p := range []string{mapPath, aloneMap(mapPath)} {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("link bench: %s exists; give an --out without a map (Bench measures from an empty map)", p)
		}
	}
	for _, l := range BenchLayouts {
		if err := os.MkdirAll(filepath.Join(out, l), 0o755); err != nil {
			return nil, fmt.Errorf("link bench: %w", err)
		}
	}

	type job struct {
		uk     corpus.Unikernel
		layout string
		turn   *Turn
	}
	// The links against each map take it in the corpus's order (Order):
	// the figures are the same whatever opt.Jobs.
	orders := map[string]*Order{LayoutAligned: NewOrder(len(uks)), LayoutAlignedAlone: NewOrder(len(uks))}
	var jobs []job
	for i, u := range uks {
		for _, l := range BenchLayouts {
			j := job{uk: u, layout: l}
			if o := orders[l]; o != nil {
				j.turn = o.Turn(i)
			}
			jobs = append(jobs, j)
		}
	}
	images := map[string][]*benchImage{}
	times := map[string]time.Duration{}
	var mu sync.Mutex
	var firstErr error
	done := 0
	next := make(chan job)
	var wg sync.WaitGroup
	for range opt.Jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				start := time.Now()
				im, err := benchLink(ctx, c.Dir, out, mapPath, j.uk, j.layout, j.turn, opt)
				mu.Lock()
				times[j.layout] += time.Since(start)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if im != nil {
					images[j.layout] = append(images[j.layout], im)
				}
				done++
				if opt.Progress != nil {
					opt.Progress(done, len(jobs))
				}
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		next <- j
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rep := &BenchReport{Corpus: opt.Corpus, Unikernels: len(uks)}
	for _, l := range BenchLayouts {
		ims := images[l]
		sort.Slice(ims, func(i, j int) bool { return ims[i].uk < ims[j].uk })
		lb := census(l, ims)
		lb.LinkTime = times[l]
		rep.Layouts = append(rep.Layouts, lb)
	}
	get := func(l string) LayoutBench {
		for _, x := range rep.Layouts {
			if x.Layout == l {
				return x
			}
		}
		return LayoutBench{}
	}
	al, pk, dce := get(LayoutAligned), get(LayoutPacked), get(LayoutDCE)
	rep.FileOverPacked = ratio(al.FileBytes, pk.FileBytes)
	rep.FileOverDCE = ratio(al.FileBytes, dce.FileBytes)
	rep.LoadedOverPacked = ratio(al.LoadedBytes, pk.LoadedBytes)
	rep.LoadedOverDCE = ratio(al.LoadedBytes, dce.LoadedBytes)
	for i := range rep.Layouts {
		var worst, sum float64
		n := 0
		for k, im := range rep.Layouts[i].Images {
			if k < len(pk.Images) && pk.Images[k].Unikernel == im.Unikernel {
				r := ratio(im.Loaded, pk.Images[k].Loaded)
				worst = max(worst, r)
				sum += r
				n++
			}
		}
		rep.Layouts[i].MaxLoadedOverPkd = worst
		if n > 0 {
			rep.Layouts[i].AvgLoadedOverPkd = sum / float64(n)
		}
		if rep.Layouts[i].Layout == LayoutAligned {
			rep.LoadedOverPackedAvg = rep.Layouts[i].AvgLoadedOverPkd
		}
	}
	return rep, nil
}

// aloneMap is the map of the aligned-alone links, beside mapPath.
func aloneMap(mapPath string) string {
	return strings.TrimSuffix(mapPath, ".json") + "-alone.json"
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// benchLink links one unikernel in one layout and reads what the census
// needs.
func benchLink(ctx context.Context, corpusDir, out, mapPath string, u corpus.Unikernel, layout string, turn *Turn, bo BenchOptions) (*benchImage, error) {
	if turn != nil {
		defer turn.Done() // also when the link is not reached
	}
	objs, sums, err := ObjectsFromCorpus(corpusDir, u.Name)
	if err != nil {
		return nil, err
	}
	frags, err := FragmentsFromCorpus(corpusDir, u.Name)
	if err != nil {
		return nil, err
	}
	opt := Options{Layout: layout, Objects: objs, SHA256: sums, Fragments: frags, Trace: true, Output: filepath.Join(out, layout, u.Name), Groups: bo.Groups, MapAddresses: bo.MapAddresses, NoPacks: bo.NoPacks, Turn: turn}
	if layout == LayoutAligned || layout == LayoutAlignedAlone {
		opt.Layout, opt.MapPath = LayoutAligned, mapPath
	}
	if layout == LayoutAlignedAlone {
		// A map of its own: its packs (libmap.Pack) hold code the
		// trampoline pass has not rewritten.
		opt.Tramp, opt.MapPath = NoRewrite{DefaultTrampoliner}, aloneMap(mapPath)
	}
	res, err := Link(ctx, opt)
	if err != nil {
		return nil, fmt.Errorf("link bench: unikernel %s, %s: %w", u.Name, layout, err)
	}
	bi := &benchImage{uk: u.Name, path: opt.Output, res: res, pages: map[uint64][32]byte{}, libSHA: map[string]string{}, shift: map[string]int64{}}
	for _, o := range objs {
		bi.libSHA[o.Name] = sums[o.Path]
	}
	if res.Config != nil {
		// A group unit's pages are sharable with the images that hold
		// the same unit (the same member objects): its object is the
		// members' ld -r.
		for _, l := range res.Config.Libraries {
			bi.shift[l.Name] = l.Shift
			if len(l.Members) > 0 {
				bi.libSHA[l.Name] = l.ObjectSHA256
			}
		}
	}
	in, err := Inspect(opt.Output)
	if err != nil {
		return nil, err
	}
	bi.size = ImageBench{Unikernel: u.Name, FileBytes: uint64(in.FileSize), Loaded: in.LoadedSize}
	for _, l := range in.Libraries {
		bi.size.TrampPages += l.TrampPages / abi.PageSize
		bi.size.SharedPages += l.SharedPages / abi.PageSize
		bi.size.PrivatePages += l.PrivatePages / abi.PageSize
		bi.size.SharedBytes += l.Code + l.Rodata + l.Stubs
		bi.size.PrivateBytes += l.Private
	}
	bi.size.MapPrivatePages, bi.size.Moved = in.MapPrivatePages/abi.PageSize, in.Moved
	bi.size.PackPages, bi.size.PackBytes, bi.size.Packed = in.PackPages/abi.PageSize, in.PackBytes, in.Packed
	bi.size.NonZeroPages, bi.size.DeadPages = in.NonZeroPages, in.DeadPages
	if in.Moved == 0 {
		bi.size.MapPrivatePages = 0
	}
	im, err := elfimage.Open(opt.Output)
	if err != nil {
		return nil, err
	}
	for _, s := range im.Segments() {
		if s.Flags&elf.PF_W != 0 {
			continue
		}
		for p := s.Vaddr &^ (abi.PageSize - 1); p < s.End(); p += abi.PageSize {
			if page, ok := im.Page(p); ok {
				bi.pages[p] = sha256.Sum256(page)
			}
		}
	}
	// The census needs only page digests and where each library's
	// read-only input sections went; keep the rest out of memory.
	ro := map[string]bool{}
	for _, sec := range im.ELF().Sections {
		ro[sec.Name] = sec.Flags&elf.SHF_ALLOC != 0 && sec.Flags&elf.SHF_WRITE == 0 && sec.Flags&elf.SHF_TLS == 0
	}
	var keep []InputSection
	for _, s := range res.Inputs {
		// A library's entries of an image-wide table (Unikraft's
		// .uk_libinfo, .uk_inittab, ...) lie in the image's own table,
		// which no other image has: they are not the library's pages.
		if ro[s.Output] && !unikraftTableOutputs[s.Output] {
			keep = append(keep, s)
		}
	}
	res.Inputs, res.Script, res.Config = keep, "", nil
	return bi, nil
}

// census computes a layout's page-identity share and size totals.
func census(layout string, ims []*benchImage) LayoutBench {
	lb := LayoutBench{Layout: layout}
	// Which images hold each object.
	holders := map[string][]*benchImage{}
	for _, im := range ims {
		for _, sha := range im.libSHA {
			holders[sha] = append(holders[sha], im)
		}
	}
	distinct := map[[32]byte]bool{}
	for _, im := range ims {
		for _, h := range im.pages {
			distinct[h] = true
		}
		lb.ReadOnlyBytes += uint64(len(im.pages)) * abi.PageSize
		lb.FileBytes += im.size.FileBytes
		lb.LoadedBytes += im.size.Loaded
		lb.add(im.size.PageParts)
		lb.Images = append(lb.Images, im.size)
		pages := map[string]map[uint64]bool{} // library -> its read-only pages
		for _, s := range im.res.Inputs {
			if pages[s.Library] == nil {
				pages[s.Library] = map[uint64]bool{}
			}
			for p := s.Addr &^ (abi.PageSize - 1); p < s.Addr+s.Size; p += abi.PageSize {
				pages[s.Library][p] = true
			}
		}
		for lib, ps := range pages {
			sha := im.libSHA[lib]
			others := holders[sha]
			if len(others) < 2 {
				continue // no other image has this object: nothing to share
			}
			for p := range ps {
				lb.SharablePages++
				found := false
				for _, o := range others {
					q := uint64(int64(p) - im.shift[lib] + o.shift[lib])
					if h, ok := o.pages[q]; ok && o != im && h == im.pages[p] {
						found = true
						break
					}
				}
				if found {
					lb.IdenticalPages++
				} else {
					if lb.Misses == nil {
						lb.Misses = map[string]int{}
					}
					lb.Misses[lib]++
				}
			}
		}
	}
	lb.DistinctReadOnlyBytes = uint64(len(distinct)) * abi.PageSize
	if lb.SharablePages > 0 {
		lb.Share = float64(lb.IdenticalPages) / float64(lb.SharablePages)
	}
	lb.MedianFileBytes = median(lb.Images, func(i ImageBench) uint64 { return i.FileBytes })
	lb.MedianLoaded = median(lb.Images, func(i ImageBench) uint64 { return i.Loaded })
	return lb
}

func median(ims []ImageBench, f func(ImageBench) uint64) uint64 {
	if len(ims) == 0 {
		return 0
	}
	v := make([]uint64, len(ims))
	for i, im := range ims {
		v[i] = f(im)
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[len(v)/2]
}
