package loader

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
)

// Every secret of an instance — each region's base under --aslr, the
// stack canary, the guest's random seed — is its own draw from one
// source: the host's CSPRNG (crypto/rand, getrandom(2)) unless a caller
// asks for a reproducible run. None is derived from another, and none
// from anything the guest can read: the guest gets the canary and its
// seed in the boot info and clears both once taken (guest/plat,
// guest/lib/ukrand), and the bases are nowhere but in the pointers that
// need them.

// cryptoSource is a math/rand/v2 Source over crypto/rand: every Uint64 is
// a fresh read of the host CSPRNG, so no state lives in this process
// from which one instance's values would follow from another's.
type cryptoSource struct{}

func (cryptoSource) Uint64() uint64 {
	var b [8]byte
	crand.Read(b[:]) // never fails (Go >= 1.24: it crashes the program instead)
	return binary.LittleEndian.Uint64(b[:])
}

// HostRand draws from the host's CSPRNG. It is what Plan uses when
// Options.Rand is nil.
func HostRand() *rand.Rand { return rand.New(cryptoSource{}) }

// SeededRand is the reproducible source of instance k of a run started
// with --seed: its bases, canary and guest seed all follow from seed and
// k, so anyone who knows the seed knows them. For tests and benchmarks
// only; it disables the protection (SeededWarning).
func SeededRand(seed, k uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, k^seededStream))
}

// seededStream separates SeededRand's streams from other uses of a seed.
const seededStream = 0x756e69706f6f6c // "unipool"

// SeededWarning is what `run --seed` says (stderr, and run --json's
// "insecure_seed"): the layout and the canary are no secret then.
const SeededWarning = "--seed: every instance's region bases, stack canary and random seed follow from the seed; ASLR and the canary protect nothing in this run (use it for reproducible tests only)"

// canaryOf draws a stack-protector canary: 56 random bits, the low byte
// zero (a string overflow cannot write it), never all zero.
func canaryOf(r *rand.Rand) uint64 {
	for {
		if c := r.Uint64() &^ 0xff; c != 0 {
			return c
		}
	}
}

// Entropy in bits of the values that are not region bases.
const (
	CanaryBits = 56
	SeedBits   = 64
)

// span is a taken range of guest addresses.
type span struct{ lo, hi uint64 }

// What --aslr draws for an instance, each an independent draw:
//
//   - its span: an aligned part of the ASLR window (abi.ASLRSpan, 1 GiB,
//     doubled until the image fits), uniform among the window's. Every
//     region of the instance lies in it, so the instance touches as few
//     GiB as without --aslr: one page-middle-directory page each.
//   - the image's slide: every library and the app move by one offset,
//     a page uniform among the positions where the image (code regions and
//     the dense private parts in the data arena, as the map laid them out)
//     fits the span. The libraries' private parts so stay as dense as the
//     map packed them (several libraries to a page: a library's code
//     reaches its private part PC-relatively, so two libraries share a
//     private page only at one slide), and their code stays as close as the
//     map put it (one page-table page for the lot).
//   - the heap: a page uniform among the span's positions where it fits
//     (drawn again on touching the image).
//   - the area chunk: an aligned 2 MiB of the span (one page-table page),
//     uniform among the span's, drawn again on touching the image or the
//     heap; the stack mapping at a page in it, uniform among the chunk's
//     positions. The boot info and the TLS area (TCB) lie in the stack
//     mapping's top page, at fixed offsets (since session 15; before, the
//     boot info had a page of its own in the chunk, the TLS area in it).
//
// So, stated honestly: an attacker who knows no address faces each
// region's full bits (Layout.Entropy: log2 of its positions in the
// window). One who knows an address of the image knows every library's
// and the app's (the map is public: their offsets are not secret, as the
// libraries of a Linux process follow each other from one mmap base), and
// still faces the heap's and the areas' positions in the span; one who
// knows the stack knows the boot info and the TLS area (and the other way
// round: since session 15 they lie in its top page; before, about 9 bits
// of the chunk were left between them), and still faces the image's and
// the heap's positions in the span
// (Layout.EntropyGiven is the least left given any other region's base,
// Layout.EntropyGroup what is left given a base outside the region's group).
//
// Why: every 1 GiB an instance touches costs a page-middle-directory page,
// every 2 MiB a page-table page, and a private page holds the private
// parts only of libraries at one slide. A base of its own for each of
// ~20 regions costs ~20 page-table pages and a private page per library
// (~180 KiB per instance, 1.6x a shared instance's memory); this layout
// costs one page-table page (the area chunk apart from the heap) and the
// odd page where a slide splits a range across a 2 MiB boundary.
type placer struct {
	rng   *rand.Rand
	taken []span
	// base and size of the instance's span (size 0: not drawn yet).
	spanBase, spanSize uint64
}

// AreaChunk is the aligned part of the span that holds the stack mapping
// (boot info and TLS in its top page): one page-table page for it.
const AreaChunk = 2 << 20

// spanSlots is the number of page-aligned positions a range of size bytes
// has in a span of spanSize bytes.
func spanSlots(spanSize, size uint64) uint64 {
	if size > spanSize {
		return 0
	}
	return (spanSize-size)/abi.PageSize + 1
}

func log2Round(n uint64) float64 {
	if n == 0 {
		return 0
	}
	return math.Round(math.Log2(float64(n))*100) / 100 // two decimals: what a reader needs
}

