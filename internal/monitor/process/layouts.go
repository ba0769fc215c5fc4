package process

import (
	"maps"
	"slices"
	"unique"

	"github.com/unipool/unipool/internal/loader"
)

// Once an instance is built, the monitor needs of its layout only the
// shape of its address space: to name addresses in fault reports, to find
// read-only code for the trap cache, to list private ranges for a
// snapshot, and the library bases for the result. The mappings and bases
// are the same for every instance of a unikernel without ASLR, so the
// tracer keeps one copy of them and the instances share it; what the
// planning made per instance (the mapping list with its spare capacity,
// its copies and patches, a blob path string per mapping, the bases map)
// becomes garbage as soon as the guest runs. An instance keeps only the
// layout's small fixed part of its own. Its trap cache goes with the
// shared mappings too: the same read-only code is decoded once.
//
// A finished instance needs of its layout only what its result reports
// (bases, areas, entropy): its mappings and traps go (release), and once
// no running instance of a unikernel is left the tracer forgets that
// unikernel's kept parts. A held fleet of different unikernels (one
// instance each) kept every unikernel's mapping list, maps and paths for
// the whole hold before: ~9 KiB of live heap per instance.

// layoutCache holds a tracer's kept layout parts; one tracer thread uses it.
type layoutCache struct {
	mappings map[string][]loader.Mapping // the last kept, by unikernel
	// the last kept maps of the layout (bases, areas, entropy), by
	// unikernel and field
	maps   map[string]map[string]uint64
	floats map[string]map[string]float64
	groups map[string]map[string][]string
	// users counts, by unikernel, the instances kept (keep) and not yet
	// released: the kept parts of a unikernel go with its last user.
	users   map[string]int
	settled bool // the tracer has started all its instances (settle)
	// left counts, by unikernel, the instances the tracer has still to
	// start (starting); nil: unknown, the kept parts wait for settle.
	// A unikernel none of whose instances is left to start needs its
	// kept parts only while one runs: kept to the end of the starts,
	// a fleet of 1000 different unikernels had every one's mapping list
	// (~11 KiB for a snapshot's) in the monitor at once, a 13 MB
	// live-heap peak that set the size of its heap for the whole run.
	left map[string]int
	// shapes are the last kept mappings by what they map, their address
	// aside, by unikernel: under --aslr every instance maps the same
	// ranges at addresses of its own.
	shapes map[string]map[shapeKey]*loader.Mapping
	// traps is the trap cache (instance.remember) of the instances whose
	// layouts share the last kept mappings, by unikernel: the same
	// read-only code at the same addresses.
	traps map[string]sharedTraps
}

type sharedTraps struct {
	of    *loader.Mapping // the first of the kept mappings they belong to
	traps map[uint64]trapInsn
}

// keep returns lay without its bytes, sharing its mappings and bases with
// the previous instance of uk where they are the same.
func (c *layoutCache) keep(uk string, lay *loader.Layout) *loader.Layout {
	if c.mappings == nil {
		c.mappings = map[string][]loader.Mapping{}
		c.maps, c.floats = map[string]map[string]uint64{}, map[string]map[string]float64{}
		c.traps = map[string]sharedTraps{}
		c.groups = map[string]map[string][]string{}
		c.shapes = map[string]map[shapeKey]*loader.Mapping{}
		c.users = map[string]int{}
	}
	c.users[uk]++
	k := *lay
	k.Reads = nil // (the image's reads: done)
	if prev := c.mappings[uk]; prev != nil && slices.EqualFunc(prev, lay.Mappings, sameMapping) {
		k.Mappings = prev
	} else if placed := c.place(uk, lay.Mappings); placed != nil {
		// The same mappings at other addresses (--aslr): an address
		// each, the rest shared.
		k.Mappings, k.Placed = nil, placed
	} else {
		k.Mappings = make([]loader.Mapping, len(lay.Mappings))
		for i, m := range lay.Mappings {
			// Library and part names repeat across the fleet: one copy
			// each. Blob paths and digests are not interned: a snapshot
			// fleet maps thousands of distinct page blobs, and a unique
			// handle (a weak-pointer special and its map node, which the
			// runtime never gives back to the host) per string was ~1
			// MiB of the pool monitor's memory for its whole run; the
			// kept mappings go with the unikernel's last instance anyway.
			m.Data, m.Patches = nil, nil
			m.Library, m.Part = c.intern(m.Library), c.intern(m.Part)
			k.Mappings[i] = m
		}
		c.mappings[uk] = k.Mappings
		// The shapes (what place looks mappings up by) are made when a
		// second instance of uk needs them: a fleet of different
		// unikernels, one instance each, would pay ~8 KiB per instance
		// for an index it never reads.
		delete(c.shapes, uk)
	}
	k.Bases = share(c, c.maps, uk+"\x00bases", lay.Bases)
	k.Areas = share(c, c.maps, uk+"\x00areas", lay.Areas)
	k.Entropy = share(c, c.floats, uk+"\x00entropy", lay.Entropy)
	k.EntropyGiven = share(c, c.floats, uk+"\x00entropy-given", lay.EntropyGiven)
	k.EntropyGroup = share(c, c.floats, uk+"\x00entropy-group", lay.EntropyGroup)
	if lay.Groups != nil {
		if prev := c.groups[uk]; prev != nil && maps.EqualFunc(prev, lay.Groups, slices.Equal) {
			k.Groups = prev
		} else {
			c.groups[uk] = lay.Groups
		}
	}
	return &k
}

