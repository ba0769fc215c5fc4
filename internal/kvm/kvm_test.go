package kvm

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The struct layouts and request numbers must match <linux/kvm.h> on
// x86-64 exactly; the numbers below are the kernel header's.
func TestLayoutsMatchLinuxKVMHeader(t *testing.T) {
	sizes := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"kvm_userspace_memory_region", unsafe.Sizeof(UserspaceMemoryRegion{}), 32},
		{"kvm_regs", unsafe.Sizeof(Regs{}), 144},
		{"kvm_segment", unsafe.Sizeof(Segment{}), 24},
		{"kvm_dtable", unsafe.Sizeof(DTable{}), 16},
		{"kvm_sregs", unsafe.Sizeof(Sregs{}), 312},
		{"kvm_translation", unsafe.Sizeof(Translation{}), 24},
		{"kvm_msr_entry", unsafe.Sizeof(MSREntry{}), 16},
		{"kvm_cpuid_entry2", unsafe.Sizeof(CPUIDEntry2{}), 40},
		{"kvm_xcrs", unsafe.Sizeof(XCRs{}), 392},
		{"kvm_guest_debug", unsafe.Sizeof(GuestDebug{}), 72},
		{"kvm_run.io", unsafe.Sizeof(RunIO{}), 16},
		{"kvm_run.mmio", unsafe.Sizeof(RunMMIO{}), 24},
		{"kvm_run head", unsafe.Offsetof(Run{}.exit), 32},
		{"kvm_run.exit_reason offset", unsafe.Offsetof(Run{}.ExitReason), 8},
		{"kvm_sregs.cr0 offset", unsafe.Offsetof(Sregs{}.CR0), 224},
	}
	for _, s := range sizes {
		if s.got != s.want {
			t.Errorf("%s: %d bytes, kernel has %d", s.name, s.got, s.want)
		}
	}
	reqs := []struct {
		name      string
		got, want uintptr
	}{
		{"KVM_CREATE_VM", reqCreateVM, 0xAE01},
		{"KVM_RUN", reqRun, 0xAE80},
		{"KVM_GET_REGS", reqGetRegs, 0x8090AE81},
		{"KVM_SET_REGS", reqSetRegs, 0x4090AE82},
		{"KVM_GET_SREGS", reqGetSregs, 0x8138AE83},
		{"KVM_SET_SREGS", reqSetSregs, 0x4138AE84},
		{"KVM_TRANSLATE", reqTranslate, 0xC018AE85},
		{"KVM_SET_USER_MEMORY_REGION", reqSetUserMemoryRegion, 0x4020AE46},
		{"KVM_GET_SUPPORTED_CPUID", reqGetSupportedCPUID, 0xC008AE05},
		{"KVM_SET_CPUID2", reqSetCPUID2, 0x4008AE90},
		{"KVM_SET_MSRS", reqSetMSRs, 0x4008AE89},
		{"KVM_SET_IDENTITY_MAP_ADDR", reqSetIdentityMapAddr, 0x4008AE48},
		{"KVM_SET_XCRS", reqSetXCRs, 0x4188AEA7},
		{"KVM_SET_GUEST_DEBUG", reqSetGuestDebug, 0x4048AE9B},
	}
	for _, r := range reqs {
		if r.got != r.want {
			t.Errorf("%s: request %#x, kernel has %#x", r.name, r.got, r.want)
		}
	}
}

// A real-mode guest that writes one byte to a port and halts shows that
// this host's KVM really runs vCPUs (not only creates VMs).
func TestRealModeGuestWritesPortAndHalts(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("no usable KVM: %v", err)
	}
	sys, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	vm, err := sys.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	mem, err := unix.Mmap(-1, 0, 0x10000, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	// mov $0x3f8,%dx; mov $'K',%al; out %al,(%dx); hlt
	copy(mem[0x1000:], []byte{0xba, 0xf8, 0x03, 0xb0, 'K', 0xee, 0xf4})
	if err := vm.SetUserMemoryRegion(UserspaceMemoryRegion{Slot: 0, MemorySize: uint64(len(mem)),
		UserspaceAddr: uint64(uintptr(unsafe.Pointer(&mem[0])))}); err != nil {
		t.Fatal(err)
	}
	if err := vm.SetTSSAddr(0xfffbd000); err != nil {
		t.Fatal(err)
	}
	cpu, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Close()
	size, err := sys.VCPUMmapSize()
	if err != nil {
		t.Fatal(err)
	}
	if err := cpu.MapRun(size); err != nil {
		t.Fatal(err)
	}
	s, err := cpu.Sregs()
	if err != nil {
		t.Fatal(err)
	}
	s.CS.Base, s.CS.Selector = 0, 0
	if err := cpu.SetSregs(s); err != nil {
		t.Fatal(err)
	}
	if err := cpu.SetRegs(Regs{RIP: 0x1000, RFLAGS: 2}); err != nil {
		t.Fatal(err)
	}
	var out []byte
	for {
		if err := cpu.Run(); err != nil {
			t.Fatalf("KVM_RUN: %v", err)
		}
		run := cpu.RunData()
		switch run.ExitReason {
		case ExitIO:
			io := run.IO()
			if io.Direction != ExitIOOut || io.Port != 0x3f8 {
				t.Fatalf("unexpected I/O exit: %+v", *io)
			}
			out = append(out, cpu.IOData(int(io.Size))...)
		case ExitHLT:
			if string(out) != "K" {
				t.Fatalf("guest wrote %q, want %q", out, "K")
			}
			return
		default:
			t.Fatalf("unexpected exit reason %d", run.ExitReason)
		}
	}
}
