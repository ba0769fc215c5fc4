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
//
// A pack (libmap.Pack) moves as one: its members in the image, their
// private parts, and the pack pages they touch, whose other bytes no
// other library may lie on.
//
// A pack's members' parts lie side by side in the arena, so an image
// that uses some of them has a rigid run of pages with holes where the
// others' parts are. Placed by size among the rest, a pack came late
// and found no pages to share; placed first, at the map's addresses,
// the single libraries fill its holes. fitPrivateParts tries both
// orders (fitOrders) and keeps the one that takes fewer private pages
// (the size order on a tie), so a pack never costs the image pages it
// would not take placed by size.
//
// Among the placements that take the fewest pages, it keeps the one
// whose libraries' initialised data lies on the fewest (hotSpan): each
// order is tried again placing every unit where it adds the fewest pages
// of data, and the libraries with data first (hotFirst). An instance
// writes its libraries' data (a pointer to a state moved to the heap,
// at least), each page of it a page of its own.
func fitPrivateParts(libs []*placed) {
	units := fitUnits(libs)
	if len(units) == 0 {
		return
	}
	type saved struct {
		region desc.Region
		shift  int64
	}
	save := func() ([]saved, [][]desc.Region) {
		s := make([]saved, len(libs))
		for i, p := range libs {
			s[i] = saved{p.region, p.shift}
		}
		c := make([][]desc.Region, len(units))
		for i, u := range units {
			c[i] = append([]desc.Region(nil), u.code...)
		}
		return s, c
	}
	restore := func(s []saved, c [][]desc.Region) {
		for i, p := range libs {
			p.region, p.shift = s[i].region, s[i].shift
		}
		for i, u := range units {
			u.code = append(u.code[:0], c[i]...)
		}
	}
	s0, c0 := save()
	var bestS []saved
	var bestC [][]desc.Region
	bestPages, bestHot := -1, -1
	try := func(order []*fitUnit, hot bool) {
		restore(s0, c0)
		fitInOrderBy(libs, order, hot)
		n, h := unitPages(units), unitHotPages(units)
		if bestPages < 0 || n < bestPages || n == bestPages && h < bestHot {
			bestPages, bestHot = n, h
			bestS, bestC = save()
		}
	}
	for _, order := range fitOrders(units) {
		try(order, false)
	}
	for _, order := range fitOrders(units) {
		try(order, true)
	}
	try(hotFirst(units), true)
	restore(bestS, bestC)
}

// hotSpan is the part of the library's private part that an instance
// writes first: its initialised data, after its slots (which only a load
// that moves the image writes: --aslr). A library's state that lives on
// the heap is reached through a pointer in its data, which its init
// phase writes (ukboot_init_phase_*_to_heap); large bss (tables,
// buffers, reserves) is written only if used, if at all. Empty (lo ==
// hi) if it has no data.
func (p *placed) hotSpan() (lo, hi uint64) {
	r := p.region
	if !r.Dense() || r.PrivateSize == 0 || p.obj == nil || p.obj.data == 0 {
		return 0, 0
	}
	lo = r.PrivateStart
	if p.slotCap > 0 {
		lo += (p.slotCap + slotAlign - 1) &^ (slotAlign - 1)
	}
	lo = min(lo, r.PrivateEnd())
	return lo, min(lo+p.obj.data, r.PrivateEnd())
}

// hotPages adds to pages those that p's hot span (shifted by s) lies on.
func (p *placed) hotPages(s int64, pages map[uint64]bool) {
	lo, hi := p.hotSpan()
	for pg := lo &^ (abi.PageSize - 1); pg < hi; pg += abi.PageSize {
		pages[uint64(int64(pg)+s)] = true
	}
}

// unitHotPages counts the pages the units' libraries' initialised data
// takes (hotSpan): the private pages an instance writes, when nothing
// moves its image, are mostly these.
func unitHotPages(units []*fitUnit) int {
	pages := map[uint64]bool{}
	for _, u := range units {
		for _, p := range u.libs {
			p.hotPages(0, pages)
		}
	}
	return len(pages)
}

// hotFirst is the units with initialised data first (by size, as in
// units), then the others.
func hotFirst(units []*fitUnit) []*fitUnit {
	var hot, cold []*fitUnit
	for _, u := range units {
		h := false
		for _, p := range u.libs {
			lo, hi := p.hotSpan()
			h = h || hi > lo
		}
		if h {
			hot = append(hot, u)
		} else {
			cold = append(cold, u)
		}
	}
	return append(hot, cold...)
}

