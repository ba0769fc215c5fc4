package process

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// The guest ABI has no system calls: a guest talks to its monitor only
// through the port I/O, hlt and wrmsr it traps on. So the filter is one
// instruction that kills the process on whatever system call it attempts,
// whatever the architecture or number (int $0x80 included).

// seccompFilter returns the classic-BPF program as the kernel reads it:
// struct sock_filter { u16 code; u8 jt, jf; u32 k; }.
func seccompFilter() []byte {
	insn := make([]byte, 8)
	binary.LittleEndian.PutUint16(insn[0:], unix.BPF_RET|unix.BPF_K)
	binary.LittleEndian.PutUint32(insn[4:], unix.SECCOMP_RET_KILL_PROCESS)
	return insn
}

// sockFprog encodes struct sock_fprog { u16 len; (pad) ; u64 filter } for a
// filter of n instructions at addr in the child.
func sockFprog(n int, addr uint64) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b[0:], uint16(n))
	binary.LittleEndian.PutUint64(b[8:], addr)
	return b
}
