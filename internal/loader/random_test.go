package loader

import (
	"math"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/monitor"
)

// chi2Limit is the chi-square value a uniform sample exceeds with
// probability ~1e-9 for dof degrees of freedom (Wilson–Hilferty, z = 6):
// a correct source fails one of these tests about once in 10^8 runs.
func chi2Limit(dof int) float64 {
	k := float64(dof)
	c := 2 / (9 * k)
	return k * math.Pow(1-c+6*math.Sqrt(c), 3)
}

func chi2(counts []int, n int) float64 {
	want := float64(n) / float64(len(counts))
	x := 0.0
	for _, c := range counts {
		d := float64(c) - want
		x += d * d / want
	}
	return x
}

// sample maps a layout to a position in [0,1) among the values drawn (and
// the slot number, for the low bits).
type sample struct {
	name string
	unit func(*Layout) (float64, uint64)
	bins int
}

// Under --aslr an instance's regions lie in one span of the window
// (abi.ASLRSpan, drawn per instance); the image (every library and the
// app) slides as one; the heap lies anywhere in the span; boot info (with
// TLS) and stack lie in one 2 MiB chunk of it, each at its own page. What
// must hold, and is tested: the span uniform among the window's; the
// image's slide, the heap, the chunk uniform within the span; boot info
// and stack uniform within the chunk; every region uniform over its
// positions in the window; the groups independent of each other, of the
// canary and seed, and of the next instance's; the image's regions exactly
// the map's offsets apart; the bits reported exactly these.
func TestEveryGroupIsUniformOverItsPositionsAndIndependentOfTheOtherGroupsAndOfOtherInstances(t *testing.T) {
	t.Run("plain", func(t *testing.T) { checkASLRPlacement(t, testUnikernel(t)) })
	t.Run("dense", func(t *testing.T) {
		// Dense regions, as an aligned link makes them: each region
		// moves with its private part in the data arena, ~1 GiB apart.
		uk := testUnikernel(t)
		cfg := *uk.Config
		cfg.Libraries = append([]desc.Library(nil), cfg.Libraries...)
		cfg.SchemaVersion = desc.SchemaVersionDense
		cfg.Libraries[0].Region.PrivateStart = abi.DataArenaBase
		cfg.Libraries[1].Region.PrivateStart = abi.DataArenaBase + 2*abi.PageSize
		uk.Config = &cfg
		checkASLRPlacement(t, uk)
	})
}

