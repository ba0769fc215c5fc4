// Package seccomp confines the monitors' own threads, one filter per kind
// of thread as Firecracker does: the thread that serves guests (a process
// monitor's tracer, a KVM vCPU) may make the few system calls its job and
// Go's runtime need, with their arguments checked where they can be, and
// nothing else. A filter is installed on the calling thread only (no
// TSYNC), so it must run on a thread locked to its goroutine for good
// (runtime.LockOSThread, never unlocked): the thread exits with the
// goroutine and its filter never serves another goroutine.
//
// A refused call fails with EPERM rather than killing: the daemon holds
// every other instance, and a monitor thread that a hostile guest tricked
// into a refused call gains nothing from it.
//
// The programs are classic BPF, assembled with golang.org/x/net/bpf.
package seccomp

import (
	"fmt"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Arg is a condition on one argument: (arg & Mask) == Value on its low 32
// bits and, unless Wide is false, a zero high half.
type Arg struct {
	Index int    // 0..5
	Mask  uint32 // 0 means all bits
	Value uint32
	// AnyHigh skips the high-half check (int arguments: the kernel reads
	// only the low 32 bits).
	AnyHigh bool
}

// Rule allows one system call when all of its conditions hold; a call
// with several rules is allowed when any one holds.
type Rule struct {
	Nr   uintptr
	Args []Arg
}

// Eq is the condition arg == v (a 64-bit value below 2^32).
func Eq(i int, v uint32) Arg { return Arg{Index: i, Value: v} }

// Allow is a rule with no conditions.
func Allow(nrs ...uintptr) []Rule {
	var rs []Rule
	for _, nr := range nrs {
		rs = append(rs, Rule{Nr: nr})
	}
	return rs
}

// offsets into struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

const auditArchX8664 = 0xc000003e

// retErrno is SECCOMP_RET_ERRNO with EPERM.
const retErrno = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)

// Assemble builds the filter: any architecture but x86-64 (the x32 ABI
// included) is killed, an allowed call passes, any other gets EPERM.
func Assemble(rules []Rule) ([]bpf.RawInstruction, error) {
	byNr := map[uintptr][]Rule{}
	var order []uintptr
	for _, r := range rules {
		if byNr[r.Nr] == nil {
			order = append(order, r.Nr)
		}
		byNr[r.Nr] = append(byNr[r.Nr], r)
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: auditArchX8664, SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS},
		bpf.LoadAbsolute{Off: offNr, Size: 4},
		// x32 system calls have bit 30 set.
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x40000000, SkipFalse: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS},
	}
	for _, nr := range order {
		block := syscallBlock(byNr[nr])
		if len(block) > 255 {
			return nil, fmt.Errorf("seccomp: system call %d: %d instructions, too many to jump over", nr, len(block))
		}
		// A block ends in returns, so the accumulator (the number) only
		// needs to survive the tests between blocks.
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(nr), SkipFalse: uint8(len(block))})
		prog = append(prog, block...)
	}
	prog = append(prog, bpf.RetConstant{Val: retErrno})
	return bpf.Assemble(prog)
}

// syscallBlock allows the call if any rule holds, else refuses it.
func syscallBlock(rules []Rule) []bpf.Instruction {
	var out []bpf.Instruction
	for _, r := range rules {
		if len(r.Args) == 0 {
			return append(out, bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
		}
		// One alternative: each failed test jumps past its end.
		var alt []bpf.Instruction
		var fails []int // indexes of jumps whose false branch fails
		for _, a := range r.Args {
			alt = append(alt, bpf.LoadAbsolute{Off: uint32(offArgs + 8*a.Index), Size: 4})
			if a.Mask != 0 {
				alt = append(alt, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: a.Mask})
			}
			fails = append(fails, len(alt))
			alt = append(alt, bpf.JumpIf{Cond: bpf.JumpEqual, Val: a.Value})
			if !a.AnyHigh {
				alt = append(alt, bpf.LoadAbsolute{Off: uint32(offArgs + 8*a.Index + 4), Size: 4})
				fails = append(fails, len(alt))
				alt = append(alt, bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0})
			}
		}
		alt = append(alt, bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
		for _, i := range fails {
			j := alt[i].(bpf.JumpIf)
			j.SkipFalse = uint8(len(alt) - i - 1)
			alt[i] = j
		}
		out = append(out, alt...)
	}
	return append(out, bpf.RetConstant{Val: retErrno})
}

// InstallThread confines the calling thread (and the children it forks)
// with rules. The caller must have locked its goroutine to the thread
// for good. It sets no_new_privs on the thread first, as seccomp asks of
// a process without CAP_SYS_ADMIN.
func InstallThread(rules []Rule) error {
	raw, err := Assemble(rules)
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp: prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	// flags 0: this thread only.
	if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog))); e != 0 {
		return fmt.Errorf("seccomp: install the filter: %w", e)
	}
	return nil
}