// share returns the map kept last under key if it equals m, else a copy of
// m with interned keys, which it keeps.
func share[V comparable](c *layoutCache, kept map[string]map[string]V, key string, m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	if prev := kept[key]; prev != nil && maps.Equal(prev, m) {
		return prev
	}
	cp := make(map[string]V, len(m))
	for name, v := range m {
		cp[c.intern(name)] = v
	}
	kept[key] = cp
	return cp
}

// trapsOf is the trap cache for an instance of uk with lay, as keep
// returned it: shared while uk's instances share their mappings.
func (c *layoutCache) trapsOf(uk string, lay *loader.Layout) map[uint64]trapInsn {
	if len(lay.Mappings) == 0 || c.traps == nil {
		return nil
	}
	first := &lay.Mappings[0]
	if t := c.traps[uk]; t.of == first {
		return t.traps
	}
	t := sharedTraps{of: first, traps: map[uint64]trapInsn{}}
	c.traps[uk] = t
	return t.traps
}

// expect counts the instances of each unikernel the tracer will start.
func (c *layoutCache) expect(uks []string) {
	c.left = map[string]int{}
	for _, uk := range uks {
		c.left[uk]++
	}
}

// starting is the start of an instance of uk (planned or not).
func (c *layoutCache) starting(uk string) {
	if c.left == nil {
		return
	}
	if c.left[uk]--; c.left[uk] <= 0 {
		delete(c.left, uk)
	}
}

// done says whether no instance of uk is left to start.
func (c *layoutCache) done(uk string) bool {
	if c.settled {
		return true
	}
	if c.left == nil {
		return false
	}
	_, more := c.left[uk]
	return !more
}

// release is the end of an instance of uk that keep returned lay for: lay
// keeps what its result reports and nothing else, and the unikernel's kept
// parts go with its last instance once the tracer has started all it had to
// (settle).
func (c *layoutCache) release(uk string, lay *loader.Layout) {
	if lay != nil {
		lay.Mappings, lay.Placed = nil, nil
	}
	if c.users == nil || c.users[uk] == 0 {
		return
	}
	if c.users[uk]--; c.users[uk] == 0 && c.done(uk) {
		c.forget(uk)
	}
}

// settle is the end of the tracer's starts: from now on a unikernel's kept
// parts go with its last instance, and those of every unikernel without a
// running instance go now. (While starting, a later instance of the
// unikernel may still come and share them.)
func (c *layoutCache) settle() {
	c.settled, c.left = true, nil
	for uk, n := range c.users {
		if n == 0 {
			c.forget(uk)
		}
	}
	if len(c.users) == 0 {
		// Every instance ended before the starts did (their last
		// release forgot each unikernel, unsettled): the tables go
		// now, as forget lets them go once settled.
		*c = layoutCache{settled: true}
	}
}

// forget drops the kept parts of uk.
func (c *layoutCache) forget(uk string) {
	delete(c.users, uk)
	delete(c.mappings, uk)
	delete(c.shapes, uk)
	delete(c.traps, uk)
	delete(c.groups, uk)
	for _, f := range []string{"\x00bases", "\x00areas"} {
		delete(c.maps, uk+f)
	}
	for _, f := range []string{"\x00entropy", "\x00entropy-given", "\x00entropy-group"} {
		delete(c.floats, uk+f)
	}
	if len(c.users) == 0 && c.settled {
		// Nothing is kept and nothing more will be: the maps' tables
		// go too (a map keeps its table at its largest, ~150 KiB for
		// a tracer's 500 unikernels, for the whole hold otherwise).
		*c = layoutCache{settled: true}
	}
}

// intern returns one copy of s per process while any holder keeps it
// (unique.Make): the library and part names of a fleet's unikernels
// repeat across its instances and tracers.
func (c *layoutCache) intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// sameMapping reports whether x and y map the same range the same way,
// their bytes aside.
func sameMapping(x, y loader.Mapping) bool {
	return x.Addr == y.Addr && x.Size == y.Size && x.Prot == y.Prot && x.File == y.File &&
		x.Digest == y.Digest && x.Offset == y.Offset && x.COW == y.COW &&
		x.Library == y.Library && x.Part == y.Part
}

// shapeKey is what a mapping maps, its address aside.
type shapeKey struct {
	size, offset  uint64
	prot          int
	file, digest  string
	cow           bool
	library, part string
}

func shapeOf(m loader.Mapping) shapeKey {
	return shapeKey{m.Size, m.Offset, m.Prot, m.File, m.Digest, m.COW, m.Library, m.Part}
}

// place returns ms as addresses of uk's kept mappings if every one of ms
// is one of them at another address (and as many), else nil.
func (c *layoutCache) place(uk string, ms []loader.Mapping) []loader.Placed {
	kept := c.mappings[uk]
	if kept == nil || len(ms) != len(kept) {
		return nil
	}
	shapes := c.shapes[uk]
	if shapes == nil {
		shapes = make(map[shapeKey]*loader.Mapping, len(kept))
		for i := range kept {
			shapes[shapeOf(kept[i])] = &kept[i]
		}
		c.shapes[uk] = shapes
	}
	placed := make([]loader.Placed, len(ms))
	for i, m := range ms {
		t := shapes[shapeOf(m)]
		if t == nil {
			return nil
		}
		placed[i] = loader.Placed{Addr: m.Addr, M: t}
	}
	return placed
}
