package trampoline

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/arch/x86/x86asm"

	"github.com/unipool/unipool/internal/desc"
)

// redZone is what the System V ABI lets leaf code keep below %rsp; a stub
// that pushes skips over it first (Debian's objects use it, ours do not).
const redZone = 128

// maxStub bounds the bytes one site adds to a table besides its slot
// (KindMem at worst: lea 5, push 1, mov 7, lea 8, the instruction 15,
// pop 1, lea 8, jmp 5). Estimate relies on it; add enforces it.
const maxStub = 56

// asm appends instructions at a known address.
type asm struct {
	pc0 uint64
	b   []byte
	err error
}

func (a *asm) pc() uint64 { return a.pc0 + uint64(len(a.b)) }

func (a *asm) emit(b ...byte) { a.b = append(a.b, b...) }

func (a *asm) fail(err error) {
	if a.err == nil && err != nil {
		a.err = err
	}
}

// rel32 emits op followed by a rel32 to target.
func (a *asm) rel32(target uint64, op ...byte) {
	end := a.pc() + uint64(len(op)) + 4
	d := int64(target - end)
	if d != int64(int32(d)) {
		a.fail(fmt.Errorf("branch from %#x to %#x out of rel32 reach", a.pc(), target))
	}
	a.emit(op...)
	a.b = binary.LittleEndian.AppendUint32(a.b, uint32(int32(d)))
}

// rm emits [REX.W] op ModRM-operand for a 64-bit operation.
func (a *asm) rm(w bool, op []byte, reg int, m memOp, imm ...byte) {
	b, err := encodeRM(a.pc(), w, op, reg, m, imm)
	a.fail(err)
	a.emit(b...)
}

func rip(target uint64) memOp { return memOp{base: rRIP, index: noReg, target: target} }

func (a *asm) push(r int) {
	if r >= 8 {
		a.emit(0x41)
	}
	a.emit(0x50 + byte(r&7))
}

func (a *asm) pop(r int) {
	if r >= 8 {
		a.emit(0x41)
	}
	a.emit(0x58 + byte(r&7))
}

// leaRSP moves %rsp by d without touching the flags.
func (a *asm) leaRSP(d int64) {
	a.rm(true, []byte{0x8d}, rSP, memOp{base: rSP, index: noReg, disp: d})
}

// table is one library's trampoline table being built: 8-byte slots first,
// then stubs, at the table's link-time address; or, split
// (desc.Tramp.Split), the slots at the start of the private part and the
// stubs at the end of the shared part.
type table struct {
	rw      *rewriter
	lib     int
	base    uint64 // the slots' address
	split   bool
	slots   []word
	slotIdx map[wordKey]int
	code    asm
	branch  map[wordKey]uint64 // site -> its "jmp *slot" stub
	patches []patch
}

// word is what an 8-byte word of the table holds: a slot (an address the
// loader fills per instance) or a constant.
type word struct {
	addr  desc.Addr
	konst bool
	val   uint64
}

func (s *site) word() word {
	if s.konst {
		return word{konst: true, val: s.val}
	}
	return word{addr: s.target}
}

// wordKey is what gives a site its word of the table: the site itself.
// The table's layout (and so every offset the shared code encodes) must
// follow from the library's own code only, never from how the rest of
// the image resolves. Words shared by all sites with the same target
// would not: two undefined weak symbols are both the constant 0 in an
// image without their library (and ld's relocations against them no
// longer name them), two different addresses in an image with it, so the
// first image's table would have a word less and every later slot and
// stub would move. One word per site costs 8 bytes more per repeated
// target in a table of its own page.
//
// A site with two placement-dependent fields (KindMemImm) has two words:
// the memory operand's (n 0) and the immediate's (n 1).
type wordKey struct {
	addr uint64
	n    int
}

func (s *site) key() wordKey { return wordKey{addr: s.addr} }

// immKey is the word of a KindMemImm site's immediate.
func (s *site) immKey() wordKey { return wordKey{addr: s.addr, n: 1} }

// patch is the new bytes of one site.
type patch struct {
	site *site
	b    []byte
}

