package link

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/libmap"
)

// linkAligned places every library in m, links them at their regions and
// finishes the image (trampolines, description). It runs under the map's
// lock; returning nil commits the placements.
func (l *linker) linkAligned(ctx context.Context, m *libmap.Map, res *Result) error {
	libs, err := l.place(m, res)
	if err != nil {
		return err
	}
	var collections, nonAlloc []string
	seen := map[string]bool{}
	for _, o := range l.objs {
		for _, g := range o.globals {
			if !seen[g] {
				seen[g] = true
				collections = append(collections, g)
			}
		}
		for _, n := range o.nonAlloc {
			if !seen[n] {
				seen[n] = true
				nonAlloc = append(nonAlloc, n)
			}
		}
	}
	sort.Strings(collections)
	sort.Strings(nonAlloc)
	l.m = m
	out, cfg, err := l.ldAligned(ctx, libs, collections, nonAlloc, res)
	if err != nil {
		return err
	}
	if !l.opt.MapAddresses && l.opt.Platform != PlatformUnikraft {
		// Now that the link has told each private part's size (a
		// library version's is the same in every image), fit them
		// again by their sizes rather than the estimates, with the app's
		// in a gap if one holds it; if that link fails (an ASSERT: a
		// part outgrew its room), as it was.
		if undo := refit(libs, cfg); undo != nil {
			if out, cfg, err = l.ldAligned(ctx, libs, collections, nonAlloc, res); err != nil {
				undo()
				if out, cfg, err = l.ldAligned(ctx, libs, collections, nonAlloc, res); err != nil {
					return err
				}
			}
		}
	}
	// What the final link's map says, before anything else runs ld.
	mapName := alignedMap
	if l.opt.Trace {
		mapName = "ld.map"
	}
	mapText, err := os.ReadFile(filepath.Join(l.work, mapName))
	if err != nil {
		return fmt.Errorf("link %s: %w", l.opt.Output, err)
	}
	// The liveness pass (ld once more, with --gc-sections) runs while
	// the trampoline pass rewrites the image: it reads only the final
	// link's inputs.
	pageDCE := l.opt.Platform != PlatformUnikraft && !l.opt.NoPageDCE
	var gc chan gcResult
	if pageDCE {
		gc = make(chan gcResult, 1)
		args := l.alignedArgs
		go func() {
			removed, err := l.gcPass(ctx, args)
			gc <- gcResult{removed, err}
		}()
	}
	reserved := make([]desc.Tramp, len(cfg.Libraries))
	for i, lib := range cfg.Libraries {
		reserved[i] = lib.Tramp
	}
	if err := l.opt.Tramp.Rewrite(out, cfg); err != nil {
		return fmt.Errorf("link %s: %w", l.opt.Output, err)
	}
	loads, err := trimSplit(out, cfg, reserved)
	if err != nil {
		return fmt.Errorf("link %s: %w", l.opt.Output, err)
	}
	addPackPages(cfg, libs)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("link %s: %w", l.opt.Output, err)
	}
	var addDead []string
	if pageDCE {
		// (Unikraft's boot code writes its page tables into its
		// platform's code; its images keep every page.)
		g := <-gc
		if g.err != nil {
			return g.err
		}
		dead, err := l.deadPages(out, string(mapText), g.removed, libs)
		var u untrusted
		if errors.As(err, &u) {
			res.Warnings = append(res.Warnings, u.Error())
			dead, err = nil, nil
		}
		if err != nil {
			return err
		}
		deadFile := filepath.Join(l.work, "unipool.dead")
		if err := os.WriteFile(deadFile, elfimage.EncodeDeadPages(dead), 0o644); err != nil {
			return fmt.Errorf("link: %w", err)
		}
		addDead = []string{"--add-section", elfimage.DeadSectionName + "=" + deadFile, "--set-section-flags", elfimage.DeadSectionName + "=readonly"}
	}
	js, err := marshalConfig(cfg)
	if err != nil {
		return fmt.Errorf("link %s: %w", l.opt.Output, err)
	}
	secFile := filepath.Join(l.work, "unipool.json")
	if err := os.WriteFile(secFile, js, 0o644); err != nil {
		return fmt.Errorf("link: %w", err)
	}
	// The relocations ld kept (--emit-relocs) were for the trampoline
	// pass above; nothing reads them from the finished image, and every
	// reader of it (a monitor's check, pool add) pays for each section
	// header it parses.
	add := append([]string{"--add-section", desc.SectionName + "=" + secFile, "--set-section-flags", desc.SectionName + "=readonly"}, addDead...)
	if !l.opt.KeepRelocations {
		add = append(add, dropRelocations)
	}
	if err := l.objcopy(ctx, out, add...); err != nil {
		return err
	}
	// After objcopy, which lays segments out again from the sections.
	if err := setLoadSizes(out, loads); err != nil {
		return fmt.Errorf("link %s: %w", l.opt.Output, err)
	}
	if err := l.finishPlatform(out); err != nil {
		return err
	}
	im, err := elfimage.Open(out)
	if err != nil {
		return fmt.Errorf("link %s: the finished image does not read back: %w", l.opt.Output, err)
	}
	if res.Config, err = im.Config(); err != nil {
		return fmt.Errorf("link %s: the finished image does not read back: %w", l.opt.Output, err)
	}
	if err := sealPack(m, out, libs); err != nil {
		return fmt.Errorf("link %s: %w", l.opt.Output, err)
	}
	return publish(out, l.opt.Output)
}

