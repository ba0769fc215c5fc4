package link

import (
	"sort"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
)

// fitPrivateParts moves the image's dense libraries by whole pages from
// their map regions so that their private parts share as few pages as
// possible (desc.Library.Shift).
//
// The map places a library version's private part once, after the parts
// placed before it, so the parts of one image lie on pages that the parts
// of libraries it does not use fill up: an image touches more private
// pages than its bytes need. A dense library's code reaches its private
// part PC-relatively and everything else through its slots, so the
// library (code, stubs and private part together) can move by any number
// of whole pages and stay byte-identical, as under --aslr-per-library:
// its shared pages are the same pool pages, only their address in this
// image differs. The offset of a private part within its page is what
// the map fixed; this picks, per library, the page.
//
// Greedy and deterministic: the largest part stays where the map put it;
// every other, largest first, goes to the candidate page (its own, or one
// that would put a page of it on a page already taken) that adds the
// fewest new pages, the nearest on ties, without overlapping any other
// library of the image (code or private part) and staying inside the map
// and the data arena. The map never learns of it: adding a library
// moves nothing.
func fitPrivateParts(libs []*placed) {
	var parts []*placed
	for _, p := range libs {
		if !p.app && p.region.Dense() && p.region.PrivateSize > 0 {
			parts = append(parts, p)
		}
	}
	if len(parts) < 2 {
		return
	}
	sort.SliceStable(parts, func(i, j int) bool {
		a, b := parts[i].region, parts[j].region
		if a.PrivateSize != b.PrivateSize {
			return a.PrivateSize > b.PrivateSize
		}
		return a.PrivateStart < b.PrivateStart
	})
	const page = abi.PageSize
	taken := map[uint64]bool{} // private pages already used
	var fixed []desc.Region    // regions already placed (every non-moving library too)
	for _, p := range libs {
		if p.app || !p.region.Dense() || p.region.PrivateSize == 0 {
			fixed = append(fixed, p.region)
		}
	}
	pagesOf := func(r desc.Region) (lo, hi uint64) {
		return r.PrivateStart &^ (page - 1), (r.PrivateEnd() + page - 1) &^ (page - 1)
	}
	take := func(r desc.Region) {
		lo, hi := pagesOf(r)
		for pg := lo; pg < hi; pg += page {
			taken[pg] = true
		}
	}
	ok := func(r desc.Region) bool {
		if r.Start < abi.MapBase || r.End() > abi.AppRegionBase || r.PrivateStart < abi.DataArenaBase || r.PrivateEnd() > abi.DataArenaLimit {
			return false
		}
		for _, f := range fixed {
			if f.End() > f.Start && desc.Overlap(r, f) {
				return false
			}
		}
		return true
	}
	for i, p := range parts {
		if i == 0 {
			take(p.region)
			fixed = append(fixed, p.region)
			continue
		}
		lo, hi := pagesOf(p.region)
		n := (hi - lo) / page
		// Candidate shifts: none, and each that lays one of its pages on
		// a page already taken.
		cands := []int64{0}
		for pg := range taken {
			for k := uint64(0); k < n; k++ {
				cands = append(cands, int64(pg)-int64(lo+k*page))
			}
		}
		sort.Slice(cands, func(i, j int) bool {
			return abs(cands[i]) < abs(cands[j]) || (abs(cands[i]) == abs(cands[j]) && cands[i] < cands[j])
		})
		best, bestNew := int64(0), n+1
		for _, s := range cands {
			r := shifted(p.region, s)
			if !ok(r) {
				continue
			}
			var added uint64
			for pg := lo; pg < hi; pg += page {
				if !taken[uint64(int64(pg)+s)] {
					added++
				}
			}
			if added < bestNew {
				best, bestNew = s, added
			}
		}
		if bestNew > n {
			// Nothing fits near: the first free pages above the others.
			var top uint64
			for pg := range taken {
				top = max(top, pg+page)
			}
			for s := int64(top) - int64(lo); ; s += int64(page) {
				r := shifted(p.region, s)
				if r.PrivateEnd() > abi.DataArenaLimit {
					best = 0 // (a full arena: the map's place)
					break
				}
				if ok(r) {
					best = s
					break
				}
			}
		}
		p.shift = best
		p.region = shifted(p.region, best)
		take(p.region)
		fixed = append(fixed, p.region)
	}
}

