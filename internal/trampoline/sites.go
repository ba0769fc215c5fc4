package trampoline

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/arch/x86/x86asm"

	"github.com/unipool/unipool/internal/desc"
)

// Kind is how a site is rewritten.
type Kind int

// The kinds of site, by what the original instruction was.
const (
	KindCall      Kind = iota // call rel32 -> call stub; stub: jmp *slot
	KindJmp                   // jmp rel32 (tail call) -> jmp stub
	KindJcc                   // jcc rel32 -> jcc stub
	KindCallSlot              // 6-byte call (ld's "addr32 call") -> call *slot(%rip) in place
	KindJmpSlot               // 6+-byte jmp -> jmp *slot(%rip) in place
	KindLea                   // lea ext(%rip),%r64 -> mov slot(%rip),%r64 in place
	KindGOT                   // op ext@GOTPCREL(%rip) -> op slot(%rip) in place
	KindImm                   // absolute immediate -> the slot (in place or via a stub)
	KindMem                   // memory operand elsewhere -> stub via a scratch register
	KindBranchMem             // call/jmp *mem elsewhere -> stub ending in ret $n
	KindLoad                  // a load into a GPR from elsewhere -> stub using the GPR itself
	KindMemImm                // op $addr, mem elsewhere (both dependent) -> stub: op %r2,(%r1)
	numKinds
)

var kindNames = [numKinds]string{"call", "jmp", "jcc", "call-slot", "jmp-slot", "lea", "got", "imm", "mem", "branch-mem", "load", "mem-imm"}