// alignedMap is the aligned link's -Map when the link is not traced.
const alignedMap = "aligned.map"

// ldAligned writes the script for libs, runs ld and describes the image
// (before the trampoline pass): the image's path and description.
func (l *linker) ldAligned(ctx context.Context, libs []*placed, collections, nonAlloc []string, res *Result) (string, *desc.Config, error) {
	var err error
	if l.fills, err = l.packFills(l.m, libs); err != nil {
		return "", nil, err
	}
	res.Script = alignedScript(libs, l.fills, collections, nonAlloc, l.opt.Entry, l.platformTables())
	l.script = res.Script
	if err := os.WriteFile(filepath.Join(l.work, "image.ld"), []byte(res.Script), 0o644); err != nil {
		return "", nil, fmt.Errorf("link: %w", err)
	}
	out := filepath.Join(l.work, "image")
	// Segment file offsets need not be page-aligned: nobody maps an
	// aligned image's file directly (the pool copies each part into its
	// own blob, elfimage.ReadAt reads bytes), so ld may pack segments
	// back to back in the file instead of padding each to a page. The
	// addresses, set by the script, are page-aligned all the same.
	args := append(l.commonArgs(), "-z", "max-page-size=16", "-z", "common-page-size=16", "-z", "norelro", "--orphan-handling=error")
	frags, err := l.writeFragments(tablesAnchor)
	if err != nil {
		return "", nil, err
	}
	if len(frags) > 0 {
		// A -T script with INSERT augments the default script, so the
		// generated script must be that default (-dT), as Unikraft
		// passes its link64.lds.
		args = append(args, "-dT", "image.ld")
	} else {
		args = append(args, "-T", "image.ld")
	}
	args = append(args, fragmentArgs(frags)...)
	if !l.opt.Trace {
		// The input sections' addresses, for deadPages.
		args = append(args, "-Map="+alignedMap)
	}
	args = append(args, "-o", out)
	args = append(args, l.file...)
	warns, err := l.ld(ctx, args)
	if err != nil {
		return "", nil, err
	}
	l.alignedArgs = args
	res.Warnings = warns
	if err := l.readTrace(res); err != nil {
		return "", nil, err
	}
	if err := l.dropUnloaded(ctx, out); err != nil {
		return "", nil, err
	}
	if err := fillPacks(out, l.fills); err != nil {
		return "", nil, fmt.Errorf("link %s: %w", l.opt.Output, err)
	}
	cfg, err := l.describe(out, libs)
	if err != nil {
		return "", nil, fmt.Errorf("link %s: %w", l.opt.Output, err)
	}
	return out, cfg, nil
}