func newTable(rw *rewriter, lib int, sites []*site) *table {
	l := &rw.cfg.Libraries[lib]
	t := &table{rw: rw, lib: lib, base: l.Region.TrampAddr(), split: l.Tramp.Split,
		slotIdx: map[wordKey]int{}, branch: map[wordKey]uint64{}}
	if t.split {
		t.base = l.Region.PrivateAddr()
	}
	// Slots in site order, one per site (see wordKey): the order, and so
	// every offset the shared code encodes, depends only on this
	// library's own code.
	for _, s := range sites {
		if _, ok := t.slotIdx[s.key()]; !ok {
			t.slotIdx[s.key()] = len(t.slots)
			t.slots = append(t.slots, s.word())
		}
		if s.kind == KindMemImm {
			t.slotIdx[s.immKey()] = len(t.slots)
			t.slots = append(t.slots, word{addr: s.immTarget})
		}
	}
	t.code.pc0 = t.base + t.slotBytes()
	if t.split {
		t.code.pc0 = l.Region.SharedAddr() + l.Tramp.StubOff
	}
	return t
}

func (t *table) slot(k wordKey) uint64 { return t.base + 8*uint64(t.slotIdx[k]) }

// slotBytes and stubBytes are what the table's two halves use.
func (t *table) slotBytes() uint64 { return 8 * uint64(len(t.slots)) }
func (t *table) stubBytes() uint64 { return uint64(len(t.code.b)) }

// size is the table's used bytes.
func (t *table) size() uint64 { return t.slotBytes() + t.stubBytes() }

// add rewrites one site: its patch and, if it needs one, its stub. On
// error the table is as before.
func (t *table) add(s *site) error {
	mark := len(t.code.b)
	branchMark := len(t.branch)
	p, err := t.build(s)
	if err == nil {
		err = t.code.err
	}
	if err == nil && len(t.code.b)-mark > maxStub {
		err = fmt.Errorf("%v: stub of %d bytes", s.inst, len(t.code.b)-mark)
	}
	if err == nil {
		err = t.checkPatch(s, p)
	}
	if err != nil {
		t.code.b, t.code.err = t.code.b[:mark], nil
		if len(t.branch) != branchMark {
			delete(t.branch, s.key())
		}
		return err
	}
	t.patches = append(t.patches, patch{site: s, b: p})
	return nil
}

