package process

import (
	"maps"
	"slices"

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
// layout's small fixed part of its own.

// layoutCache holds a tracer's kept layout parts; one tracer thread uses it.
type layoutCache struct {
	mappings map[string][]loader.Mapping  // the last kept, by unikernel
	bases    map[string]map[string]uint64 // the last kept, by unikernel
	strings  map[string]string            // one copy of each path and name
}

// keep returns lay without its bytes, sharing its mappings and bases with
// the previous instance of uk where they are the same.
func (c *layoutCache) keep(uk string, lay *loader.Layout) *loader.Layout {
	if c.mappings == nil {
		c.mappings, c.bases, c.strings = map[string][]loader.Mapping{}, map[string]map[string]uint64{}, map[string]string{}
	}
	k := *lay
	if prev := c.mappings[uk]; prev != nil && slices.EqualFunc(prev, lay.Mappings, sameMapping) {
		k.Mappings = prev
	} else {
		k.Mappings = make([]loader.Mapping, len(lay.Mappings))
		for i, m := range lay.Mappings {
			m.Data, m.Patches = nil, nil
			m.File, m.Digest = c.intern(m.File), c.intern(m.Digest)
			m.Library, m.Part = c.intern(m.Library), c.intern(m.Part)
			k.Mappings[i] = m
		}
		c.mappings[uk] = k.Mappings
	}
	if prev := c.bases[uk]; prev != nil && maps.Equal(prev, lay.Bases) {
		k.Bases = prev
	} else if lay.Bases != nil {
		k.Bases = make(map[string]uint64, len(lay.Bases))
		for name, b := range lay.Bases {
			k.Bases[c.intern(name)] = b
		}
		c.bases[uk] = k.Bases
	}
	return &k
}

func (c *layoutCache) intern(s string) string {
	if s == "" {
		return ""
	}
	if t, ok := c.strings[s]; ok {
		return t
	}
	c.strings[s] = s
	return s
}

// sameMapping reports whether x and y map the same range the same way,
// their bytes aside.
func sameMapping(x, y loader.Mapping) bool {
	return x.Addr == y.Addr && x.Size == y.Size && x.Prot == y.Prot && x.File == y.File &&
		x.Digest == y.Digest && x.Offset == y.Offset && x.COW == y.COW &&
		x.Library == y.Library && x.Part == y.Part
}