// A place job records one library version of the image in the map.
type job struct {
	p      *placed
	v      libmap.Version
	need   libmap.Need
	dense  bool
	packed bool // its code goes into a pack
	isNew  bool
	regs   []libmap.Region // the pack regions that hold it already
}

func (j *job) setPlacement(pl libmap.Placement, mapAddresses bool) {
	j.isNew = pl.New
	p := j.p
	p.region, p.pack = pl.Region, pl.Pack
	if j.dense && p.region.Dense() && !mapAddresses && p.pack == 0 {
		// The image's parts need only this version's room: the
		// rest of the map's region is for other versions, and
		// other libraries of this image may lie there
		// (fitPrivateParts).
		p.region.PrivateSize = min(p.region.PrivateSize, (max(j.need.Private, 16)+15)&^15)
		p.region.SharedSize = min(p.region.SharedSize, pageUp(j.need.Shared))
	}
}

// placePackMembers places the image's small versions (libmap.PlacePacked)
// after its other new regions: the pack this link opens then lies after
// them, and its members' private parts lie side by side in the data arena
// (no large library's private part between them), so the pack's room
// shrinks to its pages when it is sealed (libmap.Map.Seal).
//
// Placed by co-use: a version that some packs hold already goes to the
// one of them that adds the fewest pages to the pack pages the image's
// other members touch (the newest on a tie; versions with fewer choices
// first). The versions new to the map go into the pack this link opens.
// If it opens one, a version that lies alone (for this image) on pages of
// an older pack used by at least libmap.CopyMinUses links is copied into
// the new pack when that saves the image pages (libmap.PlaceCopy),
// largest first: the members this image uses together then share pages,
// and later images that use them together too can map the copy. Nothing
// placed before moves; every use is counted (libmap.Map.Use).
func placePackMembers(m *libmap.Map, jobs []*job, mapAddresses bool) error {
	const page = abi.PageSize
	pagesOf := func(r desc.Region) []uint64 {
		var out []uint64
		for pg := r.Start &^ (page - 1); pg < r.End(); pg += page {
			out = append(out, pg)
		}
		return out
	}
	var old, fresh []*job
	for _, j := range jobs {
		if j.regs = m.PackedRegions(j.p.name, j.v); len(j.regs) > 0 {
			old = append(old, j)
		} else {
			fresh = append(fresh, j)
		}
	}
	sort.SliceStable(old, func(a, b int) bool { return len(old[a].regs) < len(old[b].regs) })
	touched := map[uint64]bool{}
	chosen := map[*job]libmap.Region{}
	for _, j := range old {
		best, bestAdded := -1, 0
		for i := len(j.regs) - 1; i >= 0; i-- {
			added := 0
			for _, pg := range pagesOf(j.regs[i].Region) {
				if !touched[pg] {
					added++
				}
			}
			if best < 0 || added < bestAdded {
				best, bestAdded = i, added
			}
		}
		r := j.regs[best]
		chosen[j] = r
		for _, pg := range pagesOf(r.Region) {
			touched[pg] = true
		}
		j.setPlacement(libmap.Placement{Region: r.Region, Pack: r.Pack}, mapAddresses)
	}
	for _, j := range fresh {
		pl, err := m.PlacePacked(j.p.name, j.v)
		if err != nil {
			return err
		}
		j.setPlacement(pl, mapAddresses)
	}
	if m.OpenPack() != nil {
		on := map[uint64]int{} // how many of the image's old members touch each page
		for _, j := range old {
			for _, pg := range pagesOf(chosen[j].Region) {
				on[pg]++
			}
		}
		var alone []*job
		for _, j := range old {
			if chosen[j].Uses < libmap.CopyMinUses {
				continue
			}
			ok := true
			for _, pg := range pagesOf(chosen[j].Region) {
				ok = ok && on[pg] == 1
			}
			if ok {
				alone = append(alone, j)
			}
		}
		sort.SliceStable(alone, func(a, b int) bool { return alone[a].v.Need.Shared > alone[b].v.Need.Shared })
		for _, j := range alone {
			pl, ok, err := m.PlaceCopy(j.p.name, j.v, len(pagesOf(chosen[j].Region)))
			if err != nil {
				return err
			}
			if ok {
				j.setPlacement(pl, mapAddresses)
			}
		}
	}
	for _, j := range jobs {
		if j.p.pack != 0 {
			m.Use(j.p.name, j.p.region.Start)
		}
	}
	return nil
}

