// Package kvm is a thin, typed layer over the Linux KVM API
// (Documentation/virt/kvm/api.rst): one small function per ioctl, and
// structs whose layouts mirror <linux/kvm.h> on x86-64, so the VMM above it
// never builds an ioctl by hand.
package kvm

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// kvmio is the ioctl type byte of every KVM request (KVMIO in <linux/kvm.h>).
const kvmio = 0xAE

// Direction bits of an ioctl request number (<asm-generic/ioctl.h>).
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, nr, size uintptr) uintptr {
	return dir<<30 | size<<16 | kvmio<<8 | nr
}

func io(nr uintptr) uintptr                   { return ioc(iocNone, nr, 0) }
func ior(nr, size uintptr) uintptr            { return ioc(iocRead, nr, size) }
func iow(nr, size uintptr) uintptr            { return ioc(iocWrite, nr, size) }
func iowr(nr, size uintptr) uintptr           { return ioc(iocRead|iocWrite, nr, size) }
func sizeOf[T any]() uintptr                  { var v T; return unsafe.Sizeof(v) }
func ptr[T any](v *T) uintptr                 { return uintptr(unsafe.Pointer(v)) }
func ioctlArg(fd int, req, arg uintptr) error { _, err := ioctlRet(fd, req, arg); return err }

// ioctlRet issues one ioctl, retrying when a signal interrupted a request
// other than KVM_RUN (KVM_RUN's EINTR is a result its caller handles).
func ioctlRet(fd int, req, arg uintptr) (uintptr, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
		if errno == unix.EINTR && req != reqRun {
			continue
		}
		if errno != 0 {
			return r, errno
		}
		return r, nil
	}
}

// Request numbers, named as in <linux/kvm.h>.
var (
	reqGetAPIVersion       = io(0x00)
	reqCreateVM            = io(0x01)
	reqCheckExtension      = io(0x03)
	reqGetVCPUMmapSize     = io(0x04)
	reqGetSupportedCPUID   = iowr(0x05, sizeOf[cpuid2Header]())
	reqCreateVCPU          = io(0x41)
	reqSetUserMemoryRegion = iow(0x46, sizeOf[UserspaceMemoryRegion]())
	reqSetTSSAddr          = io(0x47)
	reqSetIdentityMapAddr  = iow(0x48, 8)
	reqCreateIRQChip       = io(0x60)
	reqEnableCap           = iow(0xa3, sizeOf[EnableCap]())
	reqCreatePIT2          = iow(0x77, sizeOf[PITConfig]())
	reqRun                 = io(0x80)
	reqGetRegs             = ior(0x81, sizeOf[Regs]())
	reqSetRegs             = iow(0x82, sizeOf[Regs]())
	reqGetSregs            = ior(0x83, sizeOf[Sregs]())
	reqSetSregs            = iow(0x84, sizeOf[Sregs]())
	reqTranslate           = iowr(0x85, sizeOf[Translation]())
	reqSetMSRs             = iow(0x89, sizeOf[msrsHeader]())
	reqSetCPUID2           = iow(0x90, sizeOf[cpuid2Header]())
	reqGetTSCKHz           = io(0xa3)
	reqGetXCRs             = ior(0xa6, sizeOf[XCRs]())
	reqSetGuestDebug       = iow(0x9b, sizeOf[GuestDebug]())
	reqSetXCRs             = iow(0xa7, sizeOf[XCRs]())
)

// RunIoctls are the requests a vCPU thread makes once its VM is built:
// KVM_RUN, and KVM_GET_REGS and KVM_GET_SREGS for fault reports (its
// seccomp filter allows these and no other ioctl).
func RunIoctls() []uintptr { return []uintptr{reqRun, reqGetRegs, reqGetSregs} }

// DebugIoctls are what a running vCPU thread also needs when the monitor
// single-steps the guest: KVM_SET_GUEST_DEBUG (to stop stepping).
func DebugIoctls() []uintptr { return []uintptr{reqSetGuestDebug} }
