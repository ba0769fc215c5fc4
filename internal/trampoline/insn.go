package trampoline

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// Register numbers as the x86-64 encoding uses them (REX bit 3 + 3 bits).
const (
	rAX = iota
	rCX
	rDX
	rBX
	rSP
	rBP
	rSI
	rDI
	r8
	r9
	r10
	r11
	r12
	r13
	r14
	r15
	rRIP  = 16 // only as a memory base: RIP-relative
	noReg = -1
)

// gpr returns the encoding number of the 64-bit register that x86asm
// register r is part of, and whether r is a general-purpose register.
func gpr(r x86asm.Reg) (int, bool) {
	switch {
	case r >= x86asm.AL && r <= x86asm.BL:
		return int(r - x86asm.AL), true
	case r >= x86asm.AH && r <= x86asm.BH:
		return int(r - x86asm.AH), true // the high byte of rax..rbx
	case r >= x86asm.SPB && r <= x86asm.R15B:
		return int(r-x86asm.SPB) + 4, true
	case r >= x86asm.AX && r <= x86asm.R15W:
		return int(r - x86asm.AX), true
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return int(r - x86asm.EAX), true
	case r >= x86asm.RAX && r <= x86asm.R15:
		return int(r - x86asm.RAX), true
	case r == x86asm.RIP:
		return rRIP, true
	}
	return 0, false
}

// highByte reports whether r is AH, CH, DH or BH, which no instruction
// with a REX prefix can name.
func highByte(r x86asm.Reg) bool { return r >= x86asm.AH && r <= x86asm.BH }

// memOp is a memory operand: base + index*scale + disp, or, with base
// rRIP, the address target (the displacement is computed when the
// instruction's address and length are known).
type memOp struct {
	base, index int // register numbers or noReg
	scale       uint8
	disp        int64
	target      uint64 // with base == rRIP
}

// modrm encodes the ModRM, SIB and displacement bytes of reg (the ModRM.reg
// field, low 3 bits used) and m. It returns the REX.X and REX.B bits m
// needs and the offset of a RIP-relative disp32 in the bytes (or -1).
func modrm(reg int, m memOp) (out []byte, x, b bool, ripAt int, err error) {
	r := byte(reg&7) << 3
	if m.index == rSP {
		return nil, false, false, 0, errors.New("rsp cannot be an index")
	}
	if m.scale == 0 {
		m.scale = 1
	}
	ss := map[uint8]byte{1: 0, 2: 1, 4: 2, 8: 3}[m.scale]
	if m.scale != 1 && m.scale != 2 && m.scale != 4 && m.scale != 8 {
		return nil, false, false, 0, fmt.Errorf("scale %d", m.scale)
	}
	disp32 := func(out []byte) ([]byte, error) {
		if m.disp != int64(int32(m.disp)) {
			return nil, fmt.Errorf("displacement %#x does not fit 32 bits", m.disp)
		}
		return binary.LittleEndian.AppendUint32(out, uint32(int32(m.disp))), nil
	}
	switch {
	case m.base == rRIP:
		if m.index != noReg {
			return nil, false, false, 0, errors.New("RIP-relative operand with an index")
		}
		return []byte{0x05 | r, 0, 0, 0, 0}, false, false, 1, nil
	case m.base == noReg:
		// mod=00 rm=100, SIB base=101: disp32 [+ index*scale], no base.
		idx := byte(4) // none
		if m.index != noReg {
			idx = byte(m.index & 7)
			x = m.index >= 8
		}
		out = []byte{0x04 | r, ss<<6 | idx<<3 | 5}
		out, err = disp32(out)
		return out, x, false, -1, err
	}
	b = m.base >= 8
	var mod byte
	switch {
	case m.disp == 0 && m.base&7 != rBP:
		mod = 0
	case m.disp == int64(int8(m.disp)):
		mod = 1
	default:
		mod = 2
	}
	if m.index == noReg && m.base&7 != rSP {
		out = []byte{mod<<6 | r | byte(m.base&7)}
	} else {
		idx := byte(4)
		if m.index != noReg {
			idx = byte(m.index & 7)
			x = m.index >= 8
		}
		out = []byte{mod<<6 | r | 4, ss<<6 | idx<<3 | byte(m.base&7)}
	}
	switch mod {
	case 1:
		out = append(out, byte(int8(m.disp)))
	case 2:
		out, err = disp32(out)
	}
	return out, x, b, -1, err
}

// fixRIP fills the disp32 at ripAt in an instruction of length len(insn)
// placed at pc so that it addresses target.
func fixRIP(insn []byte, ripAt int, pc, target uint64) error {
	d := int64(target - (pc + uint64(len(insn))))
	if d != int64(int32(d)) {
		return fmt.Errorf("RIP-relative target %#x out of reach from %#x", target, pc)
	}
	binary.LittleEndian.PutUint32(insn[ripAt:], uint32(int32(d)))
	return nil
}

