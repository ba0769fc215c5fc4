// Package trampoline makes the shared parts of an aligned image
// independent of where libraries are placed, so a loader can give every
// library of every instance a random base (load-time ASLR) while all
// instances still map the same shared pages.
//
// It finds, from the relocations ld kept (--emit-relocs), every
// instruction of a library's shared part whose bytes encode another
// region's position (a call, jump or RIP-relative reference to another
// library or the app) or any absolute address, and redirects it through
// the library's trampoline table, which lies at a fixed offset before the
// library's code: 8-byte slots the loader fills per instance, and stubs
// that end by jumping back. Absolute addresses in private data become
// desc.Reloc entries. What cannot be rewritten safely pins the libraries
// it depends on (desc.Library.NoASLR) instead of producing wrong code.
//
// A table is 8-byte words, then stubs. A word is a slot (listed in
// desc.Tramp.Slots: the loader stores the target's address for the
// instance) or a constant (a fixed address such as an undefined weak
// symbol's 0, or what a GOT entry holds for one). Every site has a word of
// its own (never one per target: see wordKey), words and stubs in site order, so
// every offset the shared code encodes depends on the library's own code
// only. The rewrites, by Kind:
//
//	call ext            call T            T: jmp *slot(%rip)
//	jmp ext, jcc ext    jmp T, jcc T
//	addr32 call ext     call *slot(%rip)                       (in place)
//	lea ext(%rip),%r    mov slot(%rip),%r                      (in place)
//	op ext@GOT(%rip)    op slot(%rip)                          (in place)
//	mov $ext,%r         mov slot(%rip),%r                      (in place, or via a stub)
//	mov ext(%rip),%r    jmp T             T: mov slot,%r; mov (%r),%r; jmp back
//	op ext(%rip)        jmp T             T: skip the red zone; push scratch;
//	                                         mov slot,scratch; op (scratch); pop; jmp back
//	call/jmp *ext(%rip) call/jmp T        T: load the pointer, ret $n to it
//
// Every rewritten instruction is decoded again (x86asm) and compared with
// the original before anything is written.
package trampoline

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/arch/x86/x86asm"

	"github.com/unipool/unipool/internal/desc"
)

// Options tune RewriteReport.
type Options struct {
	// DryRun analyses and builds the tables but neither writes the image
	// nor changes the description.
	DryRun bool
}

// Rewrite patches the aligned image at imagePath in place and fills each
// library's Tramp, Relocs and NoASLR in cfg. The image must carry its
// relocations (ld --emit-relocs) and, for every library with a
// non-zero Region.TrampSize, its trampoline area as file bytes filled
// with 0xcc.
func Rewrite(imagePath string, cfg *desc.Config) error {
	_, err := RewriteReport(imagePath, cfg, Options{})
	return err
}

// RewriteReport is Rewrite that also says what it did.
func RewriteReport(imagePath string, cfg *desc.Config, opt Options) (*Report, error) {
	data, err := os.ReadFile(imagePath)
	if err != nil {
		return nil, fmt.Errorf("trampoline: %w", err)
	}
	rw, err := analyse(imagePath, data, cfg)
	if err != nil {
		return nil, err
	}
	if opt.DryRun {
		return rw.report(), nil
	}
	if err := rw.apply(); err != nil {
		return nil, err
	}
	if err := writeAtomic(imagePath, rw.im.data); err != nil {
		return nil, fmt.Errorf("trampoline: %w", err)
	}
	rw.fill(cfg)
	return rw.report(), nil
}

// rewriter holds one image's analysis.
type rewriter struct {
	im   *image
	cfg  *desc.Config
	libs []*libWork
	// GOT entries seen (address -> address they hold).
	got map[uint64]gotEntry
	// the last linear decode, continued by the next site
	sweepFrom, sweepPC uint64
}

type gotEntry struct {
	r   reloc
	val uint64
}

