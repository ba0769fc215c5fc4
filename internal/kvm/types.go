package kvm

// UserspaceMemoryRegion is struct kvm_userspace_memory_region.
type UserspaceMemoryRegion struct {
	Slot          uint32
	Flags         uint32
	GuestPhysAddr uint64
	MemorySize    uint64 // bytes; 0 deletes the slot
	UserspaceAddr uint64
}

// Memory slot flags (KVM_MEM_*).
const (
	MemLogDirtyPages = 1 << 0
	MemReadonly      = 1 << 1
)

// Regs is struct kvm_regs: the general-purpose registers.
type Regs struct {
	RAX, RBX, RCX, RDX, RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11, R12, R13, R14, R15   uint64
	RIP, RFLAGS                            uint64
}

// Segment is struct kvm_segment: a segment register's hidden state.
type Segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8
	S        uint8
	L        uint8
	G        uint8
	AVL      uint8
	Unusable uint8
	_        uint8
}

// DTable is struct kvm_dtable: a descriptor table register (GDTR, IDTR).
type DTable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// Sregs is struct kvm_sregs: segment and control registers.
type Sregs struct {
	CS, DS, ES, FS, GS, SS Segment
	TR, LDT                Segment
	GDT, IDT               DTable
	CR0, CR2, CR3, CR4     uint64
	CR8                    uint64
	EFER                   uint64
	APICBase               uint64
	InterruptBitmap        [4]uint64 // (KVM_NR_INTERRUPTS + 63) / 64
}

// Translation is struct kvm_translation (KVM_TRANSLATE).
type Translation struct {
	LinearAddress   uint64
	PhysicalAddress uint64
	Valid           uint8
	Writeable       uint8
	Usermode        uint8
	_               [5]uint8
}

// MSREntry is struct kvm_msr_entry.
type MSREntry struct {
	Index    uint32
	Reserved uint32
	Data     uint64
}

// msrsHeader is the fixed head of struct kvm_msrs; entries follow it.
type msrsHeader struct {
	NMSRs uint32
	_     uint32
}

// CPUIDEntry2 is struct kvm_cpuid_entry2.
type CPUIDEntry2 struct {
	Function uint32
	Index    uint32
	Flags    uint32
	EAX      uint32
	EBX      uint32
	ECX      uint32
	EDX      uint32
	_        [3]uint32
}

// cpuid2Header is the fixed head of struct kvm_cpuid2; entries follow it.
type cpuid2Header struct {
	NEnt uint32
	_    uint32
}

// GuestDebug is struct kvm_guest_debug on x86-64: Control is
// GuestDebugEnable | GuestDebugSingleStep..., DebugReg the debug
// registers (KVM_GUESTDBG_USE_HW_BP).
type GuestDebug struct {
	Control  uint32
	_        uint32
	DebugReg [8]uint64
}

// GuestDebug.Control bits (KVM_GUESTDBG_*).
const (
	GuestDebugEnable     = 1 << 0
	GuestDebugSingleStep = 1 << 1
)

// Capabilities (KVM_CAP_*) this package's users check.
const (
	CapUserMemory    = 3
	CapSetTSSAddr    = 4
	CapNrMemslots    = 10
	CapReadonlyMem   = 81
	CapImmediateExit = 136
	// CapExitOnEmulationFailure (KVM_CAP_EXIT_ON_EMULATION_FAILURE):
	// an instruction KVM fails to emulate exits to userspace without
	// queueing #UD, so the monitor can fix the cause and resume.
	CapExitOnEmulationFailure = 204
)

// Exit reasons (KVM_EXIT_*) in Run.ExitReason.
const (
	ExitUnknown       = 0
	ExitException     = 1
	ExitIO            = 2
	ExitHypercall     = 3
	ExitDebug         = 4
	ExitHLT           = 5
	ExitMMIO          = 6
	ExitIRQWindowOpen = 7
	ExitShutdown      = 8
	ExitFailEntry     = 9
	ExitIntr          = 10
	ExitInternalError = 17
	ExitSystemEvent   = 24
)

// ExitIO directions.
const (
	ExitIOIn  = 0
	ExitIOOut = 1
)

// XCR is struct kvm_xcr: one extended control register.
type XCR struct {
	XCR      uint32
	Reserved uint32
	Value    uint64
}

// XCRs is struct kvm_xcrs.
type XCRs struct {
	NrXCRs  uint32
	Flags   uint32
	XCRs    [16]XCR // KVM_MAX_XCRS
	Padding [16]uint64
}

// CapXCRs is KVM_CAP_XCRS.
const CapXCRs = 56
