package loader

import (
	"math"
	"testing"

	"github.com/unipool/unipool/internal/abi"
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

func TestEveryRegionBaseIsUniformOverItsWindowAndIndependentOfTheOthersAndOfOtherInstances(t *testing.T) {
	const n = 10000
	p, err := Prepare(testUnikernel(t), false)
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
	var samples []sample
	for name := range sizes {
		samples = append(samples, sample{name, func(l *Layout) (float64, uint64) {
			base, ok := l.Bases[name]
			size := regionSize(p, name)
			if !ok {
				base = l.Areas[name]
				size = areaSize(l, name)
			}
			slot := (base - abi.ASLRBase) / abi.PageSize
			return float64(slot) / float64(windowSlots(size)), slot
		}})
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
	for i, a := range samples {
		indep(a.name+" in instance k and k+1", at(a, 0), at(a, 1), n-1)
		for _, b := range samples[i+1:] {
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

func regionSize(p *Prepared, name string) uint64 {
	for _, l := range p.cfg.Libraries {
		if l.Name == name {
			return l.Region.End() - l.Region.Start
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
