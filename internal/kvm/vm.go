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