// place gives every library its region: map libraries from m (recording
// new versions and regions), the app at its base (appBase).
func (l *linker) place(m *libmap.Map, res *Result) ([]*placed, error) {
	var libs []*placed
	var app *placed
	// The versions that go into a pack are placed after every other
	// (placePackMembers).
	var jobs []*job
	for i, o := range l.objs {
		tramp, err := l.opt.Tramp.Estimate(o.Path, l.mode.pie, o.tables)
		if err != nil {
			return nil, fmt.Errorf("link %s: %w", l.opt.Output, err)
		}
		// The table is split (desc.Tramp.Split): room for the stubs
		// after the read-only data, for the slots at the start of the
		// private part. The region's tramp part is not used.
		p := &placed{obj: o, file: l.file[i], name: o.Name, app: o.App, stubCap: tramp.Stubs, slotCap: tramp.Slots}
		if o.App {
			p.region = desc.Region{Start: l.appBase()}
			app = p
		} else {
			need := libmap.Need{Shared: pageUp(o.text) + o.rodata + stubAlign + tramp.Stubs, Private: tramp.Slots + slotAlign + o.private}
			// Unikraft's code is not position-independent: its absolute
			// addresses (R_X86_64_32S) must stay below 2 GiB, and the
			// data arena lies above; its private parts stay in its
			// regions.
			dense := l.opt.Platform != PlatformUnikraft
			j := &job{p: p, need: need, dense: dense, v: libmap.Version{Version: o.Version, ObjectSHA256: o.sha256, Origin: o.Origin, Need: need}}
			// A small version's code goes into a pack: its need there is
			// its bytes (each input section charged its alignment), not
			// whole pages of code.
			packNeed := libmap.Need{Shared: o.text + o.rodata + stubAlign + tramp.Stubs, Private: need.Private}
			if dense && !l.opt.NoPacks && len(o.members) == 0 && packNeed.Shared <= libmap.PackLimit {
				j.v.Need, j.packed = packNeed, true
			}
			jobs = append(jobs, j)
		}
		libs = append(libs, p)
	}
	var packed []*job
	for _, j := range jobs {
		if j.packed {
			packed = append(packed, j)
			continue
		}
		pl, err := m.PlaceDense(j.p.name, j.v, j.dense)
		if err != nil {
			return nil, fmt.Errorf("link %s: %s: %w", l.opt.Output, l.opt.MapPath, err)
		}
		j.setPlacement(pl, l.opt.MapAddresses)
	}
	if err := placePackMembers(m, packed, l.opt.MapAddresses); err != nil {
		return nil, fmt.Errorf("link %s: %s: %w", l.opt.Output, l.opt.MapPath, err)
	}
	for _, j := range jobs {
		if j.isNew {
			res.NewRegions = append(res.NewRegions, j.p.name)
		}
	}
	if app == nil {
		// No object is the app: the image-wide sections still need
		// the app region.
		name := "app"
		for _, o := range l.objs {
			if o.Name == name {
				name = "image"
			}
		}
		libs = append(libs, &placed{name: name, app: true, region: desc.Region{Start: l.appBase()}})
	} else if l.opt.Platform != PlatformUnikraft {
		if !l.opt.MapAddresses {
			fitPrivateParts(libs)
		}
		// The app's private part (its data and the image-wide
		// sections) goes to the data arena too, right after the
		// highest private part of this image's libraries, so it shares
		// that page. Its address is in no map: only this image uses
		// it, and no library of this image lies above it.
		placeAppPrivate(app, libs, app.privateNeed())
	}
	return libs, nil
}