// fitUnit is what fitPrivateParts moves as one: a dense library, or the
// members of one pack in the image.
type fitUnit struct {
	libs []*placed
	size uint64
	code []desc.Region // the pack pages the unit's members touch
	pack bool
}

// hasBytes says whether a private part of the unit holds bytes. The
// pages of a unit's empty parts (placed.privateEmpty) count for nothing
// if it has one that holds bytes; a unit of empty parts only is placed by
// their pages (onto pages the image takes anyway).
func (u *fitUnit) hasBytes() bool {
	for _, p := range u.libs {
		if p.region.PrivateSize > 0 && !p.privateEmpty() {
			return true
		}
	}
	return false
}

// fitUnits lists the image's units, largest private part first (the
// lowest map address on a tie).
func fitUnits(libs []*placed) []*fitUnit {
	const page = abi.PageSize
	type unit = fitUnit
	var units []*unit
	packs := map[uint64]*unit{}
	for _, p := range libs {
		switch {
		case p.pack != 0:
			u := packs[p.pack]
			if u == nil {
				u = &unit{pack: true}
				packs[p.pack] = u
				units = append(units, u)
			}
			u.libs = append(u.libs, p)
			u.size += p.region.PrivateSize
		case !p.app && p.region.Dense() && p.region.PrivateSize > 0:
			units = append(units, &unit{libs: []*placed{p}, size: p.region.PrivateSize})
		}
	}
	for start, pgs := range packPages(libs) {
		for _, pg := range pgs {
			packs[start].code = append(packs[start].code, desc.Region{Start: pg, SharedSize: page})
		}
	}
	if len(units) == 0 {
		return nil
	}
	low := func(u *unit) uint64 {
		lo := ^uint64(0)
		for _, p := range u.libs {
			if p.region.PrivateSize > 0 {
				lo = min(lo, p.region.PrivateStart)
			}
		}
		return lo
	}
	sort.SliceStable(units, func(i, j int) bool {
		if units[i].size != units[j].size {
			return units[i].size > units[j].size
		}
		return low(units[i]) < low(units[j])
	})
	return units
}

// fitOrders lists the orders fitPrivateParts tries: the units by size
// (fitUnits), and, if the image has a pack, its packs first (by size),
// then the rest by size.
func fitOrders(units []*fitUnit) [][]*fitUnit {
	orders := [][]*fitUnit{units}
	var packsFirst, rest []*fitUnit
	for _, u := range units {
		if u.pack {
			packsFirst = append(packsFirst, u)
		} else {
			rest = append(rest, u)
		}
	}
	other := append(packsFirst, rest...)
	for i := range units {
		if units[i] != other[i] {
			return append(orders, other)
		}
	}
	return orders
}

// unitPages counts the private pages the units' libraries take.
func unitPages(units []*fitUnit) int {
	pages := map[uint64]bool{}
	for _, u := range units {
		for _, p := range u.libs {
			if r := p.region; r.PrivateSize > 0 && !p.privateEmpty() {
				for pg := r.PrivateStart &^ (abi.PageSize - 1); pg < r.PrivateEnd(); pg += abi.PageSize {
					pages[pg] = true
				}
			}
		}
	}
	return len(pages)
}

// fitInOrder is fitPrivateParts for one order of the units: the first
// stays where the map put it, every other goes where it adds the fewest
// pages.
func fitInOrder(libs []*placed, units []*fitUnit) { fitInOrderBy(libs, units, false) }

