package microvm

import (
	"encoding/binary"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/kvm"
)

// Control-register and EFER bits (Intel SDM vol. 3, 2.5 and 2.2.1).
const (
	cr0PE = 1 << 0
	cr0MP = 1 << 1
	cr0ET = 1 << 4
	cr0NE = 1 << 5
	cr0WP = 1 << 16
	cr0PG = 1 << 31

	cr4PAE        = 1 << 5
	cr4OSFXSR     = 1 << 9  // SSE: fxsave/fxrstor and SSE instructions
	cr4OSXMMEXCPT = 1 << 10 // SSE: unmasked SIMD exceptions raise #XM

	eferLME = 1 << 8
	eferLMA = 1 << 10
	eferNXE = 1 << 11

	rflagsReserved = 1 << 1 // bit 1 is always set; IF stays clear
)

// GDT descriptors: flat 64-bit code, flat data. Accessed bits are preset
// so the CPU never writes the GDT.
const (
	gdtCode64 = 0x00af_9b00_0000_ffff // P, DPL0, code exec/read/accessed, L, G
	gdtData   = 0x00cf_9300_0000_ffff // P, DPL0, data read/write/accessed, D/B, G
)

// Exceptions whose frame carries an error code pushed by the CPU.
var errorCodeVectors = map[int]bool{8: true, 10: true, 11: true, 12: true, 13: true, 14: true, 17: true, 21: true, 29: true, 30: true}

const (
	numVectors = 32
	stubSize   = 16
	tssSize    = 104
)

// writeSystemArea fills the GDT, TSS, IDT and exception stubs into mem
// (guest-physical memory from GPA 0).
func writeSystemArea(mem []byte) {
	le := binary.LittleEndian
	gdt := mem[gpaGDT:]
	le.PutUint64(gdt[selCode:], gdtCode64)
	le.PutUint64(gdt[selData:], gdtData)
	// A 64-bit TSS descriptor takes two slots (SDM 8.2.3), type 0xb: busy,
	// as KVM expects of a loaded TR.
	tss := uint64(gpaTSS)
	le.PutUint64(gdt[selTSS:], (tssSize-1)|(tss&0xffffff)<<16|0x8b<<40|(tss>>24&0xff)<<56)
	le.PutUint64(gdt[selTSS+8:], tss>>32)
	// TSS: only IST1 is used (offset 36); no I/O bitmap (offset past the end).
	le.PutUint64(mem[gpaTSS+36:], gpaFaultStackTop)
	le.PutUint16(mem[gpaTSS+102:], tssSize)

	for v := 0; v < numVectors; v++ {
		stub := uint64(gpaStubs + v*stubSize)
		gate := mem[gpaIDT+v*16:]
		le.PutUint16(gate[0:], uint16(stub))
		le.PutUint16(gate[2:], selCode)
		gate[4] = 1    // IST1
		gate[5] = 0x8e // present, DPL0, 64-bit interrupt gate
		le.PutUint16(gate[6:], uint16(stub>>16))
		le.PutUint32(gate[8:], uint32(stub>>32))

		// [push $0;] push $v; mov $portFault,%dx; out %al,(%dx); 1: hlt; jmp 1b
		var code []byte
		if !errorCodeVectors[v] {
			code = append(code, 0x6a, 0x00)
		}
		code = append(code, 0x6a, byte(v), 0x66, 0xba, byte(portFault&0xff), byte(portFault>>8), 0xee, 0xf4, 0xeb, 0xfd)
		copy(mem[stub:stub+stubSize], code)
	}
}

// faultFrame is what a stub leaves on IST1: vector, error code, then the
// CPU's interrupt frame (SDM 6.14.2).
type faultFrame struct {
	Vector, ErrorCode, RIP, CS, RFLAGS, RSP, SS uint64
}

// readFaultFrame reads the frame at the top of IST1.
func readFaultFrame(mem []byte) faultFrame {
	le := binary.LittleEndian
	at := func(i int) uint64 { return le.Uint64(mem[gpaFaultStackTop-8*i:]) }
	return faultFrame{Vector: at(7), ErrorCode: at(6), RIP: at(5), CS: at(4), RFLAGS: at(3), RSP: at(2), SS: at(1)}
}

// longModeSregs puts s into the guest ABI's state: 64-bit long mode,
// paging on (cr3), flat segments, SSE enabled, interrupts off.
func longModeSregs(s *kvm.Sregs, cr3 uint64) {
	code := kvm.Segment{Base: 0, Limit: 0xffffffff, Selector: selCode, Type: 0xb, Present: 1, S: 1, L: 1, G: 1}
	data := kvm.Segment{Base: 0, Limit: 0xffffffff, Selector: selData, Type: 0x3, Present: 1, S: 1, DB: 1, G: 1}
	s.CS = code
	s.DS, s.ES, s.FS, s.GS, s.SS = data, data, data, data, data
	s.TR = kvm.Segment{Base: gpaTSS, Limit: tssSize - 1, Selector: selTSS, Type: 0xb, Present: 1}
	s.GDT = kvm.DTable{Base: gpaGDT, Limit: selTSS + 16 - 1}
	s.IDT = kvm.DTable{Base: gpaIDT, Limit: numVectors*16 - 1}
	s.CR0 = cr0PE | cr0MP | cr0ET | cr0NE | cr0WP | cr0PG
	s.CR3 = cr3
	s.CR4 = cr4PAE | cr4OSFXSR | cr4OSXMMEXCPT
	s.EFER = eferLME | eferLMA | eferNXE
}

// resumeRegs is a snapshot's register state. Only the arithmetic flags
// and DF are the guest's; interrupts stay off, as at entry.
func resumeRegs(r *desc.Regs) kvm.Regs {
	const guestFlags = 0xcd5
	return kvm.Regs{RAX: r.RAX, RBX: r.RBX, RCX: r.RCX, RDX: r.RDX, RSI: r.RSI, RDI: r.RDI, RSP: r.RSP, RBP: r.RBP,
		R8: r.R8, R9: r.R9, R10: r.R10, R11: r.R11, R12: r.R12, R13: r.R13, R14: r.R14, R15: r.R15,
		RIP: r.RIP, RFLAGS: rflagsReserved | r.RFLAGS&guestFlags}
}

// entryRegs is the ABI's register state at entry.
func entryRegs(entry, stackTop, bootInfo uint64) kvm.Regs {
	return kvm.Regs{RIP: entry, RSP: stackTop, RDI: bootInfo, RFLAGS: rflagsReserved}
}