func checkASLRPlacement(t *testing.T, uk monitor.Unikernel) {
	const n = 10000
	p, err := Prepare(uk, false)
	if err != nil {
		t.Fatal(err)
	}
	lays := make([]*Layout, n)
	for i := range lays {
		// Rand nil: the host CSPRNG, as every run without --seed.
		if lays[i], err = p.Plan(Options{ASLR: true, MemSize: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	img := p.imageParts()
	span := lays[0].ASLRSpan
	if span < abi.ASLRSpan || abi.ASLRSize%span != 0 || span < img.extent() {
		t.Fatalf("ASLR span %#x for an image of %#x", span, img.extent())
	}
	spans := abi.ASLRSize / span
	areaSize := func(l *Layout, part string) uint64 {
		var size uint64
		for _, m := range l.Mappings {
			if m.Part == part && m.Library == "" {
				size += m.Size // the stack: its body and its top page(s)
			}
		}
		if size == 0 {
			t.Fatalf("no %s area", part)
		}
		return size
	}
	stackSize, heapSize := areaSize(lays[0], PartStack), areaSize(lays[0], PartHeap)
	bootOff := lays[0].Areas[PartBootInfo] - lays[0].Areas[PartStack]
	const chunk = AreaChunk
	t.Logf("span %d MiB, image extent %d MiB, stack %d KiB (boot info at %#x in it), heap %d KiB", span>>20, img.extent()>>20, stackSize>>10, bootOff, heapSize>>10)
	slide := func(l *Layout) uint64 { return l.Bases["a"] - (p.cfg.Libraries[0].Region.Start - img.lo) }
	inSpan := func(a uint64) uint64 { return (a - abi.ASLRBase) % span / abi.PageSize }
	inWindow := func(a, size uint64) (float64, uint64) {
		per := spanSlots(span, size)
		slot := (a-abi.ASLRBase)/span*per + inSpan(a)
		return float64(slot) / float64(spans*per), slot
	}
	inChunk := func(a, size uint64) (float64, uint64) {
		slot := (a - abi.ASLRBase) % chunk / abi.PageSize
		return float64(slot) / float64(spanSlots(chunk, size)), slot
	}
	for _, l := range lays[:1000] {
		if l.ASLRSpan != span {
			t.Fatalf("span %#x, then %#x", span, l.ASLRSpan)
		}
		s := slide(l)
		for i, lib := range p.cfg.Libraries {
			if got := l.Bases[lib.Name]; got != s+lib.Region.Start-img.lo {
				t.Fatalf("library %d (%s) at %#x, want the slide %#x + its map offset %#x", i, lib.Name, got, s, lib.Region.Start-img.lo)
			}
		}
		lo := (s - abi.ASLRBase) / span * span
		for name, a := range map[string][2]uint64{"image": {s, img.extent()}, "heap": {l.Areas[PartHeap], heapSize},
			"stack": {l.Areas[PartStack], stackSize}} {
			if a[0]-abi.ASLRBase < lo || a[0]+a[1]-abi.ASLRBase > lo+span {
				t.Fatalf("%s at %#x+%#x outside the instance's span [%#x,+%#x)", name, a[0], a[1], abi.ASLRBase+lo, span)
			}
		}
		if (l.Areas[PartStack]+stackSize-1)/chunk != l.Areas[PartStack]/chunk {
			t.Fatalf("stack at %#x+%#x: not in one 2 MiB chunk", l.Areas[PartStack], stackSize)
		}
		// The boot info and the TLS area below it at the top of the
		// stack mapping, at the same offset in every instance: they move
		// with the stack, in the page its first frames write.
		boot, tls := l.Areas[PartBootInfo], l.Areas[PartTLS]
		if l.TLSSize == 0 {
			tls = boot // a version-1 guest: no TLS area
		}
		if boot-l.Areas[PartStack] != bootOff || boot >= l.Areas[PartStack]+stackSize || tls+l.TLSSize != boot ||
			l.StackTop != tls || boot/abi.PageSize != l.StackTop/abi.PageSize {
			t.Fatalf("boot info at %#x, TLS area %#x+%#x, stack top %#x: not the top page of the stack %#x+%#x", boot, tls, l.TLSSize, l.StackTop, l.Areas[PartStack], stackSize)
		}
		// The bits reported.
		imgBits := math.Log2(float64(spans * spanSlots(span, img.extent())))
		imgInSpan := math.Log2(float64(spanSlots(span, img.extent())))
		heapBits, heapInSpan := math.Log2(float64(spans*spanSlots(span, heapSize))), math.Log2(float64(spanSlots(span, heapSize)))
		area := func(size, other uint64) (float64, float64, float64) {
			n := spanSlots(chunk, size)
			return math.Log2(float64(spans * span / chunk * n)), math.Log2(float64(span / chunk * n)), math.Log2(float64(n - (size+other)/abi.PageSize - 1))
		}
		sw, ss, _ := area(stackSize, 0)
		want := map[string][3]float64{"a": {imgBits, 0, imgInSpan}, "app": {imgBits, 0, imgInSpan}, "heap": {heapBits, heapInSpan, heapInSpan},
			"bootinfo": {sw, 0, ss}, "tls": {sw, 0, ss}, "stack": {sw, 0, ss}}
		for name, w := range want {
			got := [3]float64{l.Entropy[name], l.EntropyGiven[name], l.EntropyGroup[name]}
			for k := range got {
				if math.Abs(got[k]-w[k]) > 0.01 {
					t.Fatalf("%s: reports %v bits (in the window, given another base, given another group); want %.2f", name, got, w)
				}
			}
		}
	}
	samples := []sample{
		{"span", func(l *Layout) (float64, uint64) {
			s := (slide(l) - abi.ASLRBase) / span
			return float64(s) / float64(spans), s
		}, int(spans)},
		{"image in the window", func(l *Layout) (float64, uint64) { return inWindow(slide(l), img.extent()) }, 64},
		{"heap in the window", func(l *Layout) (float64, uint64) { return inWindow(l.Areas[PartHeap], heapSize) }, 64},
		{"stack in the window", func(l *Layout) (float64, uint64) {
			a := l.Areas[PartStack]
			per := span / chunk * spanSlots(chunk, stackSize)
			slot := (a-abi.ASLRBase)/span*per + (a-abi.ASLRBase)%span/chunk*spanSlots(chunk, stackSize) + (a-abi.ASLRBase)%chunk/abi.PageSize
			return float64(slot) / float64(spans*per), slot
		}, 64},
		{"image in its span", func(l *Layout) (float64, uint64) {
			s := inSpan(slide(l))
			return float64(s) / float64(spanSlots(span, img.extent())), s
		}, 64},
		{"heap in its span", func(l *Layout) (float64, uint64) {
			s := inSpan(l.Areas[PartHeap])
			return float64(s) / float64(spanSlots(span, heapSize)), s
		}, 64},
		{"area chunk in its span", func(l *Layout) (float64, uint64) {
			c := (l.Areas[PartStack] - abi.ASLRBase) % span / chunk
			return float64(c) / float64(span/chunk), c
		}, 64},
		{"stack in its chunk", func(l *Layout) (float64, uint64) { return inChunk(l.Areas[PartStack], stackSize) }, 64},
		{"canary", func(l *Layout) (float64, uint64) { return float64(l.Canary>>8) / (1 << 56), l.Canary >> 8 }, 64},
		{"seed", func(l *Layout) (float64, uint64) { return float64(l.Seed) / (1 << 64), l.Seed }, 64},
	}
	for _, s := range samples {
		hi, lo := make([]int, s.bins), make([]int, 64)
		for _, l := range lays {
			u, slot := s.unit(l)
			if u < 0 || u >= 1 {
				t.Fatalf("%s: at %v", s.name, u)
			}
			hi[int(u*float64(s.bins))]++
			lo[slot%64]++ // the low bits: no alignment, no bias
		}
		if x := chi2(hi, n); x > chi2Limit(s.bins-1) {
			t.Errorf("%s: not uniform: chi-square %.1f > %.1f (%d bins)", s.name, x, chi2Limit(s.bins-1), s.bins)
		}
		if s.name == "span" && spans < 64*4 {
			continue // as many spans as bins: the test above is the one
		}
		if x := chi2(lo, n); x > chi2Limit(63) {
			t.Errorf("%s: low bits not uniform: chi-square %.1f > %.1f", s.name, x, chi2Limit(63))
		}
	}
	// Independence, by contingency tables (8x8 bins, chi-square with 49
	// degrees of freedom): every pair of draws within an instance, and
	// each draw with itself in the next instance. Boot info and stack
	// are not independent of each other, and are not tested as such: in
	// one 2 MiB chunk neither may come within a guard page of the other
	// (given one, the other is uniform over the chunk's other positions;
	// EntropyGiven says how many).
	const k = 8
	indep := func(what string, a, b func(i int) float64, m int) {
		var tab [k][k]int
		var ra, rb [k]int
		for i := 0; i < m; i++ {
			x, y := int(a(i)*k), int(b(i)*k)
			tab[x][y]++
			ra[x]++
			rb[y]++
		}
		v := 0.0
		for x := 0; x < k; x++ {
			for y := 0; y < k; y++ {
				e := float64(ra[x]) * float64(rb[y]) / float64(m)
				d := float64(tab[x][y]) - e
				v += d * d / e
			}
		}
		if v > chi2Limit((k-1)*(k-1)) {
			t.Errorf("%s: dependent: chi-square %.1f > %.1f", what, v, chi2Limit((k-1)*(k-1)))
		}
	}
	at := func(s sample, shift int) func(int) float64 {
		return func(i int) float64 { u, _ := s.unit(lays[i+shift]); return u }
	}
	draws := []sample{samples[0]}
	draws = append(draws, samples[4:]...) // span, image, heap, chunk, bootinfo, stack, canary, seed
	for _, a := range draws {
		indep(a.name+" in instance k and k+1", at(a, 0), at(a, 1), n-1)
	}
	for i, a := range draws {
		for _, b := range draws[i+1:] {
			if a.name == "bootinfo in its chunk" && b.name == "stack in its chunk" {
				continue
			}
			indep(a.name+" and "+b.name, at(a, 0), at(b, 0), n)
		}
	}
}

func TestSeededRandRepeatsAnInstancesSecretsAndSaysSo(t *testing.T) {
	p, err := Prepare(testUnikernel(t), false)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Plan(Options{ASLR: true, Rand: SeededRand(42, 3)})
	b, _ := p.Plan(Options{ASLR: true, Rand: SeededRand(42, 3)})
	c, _ := p.Plan(Options{ASLR: true, Rand: SeededRand(42, 4)})
	if a.Bases["a"] != b.Bases["a"] || a.Canary != b.Canary || a.Seed != b.Seed || a.Areas["stack"] != b.Areas["stack"] {
		t.Errorf("seed 42 instance 3 twice: %v %#x %#x, then %v %#x %#x", a.Bases, a.Canary, a.Seed, b.Bases, b.Canary, b.Seed)
	}
	if a.Bases["a"] == c.Bases["a"] || a.Canary == c.Canary {
		t.Errorf("instances 3 and 4 of seed 42 share their secrets")
	}
	if !a.Seeded {
		t.Errorf("a layout from SeededRand does not say so")
	}
	host, _ := p.Plan(Options{ASLR: true})
	if host.Seeded || host.Canary&0xff != 0 || host.Canary == 0 {
		t.Errorf("host CSPRNG layout: seeded %v, canary %#x (want low byte 0, not 0)", host.Seeded, host.Canary)
	}
}