// fitInOrderBy is fitInOrder; with hot, every unit after the first goes
// where it adds the fewest pages holding initialised data (hotSpan), then
// the fewest pages: an instance writes its libraries' data, seldom their
// slots or large bss, so the data of an image is best on few pages.
// (fitPrivateParts keeps this only where it takes no more pages.)
func fitInOrderBy(libs []*placed, units []*fitUnit, hot bool) {
	const page = abi.PageSize
	type unit = fitUnit
	taken := map[uint64]bool{}    // private pages already used
	hotTaken := map[uint64]bool{} // private pages with initialised data
	var fixed []desc.Region       // regions already placed (every non-moving library too)
	for _, p := range libs {
		if p.pack == 0 && (p.app || !p.region.Dense() || p.region.PrivateSize == 0) {
			fixed = append(fixed, p.region)
		}
	}
	pagesOf := func(u *unit, s int64) []uint64 {
		var out []uint64
		seen := map[uint64]bool{}
		real := u.hasBytes()
		for _, p := range u.libs {
			r := p.region
			if r.PrivateSize == 0 || real && p.privateEmpty() {
				continue
			}
			for pg := r.PrivateStart &^ (page - 1); pg < r.PrivateEnd(); pg += page {
				q := uint64(int64(pg) + s)
				if !seen[q] {
					seen[q] = true
					out = append(out, q)
				}
			}
		}
		return out
	}
	regionsOf := func(u *unit, s int64) []desc.Region {
		var out []desc.Region
		for _, p := range u.libs {
			out = append(out, shifted(p.region, s))
		}
		for _, c := range u.code {
			c.Start = uint64(int64(c.Start) + s)
			out = append(out, c)
		}
		return out
	}
	// Every unit not placed yet keeps its place at the map's addresses
	// (shift 0) reserved: a unit that finds no better place stays there
	// (a pack whose members have no private part in this image always
	// does), so no unit placed before it may take it.
	pending := map[*unit]bool{}
	for _, u := range units {
		pending[u] = true
	}
	take := func(u *unit) {
		delete(pending, u)
		for _, pg := range pagesOf(u, 0) {
			taken[pg] = true
		}
		for _, p := range u.libs {
			p.hotPages(0, hotTaken)
		}
		fixed = append(fixed, regionsOf(u, 0)...)
	}
	// ok says whether the regions rs (a unit's, shifted from orig) lie
	// in the map and their private parts in the arena part (near or far)
	// they were in: a shift across arenas would put the library's code
	// far from the rest of the image (one more page table).
	clash := func(r, f desc.Region) bool { return (f.End() > f.Start || f.Dense()) && desc.Overlap(r, f) }
	ok := func(u *unit, s int64) bool {
		rs, orig := regionsOf(u, s), regionsOf(u, 0)
		for i, r := range rs {
			if r.Start < abi.MapBase || r.End() > abi.AppRegionBase ||
				(r.Dense() && abi.ArenaLimit(r.PrivateStart, r.PrivateSize) != abi.ArenaLimit(orig[i].PrivateStart, 0)) {
				return false
			}
			for _, f := range fixed {
				if clash(r, f) {
					return false
				}
			}
			for v := range pending {
				if v == u {
					continue
				}
				for _, f := range regionsOf(v, 0) {
					if clash(r, f) {
						return false
					}
				}
			}
		}
		return true
	}
	move := func(u *unit, s int64) {
		for _, p := range u.libs {
			p.shift += s
			p.region = shifted(p.region, s)
		}
		for i := range u.code {
			u.code[i].Start = uint64(int64(u.code[i].Start) + s)
		}
	}
	for i, u := range units {
		own := pagesOf(u, 0)
		if i == 0 || len(own) == 0 {
			take(u)
			continue
		}
		n := uint64(len(own))
		// Candidate shifts: none, and each that lays one of its pages on
		// a page already taken.
		cands := []int64{0}
		for pg := range taken {
			for _, o := range own {
				cands = append(cands, int64(pg)-int64(o))
			}
		}
		sort.Slice(cands, func(i, j int) bool {
			return abs(cands[i]) < abs(cands[j]) || (abs(cands[i]) == abs(cands[j]) && cands[i] < cands[j])
		})
		best, bestNew, bestHot := int64(0), n+1, uint64(0)
		tried := map[int64]bool{}
		for _, s := range cands {
			if tried[s] {
				continue
			}
			tried[s] = true
			if !ok(u, s) {
				continue
			}
			var added, addedHot uint64
			for _, pg := range pagesOf(u, s) {
				if !taken[pg] {
					added++
				}
			}
			if hot {
				hp := map[uint64]bool{}
				for _, p := range u.libs {
					p.hotPages(s, hp)
				}
				for pg := range hp {
					if !hotTaken[pg] {
						addedHot++
					}
				}
				if bestNew <= n && (addedHot > bestHot || addedHot == bestHot && added >= bestNew) {
					continue
				}
				best, bestNew, bestHot = s, added, addedHot
				continue
			}
			if added < bestNew {
				best, bestNew = s, added
			}
		}
		if bestNew > n {
			// Nothing fits near: the first free pages above the others.
			// (Above the others in the unit's arena part.)
			lo := own[0]
			for _, o := range own {
				lo = min(lo, o)
			}
			limit := abi.ArenaLimit(lo, 0)
			top := lo
			for pg := range taken {
				if abi.ArenaLimit(pg, 0) == limit {
					top = max(top, pg+page)
				}
			}
			best = 0 // (a full arena: the map's place, kept for it)
			for s := int64(top) - int64(lo); ; s += int64(page) {
				rs := regionsOf(u, s)
				if len(rs) > 0 && rs[0].PrivateEnd() > limit {
					break
				}
				if ok(u, s) {
					best = s
					break
				}
			}
		}
		move(u, best)
		take(u)
	}
}