// encodeRM assembles [REX] opcode ModRM... [imm] at pc for the simple
// instructions the tables are made of (no legacy prefixes).
func encodeRM(pc uint64, w bool, opcode []byte, reg int, m memOp, imm []byte) ([]byte, error) {
	body, x, b, ripAt, err := modrm(reg, m)
	if err != nil {
		return nil, err
	}
	var out []byte
	rex := byte(0x40)
	if w {
		rex |= 8
	}
	if reg >= 8 {
		rex |= 4
	}
	if x {
		rex |= 2
	}
	if b {
		rex |= 1
	}
	if rex != 0x40 {
		out = append(out, rex)
	}
	out = append(out, opcode...)
	bodyAt := len(out)
	out = append(out, body...)
	out = append(out, imm...)
	if ripAt >= 0 {
		if err := fixRIP(out, bodyAt+ripAt, pc, m.target); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// insnParts is a decoded instruction with a ModRM memory operand split
// into its encoding fields, so the memory operand can be replaced.
type insnParts struct {
	inst    x86asm.Inst
	legacy  []byte // legacy prefixes, in order
	rex     byte   // 0: none
	vex     []byte // the 2- or 3-byte VEX prefix, or nil
	opcode  []byte
	modrm   byte
	mem     memOp // as encoded (RIP-relative: disp holds the raw displacement)
	dispAt  int   // offset of the displacement in the instruction
	dispLen int
	imm     []byte // bytes after the displacement
}

var errNoModRM = errors.New("instruction has no ModRM memory operand")

// splitInsn splits raw (exactly one instruction, as decoded in inst) into
// its fields, and cross-checks them against the decoder's memory operand.
func splitInsn(raw []byte, inst x86asm.Inst) (*insnParts, error) {
	if len(raw) != inst.Len || inst.Len == 0 {
		return nil, errors.New("instruction length mismatch")
	}
	if inst.AddrSize != 64 {
		return nil, errors.New("memory operand is not a 64-bit register")
	}
	p := &insnParts{inst: inst}
	i := 0
	for i < len(raw) {
		switch raw[i] {
		case 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3:
			p.legacy = append(p.legacy, raw[i])
			i++
			continue
		}
		break
	}
	if i < len(raw) && raw[i]&0xf0 == 0x40 {
		p.rex = raw[i]
		i++
	}
	var rexX, rexB bool
	if p.rex != 0 {
		rexX, rexB = p.rex&2 != 0, p.rex&1 != 0
	}
	if i >= len(raw) {
		return nil, errNoModRM
	}
	switch raw[i] {
	case 0x62, 0x8f:
		return nil, errors.New("EVEX/XOP encoding not supported")
	case 0xc5:
		if p.rex != 0 || i+3 > len(raw) {
			return nil, errNoModRM
		}
		p.vex = raw[i : i+2]
		p.opcode = raw[i+2 : i+3]
		i += 3
	case 0xc4:
		if p.rex != 0 || i+4 > len(raw) {
			return nil, errNoModRM
		}
		p.vex = raw[i : i+3]
		rexX, rexB = raw[i+1]&0x40 == 0, raw[i+1]&0x20 == 0
		p.opcode = raw[i+3 : i+4]
		i += 4
	case 0x0f:
		n := 2
		if i+1 < len(raw) && (raw[i+1] == 0x38 || raw[i+1] == 0x3a) {
			n = 3
		}
		if i+n > len(raw) {
			return nil, errNoModRM
		}
		p.opcode = raw[i : i+n]
		i += n
	case 0xa0, 0xa1, 0xa2, 0xa3:
		return nil, errors.New("moffs operand (no ModRM)")
	default:
		p.opcode = raw[i : i+1]
		i++
	}
	if i >= len(raw) {
		return nil, errNoModRM
	}
	p.modrm = raw[i]
	i++
	mod, rm := p.modrm>>6, int(p.modrm&7)
	if mod == 3 {
		return nil, errNoModRM
	}
	m := memOp{base: noReg, index: noReg, scale: 1}
	dispLen := map[byte]int{0: 0, 1: 1, 2: 4}[mod]
	if rm == 4 {
		if i >= len(raw) {
			return nil, errNoModRM
		}
		sib := raw[i]
		i++
		m.scale = 1 << (sib >> 6)
		idx := int(sib>>3&7) | b2i(rexX)<<3
		if idx != rSP {
			m.index = idx
		}
		base := int(sib & 7)
		if base == rBP && mod == 0 {
			dispLen = 4
		} else {
			m.base = base | b2i(rexB)<<3
		}
	} else if rm == rBP && mod == 0 {
		m.base = rRIP
		dispLen = 4
	} else {
		m.base = rm | b2i(rexB)<<3
	}
	if i+dispLen > len(raw) {
		return nil, errNoModRM
	}
	p.dispAt, p.dispLen = i, dispLen
	switch dispLen {
	case 1:
		m.disp = int64(int8(raw[i]))
	case 4:
		m.disp = int64(int32(binary.LittleEndian.Uint32(raw[i:])))
	}
	i += dispLen
	p.mem = m
	p.imm = raw[i:]

	// The decoder must agree: exactly one memory argument, the same one.
	var dm *x86asm.Mem
	for _, a := range inst.Args {
		if mm, ok := a.(x86asm.Mem); ok {
			if dm != nil {
				return nil, errors.New("two memory operands")
			}
			mm := mm
			dm = &mm
		}
	}
	if dm == nil {
		return nil, errNoModRM
	}
	if err := sameMem(m, *dm); err != nil {
		return nil, err
	}
	return p, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sameMem checks that m (as split from the bytes) is the decoder's d.
func sameMem(m memOp, d x86asm.Mem) error {
	base, index := noReg, noReg
	if d.Base != 0 {
		n, ok := gpr(d.Base)
		if !ok || (d.Base >= x86asm.EAX && d.Base <= x86asm.R15L) || d.Base == x86asm.EIP {
			return fmt.Errorf("memory base %v not a 64-bit register", d.Base)
		}
		base = n
	}
	if d.Index != 0 {
		n, ok := gpr(d.Index)
		if !ok || d.Index < x86asm.RAX || d.Index > x86asm.R15 {
			return fmt.Errorf("memory index %v not a 64-bit register", d.Index)
		}
		index = n
	}
	scale := d.Scale
	if scale == 0 {
		scale = 1
	}
	if index == noReg {
		scale = m.scale // meaningless without an index
	}
	if base != m.base || index != m.index || scale != m.scale || d.Disp != m.disp {
		return fmt.Errorf("decoder reads memory operand %v, bytes say base %d index %d scale %d disp %#x", d, m.base, m.index, m.scale, m.disp)
	}
	return nil
}

// withMem re-encodes the instruction at pc with its memory operand
// replaced by m, keeping prefixes, opcode, ModRM.reg and immediate.
func (p *insnParts) withMem(pc uint64, m memOp) ([]byte, error) {
	body, x, b, ripAt, err := modrm(int(p.modrm>>3&7), m)
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), p.legacy...)
	switch {
	case p.vex != nil && len(p.vex) == 2:
		if x || b {
			return nil, errors.New("2-byte VEX cannot extend the new operand's registers")
		}
		out = append(out, p.vex...)
	case p.vex != nil:
		v := append([]byte(nil), p.vex...)
		v[1] |= 0x60 // X̄ and B̄ are inverted: set means 0
		if x {
			v[1] &^= 0x40
		}
		if b {
			v[1] &^= 0x20
		}
		out = append(out, v...)
	default:
		rex := p.rex &^ 3
		if x {
			rex |= 0x42
		}
		if b {
			rex |= 0x41
		}
		if p.rex == 0 && rex != 0 {
			for _, a := range p.inst.Args {
				if r, ok := a.(x86asm.Reg); ok && highByte(r) {
					return nil, errors.New("a REX prefix would turn a high-byte register into another")
				}
			}
		}
		if rex != 0 {
			out = append(out, rex|0x40)
		}
	}
	out = append(out, p.opcode...)
	bodyAt := len(out)
	out = append(out, body...)
	out = append(out, p.imm...)
	if len(out) > 15 {
		return nil, errors.New("re-encoded instruction longer than 15 bytes")
	}
	if ripAt >= 0 {
		if err := fixRIP(out, bodyAt+ripAt, pc, m.target); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkSameBut decodes enc and checks it is orig's instruction with the
// memory operand want (at pc): same operation, sizes and other operands.
// Every instruction the rewriter writes passes through such a check.
func checkSameBut(enc []byte, pc uint64, orig x86asm.Inst, want memOp) error {
	got, err := x86asm.Decode(enc, 64)
	if err != nil {
		return fmt.Errorf("re-encoded % x does not decode: %w", enc, err)
	}
	if got.Len != len(enc) || got.Op != orig.Op || got.DataSize != orig.DataSize || got.MemBytes != orig.MemBytes {
		return fmt.Errorf("re-encoded % x decodes as %v, want %v", enc, got, orig)
	}
	for i := range orig.Args {
		a, b := orig.Args[i], got.Args[i]
		if om, ok := a.(x86asm.Mem); ok {
			gm, ok := b.(x86asm.Mem)
			if !ok || gm.Segment != om.Segment {
				return fmt.Errorf("re-encoded % x: operand %d is %v", enc, i, b)
			}
			w := want
			if w.base == rRIP {
				w.disp = int64(w.target) - int64(pc+uint64(len(enc)))
			}
			if err := sameMem(w, gm); err != nil {
				return fmt.Errorf("re-encoded % x: %w", enc, err)
			}
			continue
		}
		if a != b {
			return fmt.Errorf("re-encoded % x: operand %d is %v, want %v", enc, i, b, a)
		}
	}
	return nil
}

// nops returns n bytes of the recommended multi-byte NOPs.
func nops(n int) []byte {
	table := [][]byte{
		{},
		{0x90},
		{0x66, 0x90},
		{0x0f, 0x1f, 0x00},
		{0x0f, 0x1f, 0x40, 0x00},
		{0x0f, 0x1f, 0x44, 0x00, 0x00},
		{0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00},
		{0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00},
		{0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
	}
	var out []byte
	for n > 0 {
		k := min(n, 8)
		out = append(out, table[k]...)
		n -= k
	}
	return out
}
