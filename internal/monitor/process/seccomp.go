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
// or number (int $0x80 included), with two exceptions no guest can turn
// against anyone but itself:
//   - the monitor's own last call, munmap of the stub's page made from the
//     stub itself (stubUnmapIP, the address after its `syscall`). Once that
//     page is gone nothing can run at that address again (the guest can map
//     nothing), and the stub's page tables go with it;
//   - madvise(MADV_DONTNEED) from the discard page (discardIP): the monitor
//     makes it for the guest's free-page reports (abi.PortDiscard), on the
//     ranges loader.Layout.Discardable allows. A guest that jumps there
//     itself can only drop pages of its own process: they read back as
//     zero or as their file (a pool blob) has them.

// offsets into struct seccomp_data.
const (
	seccompNr   = 0
	seccompArch = 4
	seccompIP   = 8
	seccompArgs = 16
)

const auditArchX8664 = 0xc000003e

// stubUnmapIP is the %rip seccomp sees for the stub's munmap: after the
// `syscall` at stubSyscall.
const stubUnmapIP = stubSyscall + 2

// stubSize is the size of the stub's mapping.
const stubSize = abi.PageSize

// discardIP is the %rip seccomp sees for a madvise made from the discard
// page at page (the stub's page mapped again near the guest, see build):
// after the `syscall` at its stubCodeOff.
func discardIP(page uint64) uint64 { return page + stubCodeOff + 2 }

// seccompFilter returns the classic-BPF program as the kernel reads it:
// struct sock_filter { u16 code; u8 jt, jf; u32 k; }. discardPage is the
// instance's discard page, 0 for none.
func seccompFilter(discardPage uint64) []byte {
	raw, err := bpf.Assemble(seccompProgram(discardPage))
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

// seccompProgram allows munmap(stubAddr, stubSize) from stubUnmapIP and,
// with a discard page, madvise(*, *, MADV_DONTNEED) from its discardIP,
// and kills on anything else.
func seccompProgram(discardPage uint64) []bpf.Instruction {
	type check struct {
		off uint32
		val uint32
	}
	rules := [][]check{{
		{seccompArch, auditArchX8664},
		{seccompNr, unix.SYS_MUNMAP}, // x32's numbers have bit 30 set: not equal
		{seccompIP, uint32(stubUnmapIP & 0xffffffff)},
		{seccompIP + 4, uint32(stubUnmapIP >> 32)},
		{seccompArgs, uint32(stubAddr & 0xffffffff)},
		{seccompArgs + 4, uint32(stubAddr >> 32)},
		{seccompArgs + 8, stubSize},
		{seccompArgs + 12, 0},
	}}
	if discardPage != 0 {
		ip := discardIP(discardPage)
		rules = append(rules, []check{
			{seccompArch, auditArchX8664},
			{seccompNr, unix.SYS_MADVISE},
			{seccompIP, uint32(ip & 0xffffffff)},
			{seccompIP + 4, uint32(ip >> 32)},
			{seccompArgs + 16, unix.MADV_DONTNEED},
			{seccompArgs + 20, 0},
		})
	}
	// Each rule allows when all its tests pass; a failing test jumps to
	// the next rule, after the last one to the kill at the end.
	var prog []bpf.Instruction
	for _, checks := range rules {
		for i, c := range checks {
			left := len(checks) - i - 1 // tests after this one, two instructions each
			prog = append(prog,
				bpf.LoadAbsolute{Off: c.off, Size: 4},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: c.val, SkipFalse: uint8(2*left + 1)})
		}
		prog = append(prog, bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
	}
	return append(prog, bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS})
}

// sockFprog encodes struct sock_fprog { u16 len; (pad) ; u64 filter } for a
// filter of n instructions at addr in the child.
func sockFprog(n int, addr uint64) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b[0:], uint16(n))
	binary.LittleEndian.PutUint64(b[8:], addr)
	return b
}