// drawSpan picks the instance's span: abi.ASLRSpan, doubled until the
// image's extent (lowest to highest address of its moving regions; 0 for
// an image that stays where it was linked) fits it and its ranges with the
// per-instance areas (total bytes, guard pages included) cover at most an
// eighth of it, so that redraws stay rare.
func (pl *placer) drawSpan(extent, total uint64) error {
	size := uint64(abi.ASLRSpan)
	for size < abi.ASLRSize && (total > size/8 || extent > size) {
		size *= 2
	}
	if total > size || extent > size {
		return fmt.Errorf("%d bytes of regions do not fit the ASLR window", total)
	}
	pl.spanSize = size
	pl.spanBase = abi.ASLRBase + pl.rng.Uint64N(abi.ASLRSize/size)*size
	return nil
}

// spans is the number of spans in the window.
func (pl *placer) spans() uint64 { return abi.ASLRSize / pl.spanSize }

// EntropyBits is the entropy of a range of size bytes drawn uniformly in
// the span: log2 of its positions in the window (the span's choices times
// its positions in the span).
func (pl *placer) EntropyBits(size uint64) float64 {
	return log2Round(pl.spans() * spanSlots(pl.spanSize, size))
}

// GivenSpanBits is what is left of it to someone who knows the span (any
// other region's base gives it): log2 of its positions in the span.
func (pl *placer) GivenSpanBits(size uint64) float64 {
	return log2Round(spanSlots(pl.spanSize, size))
}

// chunkBits are the bits of a range of size bytes drawn in an area chunk
// of chunk bytes beside another range of other bytes: in the window, given
// the span, and given the other range's base (which gives the chunk; the
// range cannot come within a guard page of the other: other/page +
// size/page + 1 positions fewer where the other lies inside the chunk).
func (pl *placer) chunkBits(chunk, size, other uint64) (window, givenSpan, givenOther float64) {
	n := spanSlots(chunk, size)
	return log2Round(pl.spans() * pl.spanSize / chunk * n), log2Round(pl.spanSize / chunk * n),
		log2Round(n - min(n-1, (size+other)/abi.PageSize+1))
}

func (pl *placer) reserve(lo, hi uint64) { pl.taken = append(pl.taken, span{lo, hi}) }

// free says whether [lo, hi) keeps a guard page from every taken range.
func (pl *placer) free(lo, hi uint64) bool {
	for _, t := range pl.taken {
		if lo < t.hi+abi.PageSize && t.lo < hi+abi.PageSize {
			return false
		}
	}
	return true
}

// place draws a range of size bytes at a page uniform in the span.
func (pl *placer) place(size uint64, what string) (uint64, error) {
	return pl.placeSpans([]span{{0, size}}, what)
}

// placeSpans draws one base for ranges that move together (offsets from
// the base, page-aligned, ascending by their ends: the last ends
// furthest), uniform among the positions where all fit the span.
func (pl *placer) placeSpans(parts []span, what string) (uint64, error) {
	if pl.spanSize == 0 {
		return 0, fmt.Errorf("%s: the instance's ASLR span was not drawn", what)
	}
	return pl.placeIn(pl.spanBase, pl.spanSize, parts, what)
}

// placeIn draws one base for parts at a page uniform among the positions
// where all fit [lo, lo+size), drawn again while one would come within a
// guard page of a taken range.
func (pl *placer) placeIn(lo, size uint64, parts []span, what string) (uint64, error) {
	extent := parts[len(parts)-1].hi
	slots := spanSlots(size, extent)
	if slots == 0 {
		return 0, fmt.Errorf("%s: %d bytes do not fit the ASLR span", what, extent)
	}
	for try := 0; try < 1000; try++ {
		base := lo + pl.rng.Uint64N(slots)*abi.PageSize
		ok := true
		for _, p := range parts {
			if !pl.free(base+p.lo, base+p.hi) {
				ok = false
				break
			}
		}
		if ok {
			for _, p := range parts {
				pl.reserve(base+p.lo, base+p.hi)
			}
			return base, nil
		}
	}
	return 0, fmt.Errorf("no room for %s in the ASLR span", what)
}

// drawChunk draws an aligned chunk of size bytes uniform among the span's,
// drawn again while it would come within a guard page of a taken range.
// It takes nothing: the ranges placed in it do.
func (pl *placer) drawChunk(size uint64) (uint64, error) {
	if pl.spanSize == 0 || size > pl.spanSize {
		return 0, fmt.Errorf("area chunk of %d bytes: no ASLR span for it", size)
	}
	for try := 0; try < 1000; try++ {
		c := pl.spanBase + pl.rng.Uint64N(pl.spanSize/size)*size
		if pl.free(c, c+size) {
			return c, nil
		}
	}
	return 0, fmt.Errorf("no room for the area chunk in the ASLR span")
}

// ImageASLRBits is the entropy of the image's slide under --aslr (every
// library without NoASLR and the app move by it): log2 of the image's
// positions in the window, as Plan draws it with the default memory size.
// 0 when nothing in the image moves.
func ImageASLRBits(cfg *desc.Config) float64 {
	p := &Prepared{cfg: cfg}
	img := p.imageParts()
	if img.moving == 0 {
		return 0
	}
	total := privateTotal(Options{})
	for _, sp := range img.parts {
		total += sp.hi - sp.lo + 2*abi.PageSize
	}
	pl := &placer{rng: rand.New(rand.NewPCG(0, 0))}
	if pl.drawSpan(img.extent(), total) != nil {
		return 0
	}
	return pl.EntropyBits(img.extent())
}