// placeAppPrivate puts the app's private part (about need bytes) right
// after the highest private part of the image's libraries
// (appPrivatePlace); its size is known after the link (describeLibrary).
//
// An empty part (placed.privateEmpty: no byte on any page) above the
// others does not count: the app's room then ends below it, if that
// leaves need bytes.
func placeAppPrivate(app *placed, libs []*placed, need uint64) {
	top, all := uint64(0), uint64(0)
	for _, p := range libs {
		if p != app && p.region.Dense() {
			all = max(all, p.region.PrivateEnd())
			if !p.privateEmpty() {
				top = max(top, p.region.PrivateEnd())
			}
		}
	}
	start, limit := appPrivatePlace(top, need)
	for _, p := range libs {
		if r := p.region; p != app && r.Dense() && r.PrivateSize > 0 && r.PrivateEnd() > start && r.PrivateStart < limit {
			limit = max(start, r.PrivateStart&^(appPrivateAlign-1))
		}
	}
	if limit != 0 && limit-start < need {
		start, limit = appPrivatePlace(all, need)
	}
	app.region.PrivateStart, app.region.PrivateSize = 0, 0
	if limit != 0 {
		app.region.PrivateStart, app.region.PrivateSize = start, limit-start
	}
}

// appPrivatePlace is where an app's private part of about need bytes
// goes when the image's libraries' private parts end at top (0: none):
// right after top if it fits the arena part top is in, the near arena
// (in the app's 2 MiB) first; else after top in the far arena (or at its
// start). limit is the end of its room, 0 if no arena holds it.
func appPrivatePlace(top, need uint64) (start, limit uint64) {
	align := func(a uint64) uint64 { return (a + appPrivateAlign - 1) &^ (appPrivateAlign - 1) }
	start = align(max(top, abi.NearArenaBase))
	if limit = abi.ArenaLimit(start, need); limit != 0 {
		return start, limit
	}
	start = align(max(top, abi.DataArenaBase))
	return start, abi.ArenaLimit(start, need)
}

// privateNeed estimates the room the app's private part needs before the
// link: its slots, data and bss, and room for the image-wide sections.
func (p *placed) privateNeed() uint64 {
	n := p.slotCap + slotAlign + appImageWide
	if p.obj != nil {
		n += p.obj.private
	}
	return n
}

// appImageWide is the room the estimate of an app's private part leaves
// for the image-wide sections (tables, init arrays) that follow its data.
const appImageWide = 16 << 10

// appBase is where the image's app region starts: abi.AppRegionBase, in
// the map's GiB, with the per-instance memory in its 2 MiB; a Unikraft
// image keeps the legacy base, whose room up to the per-instance memory
// (256 MiB) holds its app's private part too.
func (l *linker) appBase() uint64 {
	if l.opt.Platform == PlatformUnikraft {
		return abi.LegacyAppRegionBase
	}
	return abi.AppRegionBase
}

// appPrivateAlign aligns the app's private part in the data arena (its
// TLS template and tables may want more than 16 bytes).
const appPrivateAlign = 64

// dropUnloaded removes what a position-independent link creates but the
// image does not load (see alignedScript).
func (l *linker) dropUnloaded(ctx context.Context, out string) error {
	f, err := elf.Open(out)
	if err != nil {
		return fmt.Errorf("link %s: %w", l.opt.Output, err)
	}
	plt := f.Section(".plt")
	f.Close()
	if plt != nil && plt.Size > 0 {
		return fmt.Errorf("link %s: the image needs PLT entries (ifuncs?), which unipool images cannot have", l.opt.Output)
	}
	return l.objcopy(ctx, out, "--remove-section=.rela.dyn", "--remove-section=.plt")
}

