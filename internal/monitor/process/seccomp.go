package process

import (
	"encoding/binary"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/abi"
)

// The guest ABI has no system calls: a guest talks to its monitor only
// through the port I/O, hlt and wrmsr it traps on. So the filter kills the
// process on whatever system call it attempts, whatever the architecture
// or number (int $0x80 included), but:
//   - any x86-64 system call made from the stub's page at stubAddr, from
//     either of its two `syscall` instructions (stubUnmapIP, stubBatchIP:
//     the addresses after them). Those are the monitor's: it builds every
//     instance by injecting calls there, and its last, the munmap of that
//     page (unmapStub), is made before the guest is entered. From then on
//     nothing can run at those addresses: the page is gone and the guest
//     can map nothing (the only call it could make is the madvise below,
//     which maps nothing), so no guest ever gets past this rule. The
//     filter is installed once, in the tracer thread's zygote, before any
//     instance exists, and every instance inherits it through fork: one
//     filter shared by all instances of a thread (zygote.go), where a
//     filter of its own cost each instance 6-10 KiB of kernel memory;
//   - madvise(MADV_DONTNEED) from a `syscall` at offset stubCodeOff of a
//     page (discardIP): the monitor makes it from an instance's discard
//     page (the stub's page mapped again beside the stack, its address
//     per instance, hence not named here) for the guest's free-page
//     reports (abi.PortDiscard), on the ranges loader.Layout.Discardable
//     allows. A guest can make that call too: by jumping to its discard
//     page, as it always could, or from a `syscall` of its own code at
//     that page offset. Either way it gets one thing only, madvise
//     (DONTNEED) of its own address space: pages it drops read back as
//     zero or as their file (a pool blob) has them. No other process's
//     memory, no mapping, no file changes.

// offsets into struct seccomp_data.
const (
	seccompNr   = 0
	seccompArch = 4
	seccompIP   = 8
	seccompArgs = 16
)

const auditArchX8664 = 0xc000003e

// stubUnmapIP is the %rip seccomp sees for a call made from the stub's
// first `syscall` (remote.call), the munmap of the stub among them; and
// stubBatchIP for one of the batch (remote.batch).
const (
	stubUnmapIP = stubSyscall + 2
	stubBatchIP = stubSyscall + stubBatchSyscallOff + 2
)

// stubSize is the size of the stub's mapping.
const stubSize = abi.PageSize

// discardIP is the %rip seccomp sees for a madvise made from the discard
// page at page (the stub's page mapped again near the guest, see build):
// after the `syscall` at its stubCodeOff.
func discardIP(page uint64) uint64 { return page + stubCodeOff + 2 }

// seccompFilter returns the classic-BPF program as the kernel reads it:
// struct sock_filter { u16 code; u8 jt, jf; u32 k; }.
func seccompFilter() []byte {
	raw, err := bpf.Assemble(seccompProgram())
	if err != nil {
		panic(err) // a fixed program: a test assembles it
	}
	out := make([]byte, 0, 8*len(raw))
	for _, r := range raw {
		out = binary.LittleEndian.AppendUint16(out, r.Op)
		out = append(out, r.Jt, r.Jf)
		out = binary.LittleEndian.AppendUint32(out, r.K)
	}
	return out
}

// seccompProgram allows any x86-64 call from stubUnmapIP or stubBatchIP,
// and madvise(*, *, MADV_DONTNEED) from a discardIP, and kills on
// anything else.
func seccompProgram() []bpf.Instruction {
	const allow, kill = unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_KILL_PROCESS
	ld := func(off uint32) bpf.Instruction { return bpf.LoadAbsolute{Off: off, Size: 4} }
	// Indexes: 16 is allow, 17 kill; a jump skips from the next one.
	return []bpf.Instruction{
		/* 0 */ ld(seccompArch),
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: auditArchX8664, SkipTrue: 15}, // kill
		/* 2 */ ld(seccompIP + 4),
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(stubAddr >> 32), SkipTrue: 3}, // 7
		/* 4 */ ld(seccompIP),
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(stubUnmapIP & 0xffffffff), SkipTrue: 10}, // allow
		/* 6 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(stubBatchIP & 0xffffffff), SkipTrue: 9}, // allow
		// Not the stub: madvise(MADV_DONTNEED) from a discard page, or
		// nothing. (x32's numbers have bit 30 set: not equal.)
		/* 7 */ ld(seccompNr),
		/* 8 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.SYS_MADVISE, SkipTrue: 8}, // kill
		/* 9 */ ld(seccompArgs + 16),
		/* 10 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.MADV_DONTNEED, SkipTrue: 6}, // kill
		/* 11 */ ld(seccompArgs + 20),
		/* 12 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: 4}, // kill
		/* 13 */ ld(seccompIP),
		/* 14 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: abi.PageSize - 1},
		/* 15 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: stubCodeOff + 2, SkipTrue: 0, SkipFalse: 1},
		/* 16 */ bpf.RetConstant{Val: allow},
		/* 17 */ bpf.RetConstant{Val: kill},
	}
}

// sockFprog encodes struct sock_fprog { u16 len; (pad) ; u64 filter } for a
// filter of n instructions at addr in the child.
func sockFprog(n int, addr uint64) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b[0:], uint16(n))
	binary.LittleEndian.PutUint64(b[8:], addr)
	return b
}