// libWork is what is learnt about one library.
type libWork struct {
	sites    []*site
	tab      *table
	pins     []string // why the library cannot move
	relocs   []desc.Reloc
	residual int    // placement-dependent bytes left in the shared part
	failed   int    // sites that could not be rewritten
	capacity uint64 // bytes reserved for the table
}

func analyse(name string, data []byte, cfg *desc.Config) (*rewriter, error) {
	if cfg == nil || len(cfg.Libraries) == 0 {
		return nil, fmt.Errorf("trampoline: %s: description has no libraries", name)
	}
	im, err := parseImage(name, data)
	if err != nil {
		return nil, fmt.Errorf("trampoline: %w", err)
	}
	rw := &rewriter{im: im, cfg: cfg, got: map[uint64]gotEntry{}}
	for i, l := range cfg.Libraries {
		r := l.Region
		if r.End() < r.Start || r.PrivateEnd() < r.PrivateAddr() {
			return nil, fmt.Errorf("trampoline: %s: library %q: region wraps", name, l.Name)
		}
		for j := 0; j < i; j++ {
			if desc.Overlap(r, cfg.Libraries[j].Region) {
				return nil, fmt.Errorf("trampoline: %s: libraries %q and %q overlap", name, cfg.Libraries[j].Name, l.Name)
			}
		}
		for _, a := range tableAreas(l) {
			if a.size == 0 {
				continue
			}
			area, ok := im.bytesAt(a.addr, a.size)
			if !ok {
				return nil, fmt.Errorf("trampoline: %s: library %q: %s %#x+%#x is not in the file", name, l.Name, a.what, a.addr, a.size)
			}
			if len(bytes.Trim(area, "\xcc")) != 0 {
				return nil, fmt.Errorf("trampoline: %s: library %q: %s at %#x is not the 0xcc fill (already rewritten?)", name, l.Name, a.what, a.addr)
			}
		}
		lw := &libWork{}
		for _, a := range tableAreas(l) {
			lw.capacity += a.size
		}
		rw.libs = append(rw.libs, lw)
	}
	rw.scan()
	for i, lw := range rw.libs {
		rw.buildTable(i, lw)
	}
	rw.gotRelocs()
	return rw, nil
}

// area is a range the trampoline pass fills.
type area struct {
	what       string
	addr, size uint64
}

// tableAreas are the ranges library l reserves for its table: the tramp
// area, or, split, the slot area and the stub area.
func tableAreas(l desc.Library) []area {
	r := l.Region
	if !l.Tramp.Split {
		return []area{{"trampoline area", r.TrampAddr(), r.TrampSize}}
	}
	return []area{{"slot area", r.PrivateAddr(), l.Tramp.SlotSize}, {"stub area", r.SharedAddr() + l.Tramp.StubOff, l.Tramp.StubSize}}
}

// where describes a relocation for messages.
func (rw *rewriter) where(r reloc) string {
	return fmt.Sprintf("%v against %s at %#x (%s)", r.Type, rw.im.symbolName(r), r.Off, rw.im.sectionName(r.Sect))
}

// pin records that library lib must stay at its map address.
func (rw *rewriter) pin(lib int, why string) {
	if lib >= 0 {
		rw.libs[lib].pins = append(rw.libs[lib].pins, why)
	}
}

// cannot records a site left as it is. Its bytes keep encoding the
// target's position, so the target stays put; a PC-relative encoding
// also depends on the site's own position, so the site's library too.
func (rw *rewriter) cannot(siteLib int, inShared, pcrel bool, targetLib int, r reloc, err error) {
	msg := fmt.Sprintf("%s: %v", rw.where(r), err)
	if siteLib >= 0 {
		rw.libs[siteLib].failed++
		if inShared {
			rw.libs[siteLib].residual++
		}
		if pcrel || targetLib == siteLib {
			rw.pin(siteLib, msg)
		}
	}
	if targetLib >= 0 && targetLib != siteLib {
		who := "memory outside every region"
		if siteLib >= 0 {
			who = fmt.Sprintf("library %q", rw.cfg.Libraries[siteLib].Name)
		}
		rw.pin(targetLib, fmt.Sprintf("its address is fixed in %s: %s", who, msg))
	}
}