// describe reads the linked image back and says, per library, what it
// occupies of its region: the description the image will carry. It
// also checks that every loaded byte lies in some library's part, which
// catches a section the script put in the wrong place.
func (l *linker) describe(path string, libs []*placed) (*desc.Config, error) {
	im, err := elfimage.Open(path)
	if err != nil {
		return nil, err
	}
	cfg := &desc.Config{SchemaVersion: desc.SchemaVersion, Layout: LayoutAligned, Cmdline: l.opt.Cmdline, MemSize: l.opt.MemSize}
	if l.opt.Platform == PlatformUnikraft {
		cfg.Boot = desc.BootLinux64
	} else if cfg.BootInfoVersion, err = elfimage.BootInfoVersion(im.ELF()); err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	segs := im.Segments()
	used := make([]bool, len(segs))
	stubs, err := sectionAddrs(path, ".stubs.")
	if err != nil {
		return nil, err
	}
	for _, p := range libs {
		lib, err := describeLibrary(p, segs, used)
		if err != nil {
			return nil, err
		}
		if p.obj != nil {
			// The split table's room, for the trampoline pass.
			lib.Tramp = desc.Tramp{Split: true, SlotSize: p.slotCap}
			if p.stubCap > 0 {
				a, ok := stubs[".stubs."+p.name]
				if !ok || a < lib.Region.SharedAddr() {
					return nil, fmt.Errorf("library %q: its stub area is not in its shared part", p.name)
				}
				lib.Tramp.StubOff, lib.Tramp.StubSize = a-lib.Region.SharedAddr(), p.stubCap
			}
		}
		cfg.Libraries = append(cfg.Libraries, lib)
		if lib.Region.Dense() {
			cfg.SchemaVersion = max(cfg.SchemaVersion, desc.SchemaVersionDense)
		}
		if lib.Pack != 0 {
			cfg.SchemaVersion = desc.SchemaVersionPack
		}
	}
	pack := map[uint64]bool{}
	for _, pgs := range packPages(libs) {
		for _, pg := range pgs {
			pack[pg] = true
		}
	}
	for i, s := range segs {
		if !used[i] && s.Flags&elf.PF_W == 0 && pack[s.Vaddr&^(abi.PageSize-1)] && pack[(s.End()-1)&^(abi.PageSize-1)] {
			used[i] = true // a pack's pages (addPackPages)
		}
		if !used[i] {
			return nil, fmt.Errorf("loaded segment [%#x,%#x) lies in no library's region", s.Vaddr, s.End())
		}
	}
	var ok bool
	if cfg.Entry, ok = addrOf(cfg, im.Entry()); !ok {
		return nil, fmt.Errorf("entry %#x lies in no library's region", im.Entry())
	}
	if t := im.TLS(); t != nil && t.MemSize > 0 {
		a, ok := addrOf(cfg, t.Vaddr)
		if !ok && t.FileSize == 0 {
			// TLS that is only .tbss takes no bytes of the app's private
			// part, so when the app has no other writable data its
			// template lies just past the part: grow the part's capacity
			// over it (nothing is read from an all-zero template).
			ok = coverTBSS(cfg, t.Vaddr)
			a, _ = addrOf(cfg, t.Vaddr)
		}
		if !ok {
			return nil, fmt.Errorf("TLS template %#x lies in no library's region", t.Vaddr)
		}
		cfg.TLS = &desc.TLS{Image: a, FileSize: t.FileSize, MemSize: t.MemSize, Align: t.Align}
	}
	return cfg, nil
}