func (k Kind) String() string {
	if k >= 0 && k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// site is one instruction of a shared part to rewrite.
type site struct {
	lib    int
	addr   uint64
	inst   x86asm.Inst
	raw    []byte // the instruction's bytes in the image (aliased)
	kind   Kind
	target desc.Addr // what the slot holds (unless konst)
	// konst: the table word holds the constant val, the same in every
	// instance (a fixed address, or what the GOT entry of an undefined
	// weak symbol holds)
	konst bool
	val   uint64
	parts *insnParts
	reloc reloc // the relocation of the dependent field
	pcrel bool  // the field was PC-relative
	// for KindImm: the operation re-targeted at the slot
	immOp  []byte // opcode of "op slot(%rip), reg" (8b: mov); KindMemImm: of "op reg, r/m"
	immReg int
	// for KindMemImm: what the immediate's word holds, and its relocation
	immTarget desc.Addr
	immReloc  reloc
}

// role is which field of an instruction a relocation patches.
type role int

const (
	roleRel     role = iota // rel32 of a direct branch
	roleRIP                 // disp32 of a RIP-relative memory operand
	roleImm                 // trailing immediate
	roleAbsDisp             // disp32 of a non-RIP memory operand
)

// field is one relocation of an instruction, understood.
type field struct {
	r      reloc
	role   role
	va     uint64 // the address the field encodes
	got    bool   // a GOT load: the instruction reads the address held at va
	konst  bool   // ... which is a constant
	val    uint64 // (the constant)
	dep    bool   // depends on placement
	lib    int    // library of the target (-1: fixed address)
	target desc.Addr
}

// insnAt finds the instruction holding va in an executable section by
// decoding forward from the closest preceding symbol or section start.
func (rw *rewriter) insnAt(va uint64) (uint64, x86asm.Inst, error) {
	sec := rw.im.section(va)
	if !rw.im.executable(sec) {
		return 0, x86asm.Inst{}, errors.New("not in code")
	}
	end := rw.im.sections[sec].Addr + rw.im.sections[sec].Size
	start, ok := rw.im.decodeStart(va)
	if !ok {
		return 0, x86asm.Inst{}, errors.New("no symbol or section start before it")
	}
	pc := start
	if rw.sweepFrom == start && rw.sweepPC <= va && rw.sweepPC > start {
		pc = rw.sweepPC // sites come sorted: continue the previous sweep
	}
	for pc <= va {
		n := min(uint64(15), end-pc)
		b, ok := rw.im.bytesAt(pc, n)
		if !ok {
			return 0, x86asm.Inst{}, fmt.Errorf("code at %#x not in the file", pc)
		}
		inst, err := x86asm.Decode(b, 64)
		if err != nil {
			if len(b) >= 4 && b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && (b[3] == 0xfa || b[3] == 0xfb) {
				pc += 4 // endbr64/endbr32, which the decoder does not know
				continue
			}
			return 0, x86asm.Inst{}, fmt.Errorf("cannot decode at %#x (% x): %v", pc, b, err)
		}
		if va < pc+uint64(inst.Len) {
			rw.sweepFrom, rw.sweepPC = start, pc
			return pc, inst, nil
		}
		pc += uint64(inst.Len)
	}
	return 0, x86asm.Inst{}, fmt.Errorf("decoding from %#x passes over it", start)
}

// understand works out which field of inst (at addr, bytes raw) relocation
// r patches, what address the field encodes and whether it depends on
// where libraries are placed.
func (rw *rewriter) understand(siteLib int, addr uint64, inst x86asm.Inst, raw []byte, r reloc) (field, error) {
	f := field{r: r, lib: -1}
	off := int(r.Off - addr)
	cls := classify(r.Type)
	size := 4
	if cls == relAbs64 {
		size = 8
	}
	if off+size > len(raw) {
		return f, fmt.Errorf("relocation field runs past the instruction %v", inst)
	}
	var memArg *x86asm.Mem
	var immArg *x86asm.Imm
	var relArg bool
	for _, a := range inst.Args {
		switch a := a.(type) {
		case x86asm.Mem:
			memArg = &a
		case x86asm.Imm:
			immArg = &a
		case x86asm.Rel:
			relArg = true
		}
	}
	ripField := inst.PCRel == 4 && inst.PCRelOff == off
	if !ripField && (tlsAccess(r.Type) || rw.staleTLSCall(r)) {
		// A relaxed thread-local access: the field is a thread-pointer
		// offset now. (Unrelaxed, it reads a GOT entry: data, below.)
		return f, nil
	}
	switch {
	case ripField:
		if cls != relPC32 {
			return f, fmt.Errorf("%v on the PC-relative field of %v", r.Type, inst)
		}
		f.role = roleRIP
		if relArg {
			f.role = roleRel
		}
		f.va = addr + uint64(inst.Len) + uint64(int64(int32(binary.LittleEndian.Uint32(raw[off:]))))
	case immArg != nil && off+size == len(raw) && (cls == relAbs32 || cls == relAbs64):
		v := uint64(*immArg)
		if size == 4 {
			v32 := binary.LittleEndian.Uint32(raw[off:])
			if uint64(*immArg) != uint64(v32) && uint64(*immArg) != uint64(int64(int32(v32))) {
				return f, fmt.Errorf("%v: immediate %#x does not match its field", inst, uint64(*immArg))
			}
			// What the CPU makes of it: a 32-bit operation zero-extends
			// into the register, a 64-bit one (and push) sign-extends.
			v = uint64(v32)
			if inst.DataSize == 64 || inst.Op == x86asm.PUSH {
				v = uint64(int64(int32(v32)))
			}
		} else if v != binary.LittleEndian.Uint64(raw[off:]) {
			return f, fmt.Errorf("%v: immediate %#x does not match its field", inst, v)
		}
		f.role, f.va = roleImm, v
	case memArg != nil && cls == relAbs32:
		p, err := splitInsn(raw, inst)
		if err != nil {
			return f, fmt.Errorf("%v: %w", inst, err)
		}
		if p.dispAt != off || p.dispLen != 4 || p.mem.base == rRIP {
			return f, fmt.Errorf("%v at offset %d of %v matches no operand", r.Type, off, inst)
		}
		f.role, f.va = roleAbsDisp, uint64(p.mem.disp) // disp32 is sign-extended
	default:
		return f, fmt.Errorf("%v at offset %d of %v matches no operand", r.Type, off, inst)
	}

	if f.role == roleRIP && viaGOT(r.Type) && inst.Op != x86asm.LEA {
		got, ok := rw.im.bytesAt(f.va, 8)
		if !ok {
			return f, fmt.Errorf("%v reads GOT entry %#x, which is not in the file", inst, f.va)
		}
		val := binary.LittleEndian.Uint64(got)
		if r.Sym != 0 && rw.im.symbols[r.Sym].Section != elf.SHN_UNDEF && val != rw.im.symbols[r.Sym].Value {
			return f, fmt.Errorf("%v: GOT entry %#x holds %#x, not the address of %s", inst, f.va, val, rw.im.symbolName(r))
		}
		rw.noteGOT(f.va, r, val)
		lib, a, err := rw.resolve(r, val)
		if err != nil {
			return f, err
		}
		if lib >= 0 {
			f.got, f.dep, f.lib, f.target = true, true, lib, a
			return f, nil
		}
		// A constant in the GOT (an undefined weak symbol): a word of
		// the table can hold it as well, if the GOT lies elsewhere.
		glib, ga, err := rw.resolve(reloc{}, f.va)
		if err != nil {
			return f, err
		}
		if glib == siteLib {
			return f, nil
		}
		f.got, f.konst, f.val, f.dep, f.lib, f.target = true, true, val, true, glib, ga
		return f, nil
	}

	lib, a, err := rw.resolve(r, f.va)
	if err != nil {
		return f, err
	}
	f.lib, f.target = lib, a
	switch f.role {
	case roleRel, roleRIP:
		if lib == siteLib {
			return f, nil
		}
		f.dep = true
		if lib < 0 {
			// A fixed address (0 for an undefined weak symbol, an
			// absolute symbol): the same in every instance, so a
			// constant word of the table can hold it.
			f.konst, f.val = true, f.va
		}
	default:
		f.dep = lib >= 0
	}
	return f, nil
}

// aluToRM maps an ALU operation to its "op r/m64, r64" opcode, the form
// that takes the slot as its memory operand.
var aluToRM = map[x86asm.Op]byte{
	x86asm.ADD: 0x03, x86asm.OR: 0x0b, x86asm.ADC: 0x13, x86asm.SBB: 0x1b,
	x86asm.AND: 0x23, x86asm.SUB: 0x2b, x86asm.XOR: 0x33, x86asm.CMP: 0x3b,
	x86asm.TEST: 0x85,
}

// regToRM maps an operation with an immediate source to its
// "op r/m64, r64" opcode, the form a stub uses once the immediate is in a
// register.
var regToRM = map[x86asm.Op]byte{
	x86asm.ADD: 0x01, x86asm.OR: 0x09, x86asm.ADC: 0x11, x86asm.SBB: 0x19,
	x86asm.AND: 0x21, x86asm.SUB: 0x29, x86asm.XOR: 0x31, x86asm.CMP: 0x39,
	x86asm.TEST: 0x85, x86asm.MOV: 0x89,
}

// planMemImm decides how to rewrite an instruction with two dependent
// fields: "op $addr, mem" whose immediate and memory operand both encode
// placement-dependent addresses. Unikraft's event code compares an event's
// handler-list end with its start (cmpq $uk_event_X+8, uk_event_X(%rip)),
// and both lie in an image-wide table. Only 64-bit operations without
// legacy prefixes: the slot holds the whole address, which a 64-bit
// operation compares whole (the imm32 was sign-extended to it).
func (rw *rewriter) planMemImm(siteLib int, addr uint64, inst x86asm.Inst, raw []byte, dep []field) (*site, error) {
	if len(dep) != 2 {
		return nil, fmt.Errorf("%v: %d placement-dependent fields", inst, len(dep))
	}
	mem, imm := dep[0], dep[1]
	if mem.role == roleImm {
		mem, imm = imm, mem
	}
	if imm.role != roleImm || (mem.role != roleRIP && mem.role != roleAbsDisp) || mem.got {
		return nil, fmt.Errorf("%v: more than one placement-dependent field", inst)
	}
	op, ok := regToRM[inst.Op]
	if !ok || inst.DataSize != 64 || inst.AddrSize != 64 {
		return nil, fmt.Errorf("%v: two placement-dependent fields, in an operation not rewritable", inst)
	}
	if _, isMem := inst.Args[0].(x86asm.Mem); !isMem {
		return nil, fmt.Errorf("%v: two placement-dependent fields, not op $imm, mem", inst)
	}
	if _, isImm := inst.Args[1].(x86asm.Imm); !isImm {
		return nil, fmt.Errorf("%v: two placement-dependent fields, not op $imm, mem", inst)
	}
	p, err := splitInsn(raw, inst)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", inst, err)
	}
	if len(p.legacy) > 0 || p.vex != nil {
		return nil, fmt.Errorf("%v: two placement-dependent fields and a prefix", inst)
	}
	if _, _, err := scratch2For(inst); err != nil {
		return nil, err
	}
	return &site{lib: siteLib, addr: addr, inst: inst, raw: raw, kind: KindMemImm, parts: p,
		target: mem.target, konst: mem.konst, val: mem.val, reloc: mem.r, pcrel: mem.role == roleRIP,
		immOp: []byte{op}, immTarget: imm.target, immReloc: imm.r}, nil
}