func (t *table) build(s *site) ([]byte, error) {
	slot := t.slot(s.key())
	n := s.inst.Len
	back := s.addr + uint64(n)
	site := asm{pc0: s.addr}
	switch s.kind {
	case KindCall, KindJmp, KindJcc:
		stub, ok := t.branch[s.key()]
		if !ok {
			stub = t.code.pc()
			t.code.rm(false, []byte{0xff}, 4, rip(slot)) // jmp *slot(%rip)
			t.branch[s.key()] = stub
		}
		switch s.kind {
		case KindCall:
			// NOPs first: the return address stays the original one.
			site.emit(nops(n - 5)...)
			site.rel32(stub, 0xe8)
		case KindJmp:
			site.rel32(stub, 0xe9)
		case KindJcc:
			site.rel32(stub, 0x0f, jccOpcode(s.inst, s.raw))
		}
	case KindCallSlot:
		site.emit(nops(n - 6)...)
		site.rm(false, []byte{0xff}, 2, rip(slot))
	case KindJmpSlot:
		site.rm(false, []byte{0xff}, 4, rip(slot))
	case KindLea:
		site.rm(true, s.immOp, s.immReg, rip(slot))
	case KindGOT:
		b := append([]byte(nil), s.raw...)
		if err := fixRIP(b, s.inst.PCRelOff, s.addr, slot); err != nil {
			return nil, err
		}
		site.emit(b...)
	case KindImm:
		switch {
		case s.immOp != nil:
			in := asm{pc0: s.addr}
			in.rm(true, s.immOp, s.immReg, rip(slot))
			if in.err == nil && len(in.b) <= n {
				site.emit(in.b...) // fits in place
				break
			}
			stub := t.code.pc()
			t.code.rm(true, s.immOp, s.immReg, rip(slot))
			t.code.rel32(back, 0xe9)
			site.rel32(stub, 0xe9)
		case s.inst.Op == x86asm.PUSH:
			stub := t.code.pc()
			t.code.rm(false, []byte{0xff}, 6, rip(slot)) // push slot(%rip)
			t.code.rel32(back, 0xe9)
			site.rel32(stub, 0xe9)
		default: // movq $sym, mem
			scr, err := scratchFor(s.inst)
			if err != nil {
				return nil, err
			}
			stub := t.code.pc()
			c := &t.code
			c.leaRSP(-redZone)
			c.push(scr)
			c.rm(true, []byte{0x8b}, scr, rip(slot))
			m := moved(s.parts.mem, back, redZone+8)
			c.rm(true, []byte{0x89}, scr, m)
			c.pop(scr)
			c.leaRSP(redZone)
			c.rel32(back, 0xe9)
			site.rel32(stub, 0xe9)
		}
	case KindMem:
		scr, err := scratchFor(s.inst)
		if err != nil {
			return nil, err
		}
		stub := t.code.pc()
		c := &t.code
		c.leaRSP(-redZone)
		c.push(scr)
		c.rm(true, []byte{0x8b}, scr, rip(slot))
		m := t.retarget(s, scr, redZone+8)
		at := c.pc()
		insn, err := s.parts.withMem(at, m)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", s.inst, err)
		}
		if err := checkSameBut(insn, at, s.inst, m); err != nil {
			return nil, err
		}
		c.emit(insn...)
		c.pop(scr)
		c.leaRSP(redZone)
		c.rel32(back, 0xe9)
		site.rel32(stub, 0xe9)
	case KindMemImm:
		// op $imm, mem with both the address of mem and the immediate
		// placement-dependent: both into scratch registers, then the
		// same operation in its "op r/m64, r64" form (same result, same
		// flags).
		a, b, err := scratch2For(s.inst)
		if err != nil {
			return nil, err
		}
		stub := t.code.pc()
		c := &t.code
		c.leaRSP(-redZone)
		c.push(a)
		c.push(b)
		c.rm(true, []byte{0x8b}, a, rip(slot))
		c.rm(true, []byte{0x8b}, b, rip(t.slot(s.immKey())))
		m := t.retarget(s, a, redZone+16)
		at := c.pc()
		c.rm(true, s.immOp, b, m)
		if err := checkRegForm(c.b[at-c.pc0:], s.inst); err != nil {
			return nil, err
		}
		c.pop(b)
		c.pop(a)
		c.leaRSP(redZone)
		c.rel32(back, 0xe9)
		site.rel32(stub, 0xe9)
	case KindLoad:
		// mov slot(%rip),%dst; <the load, from (%dst)>; jmp back
		stub := t.code.pc()
		c := &t.code
		c.rm(true, []byte{0x8b}, s.immReg, rip(slot))
		m := t.retarget(s, s.immReg, 0)
		at := c.pc()
		insn, err := s.parts.withMem(at, m)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", s.inst, err)
		}
		if err := checkSameBut(insn, at, s.inst, m); err != nil {
			return nil, err
		}
		c.emit(insn...)
		c.rel32(back, 0xe9)
		site.rel32(stub, 0xe9)
	case KindBranchMem:
		// Load the pointer, put it on the stack, restore everything and
		// "return" to it: ret $n also drops what the stub pushed.
		scr, err := scratchFor(s.inst)
		if err != nil {
			return nil, err
		}
		stub := t.code.pc()
		c := &t.code
		call := s.inst.Op == x86asm.CALL
		adj, drop := int64(8+16), uint16(8)
		if !call {
			c.leaRSP(-redZone)
			adj, drop = redZone+16, redZone+8
		}
		c.push(scr)
		c.push(scr)
		c.rm(true, []byte{0x8b}, scr, rip(slot))
		m := t.retarget(s, scr, adj)
		c.rm(true, []byte{0x8b}, scr, m)                                       // mov (m),%scr
		c.rm(true, []byte{0x89}, scr, memOp{base: rSP, index: noReg})          // mov %scr,(%rsp)
		c.rm(true, []byte{0x8b}, scr, memOp{base: rSP, index: noReg, disp: 8}) // mov 8(%rsp),%scr
		c.emit(0xc2, byte(drop), byte(drop>>8))                                // ret $drop
		if call {
			site.emit(nops(n - 5)...)
			site.rel32(stub, 0xe8)
		} else {
			site.rel32(stub, 0xe9)
		}
	default:
		return nil, fmt.Errorf("site kind %v", s.kind)
	}
	if site.err != nil {
		return nil, site.err
	}
	if len(site.b) > n {
		return nil, fmt.Errorf("%v: replacement is %d bytes, the instruction %d", s.inst, len(site.b), n)
	}
	site.emit(nops(n - len(site.b))...)
	return site.b, nil
}