// symLib is the library of r's symbol + addend, for pinning when the
// field itself could not be understood.
func (rw *rewriter) symLib(r reloc) int {
	s := rw.im.symbols[r.Sym]
	lib, _, _ := rw.resolve(r, s.Value+uint64(r.Addend))
	if lib < 0 && r.Sym != 0 {
		lib = regionOf(rw.cfg, s.Value)
	}
	return lib
}

// scan walks all relocations of loaded sections.
func (rw *rewriter) scan() {
	type group struct {
		lib  int
		addr uint64
		inst x86asm.Inst
		rs   []reloc
	}
	var groups []*group
	byAddr := map[uint64]*group{}
	for _, r := range rw.im.relocs {
		cls := classify(r.Type)
		if cls == relIgnore {
			continue
		}
		siteLib := regionOf(rw.cfg, r.Off)
		if siteLib < 0 {
			if lib := rw.symLib(r); lib >= 0 {
				rw.cannot(-1, false, false, lib, r, fmt.Errorf("holds an address of a region"))
			}
			continue
		}
		reg := rw.cfg.Libraries[siteLib].Region
		inShared := r.Off >= reg.SharedAddr() && r.Off < reg.SharedAddr()+reg.SharedSize
		inPrivate := r.Off >= reg.PrivateAddr() && r.Off < reg.PrivateEnd()
		if inShared && rw.im.executable(rw.im.section(r.Off)) {
			addr, inst, err := rw.insnAt(r.Off)
			if err != nil {
				rw.cannot(siteLib, true, true, rw.symLib(r), r, err)
				continue
			}
			g := byAddr[addr]
			if g == nil {
				g = &group{lib: siteLib, addr: addr, inst: inst}
				byAddr[addr] = g
				groups = append(groups, g)
			}
			g.rs = append(g.rs, r)
			continue
		}
		rw.data(siteLib, inShared, inPrivate, r, cls)
	}
	for _, g := range groups {
		raw, _ := rw.im.bytesAt(g.addr, uint64(g.inst.Len))
		var dep []field
		bad := false
		for _, r := range g.rs {
			f, err := rw.understand(g.lib, g.addr, g.inst, raw, r)
			if err != nil {
				rw.cannot(g.lib, true, true, rw.symLib(r), r, err)
				bad = true
				continue
			}
			if f.dep {
				dep = append(dep, f)
			}
		}
		if len(dep) == 0 {
			continue
		}
		if !bad && len(dep) == 2 {
			s, err := rw.planMemImm(g.lib, g.addr, g.inst, raw, dep)
			if err == nil {
				rw.libs[g.lib].sites = append(rw.libs[g.lib].sites, s)
				continue
			}
			for _, f := range dep {
				rw.cannot(g.lib, true, f.role == roleRel || f.role == roleRIP, f.lib, f.r, err)
			}
			continue
		}
		if bad || len(dep) > 1 {
			// The instruction stays as it is: so do what its fields name.
			for _, f := range dep {
				rw.cannot(g.lib, true, f.role == roleRel || f.role == roleRIP, f.lib, f.r, fmt.Errorf("%v: more than one placement-dependent field", g.inst))
			}
			continue
		}
		f := dep[0]
		s, err := rw.plan(g.lib, g.addr, g.inst, raw, f)
		if err != nil {
			rw.cannot(g.lib, true, f.role == roleRel || f.role == roleRIP, f.lib, f.r, err)
			continue
		}
		s.reloc, s.pcrel = f.r, f.role == roleRel || f.role == roleRIP
		rw.libs[g.lib].sites = append(rw.libs[g.lib].sites, s)
	}
}

