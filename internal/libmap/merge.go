package libmap

import (
	"bytes"
	"fmt"
	"sort"
)

// ConflictError is why two maps cannot be merged: they place Library
// differently.
type ConflictError struct {
	Library string
	Reason  string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("library %q: %s", e.Library, e.Reason)
}

// Merge takes into m what other knows that m does not: libraries, regions
// and versions. The two must share their history: regions are handed out
// once and never move, so for every library both have, one's list of
// regions must be the start of the other's; and the result must pass
// Validate (no region of one library overlaps another's). Otherwise Merge
// returns a *ConflictError naming the first library they disagree on and
// leaves m as it was. otherName names other in errors ("the registry's map").
func (m *Map) Merge(other *Map, otherName string) error {
	out := m.clone()
	if len(out.Libraries) == 0 {
		out.Policy = other.Policy
	}
	out.SchemaVersion = max(out.SchemaVersion, other.SchemaVersion)
	for _, op := range other.Packs {
		if p := out.PackAt(op.Start); p != nil {
			if p.Size != op.Size || !bytes.Equal(p.Content, op.Content) {
				return &ConflictError{Library: fmt.Sprintf("pack@%#x", op.Start), Reason: "the pack's room or sealed bytes differ from " + otherName + "'s"}
			}
			continue
		}
		out.Packs = append(out.Packs, Pack{Start: op.Start, Size: op.Size, Content: append([]byte(nil), op.Content...)})
	}
	for _, ol := range other.Libraries {
		l := out.Library(ol.Name)
		if l == nil {
			out.Libraries = append(out.Libraries, cloneLibrary(ol))
			continue
		}
		n := min(len(l.Regions), len(ol.Regions))
		for i := 0; i < n; i++ {
			a, b := l.Regions[i].Region, ol.Regions[i].Region
			if a != b || l.Regions[i].Pack != ol.Regions[i].Pack {
				return &ConflictError{Library: ol.Name, Reason: fmt.Sprintf(
					"region %d is at %#x (tramp %#x, shared %#x, private %#x) here but at %#x (tramp %#x, shared %#x, private %#x) in %s",
					i+1, a.Start, a.TrampSize, a.SharedSize, a.PrivateSize, b.Start, b.TrampSize, b.SharedSize, b.PrivateSize, otherName)}
			}
			for _, v := range ol.Regions[i].Versions {
				if !l.Regions[i].hasExactly(v) {
					l.Regions[i].Versions = append(l.Regions[i].Versions, v)
				}
			}
			// Uses is a hint; the larger count is the one more links saw.
			l.Regions[i].Uses = max(l.Regions[i].Uses, ol.Regions[i].Uses)
		}
		for _, r := range ol.Regions[n:] {
			l.Regions = append(l.Regions, Region{Region: r.Region, Pack: r.Pack, Versions: append([]Version(nil), r.Versions...), Uses: r.Uses})
		}
	}
	if err := out.Validate(); err != nil {
		return &ConflictError{Library: overlapping(out, m), Reason: fmt.Sprintf("merging %s: %v", otherName, err)}
	}
	*m = *out
	return nil
}

// hasExactly reports whether r lists v with the same identity and need.
func (r *Region) hasExactly(v Version) bool {
	for _, o := range r.Versions {
		if o == v {
			return true
		}
	}
	return false
}

// overlapping names a library of merged whose regions overlap another's,
// preferring one that came from the other map (for the error).
func overlapping(merged, local *Map) string {
	type span struct {
		start, end uint64
		name       string
	}
	var spans []span
	for _, l := range merged.Libraries {
		for _, r := range l.Regions {
			spans = append(spans, span{r.Start, r.End(), l.Name})
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			if local.Library(spans[i].name) == nil {
				return spans[i].name
			}
			return spans[i-1].name
		}
	}
	return "?"
}

func (m *Map) clone() *Map {
	out := &Map{SchemaVersion: m.SchemaVersion, Policy: m.Policy}
	for _, p := range m.Packs {
		out.Packs = append(out.Packs, Pack{Start: p.Start, Size: p.Size, Content: append([]byte(nil), p.Content...)})
	}
	for _, l := range m.Libraries {
		out.Libraries = append(out.Libraries, cloneLibrary(l))
	}
	return out
}

func cloneLibrary(l Library) Library {
	c := Library{Name: l.Name}
	for _, r := range l.Regions {
		c.Regions = append(c.Regions, Region{Region: r.Region, Pack: r.Pack, Versions: append([]Version(nil), r.Versions...), Uses: r.Uses})
	}
	return c
}
