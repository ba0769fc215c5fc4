package corpus

import (
	"fmt"
	"github.com/unipool/unipool/guest"
	"math/rand/v2"
	"path"
	"sort"
	"strings"

	"github.com/unipool/unipool/internal/corpus/reference"
)

// planned is one unikernel chosen from the seed, before anything is built.
type planned struct {
	Name    string
	App     *App
	Case    Case
	Libs    []plannedLib // link order, the app not included
	GenSeed uint64       // seeds the unikernel's own generated code
}

type plannedLib struct {
	Lib     *Library
	Variant Variant
}

// Every random stream of the plan is its own PCG, keyed by the seed and a
// stream constant, so that unikernel i is the same whatever the count: a
// corpus of 10 is the first 10 of a corpus of 1000 with the same seed.
const (
	streamAppOrder  = 0x61707073 // "apps"
	streamUnikernel = 0x756e696b // "unik"
	streamInput     = 0x696e7075 // "inpu"
)

// Input kinds (corpus build --inputs).
const (
	// InputsRepeated gives each unikernel one of its app's app.json cases:
	// unikernels of one app often run the same request.
	InputsRepeated = "repeated"
	// InputsDistinct gives each unikernel its own request, drawn for its
	// app, with the expected line from a Go reference
	// (internal/corpus/reference). Apps without a reference keep their
	// app.json cases.
	InputsDistinct = "distinct"
)

// variantDecay skews variant choice: variant k is picked with weight
// variantDecay^k, so the default (the first) is the most common, as in a
// fleet where most builds keep the default configuration.
const variantDecay = 0.4

// defaultAllocatorWeight is an allocator's weight when its lib.json gives
// no popularity.
const defaultAllocatorWeight = 0.5

// plan picks count unikernels from the tree, deterministically from seed.
// Extras kinds (corpus build --extras).
const (
	// ExtrasDrawn adds optional libraries drawn by their popularity,
	// whether the app calls them or not, as images built from a shared
	// configuration carry libraries their app does not use.
	ExtrasDrawn = "drawn"
	// ExtrasNone links only what the app uses: the core libraries, its
	// dependencies and one allocator.
	ExtrasNone = "none"
)