// plan decides how to rewrite an instruction with one dependent field.
func (rw *rewriter) plan(siteLib int, addr uint64, inst x86asm.Inst, raw []byte, f field) (*site, error) {
	s := &site{lib: siteLib, addr: addr, inst: inst, raw: raw, target: f.target, konst: f.konst, val: f.val}
	if inst.AddrSize != 64 && f.role != roleRel {
		// (ld's "addr32 call" is a plain call: the prefix means nothing
		// to a near branch in 64-bit mode.)
		return nil, fmt.Errorf("%v: 32-bit addressing", inst)
	}
	switch {
	case f.role == roleRel:
		switch {
		case inst.PCRel != 4:
			return nil, fmt.Errorf("%v: not a rel32 branch", inst)
		case inst.Op == x86asm.CALL && inst.Len >= 6:
			s.kind = KindCallSlot
		case inst.Op == x86asm.CALL:
			s.kind = KindCall
		case inst.Op == x86asm.JMP && inst.Len >= 6:
			s.kind = KindJmpSlot
		case inst.Op == x86asm.JMP:
			s.kind = KindJmp
		case jccOpcode(inst, raw) != 0:
			s.kind = KindJcc
		default:
			return nil, fmt.Errorf("%v: branch kind not rewritable", inst)
		}
		return s, nil

	case f.got:
		if inst.MemBytes != 8 {
			return nil, fmt.Errorf("%v: reads %d bytes of a GOT entry", inst, inst.MemBytes)
		}
		s.kind = KindGOT
		return s, nil

	case f.role == roleRIP && inst.Op == x86asm.LEA:
		dst, ok := inst.Args[0].(x86asm.Reg)
		if !ok || dst < x86asm.RAX || dst > x86asm.R15 {
			return nil, fmt.Errorf("%v: lea into a register narrower than an address", inst)
		}
		s.kind, s.immOp, s.immReg = KindLea, []byte{0x8b}, int(dst-x86asm.RAX)
		return s, nil

	case f.role == roleImm:
		return rw.planImm(s, f)
	}

	// A memory operand elsewhere: RIP-relative, or an absolute disp32.
	p, err := splitInsn(raw, inst)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", inst, err)
	}
	s.parts = p
	switch inst.Op {
	case x86asm.CALL, x86asm.JMP:
		if inst.MemBytes != 8 || hasPrefix(raw, 0x66) {
			return nil, fmt.Errorf("%v: indirect branch through a %d-byte pointer", inst, inst.MemBytes)
		}
		s.kind = KindBranchMem
	case x86asm.PUSH, x86asm.POP, x86asm.LCALL, x86asm.LJMP, x86asm.CMPXCHG8B, x86asm.CMPXCHG16B, x86asm.ENTER, x86asm.LEAVE:
		return nil, fmt.Errorf("%v: uses the stack or fixed registers", inst)
	default:
		s.kind = KindMem
		if r, ok := loadDest(inst, p); ok {
			s.kind, s.immReg = KindLoad, r
		}
	}
	for _, a := range inst.Args {
		if r, ok := a.(x86asm.Reg); ok {
			if n, ok := gpr(r); ok && n == rSP {
				return nil, fmt.Errorf("%v: names the stack pointer", inst)
			}
		}
	}
	if _, err := scratchFor(inst); err != nil {
		return nil, err
	}
	return s, nil
}

