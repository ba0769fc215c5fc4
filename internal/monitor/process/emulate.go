package process

import (
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// In ring 3 the guest's privileged instructions raise #GP, which Linux
// delivers as SIGSEGV with si_code SI_KERNEL. The tracer decodes the
// instruction at %rip and does what the KVM monitor's exit handlers do.
// Only the handful of encodings the guest ABI uses are decoded by hand;
// anything else is a fault.

// opKind is what a trapped instruction does.
type opKind int

const (
	opOut   opKind = iota + 1 // out imm8/dx, al/ax/eax
	opIn                      // in al/ax/eax, imm8/dx
	opOuts                    // [rep] outsb/outsw/outsd
	opHlt                     // hlt
	opWrmsr                   // wrmsr
	opRdmsr                   // rdmsr
	opNop                     // cli, sti: no interrupts are ever delivered
)

// trapInsn is a decoded privileged instruction.
type trapInsn struct {
	kind opKind
	size int  // operand bytes: 1, 2 or 4 (port I/O)
	port int  // the immediate port, or -1 for %dx
	rep  bool // outs with a rep prefix
	len  int  // instruction length
}

// maxInsnLen is the longest x86 instruction.
const maxInsnLen = 15

// decodeTrap decodes the instruction in code (the bytes at %rip).
func decodeTrap(code []byte) (trapInsn, bool) {
	in := trapInsn{size: 4, port: -1}
	i := 0
	opsize16 := false
	for ; i < len(code) && i < maxInsnLen; i++ {
		switch b := code[i]; {
		case b == 0x66:
			opsize16 = true
		case b == 0xf3:
			in.rep = true
		case b == 0xf2, b == 0x67, b == 0x2e, b == 0x3e, b == 0x26, b == 0x36, b == 0x64, b == 0x65:
			// Other prefixes change nothing the guest ABI relies on.
		case b >= 0x40 && b <= 0x4f:
			// REX: no effect on port I/O, hlt or the MSR instructions.
		default:
			goto opcode
		}
	}
	return in, false
opcode:
	if i >= len(code) {
		return in, false
	}
	if opsize16 {
		in.size = 2
	}
	op := code[i]
	i++
	switch op {
	case 0xe4, 0xe5, 0xe6, 0xe7: // in/out with an imm8 port
		if i >= len(code) {
			return in, false
		}
		in.port = int(code[i])
		i++
		in.kind = map[byte]opKind{0xe4: opIn, 0xe5: opIn, 0xe6: opOut, 0xe7: opOut}[op]
		if op == 0xe4 || op == 0xe6 {
			in.size = 1
		}
	case 0xec, 0xed:
		in.kind = opIn
		if op == 0xec {
			in.size = 1
		}
	case 0xee, 0xef:
		in.kind = opOut
		if op == 0xee {
			in.size = 1
		}
	case 0x6e, 0x6f:
		in.kind = opOuts
		if op == 0x6e {
			in.size = 1
		}
	case 0xf4:
		in.kind = opHlt
	case 0xfa, 0xfb:
		in.kind = opNop
	case 0x0f:
		if i >= len(code) {
			return in, false
		}
		switch code[i] {
		case 0x30:
			in.kind = opWrmsr
		case 0x32:
			in.kind = opRdmsr
		default:
			return in, false
		}
		i++
	default:
		return in, false
	}
	if i > maxInsnLen {
		return in, false // the CPU raises #GP for it, not for the opcode
	}
	if in.kind != opOuts {
		in.rep = false
	}
	in.len = i
	return in, true
}

// disasm renders the instruction at code for a fault report.
func disasm(code []byte) string {
	if len(code) == 0 {
		return "unreadable"
	}
	inst, err := x86asm.Decode(code, 64)
	if err != nil {
		return fmt.Sprintf("undecodable bytes % x", code[:min(len(code), 8)])
	}
	return x86asm.GNUSyntax(inst, 0, nil)
}

// MSRs the guest may write (and read back).
const (
	msrFSBase       = 0xc0000100 // IA32_FS_BASE: TLS and the stack canary
	msrGSBase       = 0xc0000101 // IA32_GS_BASE
	msrKernelGSBase = 0xc0000102 // IA32_KERNEL_GS_BASE: only swapgs reads it
)

// Serial port registers the guest may poll: COM1+5 is the line status
// register; reporting "transmitter empty" lets a polling driver send.
const (
	portCOM1LSR = 0x3fd
	lsrTHREmpty = 0x20
	lsrTxIdle   = 0x40
)

// portIn is the value an `in` from port returns: this serial port is
// always ready to send, and every other port reads as a floating bus (all
// ones), as under the kvm monitor.
func portIn(port int) uint32 {
	if port == portCOM1LSR {
		return 0xffffff00 | lsrTHREmpty | lsrTxIdle
	}
	return 0xffffffff
}