func describeLibrary(p *placed, segs []elfimage.Segment, used []bool) (desc.Library, error) {
	lib := desc.Library{Name: p.name, App: p.app, Region: p.region, Shift: p.shift, Pack: p.pack}
	if p.obj != nil {
		lib.Version, lib.Origin, lib.ObjectSHA256 = p.obj.Version, p.obj.Origin, p.obj.sha256
		for _, m := range p.obj.members {
			lib.Members = append(lib.Members, desc.Member{Name: m.name, Version: m.version, Origin: m.origin, ObjectSHA256: m.sha256})
		}
	}
	r := p.region
	limit := r.End()
	if p.app {
		// (Below the near arena: the libraries' private parts there
		// are theirs.)
		limit = abi.AppLimitFor(r.Start)
	}
	var sharedEnd, privStart, privFile, privEnd uint64
	for i, s := range segs {
		inArena := r.Dense() && s.Vaddr >= r.PrivateStart && s.Vaddr < r.PrivateEnd()
		if !inArena && (s.Vaddr < r.Start || s.Vaddr >= limit || p.pack != 0) {
			continue // (a pack member's code: its pack's segment)
		}
		if !inArena && s.End() > limit {
			return lib, fmt.Errorf("library %q: segment [%#x,%#x) passes its region's end %#x", p.name, s.Vaddr, s.End(), limit)
		}
		used[i] = true
		switch {
		case inArena:
			if s.Flags&elf.PF_X != 0 || s.Flags&elf.PF_W == 0 || s.End() > r.PrivateEnd() {
				return lib, fmt.Errorf("library %q: segment [%#x,%#x) in the data arena is not its private part [%#x,%#x)", p.name, s.Vaddr, s.End(), r.PrivateStart, r.PrivateEnd())
			}
			if privStart == 0 {
				privStart = s.Vaddr
			}
			if s.FileSize > 0 {
				privFile = s.Vaddr + s.FileSize
			}
			// Packed with other libraries' parts: 16-byte granular.
			privEnd = (s.End() + 15) &^ 15
		case s.Vaddr < r.SharedAddr():
			if s.Vaddr != r.TrampAddr() || s.Flags&elf.PF_W != 0 || s.End() > r.SharedAddr() {
				return lib, fmt.Errorf("library %q: segment [%#x,%#x) is not its tramp area [%#x,%#x)", p.name, s.Vaddr, s.End(), r.TrampAddr(), r.SharedAddr())
			}
		case s.Flags&elf.PF_W == 0:
			if privStart != 0 {
				return lib, fmt.Errorf("library %q: read-only segment at %#x after its private part", p.name, s.Vaddr)
			}
			prot := desc.ProtR
			if s.Flags&elf.PF_X != 0 {
				prot = desc.ProtRX
			}
			// Read-only data starts in the code's last page; that
			// page is mapped with the code, the rest of the data
			// from the next page on. Code after read-only data (the
			// trampoline stubs) takes the data's last page along.
			lo, hi := max(s.Vaddr&^(abi.PageSize-1), r.SharedAddr()+sharedEndOff(sharedEnd, r)), pageUp(s.End())
			if n := len(lib.Shared.Segments); n > 0 && lo > s.Vaddr && prot == desc.ProtRX && lib.Shared.Segments[n-1].Prot != desc.ProtRX {
				last := &lib.Shared.Segments[n-1]
				lo = s.Vaddr &^ (abi.PageSize - 1)
				last.Size = lo - r.SharedAddr() - last.Off
				if last.Size == 0 {
					lib.Shared.Segments = lib.Shared.Segments[:n-1]
				}
			}
			if n := len(lib.Shared.Segments); n > 0 && lib.Shared.Segments[n-1].Prot == prot && lib.Shared.Segments[n-1].Off+lib.Shared.Segments[n-1].Size == lo-r.SharedAddr() && hi > lo {
				lib.Shared.Segments[n-1].Size += hi - lo
				sharedEnd = hi
			} else if hi > lo {
				lib.Shared.Segments = append(lib.Shared.Segments, desc.Segment{Off: lo - r.SharedAddr(), Size: hi - lo, Prot: prot})
				sharedEnd = hi
			}
		default:
			if s.Flags&elf.PF_X != 0 {
				return lib, fmt.Errorf("library %q: segment at %#x is writable and executable", p.name, s.Vaddr)
			}
			if privStart == 0 {
				privStart = s.Vaddr
			}
			if s.FileSize > 0 {
				privFile = s.Vaddr + s.FileSize
			}
			privEnd = pageUp(s.End())
		}
	}
	if sharedEnd > 0 {
		lib.Shared.Size = sharedEnd - r.SharedAddr()
	}
	if p.pack != 0 {
		// Its bytes, mapped by its pack's pages.
		lib.Shared.Size = r.SharedSize
	}
	if p.app {
		// The app's parts are as large as they came out.
		lib.Region.SharedSize = lib.Shared.Size
		r = lib.Region
		if privEnd > 0 {
			lib.Region.PrivateSize = privEnd - r.PrivateAddr()
		} else if r.Dense() {
			lib.Region.PrivateSize = 16
		}
		if lib.Region.End() == lib.Region.Start && !r.Dense() {
			// An empty app region still needs a page to be a region.
			lib.Region.PrivateSize = abi.PageSize
		}
		r = lib.Region
	}
	if privStart != 0 {
		if privStart < r.PrivateAddr() {
			return lib, fmt.Errorf("library %q: writable segment at %#x inside its shared part", p.name, privStart)
		}
		if privFile > 0 {
			lib.Private.FileSize = privFile - r.PrivateAddr()
		}
		lib.Private.MemSize = privEnd - r.PrivateAddr()
	}
	if lib.Shared.Size > r.SharedSize || lib.Private.MemSize > r.PrivateSize {
		return lib, fmt.Errorf("library %q: parts (shared %#x, private %#x) exceed the region's capacity (%#x, %#x)",
			p.name, lib.Shared.Size, lib.Private.MemSize, r.SharedSize, r.PrivateSize)
	}
	return lib, nil
}