// data handles a relocation outside code.
func (rw *rewriter) data(siteLib int, inShared, inPrivate bool, r reloc, cls relClass) {
	size := uint64(4)
	if cls == relAbs64 {
		size = 8
	}
	if cls == relOther {
		rw.cannot(siteLib, inShared, true, rw.symLib(r), r, fmt.Errorf("relocation type not supported in data"))
		return
	}
	b, ok := rw.im.bytesAt(r.Off, size)
	if !ok {
		rw.cannot(siteLib, inShared, true, rw.symLib(r), r, fmt.Errorf("field not in the file"))
		return
	}
	s := rw.im.symbols[r.Sym].Value + uint64(r.Addend) // S + A
	var va uint64
	switch cls {
	case relAbs64:
		va = binary.LittleEndian.Uint64(b)
	case relAbs32:
		va = uint64(binary.LittleEndian.Uint32(b))
		if r.Type == elf.R_X86_64_32S {
			va = uint64(int64(int32(va)))
		}
	case relPC32:
		va = r.Off + uint64(int64(int32(binary.LittleEndian.Uint32(b))))
	}
	if va != s && (cls != relAbs32 || uint32(va) != uint32(s)) {
		rw.cannot(siteLib, inShared, cls == relPC32, rw.symLib(r), r, fmt.Errorf("field holds %#x, the relocation says %#x", va, s))
		return
	}
	lib, a, err := rw.resolve(r, va)
	if err != nil {
		rw.cannot(siteLib, inShared, cls == relPC32, lib, r, err)
		return
	}
	switch cls {
	case relPC32:
		if lib != siteLib {
			rw.cannot(siteLib, inShared, true, lib, r, fmt.Errorf("PC-relative reference across regions in data"))
		}
	case relAbs32:
		if lib >= 0 {
			rw.cannot(siteLib, inShared, false, lib, r, fmt.Errorf("a 32-bit field cannot hold an address in the ASLR window"))
		}
	case relAbs64:
		switch {
		case lib < 0:
		case inPrivate:
			off := r.Off - rw.cfg.Libraries[siteLib].Region.PrivateAddr()
			rw.libs[siteLib].relocs = append(rw.libs[siteLib].relocs, desc.Reloc{Off: off, Target: a})
		default:
			rw.cannot(siteLib, inShared, false, lib, r, fmt.Errorf("absolute address in read-only data"))
		}
	}
}

// noteGOT remembers a GOT entry a rewritten site reads.
func (rw *rewriter) noteGOT(va uint64, r reloc, val uint64) {
	rw.got[va] = gotEntry{r: r, val: val}
}

// gotRelocs makes GOT entries in private parts relocatable: rewritten
// sites no longer read them, but anything else still reading them (a
// site that could not be rewritten pins its target anyway) sees the
// right address.
func (rw *rewriter) gotRelocs() {
	vas := make([]uint64, 0, len(rw.got))
	for va := range rw.got {
		vas = append(vas, va)
	}
	sort.Slice(vas, func(i, j int) bool { return vas[i] < vas[j] })
	for _, va := range vas {
		e := rw.got[va]
		lib := regionOf(rw.cfg, va)
		if lib < 0 {
			continue
		}
		reg := rw.cfg.Libraries[lib].Region
		tl, a, err := rw.resolve(e.r, e.val)
		if err != nil || tl < 0 {
			continue
		}
		if va < reg.PrivateAddr() || va >= reg.PrivateEnd() {
			// A GOT in a shared part goes stale under ASLR: only the
			// rewritten sites read it... unless others do, which then
			// were reported. Pin nothing more.
			continue
		}
		rw.libs[lib].relocs = append(rw.libs[lib].relocs, desc.Reloc{Off: va - reg.PrivateAddr(), Target: a})
	}
}

