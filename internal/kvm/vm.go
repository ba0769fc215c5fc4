package kvm

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// VM is a KVM virtual machine fd.
type VM struct{ fd int }

// Close releases the VM (the kernel frees it once its vCPUs are closed too).
func (v *VM) Close() error { return unix.Close(v.fd) }

// SetUserMemoryRegion is KVM_SET_USER_MEMORY_REGION.
func (v *VM) SetUserMemoryRegion(r UserspaceMemoryRegion) error {
	if err := ioctlArg(v.fd, reqSetUserMemoryRegion, ptr(&r)); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d gpa %#x size %#x: %w",
			r.Slot, r.GuestPhysAddr, r.MemorySize, err)
	}
	return nil
}

// SetTSSAddr is KVM_SET_TSS_ADDR: three pages of guest-physical space
// that Intel hosts need for real-mode emulation, outside every slot.
func (v *VM) SetTSSAddr(gpa uint64) error {
	if err := ioctlArg(v.fd, reqSetTSSAddr, uintptr(gpa)); err != nil {
		return fmt.Errorf("KVM_SET_TSS_ADDR %#x: %w", gpa, err)
	}
	return nil
}

// SetIdentityMapAddr is KVM_SET_IDENTITY_MAP_ADDR: one page of
// guest-physical space for Intel's unrestricted-guest-less mode.
func (v *VM) SetIdentityMapAddr(gpa uint64) error {
	if err := ioctlArg(v.fd, reqSetIdentityMapAddr, ptr(&gpa)); err != nil {
		return fmt.Errorf("KVM_SET_IDENTITY_MAP_ADDR %#x: %w", gpa, err)
	}
	return nil
}

// CreateVCPU is KVM_CREATE_VCPU; the result is not yet mmapped (see
// VCPU.MapRun).
func (v *VM) CreateVCPU(id int) (*VCPU, error) {
	r, err := ioctlRet(v.fd, reqCreateVCPU, uintptr(id))
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VCPU %d: %w", id, err)
	}
	return &VCPU{fd: int(r)}, nil
}

// PITConfig is struct kvm_pit_config.
type PITConfig struct {
	Flags uint32
	_     [15]uint32
}

// PITSpeakerDummy (KVM_PIT_SPEAKER_DUMMY) makes the in-kernel PIT answer
// port 0x61 (the speaker gate) too, as Firecracker asks.
const PITSpeakerDummy = 1

// CreateIRQChip is KVM_CREATE_IRQCHIP: an in-kernel PIC, IOAPIC and a
// local APIC per vCPU (then HLT waits in the kernel for an interrupt).
// It must come before the vCPUs.
func (v *VM) CreateIRQChip() error {
	if err := ioctlArg(v.fd, reqCreateIRQChip, 0); err != nil {
		return fmt.Errorf("KVM_CREATE_IRQCHIP: %w", err)
	}
	return nil
}

// CreatePIT2 is KVM_CREATE_PIT2: an in-kernel i8254 timer (ports
// 0x40-0x43) wired to the irqchip.
func (v *VM) CreatePIT2(flags uint32) error {
	c := PITConfig{Flags: flags}
	if err := ioctlArg(v.fd, reqCreatePIT2, ptr(&c)); err != nil {
		return fmt.Errorf("KVM_CREATE_PIT2: %w", err)
	}
	return nil
}

// EnableCap is struct kvm_enable_cap.
type EnableCap struct {
	Cap   uint32
	Flags uint32
	Args  [4]uint64
	_     [64]uint8
}

// EnableCap is KVM_ENABLE_CAP on the VM.
func (v *VM) EnableCap(c EnableCap) error {
	if err := ioctlArg(v.fd, reqEnableCap, ptr(&c)); err != nil {
		return fmt.Errorf("KVM_ENABLE_CAP %d: %w", c.Cap, err)
	}
	return nil
}