// addrOf expresses a virtual address relative to its library's region.
func addrOf(cfg *desc.Config, va uint64) (desc.Addr, bool) {
	for i, l := range cfg.Libraries {
		if l.Region.Holds(va) {
			return desc.Addr{Lib: i, Off: va - l.Region.Start}, true
		}
	}
	return desc.Addr{}, false
}

// checkPacked checks a packed or dce image reads back and stays below the
// app region, where the guest address-space layout wants it.
func checkPacked(path string) error {
	im, err := elfimage.Open(path)
	if err != nil {
		return err
	}
	for _, s := range im.Segments() {
		if s.End() > abi.LegacyAppRegionBase {
			return fmt.Errorf("packed image reaches %#x, past the app region base %#x", s.End(), uint64(abi.LegacyAppRegionBase))
		}
	}
	return nil
}

// sharedEndOff is how far the segments described so far reach into the
// shared part (0 before the first).
func sharedEndOff(sharedEnd uint64, r desc.Region) uint64 {
	if sharedEnd == 0 {
		return 0
	}
	return sharedEnd - r.SharedAddr()
}

func pageUp(n uint64) uint64 { return (n + abi.PageSize - 1) &^ (abi.PageSize - 1) }

// coverTBSS grows the app region's private part so that it holds va, the
// address of a .tbss-only TLS template placed at its end.
func coverTBSS(cfg *desc.Config, va uint64) bool {
	for i := range cfg.Libraries {
		l := &cfg.Libraries[i]
		if l.App && l.Region.Dense() && va >= l.Region.PrivateAddr() && va < abi.ArenaLimit(l.Region.PrivateAddr(), 0) {
			l.Region.PrivateSize = (va+1+15)&^15 - l.Region.PrivateAddr()
			return true
		}
		if l.App && va >= l.Region.PrivateAddr() && va < abi.PrivateBaseFor(l.Region.Start) {
			l.Region.PrivateSize = pageUp(va+1) - l.Region.PrivateAddr()
			return true
		}
	}
	return false
}

// sectionAddrs maps the names of the image's sections that start with
// prefix to their addresses.
func sectionAddrs(path, prefix string) (map[string]uint64, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]uint64{}
	for _, s := range f.Sections {
		if strings.HasPrefix(s.Name, prefix) {
			m[s.Name] = s.Addr
		}
	}
	return m, nil
}
