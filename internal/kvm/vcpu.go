package kvm

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// VCPU is a KVM vCPU fd and its shared kvm_run area.
type VCPU struct {
	fd      int
	runArea []byte
}

// MapRun mmaps the vCPU's kvm_run area (size from System.VCPUMmapSize).
func (c *VCPU) MapRun(size int) error {
	b, err := unix.Mmap(c.fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap kvm_run (%d bytes): %w", size, err)
	}
	c.runArea = b
	return nil
}

// RunData is the kvm_run area; valid after MapRun.
func (c *VCPU) RunData() *Run { return (*Run)(unsafe.Pointer(&c.runArea[0])) }

// IOData returns the n bytes of a KVM_EXIT_IO's data, which live in the
// kvm_run area at io.data_offset.
func (c *VCPU) IOData(n int) []byte {
	off := c.RunData().IO().DataOffset
	return c.runArea[off : off+uint64(n)]
}

// Close unmaps kvm_run and closes the vCPU fd.
func (c *VCPU) Close() error {
	var err error
	if c.runArea != nil {
		err = unix.Munmap(c.runArea)
		c.runArea = nil
	}
	return errors.Join(err, unix.Close(c.fd))
}

// Run is KVM_RUN. It returns unix.EINTR when a signal (or immediate_exit)
// interrupted the guest; the exit reason is then ExitIntr.
func (c *VCPU) Run() error {
	_, err := ioctlRet(c.fd, reqRun, 0)
	return err
}

// Regs is KVM_GET_REGS.
func (c *VCPU) Regs() (Regs, error) {
	var r Regs
	if err := ioctlArg(c.fd, reqGetRegs, ptr(&r)); err != nil {
		return r, fmt.Errorf("KVM_GET_REGS: %w", err)
	}
	return r, nil
}

// SetRegs is KVM_SET_REGS.
func (c *VCPU) SetRegs(r Regs) error {
	if err := ioctlArg(c.fd, reqSetRegs, ptr(&r)); err != nil {
		return fmt.Errorf("KVM_SET_REGS: %w", err)
	}
	return nil
}

// Sregs is KVM_GET_SREGS.
func (c *VCPU) Sregs() (Sregs, error) {
	var s Sregs
	if err := ioctlArg(c.fd, reqGetSregs, ptr(&s)); err != nil {
		return s, fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	return s, nil
}

// SetSregs is KVM_SET_SREGS.
func (c *VCPU) SetSregs(s Sregs) error {
	if err := ioctlArg(c.fd, reqSetSregs, ptr(&s)); err != nil {
		return fmt.Errorf("KVM_SET_SREGS: %w", err)
	}
	return nil
}

// SetGuestDebug is KVM_SET_GUEST_DEBUG.
func (c *VCPU) SetGuestDebug(d GuestDebug) error {
	if err := ioctlArg(c.fd, reqSetGuestDebug, ptr(&d)); err != nil {
		return fmt.Errorf("KVM_SET_GUEST_DEBUG: %w", err)
	}
	return nil
}

// Translate is KVM_TRANSLATE: the guest-physical address of a guest
// virtual one under the vCPU's current page tables.
func (c *VCPU) Translate(gva uint64) (Translation, error) {
	t := Translation{LinearAddress: gva}
	if err := ioctlArg(c.fd, reqTranslate, ptr(&t)); err != nil {
		return t, fmt.Errorf("KVM_TRANSLATE %#x: %w", gva, err)
	}
	return t, nil
}

// SetMSRs is KVM_SET_MSRS.
func (c *VCPU) SetMSRs(entries []MSREntry) error {
	buf := make([]byte, unsafe.Sizeof(msrsHeader{})+uintptr(len(entries))*unsafe.Sizeof(MSREntry{}))
	h := (*msrsHeader)(unsafe.Pointer(&buf[0]))
	h.NMSRs = uint32(len(entries))
	copy(unsafe.Slice((*MSREntry)(unsafe.Pointer(&buf[unsafe.Sizeof(msrsHeader{})])), len(entries)), entries)
	r, err := ioctlRet(c.fd, reqSetMSRs, uintptr(unsafe.Pointer(&buf[0])))
	if err != nil {
		return fmt.Errorf("KVM_SET_MSRS: %w", err)
	}
	if int(r) != len(entries) {
		return fmt.Errorf("KVM_SET_MSRS: set %d of %d MSRs (MSR %#x refused)", r, len(entries), entries[r].Index)
	}
	return nil
}

// SetCPUID2 is KVM_SET_CPUID2: the CPUID leaves the guest sees.
func (c *VCPU) SetCPUID2(entries []CPUIDEntry2) error {
	buf := newCPUID2(entries)
	if err := ioctlArg(c.fd, reqSetCPUID2, buf.ptr()); err != nil {
		return fmt.Errorf("KVM_SET_CPUID2 (%d entries): %w", len(entries), err)
	}
	return nil
}

// TSCKHz is KVM_GET_TSC_KHZ: the guest's TSC frequency.
func (c *VCPU) TSCKHz() (uint64, error) {
	r, err := ioctlRet(c.fd, reqGetTSCKHz, 0)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_TSC_KHZ: %w", err)
	}
	return uint64(r), nil
}

// XCRs is KVM_GET_XCRS.
func (c *VCPU) XCRs() (XCRs, error) {
	var x XCRs
	if err := ioctlArg(c.fd, reqGetXCRs, ptr(&x)); err != nil {
		return x, fmt.Errorf("KVM_GET_XCRS: %w", err)
	}
	return x, nil
}

// SetXCRs is KVM_SET_XCRS.
func (c *VCPU) SetXCRs(x XCRs) error {
	if err := ioctlArg(c.fd, reqSetXCRs, ptr(&x)); err != nil {
		return fmt.Errorf("KVM_SET_XCRS: %w", err)
	}
	return nil
}

// cpuid2 is a struct kvm_cpuid2 with its entries, in one buffer.
type cpuid2 []byte

func newCPUID2(entries []CPUIDEntry2) cpuid2 {
	hs, es := unsafe.Sizeof(cpuid2Header{}), unsafe.Sizeof(CPUIDEntry2{})
	buf := make([]byte, hs+uintptr(len(entries))*es)
	(*cpuid2Header)(unsafe.Pointer(&buf[0])).NEnt = uint32(len(entries))
	copy(unsafe.Slice((*CPUIDEntry2)(unsafe.Pointer(&buf[hs])), len(entries)), entries)
	return buf
}

func (b cpuid2) ptr() uintptr { return uintptr(unsafe.Pointer(&b[0])) }

func (b cpuid2) entries() []CPUIDEntry2 {
	n := (*cpuid2Header)(unsafe.Pointer(&b[0])).NEnt
	all := unsafe.Slice((*CPUIDEntry2)(unsafe.Pointer(&b[unsafe.Sizeof(cpuid2Header{})])), n)
	return append([]CPUIDEntry2(nil), all...)
}