func shifted(r desc.Region, s int64) desc.Region {
	r.Start = uint64(int64(r.Start) + s)
	r.PrivateStart = uint64(int64(r.PrivateStart) + s)
	return r
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// refit, after a first link of libs described by cfg, fits the dense
// private parts again by the sizes the link gave them (trimmed to 16
// bytes; the estimates before the link are upper bounds) and puts the
// app's part in a gap of their pages if one holds it (appHole), else
// after them. If that takes fewer private pages than the first link, it
// leaves libs so and returns how to undo it; else it leaves them as they
// were and returns nil.
func refit(libs []*placed, cfg *desc.Config) (undo func()) {
	type saved struct {
		region desc.Region
		shift  int64
	}
	was := make([]saved, len(libs))
	for i, p := range libs {
		was[i] = saved{p.region, p.shift}
	}
	undo = func() {
		for i, p := range libs {
			p.region, p.shift = was[i].region, was[i].shift
		}
	}
	size, shared := map[string]uint64{}, map[string]uint64{}
	var app *placed
	var appSize uint64
	for _, l := range cfg.Libraries {
		size[l.Name], shared[l.Name] = l.Private.MemSize, l.Shared.Size
		if l.App && l.Region.Dense() {
			appSize = l.Region.PrivateSize
		}
	}
	before := privatePages(libs, appSize)
	for _, p := range libs {
		if p.app {
			app = p
			continue
		}
		if p.region.Dense() {
			p.region = shifted(p.region, -p.shift)
			p.shift = 0
			if n, ok := size[p.name]; ok {
				p.region.PrivateSize = min(p.region.PrivateSize, (max(n, 16)+15)&^15)
				p.region.SharedSize = min(p.region.SharedSize, max(pageUp(shared[p.name]), abi.PageSize))
			}
		}
	}
	fitPrivateParts(libs)
	if app == nil || !app.region.Dense() {
		return undo
	}
	placeAppPrivate(app, libs)
	if a, lo, hi := appHole(libs, appSize); a != nil {
		a.region.PrivateStart, a.region.PrivateSize = lo, hi-lo
	}
	if privatePages(libs, appSize) >= before {
		undo()
		return nil
	}
	return undo
}

// privatePages counts the pages the dense private parts of libs take
// (the app's: appSize bytes from its start).
func privatePages(libs []*placed, appSize uint64) int {
	pages := map[uint64]bool{}
	for _, p := range libs {
		r := p.region
		n := r.PrivateSize
		if p.app {
			n = appSize
		}
		if !r.Dense() || n == 0 {
			continue
		}
		for pg := r.PrivateStart &^ (abi.PageSize - 1); pg < r.PrivateStart+n; pg += abi.PageSize {
			pages[pg] = true
		}
	}
	return len(pages)
}

// appHole finds, for the app's private part of size bytes, a place for it that takes no page the libraries'
// private parts do not already take: the lowest gap between their parts,
// on their pages, that holds it with appPrivateAlign to spare. It
// returns the app and the gap [lo, hi), or nil if the app's part already
// takes no page of its own or no gap holds it.
func appHole(libs []*placed, size uint64) (app *placed, lo, hi uint64) {
	const page = abi.PageSize
	type span struct{ lo, hi uint64 }
	var parts []span
	taken := map[uint64]bool{}
	for _, p := range libs {
		if p.app {
			app = p
			continue
		}
		if r := p.region; r.Dense() && r.PrivateSize > 0 {
			parts = append(parts, span{r.PrivateStart, r.PrivateEnd()})
			for pg := r.PrivateStart &^ (page - 1); pg < r.PrivateEnd(); pg += page {
				taken[pg] = true
			}
		}
	}
	if app == nil || !app.region.Dense() || size == 0 || len(parts) == 0 {
		return nil, 0, 0
	}
	ownPages := func(a, n uint64) int {
		k := 0
		for pg := a &^ (page - 1); pg < a+n; pg += page {
			if !taken[pg] {
				k++
			}
		}
		return k
	}
	if ownPages(app.region.PrivateStart, size) == 0 {
		return nil, 0, 0
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].lo < parts[j].lo })
	need := (size+appPrivateAlign-1)&^(appPrivateAlign-1) + appPrivateAlign
	for i, sp := range parts {
		g0 := (sp.hi + appPrivateAlign - 1) &^ (appPrivateAlign - 1)
		g1 := uint64(abi.DataArenaLimit)
		if i+1 < len(parts) {
			g1 = parts[i+1].lo
		}
		if g1 > g0 && g1-g0 >= need && ownPages(g0, need) == 0 {
			return app, g0, g1
		}
	}
	return nil, 0, 0
}