// privateEmpty says whether the library's private part holds nothing (no
// data, no slots): the map gives it 16 bytes all the same, but no page of
// the image holds a byte of it (the arena pages an image loads are its
// parts' segments), so a page it alone lies on costs nothing and another
// part may share it. (A pack's members that call nobody and keep no
// state, hex or base64 tables, are most of them.)
func (p *placed) privateEmpty() bool {
	return p.obj != nil && p.obj.private == 0 && p.slotCap == 0
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
// after them. If that takes fewer private pages than the first link (or
// as many, with the initialised data on fewer: privateHotPages), it
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
	before, beforeHot := privatePages(libs, appSize), privateHotPages(libs, appSize)
	for _, p := range libs {
		if p.app {
			app = p
			continue
		}
		if p.region.Dense() {
			p.region = shifted(p.region, -p.shift)
			p.shift = 0
			if n, ok := size[p.name]; ok && p.pack == 0 {
				p.region.PrivateSize = min(p.region.PrivateSize, (max(n, 16)+15)&^15)
				p.region.SharedSize = min(p.region.SharedSize, max(pageUp(shared[p.name]), abi.PageSize))
			}
		}
	}
	fitPrivateParts(libs)
	if app == nil || !app.region.Dense() {
		return undo
	}
	placeAppPrivate(app, libs, appSize)
	if a, lo, hi := appHole(libs, appSize); a != nil {
		a.region.PrivateStart, a.region.PrivateSize = lo, hi-lo
	}
	if n := privatePages(libs, appSize); n > before || n == before && privateHotPages(libs, appSize) >= beforeHot {
		undo()
		return nil
	}
	return undo
}

// privateHotPages counts the pages the initialised data of libs takes
// (hotSpan; the app's whole part, appSize bytes from its start).
func privateHotPages(libs []*placed, appSize uint64) int {
	pages := map[uint64]bool{}
	for _, p := range libs {
		if p.app {
			if r := p.region; r.Dense() && appSize > 0 {
				for pg := r.PrivateStart &^ (abi.PageSize - 1); pg < r.PrivateStart+appSize; pg += abi.PageSize {
					pages[pg] = true
				}
			}
			continue
		}
		p.hotPages(0, pages)
	}
	return len(pages)
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
		if !r.Dense() || n == 0 || p.privateEmpty() {
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
			for pg := r.PrivateStart &^ (page - 1); pg < r.PrivateEnd() && !p.privateEmpty(); pg += page {
				taken[pg] = true
			}
		}
	}
	if app == nil || !app.region.Dense() || size == 0 || len(parts) == 0 {
		return nil, 0, 0
	}
	hot := map[uint64]bool{}
	for _, p := range libs {
		if !p.app {
			p.hotPages(0, hot)
		}
	}
	coldPages := func(a, n uint64) int {
		k := 0
		for pg := a &^ (page - 1); pg < a+n; pg += page {
			if !hot[pg] {
				k++
			}
		}
		return k
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
	// The app's data is written: a gap on pages that hold the libraries'
	// initialised data (written too) first, then any.
	for _, onHot := range []bool{true, false} {
		for i, sp := range parts {
			g0 := (sp.hi + appPrivateAlign - 1) &^ (appPrivateAlign - 1)
			g1 := abi.ArenaLimit(sp.lo, 0)
			if i+1 < len(parts) && parts[i+1].lo < g1 {
				g1 = parts[i+1].lo
			}
			if g1 <= g0 || g1-g0 < need {
				continue
			}
			if ownPages(g0, need) == 0 && (!onHot || coldPages(g0, need) == 0) {
				return app, g0, g1
			}
		}
	}
	return nil, 0, 0
}