// planImm handles an absolute address as an immediate.
func (rw *rewriter) planImm(s *site, f field) (*site, error) {
	inst := s.inst
	dst, isReg := inst.Args[0].(x86asm.Reg)
	switch inst.Op {
	case x86asm.MOV:
		if isReg {
			// mov $sym,%r32 zero-extends, mov $sym,%r64 sign-extends: both
			// mean the address, which the slot holds in full.
			n, ok := gpr(dst)
			if !ok || inst.DataSize < 32 || highByte(dst) {
				return nil, fmt.Errorf("%v: address into a narrow register", inst)
			}
			s.kind, s.immOp, s.immReg = KindImm, []byte{0x8b}, n
			return s, nil
		}
		if _, isMem := inst.Args[0].(x86asm.Mem); isMem && inst.DataSize == 64 {
			p, err := splitInsn(s.raw, inst)
			if err != nil {
				return nil, fmt.Errorf("%v: %w", inst, err)
			}
			if _, err := scratchFor(inst); err != nil {
				return nil, err
			}
			s.parts, s.kind = p, KindImm // a store: movq $sym, mem
			return s, nil
		}
		return nil, fmt.Errorf("%v: stores an address in %d bits", inst, inst.DataSize)
	case x86asm.PUSH:
		if hasPrefix(s.raw, 0x66) {
			return nil, fmt.Errorf("%v: pushes 16 bits", inst)
		}
		s.kind = KindImm
		return s, nil
	}
	if op, ok := aluToRM[inst.Op]; ok && isReg && dst >= x86asm.RAX && dst <= x86asm.R15 {
		s.kind, s.immOp, s.immReg = KindImm, []byte{op}, int(dst-x86asm.RAX)
		return s, nil
	}
	return nil, fmt.Errorf("%v: absolute address in an operation not rewritable", inst)
}

