package kvm

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// DevicePath is the KVM device.
const DevicePath = "/dev/kvm"

// APIVersion is the only KVM_GET_API_VERSION answer this package accepts.
const APIVersion = 12

// System is an open /dev/kvm: the system-wide ioctls.
type System struct{ fd int }

// inherited is an open /dev/kvm handed in by a parent (UseDevice), or -1.
var inherited = -1

// UseDevice makes Open use fd, an open /dev/kvm, instead of the path: a
// jailed process has no device node, its parent passes the descriptor.
func UseDevice(fd int) { inherited = fd }

// Open opens /dev/kvm (or duplicates the descriptor UseDevice gave) and
// checks the API version.
func Open() (*System, error) {
	var fd int
	var err error
	if inherited >= 0 {
		fd, err = unix.FcntlInt(uintptr(inherited), unix.F_DUPFD_CLOEXEC, 0)
	} else {
		fd, err = unix.Open(DevicePath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", DevicePath, err)
	}
	s := &System{fd: fd}
	v, err := s.APIVersion()
	if err != nil {
		s.Close()
		return nil, err
	}
	if v != APIVersion {
		s.Close()
		return nil, fmt.Errorf("%s: KVM API version %d, want %d", DevicePath, v, APIVersion)
	}
	return s, nil
}

// Close closes /dev/kvm (VMs created from it stay usable).
func (s *System) Close() error { return unix.Close(s.fd) }

// APIVersion is KVM_GET_API_VERSION.
func (s *System) APIVersion() (int, error) {
	r, err := ioctlRet(s.fd, reqGetAPIVersion, 0)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_API_VERSION: %w", err)
	}
	return int(r), nil
}

// CheckExtension is KVM_CHECK_EXTENSION: 0 if cap is absent, else a
// capability-specific positive value.
func (s *System) CheckExtension(cap int) (int, error) {
	r, err := ioctlRet(s.fd, reqCheckExtension, uintptr(cap))
	if err != nil {
		return 0, fmt.Errorf("KVM_CHECK_EXTENSION %d: %w", cap, err)
	}
	return int(r), nil
}

// VCPUMmapSize is KVM_GET_VCPU_MMAP_SIZE: the bytes to mmap from a vCPU fd.
func (s *System) VCPUMmapSize() (int, error) {
	r, err := ioctlRet(s.fd, reqGetVCPUMmapSize, 0)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	return int(r), nil
}

// SupportedCPUID is KVM_GET_SUPPORTED_CPUID: the CPUID leaves KVM can
// present to a guest.
func (s *System) SupportedCPUID() ([]CPUIDEntry2, error) {
	for n := 64; n <= 4096; n *= 2 {
		buf := newCPUID2(make([]CPUIDEntry2, n))
		_, err := ioctlRet(s.fd, reqGetSupportedCPUID, buf.ptr())
		if errors.Is(err, unix.E2BIG) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", err)
		}
		return buf.entries(), nil
	}
	return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: more than 4096 entries")
}

// CreateVM is KVM_CREATE_VM with the default machine type.
func (s *System) CreateVM() (*VM, error) {
	r, err := ioctlRet(s.fd, reqCreateVM, 0)
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	return &VM{fd: int(r)}, nil
}

// Available reports whether /dev/kvm can be opened, and why not.
func Available() error {
	s, err := Open()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s does not exist", DevicePath)
		}
		return err
	}
	return s.Close()
}
