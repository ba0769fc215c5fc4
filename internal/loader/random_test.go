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

// unit maps a region's base to [0,1): its position among the positions
// the region has in the window. Canary and seed are plain 56/64-bit draws.
type sample struct {
	name string
	unit func(*Layout) (float64, uint64) // position in [0,1), and the slot number
}

// Under --aslr all regions of an instance lie in one span of the window
// (abi.ASLRSpan, drawn per instance), so that they share their upper
// page-table levels. What must hold, and is tested: every region's base
// is uniform over the whole window; the span is independent between
// instances; within the span every region's position is uniform and
// independent of every other region's; the bits each reports are those.
func TestEveryRegionBaseIsUniformOverTheWindowAndIndependentOfTheOthersWithinItsSpanAndOfOtherInstances(t *testing.T) {
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
	sizes := map[string]uint64{}
	for _, m := range lays[0].Mappings {
		name := m.Library
		if name == "" {
			name = m.Part
		}
		sizes[name] = 0
	}
	baseOf := func(l *Layout, name string) (uint64, uint64) {
		base, ok := l.Bases[name]
		size := regionSize(p, name)
		if !ok {
			base = l.Areas[name]
			size = areaSize(l, name)
		}
		return base, size
	}
	span := lays[0].ASLRSpan
	if span < abi.ASLRSpan || abi.ASLRSize%span != 0 {
		t.Fatalf("ASLR span %#x", span)
	}
	t.Logf("span %d MiB", span>>20)
	// In the window: the region's position among all it can take (one of
	// the window's spans, then a page where it fits the span).
	var samples, inSpan []sample
	for name := range sizes {
		samples = append(samples, sample{name, func(l *Layout) (float64, uint64) {
			base, size := baseOf(l, name)
			per := spanSlots(span, size)
			slot := (base-abi.ASLRBase)/span*per + (base-abi.ASLRBase)%span/abi.PageSize
			return float64(slot) / float64(abi.ASLRSize/span*per), slot
		}})
		inSpan = append(inSpan, sample{name, func(l *Layout) (float64, uint64) {
			base, size := baseOf(l, name)
			slot := (base - abi.ASLRBase) % span / abi.PageSize
			return float64(slot) / float64(spanSlots(span, size)), slot
		}})
	}
	for _, l := range lays[:100] {
		spans := map[uint64]bool{}
		if l.ASLRSpan != span {
			t.Fatalf("span %#x, then %#x", span, l.ASLRSpan)
		}
		for name := range sizes {
			base, size := baseOf(l, name)
			s := (base - abi.ASLRBase) / span
			spans[s] = true
			if (base+size-1-abi.ASLRBase)/span != s {
				t.Fatalf("%s at %#x+%#x straddles its span's end", name, base, size)
			}
			want, wantGiven := math.Log2(float64(abi.ASLRSize/span)*float64(spanSlots(span, size))), math.Log2(float64(spanSlots(span, size)))
			if math.Abs(l.Entropy[name]-want) > 0.01 || math.Abs(l.EntropyGiven[name]-wantGiven) > 0.01 {
				t.Fatalf("%s: reports %v bits, %v given another base; want %.2f, %.2f", name, l.Entropy[name], l.EntropyGiven[name], want, wantGiven)
			}
		}
		if len(spans) != 1 {
			t.Fatalf("an instance's regions in %d spans, want 1: %v %v", len(spans), l.Bases, l.Areas)
		}
	}
	samples = append(samples,
		sample{"canary", func(l *Layout) (float64, uint64) { return float64(l.Canary>>8) / (1 << 56), l.Canary >> 8 }},
		sample{"seed", func(l *Layout) (float64, uint64) { return float64(l.Seed) / (1 << 64), l.Seed }})
	if len(samples) != 8 {
		t.Fatalf("%d samples (%v), want a, app, bootinfo, stack, heap, tls, canary, seed", len(samples), sizes)
	}
	const bins = 64
	for _, s := range samples {
		hi, lo := make([]int, bins), make([]int, bins)
		for _, l := range lays {
			u, slot := s.unit(l)
			if u < 0 || u >= 1 {
				t.Fatalf("%s: at %v of its window", s.name, u)
			}
			hi[int(u*bins)]++
			lo[slot%bins]++ // the low bits: no alignment, no bias
		}
		if x := chi2(hi, n); x > chi2Limit(bins-1) {
			t.Errorf("%s: not uniform over its window: chi-square %.1f > %.1f (%d bins)", s.name, x, chi2Limit(bins-1), bins)
		}
		if x := chi2(lo, n); x > chi2Limit(bins-1) {
			t.Errorf("%s: low bits not uniform: chi-square %.1f > %.1f", s.name, x, chi2Limit(bins-1))
		}
	}
	// Independence, by contingency tables (8x8 bins, chi-square with 49
	// degrees of freedom): every pair of regions within an instance, and
	// each region with itself in the next instance.
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
	for _, a := range samples {
		indep(a.name+" in instance k and k+1", at(a, 0), at(a, 1), n-1)
	}
	for i, a := range inSpan {
		for _, b := range inSpan[i+1:] {
			indep(a.name+" and "+b.name+" within their span", at(a, 0), at(b, 0), n)
		}
		for _, b := range samples[len(inSpan):] { // canary, seed
			indep(a.name+" and "+b.name, at(a, 0), at(b, 0), n)
		}
	}
	indep("canary and seed", at(samples[len(samples)-2], 0), at(samples[len(samples)-1], 0), n)
	for _, a := range inSpan {
		pos := make([]int, bins)
		for _, l := range lays {
			u, _ := a.unit(l)
			if u < 0 || u >= 1 {
				t.Fatalf("%s: at %v of its span", a.name, u)
			}
			pos[int(u*bins)]++
		}
		if x := chi2(pos, n); x > chi2Limit(bins-1) {
			t.Errorf("%s: not uniform within its span: chi-square %.1f > %.1f", a.name, x, chi2Limit(bins-1))
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

func regionSize(p *Prepared, name string) uint64 {
	for _, l := range p.cfg.Libraries {
		if l.Name == name {
			return l.Region.Extent()
		}
	}
	return 0
}

func areaSize(l *Layout, part string) uint64 {
	for _, m := range l.Mappings {
		if m.Part == part && m.Library == "" {
			return m.Size
		}
	}
	return 0
}