func plan(t *Tree, count int, seed uint64, inputs string, extras ...string) ([]planned, error) {
	noExtras := len(extras) > 0 && extras[0] == ExtrasNone
	if len(extras) > 0 && extras[0] != "" && extras[0] != ExtrasDrawn && !noExtras {
		return nil, fmt.Errorf("corpus: extras %q: want %s or %s", extras[0], ExtrasDrawn, ExtrasNone)
	}
	switch inputs {
	case "", InputsRepeated, InputsDistinct:
	default:
		return nil, fmt.Errorf("corpus: inputs %q: want %s or %s", inputs, InputsDistinct, InputsRepeated)
	}
	seen := map[string]bool{}
	width := len(fmt.Sprint(count - 1))
	if width < 4 {
		width = 4
	}
	var out []planned
	var order []int
	for i := 0; i < count; i++ {
		// Spread over all apps: each round of len(Apps) unikernels uses
		// every app once, in an order shuffled per round.
		round, k := i/len(t.Apps), i%len(t.Apps)
		if k == 0 {
			r := rand.New(rand.NewPCG(seed, streamAppOrder<<32|uint64(round)))
			order = r.Perm(len(t.Apps))
		}
		app := t.Apps[order[k]]
		r := rand.New(rand.NewPCG(seed, streamUnikernel<<32|uint64(i)))
		p, err := planOne(t, app, r, noExtras)
		if err != nil {
			return nil, err
		}
		p.Name = fmt.Sprintf("%s-%0*d", app.Name, width, i)
		if inputs == InputsDistinct && reference.Has(app.Name) {
			// Its own stream: the libraries drawn are those of the
			// repeated fleet, only the request differs.
			ri := rand.New(rand.NewPCG(seed, streamInput<<32|uint64(i)))
			for try := 0; ; try++ {
				in, expect, _ := reference.Input(app.Name, ri)
				if !seen[app.Name+" "+in] || try == 100 {
					seen[app.Name+" "+in] = true
					p.Case = Case{Input: in, Expect: expect}
					break
				}
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func planOne(t *Tree, app *App, r *rand.Rand, noExtras bool) (planned, error) {
	p := planned{App: app}
	chosen := map[string]bool{}
	add := func(name string) {
		for n := range closure(t, name) {
			chosen[n] = true
		}
	}
	names := sortedKeys(t.Libraries)
	for _, n := range names {
		if t.Libraries[n].Core {
			add(n)
		}
	}
	for _, d := range app.Deps {
		add(d)
	}
	// Extras: every optional library is drawn, in name order, whether or
	// not it is already in, so one library's presence never shifts the
	// draws of the others.
	for _, n := range names {
		l := t.Libraries[n]
		if l.Core || l.Provides == ProvidesAllocator {
			r.Float64()
			continue
		}
		if r.Float64() < l.Popularity && !noExtras && !bringsOtherAllocator(t, chosen, n) {
			add(n)
		}
	}
	alloc, err := chooseAllocator(t, app, chosen, r)
	if err != nil {
		return planned{}, err
	}
	add(alloc)
	if err := checkOneAllocator(t, app, chosen); err != nil {
		return planned{}, err
	}
	for _, n := range linkOrder(t, chosen) {
		l := t.Libraries[n]
		p.Libs = append(p.Libs, plannedLib{Lib: l, Variant: pickVariant(l.Variants, r)})
	}
	p.Case = app.Cases[r.IntN(len(app.Cases))]
	p.GenSeed = r.Uint64()
	return p, nil
}

// closure is a library and everything it depends on, transitively.
func closure(t *Tree, name string) map[string]bool {
	set := map[string]bool{}
	var walk func(string)
	walk = func(n string) {
		if set[n] {
			return
		}
		set[n] = true
		for _, d := range t.Libraries[n].Deps {
			walk(d)
		}
	}
	walk(name)
	return set
}

// bringsOtherAllocator tells whether adding an extra library would bring
// in a second allocator; such an extra is left out rather than the
// unikernel failing, since extras are optional.
func bringsOtherAllocator(t *Tree, chosen map[string]bool, name string) bool {
	var have, adds []string
	for _, a := range t.allocators() {
		if chosen[a.Name] {
			have = append(have, a.Name)
		}
	}
	for n := range closure(t, name) {
		if t.Libraries[n].Provides == ProvidesAllocator && !chosen[n] {
			adds = append(adds, n)
		}
	}
	return len(adds) > 1 || len(adds) == 1 && len(have) > 0
}

// chooseAllocator keeps the allocator the dependencies already pulled in,
// else draws one weighted by popularity.
func chooseAllocator(t *Tree, app *App, chosen map[string]bool, r *rand.Rand) (string, error) {
	allocs := t.allocators()
	weights := make([]float64, len(allocs))
	total := 0.0
	for i, a := range allocs {
		weights[i] = a.Popularity
		if weights[i] == 0 {
			weights[i] = defaultAllocatorWeight
		}
		total += weights[i]
	}
	x := r.Float64() * total // drawn always, to keep the stream aligned
	for _, a := range allocs {
		if chosen[a.Name] {
			return a.Name, nil
		}
	}
	for i, a := range allocs {
		if x < weights[i] || i == len(allocs)-1 {
			return a.Name, nil
		}
		x -= weights[i]
	}
	return "", fmt.Errorf("%s: no allocator to choose", path.Join(app.Dir, "app.json"))
}

func checkOneAllocator(t *Tree, app *App, chosen map[string]bool) error {
	var got []string
	for _, a := range t.allocators() {
		if chosen[a.Name] {
			got = append(got, a.Name)
		}
	}
	if len(got) != 1 {
		return fmt.Errorf("%s: the app's and core libraries' dependencies pull in %d allocators (%s); a unikernel links exactly one",
			path.Join(app.Dir, "app.json"), len(got), strings.Join(got, ", "))
	}
	return nil
}

func pickVariant(vs []Variant, r *rand.Rand) Variant {
	total, w := 0.0, 1.0
	for range vs {
		total += w
		w *= variantDecay
	}
	x := r.Float64() * total
	w = 1.0
	for _, v := range vs {
		if x < w {
			return v
		}
		x -= w
		w *= variantDecay
	}
	return vs[len(vs)-1]
}

// linkOrder is ukplat, ukboot, libc, the allocator, then the rest sorted
// by name. A stable order by name is what makes inserting one library
// (ukrand) shift everything after it in a packed link, as in a real build.
func linkOrder(t *Tree, chosen map[string]bool) []string {
	var head, alloc, rest []string
	lead := map[string]bool{}
	for _, n := range leadingLibraries {
		lead[n] = true
		if chosen[n] {
			head = append(head, n)
		}
	}
	for n := range chosen {
		switch {
		case lead[n]:
		case t.Libraries[n].Provides == ProvidesAllocator:
			alloc = append(alloc, n)
		default:
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(append(head, alloc...), rest...)
}

// PlanCases returns, without building anything, the name, input and
// expected line of each of count unikernels planned from seed with the
// given inputs kind: a built corpus's unikernels are the same (names,
// libraries, code) whatever the inputs, so a fleet built with one kind
// can be run with the other.
func PlanCases(count int, seed uint64, inputs string) ([]Unikernel, error) {
	tree, err := LoadTree(guest.FS())
	if err != nil {
		return nil, err
	}
	ps, err := plan(tree, count, seed, inputs)
	if err != nil {
		return nil, err
	}
	out := make([]Unikernel, len(ps))
	for i, p := range ps {
		out[i] = Unikernel{Name: p.Name, App: p.App.Name, Input: p.Case.Input, Expect: p.Case.Expect}
	}
	return out, nil
}
