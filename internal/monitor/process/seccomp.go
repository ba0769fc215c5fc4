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
// or number (int $0x80 included), with one exception no guest can use:
// the monitor's own last call, munmap of the stub's page made from the
// stub itself (stubUnmapIP, the address after its `syscall`). Once that
// page is gone nothing can run at that address again (the guest can map
// nothing), and the stub's page tables go with it.

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

// seccompProgram allows munmap(stubAddr, stubSize) from stubUnmapIP and
// kills on anything else.
func seccompProgram() []bpf.Instruction {
	// Each test jumps to the kill at the end when it fails.
	checks := []struct {
		off uint32
		val uint32
	}{
		{seccompArch, auditArchX8664},
		{seccompNr, unix.SYS_MUNMAP}, // x32's numbers have bit 30 set: not equal
		{seccompIP, uint32(stubUnmapIP & 0xffffffff)},
		{seccompIP + 4, uint32(stubUnmapIP >> 32)},
		{seccompArgs, uint32(stubAddr & 0xffffffff)},
		{seccompArgs + 4, uint32(stubAddr >> 32)},
		{seccompArgs + 8, stubSize},
		{seccompArgs + 12, 0},
	}
	var prog []bpf.Instruction
	for i, c := range checks {
		left := len(checks) - i - 1 // tests after this one, two instructions each
		prog = append(prog,
			bpf.LoadAbsolute{Off: c.off, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: c.val, SkipFalse: uint8(2*left + 1)})
	}
	return append(prog,
		bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW},
		bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS})
}

// sockFprog encodes struct sock_fprog { u16 len; (pad) ; u64 filter } for a
// filter of n instructions at addr in the child.
func sockFprog(n int, addr uint64) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b[0:], uint16(n))
	binary.LittleEndian.PutUint64(b[8:], addr)
	return b
}
