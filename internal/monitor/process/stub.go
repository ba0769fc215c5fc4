package process

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"sync"

	"github.com/unipool/unipool/internal/monitor"
)

// Every instance starts as the stub: a static executable whose whole image
// is one page holding `syscall; int3` and a loop that makes a table of
// system calls. The monitor points the stopped child's %rip at one or the
// other to make system calls on its behalf, and the int3 hands control
// back. Nothing else of the stub ever runs.

// stubAddr is where the stub's page lives in every instance. It must stay
// clear of all guest addresses (below abi.ASLRBase+abi.ASLRSize, 68 GiB)
// and of the initial stack the kernel puts near the top of the user address
// space (at most 16 GiB below 0x7fff_ffff_f000), which exec maps first.
const stubAddr = 0x7f00_0000_0000

const (
	stubCodeOff = 64 + 56 // ELF header, one program header, then the code
	// stubSyscall is `syscall; int3`: one system call.
	stubSyscall   = stubAddr + stubCodeOff
	stubAfterTrap = stubSyscall + 3 // %rip after its int3 trapped
	// stubBatch runs %r12 system calls from a table at %rbx (see batchCall)
	// and traps after the last one or the first that fails.
	stubBatch = stubSyscall + 3
	// stubBatchSyscallOff is where the batch's `syscall` lies from
	// stubSyscall.
	stubBatchSyscallOff = 0x23
	stubBatchDone       = stubSyscall + 0x3b // %rip after its int3 trapped
)

// stubSource is stubCode in assembly (stub_test.go assembles it and
// compares).
const stubSource = `
	syscall
	int3
batch:
	test %r12, %r12
	jz 2f
	mov (%rbx), %rax
	mov 8(%rbx), %rdi
	mov 16(%rbx), %rsi
	mov 24(%rbx), %rdx
	mov 32(%rbx), %r10
	mov 40(%rbx), %r8
	mov 48(%rbx), %r9
	syscall
	mov %rax, 56(%rbx)
	cmp $-4095, %rax
	jae 2f
	add $64, %rbx
	dec %r12
	jmp batch
2:	int3`

// stubCode is stubSource, assembled.
var stubCode = []byte{
	0x0f, 0x05, 0xcc,
	0x4d, 0x85, 0xe4, 0x74, 0x32,
	0x48, 0x8b, 0x03, 0x48, 0x8b, 0x7b, 0x08, 0x48, 0x8b, 0x73, 0x10, 0x48, 0x8b, 0x53, 0x18,
	0x4c, 0x8b, 0x53, 0x20, 0x4c, 0x8b, 0x43, 0x28, 0x4c, 0x8b, 0x4b, 0x30,
	0x0f, 0x05, 0x48, 0x89, 0x43, 0x38,
	0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, 0x73, 0x09,
	0x48, 0x83, 0xc3, 0x40, 0x49, 0xff, 0xcc, 0xeb, 0xc9,
	0xcc,
}

// stubELF returns the stub executable's bytes.
func stubELF() []byte {
	le := binary.LittleEndian
	b := make([]byte, stubCodeOff+len(stubCode))
	copy(b, elf.ELFMAG)
	b[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	b[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	b[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	b[elf.EI_OSABI] = byte(elf.ELFOSABI_NONE)
	le.PutUint16(b[16:], uint16(elf.ET_EXEC))
	le.PutUint16(b[18:], uint16(elf.EM_X86_64))
	le.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(b[24:], stubSyscall) // e_entry
	le.PutUint64(b[32:], 64)          // e_phoff
	le.PutUint16(b[52:], 64)          // e_ehsize
	le.PutUint16(b[54:], 56)          // e_phentsize
	le.PutUint16(b[56:], 1)           // e_phnum
	ph := b[64:]
	le.PutUint32(ph[0:], uint32(elf.PT_LOAD))
	le.PutUint32(ph[4:], uint32(elf.PF_R|elf.PF_X))
	le.PutUint64(ph[8:], 0)         // p_offset
	le.PutUint64(ph[16:], stubAddr) // p_vaddr
	le.PutUint64(ph[24:], stubAddr) // p_paddr
	le.PutUint64(ph[32:], uint64(len(b)))
	le.PutUint64(ph[40:], uint64(len(b)))
	le.PutUint64(ph[48:], 0x1000) // p_align
	copy(b[stubCodeOff:], stubCode)
	return b
}

var (
	stubOnce sync.Once
	stubFd   uintptr
	stubErr  error
)

// stubExecutable returns the fd of a sealed memfd holding the stub, so
// there is no file on disk to go stale or be tampered with. spawn passes
// it to the child as its last fd and execs /proc/self/fd/N: the child's
// own fd (a child without capabilities may not follow the monitor's
// /proc/PID/fd links).
func stubExecutable() (uintptr, error) {
	stubOnce.Do(func() {
		f, err := monitor.SealedFile("unipool-stub", stubELF())
		if err != nil {
			stubErr = fmt.Errorf("process monitor: the stub: %w", err)
			return
		}
		// f stays open for the life of the process: its fd is the stub.
		stubKeep = f
		stubFd = f.Fd()
	})
	return stubFd, stubErr
}

var stubKeep *os.File