// jccOpcode returns the second opcode byte (0x80..0x8f) of a jcc rel32.
func jccOpcode(inst x86asm.Inst, raw []byte) byte {
	if inst.PCRel != 4 || inst.PCRelOff < 2 || inst.PCRelOff > len(raw) {
		return 0
	}
	b := raw[inst.PCRelOff-2 : inst.PCRelOff]
	if b[0] == 0x0f && b[1]&0xf0 == 0x80 {
		return b[1]
	}
	return 0
}

// scratchFor picks a register the instruction does not name. rax, rcx
// and rdx are never picked: many instructions use them implicitly
// (mul, div, shifts by %cl, cmpxchg). Neither are registers that need
// a REX prefix, so an instruction without one keeps its meaning.
func scratchFor(inst x86asm.Inst) (int, error) {
	used := namedRegs(inst)
	for _, r := range []int{rBX, rSI, rDI} {
		if !used[r] {
			return r, nil
		}
	}
	return 0, fmt.Errorf("%v: no free scratch register", inst)
}

// namedRegs are the general registers an instruction's operands name.
func namedRegs(inst x86asm.Inst) map[int]bool {
	used := map[int]bool{}
	for _, a := range inst.Args {
		switch a := a.(type) {
		case x86asm.Reg:
			if n, ok := gpr(a); ok {
				used[n] = true
			}
		case x86asm.Mem:
			if n, ok := gpr(a.Base); ok {
				used[n] = true
			}
			if n, ok := gpr(a.Index); ok {
				used[n] = true
			}
		}
	}
	return used
}

// scratch2For picks two registers the instruction does not name (see
// scratchFor).
func scratch2For(inst x86asm.Inst) (int, int, error) {
	var free []int
	used := namedRegs(inst)
	for _, r := range []int{rBX, rSI, rDI} {
		if !used[r] {
			free = append(free, r)
		}
	}
	if len(free) < 2 {
		return 0, 0, fmt.Errorf("%v: no two free scratch registers", inst)
	}
	return free[0], free[1], nil
}

// checkRegForm decodes the "op reg, mem" a KindMemImm stub made of inst
// and checks it is the same operation on 64 bits.
func checkRegForm(enc []byte, orig x86asm.Inst) error {
	in, err := x86asm.Decode(enc, 64)
	if err != nil {
		return fmt.Errorf("%v: the register form does not decode: %w", orig, err)
	}
	if in.Op != orig.Op || in.DataSize != 64 || in.Len != len(enc) {
		return fmt.Errorf("%v: the register form decodes as %v", orig, in)
	}
	if _, ok := in.Args[0].(x86asm.Mem); !ok {
		return fmt.Errorf("%v: the register form decodes as %v", orig, in)
	}
	return nil
}

// hasPrefix reports whether legacy prefix p precedes the opcode of raw.
func hasPrefix(raw []byte, p byte) bool {
	for _, b := range raw {
		switch b {
		case 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3:
			if b == p {
				return true
			}
			continue
		}
		return false
	}
	return false
}

// loadDest returns the destination of a plain load into a general
// register that the memory operand does not use: the register can hold
// the slot's address first, so the stub needs no scratch and no stack.
// Narrower than 32 bits, the load would keep the address's upper bits.
func loadDest(inst x86asm.Inst, p *insnParts) (int, bool) {
	switch inst.Op {
	case x86asm.MOV, x86asm.MOVZX, x86asm.MOVSX, x86asm.MOVSXD:
	default:
		return 0, false
	}
	dst, ok := inst.Args[0].(x86asm.Reg)
	if !ok || inst.DataSize < 32 || highByte(dst) {
		return 0, false
	}
	if _, ok := inst.Args[1].(x86asm.Mem); !ok {
		return 0, false
	}
	n, ok := gpr(dst)
	if !ok || n == rSP || n == p.mem.base || n == p.mem.index {
		return 0, false
	}
	return n, true
}

// staleTLSCall reports whether r names __tls_get_addr: the caller has
// found that its field is not the rel32 of a call, so it is the call that
// ended a general- or local-dynamic TLS sequence ld relaxed, whose
// relocation stays on what is now "lea off(%rax),%rax".
func (rw *rewriter) staleTLSCall(r reloc) bool {
	return r.Sym != 0 && rw.im.symbols[r.Sym].Name == "__tls_get_addr"
}