// retarget is the memory operand of site s once %scr holds the slot's
// address, with %rsp lowered by rspAdj. An absolute disp32 with a base
// and an index needs the base folded into %scr first (lea: no flags).
func (t *table) retarget(s *site, scr int, rspAdj int64) memOp {
	o := s.parts.mem
	switch {
	case o.base == rRIP, o.base == noReg && o.index == noReg:
		return memOp{base: scr, index: noReg}
	case o.base == noReg:
		return memOp{base: scr, index: o.index, scale: o.scale}
	case o.index == noReg && o.base == rSP:
		return memOp{base: rSP, index: scr, scale: 1, disp: rspAdj}
	case o.index == noReg:
		return memOp{base: scr, index: o.base, scale: 1}
	}
	fold := memOp{base: o.base, index: scr, scale: 1}
	if o.base == rSP {
		fold.disp = rspAdj
	}
	t.code.rm(true, []byte{0x8d}, scr, fold) // lea (base,%scr),%scr
	return memOp{base: scr, index: o.index, scale: o.scale}
}

// moved is memory operand m of an instruction ending at end, as seen from
// a stub that lowered %rsp by rspAdj.
func moved(m memOp, end uint64, rspAdj int64) memOp {
	switch {
	case m.base == rRIP:
		return memOp{base: rRIP, index: noReg, target: end + uint64(m.disp)}
	case m.base == rSP:
		m.disp += rspAdj
	}
	return m
}

// checkPatch decodes a patched site: NOPs and exactly one instruction
// that reaches into this library's table (a branch to a stub, or a
// RIP-relative operand naming the site's slot).
func (t *table) checkPatch(s *site, b []byte) error {
	if len(b) != s.inst.Len {
		return fmt.Errorf("%v: patch is %d bytes, want %d", s.inst, len(b), s.inst.Len)
	}
	real := 0
	for off := 0; off < len(b); {
		in, err := x86asm.Decode(b[off:], 64)
		if err != nil {
			return fmt.Errorf("patched site %#x: % x does not decode: %w", s.addr, b, err)
		}
		pc := s.addr + uint64(off)
		off += in.Len
		if in.Op == x86asm.NOP {
			continue
		}
		real++
		end := pc + uint64(in.Len)
		switch {
		case in.PCRel == 4 && in.Args[0] != nil:
			var to uint64
			if r, ok := in.Args[0].(x86asm.Rel); ok {
				to = end + uint64(int64(r))
				if to < t.code.pc0 || to >= t.code.pc() {
					return fmt.Errorf("patched site %#x: %v branches to %#x, outside the stubs", s.addr, in, to)
				}
				continue
			}
			for _, a := range in.Args {
				if m, ok := a.(x86asm.Mem); ok && m.Base == x86asm.RIP {
					to = end + uint64(m.Disp)
				}
			}
			if to != t.slot(s.key()) {
				return fmt.Errorf("patched site %#x: %v addresses %#x, not its slot", s.addr, in, to)
			}
		default:
			return fmt.Errorf("patched site %#x: unexpected %v", s.addr, in)
		}
	}
	if real != 1 {
		return errors.New("patched site holds more than one instruction")
	}
	return nil
}
