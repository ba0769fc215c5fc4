package loader

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/unipool/unipool/internal/abi"
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

// placer hands out ranges of the ASLR window for one instance. It first
// draws the instance's span (abi.ASLRSpan: an aligned part of the window,
// uniform among the window's), then each range at a page drawn uniformly
// among the positions where it fits the span, drawn again if it comes
// within a guard page of a range already taken (the ranges cover at most
// an eighth of the span: a redraw is rare, so each base stays uniform up
// to that). A base is so uniform over the whole window, and independent of
// every other base within the span; given another region's base (which
// gives the span) it keeps the bits of its position in the span.
//
// Why a span: every 1 GiB of address space an instance touches costs it a
// page-middle-directory page, every 2 MiB a page-table page. Bases drawn
// over the whole 64 GiB window put each region in a GiB of its own: ~20
// regions, ~40 page-table pages (160 KiB) per instance where the same
// instance without --aslr needs ~7. In one span they share one PMD page.
type placer struct {
	rng   *rand.Rand
	taken []span
	// base and size of the instance's span (size 0: not drawn yet).
	spanBase, spanSize uint64
}

// spanSlots is the number of page-aligned positions a range of size bytes
// has in a span of spanSize bytes.
func spanSlots(spanSize, size uint64) uint64 {
	if size > spanSize {
		return 0
	}
	return (spanSize-size)/abi.PageSize + 1
}

// windowSlots is the number of page-aligned positions a range of size
// bytes has in the whole ASLR window.
func windowSlots(size uint64) uint64 { return spanSlots(abi.ASLRSize, size) }

func log2Round(n uint64) float64 {
	if n == 0 {
		return 0
	}
	return math.Round(math.Log2(float64(n))*100) / 100 // two decimals: what a reader needs
}

// drawSpan picks the instance's span for ranges of total bytes in all
// (guard pages included), the widest reaching over extent bytes (a dense
// library region and its private part in the data arena move as one, up
// to ~1 GiB apart): abi.ASLRSpan, doubled until the ranges cover at most
// an eighth of it and the widest at most half.
func (pl *placer) drawSpan(total, extent uint64) error {
	size := uint64(abi.ASLRSpan)
	for size < abi.ASLRSize && (total > size/8 || extent > size/2) {
		size *= 2
	}
	if total > size || extent > size {
		return fmt.Errorf("%d bytes of regions do not fit the ASLR window", total)
	}
	pl.spanSize = size
	pl.spanBase = abi.ASLRBase + pl.rng.Uint64N(abi.ASLRSize/size)*size
	return nil
}

// EntropyBits is the entropy of a base the placer drew for a range of
// size bytes: log2 of its positions in the window (the span's choices
// times its positions in the span).
func (pl *placer) EntropyBits(size uint64) float64 {
	return log2Round(abi.ASLRSize / pl.spanSize * spanSlots(pl.spanSize, size))
}

// GivenAnotherBits is what is left of it to someone who knows another
// region's base of the same instance (and so its span): log2 of its
// positions in the span.
func (pl *placer) GivenAnotherBits(size uint64) float64 {
	return log2Round(spanSlots(pl.spanSize, size))
}

func (pl *placer) reserve(lo, hi uint64) { pl.taken = append(pl.taken, span{lo, hi}) }

func (pl *placer) place(size uint64, what string) (uint64, error) {
	return pl.placeSpans([]span{{0, size}}, what)
}

// placeSpans draws one base for ranges that move together (offsets from
// the base, page-aligned, ascending: a dense library region and its
// private part in the data arena); all must fit the span.
func (pl *placer) placeSpans(parts []span, what string) (uint64, error) {
	if pl.spanSize == 0 {
		return 0, fmt.Errorf("%s: the instance's ASLR span was not drawn", what)
	}
	size := parts[len(parts)-1].hi
	slots := spanSlots(pl.spanSize, size)
	if slots == 0 {
		return 0, fmt.Errorf("%s: %d bytes do not fit the ASLR span", what, size)
	}
	for try := 0; try < 1000; try++ {
		base := pl.spanBase + pl.rng.Uint64N(slots)*abi.PageSize
		free := true
		for _, p := range parts {
			lo, hi := base+p.lo, base+p.hi
			for _, t := range pl.taken {
				if lo < t.hi+abi.PageSize && t.lo < hi+abi.PageSize {
					free = false
					break
				}
			}
		}
		if free {
			for _, p := range parts {
				pl.reserve(base+p.lo, base+p.hi)
			}
			return base, nil
		}
	}
	return 0, fmt.Errorf("no room for %s in the ASLR span", what)
}
