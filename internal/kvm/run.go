package kvm

import "unsafe"

// Run is the head of struct kvm_run, the area a vCPU shares with the
// kernel; the exit-specific union follows at offset 32.
type Run struct {
	RequestInterruptWindow     uint8
	ImmediateExit              uint8
	_                          [6]uint8
	ExitReason                 uint32
	ReadyForInterruptInjection uint8
	IFFlag                     uint8
	Flags                      uint16
	CR8                        uint64
	APICBase                   uint64
	exit                       [256]byte // the union
}

// RunIO is kvm_run.io (KVM_EXIT_IO).
type RunIO struct {
	Direction  uint8 // ExitIOIn or ExitIOOut
	Size       uint8 // bytes per access: 1, 2 or 4
	Port       uint16
	Count      uint32 // accesses (string instructions)
	DataOffset uint64 // of the data, from the start of kvm_run
}

// RunMMIO is kvm_run.mmio (KVM_EXIT_MMIO).
type RunMMIO struct {
	PhysAddr uint64
	Data     [8]uint8
	Len      uint32
	IsWrite  uint8
}

// RunFailEntry is kvm_run.fail_entry (KVM_EXIT_FAIL_ENTRY).
type RunFailEntry struct {
	HardwareEntryFailureReason uint64
	CPU                        uint32
}

// RunInternal is kvm_run.internal (KVM_EXIT_INTERNAL_ERROR).
type RunInternal struct {
	Suberror uint32
	NData    uint32
	Data     [16]uint64
}

// IO is the union as kvm_run.io.
func (r *Run) IO() *RunIO { return (*RunIO)(unsafe.Pointer(&r.exit[0])) }

// MMIO is the union as kvm_run.mmio.
func (r *Run) MMIO() *RunMMIO { return (*RunMMIO)(unsafe.Pointer(&r.exit[0])) }

// FailEntry is the union as kvm_run.fail_entry.
func (r *Run) FailEntry() *RunFailEntry { return (*RunFailEntry)(unsafe.Pointer(&r.exit[0])) }

// Internal is the union as kvm_run.internal.
func (r *Run) Internal() *RunInternal { return (*RunInternal)(unsafe.Pointer(&r.exit[0])) }