// buildTable lays out one library's table; sites that do not fit or
// cannot be encoded are left alone (and pin what they depend on).
func (rw *rewriter) buildTable(lib int, lw *libWork) {
	if len(lw.sites) == 0 {
		return
	}
	reg := rw.cfg.Libraries[lib].Region
	var ok []*site
	fail := func(s *site, err error) {
		rw.cannot(lib, true, s.pcrel, s.target.Lib, s.reloc, err)
		if s.kind == KindMemImm {
			rw.cannot(lib, true, false, s.immTarget.Lib, s.immReloc, err)
		}
	}
	tr := rw.cfg.Libraries[lib].Tramp
	if (!tr.Split && reg.TrampSize == 0) || (tr.Split && tr.SlotSize == 0) {
		for _, s := range lw.sites {
			fail(s, fmt.Errorf("library has no trampoline area"))
		}
		lw.sites = nil
		return
	}
	t := newTable(rw, lib, lw.sites)
	for _, s := range lw.sites {
		if err := t.add(s); err != nil {
			fail(s, err)
			continue
		}
		ok = append(ok, s)
	}
	var tooBig error
	switch {
	case !tr.Split && t.size() > reg.TrampSize:
		tooBig = fmt.Errorf("trampoline table needs %d bytes, the area has %d", t.size(), reg.TrampSize)
	case tr.Split && t.slotBytes() > tr.SlotSize:
		tooBig = fmt.Errorf("trampoline slots need %d bytes, the slot area has %d", t.slotBytes(), tr.SlotSize)
	case tr.Split && t.stubBytes() > tr.StubSize:
		tooBig = fmt.Errorf("trampoline stubs need %d bytes, the stub area has %d", t.stubBytes(), tr.StubSize)
	}
	if tooBig != nil {
		for _, s := range ok {
			fail(s, tooBig)
		}
		lw.sites = nil
		return
	}
	lw.sites, lw.tab = ok, t
}

// apply writes the tables and patches the sites in the image bytes.
func (rw *rewriter) apply() error {
	for i, lw := range rw.libs {
		if lw.tab == nil {
			continue
		}
		t := lw.tab
		slots, ok := rw.im.bytesAt(t.base, t.slotBytes())
		stubs, ok2 := rw.im.bytesAt(t.code.pc0, t.stubBytes())
		if !ok || !ok2 {
			return fmt.Errorf("trampoline: %s: library %q: table not in the file", rw.im.name, rw.cfg.Libraries[i].Name)
		}
		for k, w := range t.slots {
			v := w.val
			if !w.konst {
				v = rw.absAddr(w.addr)
			}
			binary.LittleEndian.PutUint64(slots[8*k:], v)
		}
		copy(stubs, t.code.b)
		for _, p := range t.patches {
			copy(p.site.raw, p.b)
		}
	}
	return nil
}

// fill records the tables, relocations and pins in the description.
func (rw *rewriter) fill(cfg *desc.Config) {
	for i, lw := range rw.libs {
		l := &cfg.Libraries[i]
		split := l.Tramp.Split
		l.Tramp = desc.Tramp{Split: split}
		l.Relocs = append([]desc.Reloc(nil), lw.relocs...)
		switch {
		case lw.tab != nil && split:
			// The slots are private words like any other absolute
			// address there.
			l.Tramp.StubOff = lw.tab.code.pc0 - l.Region.SharedAddr()
			l.Tramp.StubSize, l.Tramp.SlotSize = lw.tab.stubBytes(), lw.tab.slotBytes()
			for k, w := range lw.tab.slots {
				if !w.konst {
					l.Relocs = append(l.Relocs, desc.Reloc{Off: 8 * uint64(k), Target: w.addr})
				}
			}
		case lw.tab != nil:
			l.Tramp.Size = lw.tab.size()
			for k, w := range lw.tab.slots {
				if !w.konst {
					l.Tramp.Slots = append(l.Tramp.Slots, desc.Slot{Off: 8 * uint64(k), Target: w.addr})
				}
			}
		}
		sort.Slice(l.Relocs, func(a, b int) bool { return l.Relocs[a].Off < l.Relocs[b].Off })
		l.NoASLR = pinReason(lw.pins)
	}
}

func pinReason(pins []string) string {
	switch len(pins) {
	case 0:
		return ""
	case 1:
		return pins[0]
	}
	return fmt.Sprintf("%s (and %d more)", pins[0], len(pins)-1)
}

// writeAtomic replaces path with data (write, fsync, rename), keeping
// its mode.
func writeAtomic(path string, data []byte) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tramp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
