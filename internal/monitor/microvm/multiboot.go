package microvm

import (
	"fmt"
	"sync"

	"github.com/unipool/unipool/internal/kvm"
	"github.com/unipool/unipool/internal/loader"
)

// A multiboot VM (loader.BootMultiboot: Unikraft's QEMU flavour of the
// kvm platform, as QEMU's -kernel boots it) gets the machine of a
// Linux-boot VM — guest-physical = guest-virtual, in-kernel irqchip and
// PIT, the same CPUID — and the Multiboot 1 entry state instead of the
// 64-bit one: 32-bit protected mode with paging off, flat 4 GiB code and
// data segments, interrupts off, %eax = 0x2BADB002 and %ebx = the
// multiboot information. The guest loads its own GDT (the spec leaves
// GDTR undefined; ours stays loaded) and turns on long mode itself.

// identityBoot tells whether a guest of this boot protocol sees its
// memory identity-mapped and the machine a VMM gives a Unikraft kernel
// (BootLinux64, BootMultiboot), not the unipool guest ABI.
func identityBoot(boot string) bool {
	return boot == loader.BootLinux64 || boot == loader.BootMultiboot
}

// GDT selectors the entry state names (the flat segments' descriptors
// need not be in the GDT: the CPU uses the loaded descriptor caches until
// the guest reloads a segment register, after loading its own GDT).
const (
	selCode32 = 0x08
	selData32 = 0x10
)

// multibootEntry puts the vCPU into the Multiboot 1 entry state.
func multibootEntry(s *kvm.Sregs, lay *loader.Layout) kvm.Regs {
	code := kvm.Segment{Base: 0, Limit: 0xffffffff, Selector: selCode32, Type: 0xb, Present: 1, S: 1, DB: 1, G: 1}
	data := kvm.Segment{Base: 0, Limit: 0xffffffff, Selector: selData32, Type: 0x3, Present: 1, S: 1, DB: 1, G: 1}
	s.CS = code
	s.DS, s.ES, s.FS, s.GS, s.SS = data, data, data, data, data
	s.CR0 = cr0PE | cr0ET
	s.CR3, s.CR4, s.EFER = 0, 0, 0
	return kvm.Regs{
		RIP:    lay.Entry,
		RAX:    loader.MultibootBootloaderMagic,
		RBX:    lay.BootInfo,
		RSP:    linuxBootStack,
		RFLAGS: rflagsReserved,
	}
}

// On a host whose CPU QEMU emulates in software (TCG), the 32-bit entry
// runs single-stepped, until the guest runs 64-bit code. Unikraft's
// lcpu_start32 patches the target of its own far jump into long mode
// (movl %eax, -6(%eax); ljmp) right after turning paging on. Real CPUs
// see such a write (the SDM's self-modifying code rule: a store into the
// instruction stream is detected and the prefetched bytes discarded), so
// does hardware-assisted KVM, nested or not. The emulated KVM host
// (scripts/kvmhost: QEMU 7.2 TCG's nested SVM) does not once the guest
// pages: a kernel that stores into the next instruction's immediate with
// paging on runs the old byte there and the new one under QEMU TCG itself
// (issue 13's note has the experiment), and Unikraft then jumps to its
// placeholder 0x1532. Stepped, every instruction is a block of its own,
// decoded after the write before it. It costs one exit per instruction of
// the entry (about 30 for Unikraft), once per VM.
//
// Elsewhere the entry is not stepped: stepping is not needed there, and
// it is not invisible to the guest (KVM steps with RFLAGS.TF, which a
// pushf in the stepped code would see). The host's CPU says which it is:
// CPUID leaf 0x40000000 holds "TCGTCGTCGTCG" under QEMU's software
// emulation (kvm.HostHypervisor).
var stepsEntry = sync.OnceValue(func() bool { return kvm.HostHypervisor() == kvm.HypervisorTCG })

// maxEntrySteps bounds the stepped instructions: a guest still not in
// 64-bit mode after them is reported.
const maxEntrySteps = 1 << 16

// stepEntry starts single-stepping a multiboot guest at its entry.
func (m *machine) stepEntry() error {
	if m.layout.Boot != loader.BootMultiboot || m.layout.Resume != nil || !stepsEntry() {
		m.steps = -1
		return nil
	}
	return m.cpu.SetGuestDebug(kvm.GuestDebug{Control: kvm.GuestDebugEnable | kvm.GuestDebugSingleStep})
}

// entryStepped handles a single-step exit: once the guest runs 64-bit
// code, stepping stops.
func (m *machine) entryStepped() *outcome {
	if m.steps < 0 {
		return &outcome{exitCode: -1, err: fmt.Sprintf("unexpected debug exit at %s", m.ripString())}
	}
	m.steps++
	s, err := m.cpu.Sregs()
	if err != nil {
		return &outcome{exitCode: -1, err: err.Error()}
	}
	if s.EFER&eferLMA != 0 && s.CS.L == 1 {
		m.steps = -1
		if err := m.cpu.SetGuestDebug(kvm.GuestDebug{}); err != nil {
			return &outcome{exitCode: -1, err: err.Error()}
		}
		return nil
	}
	// Set again each time: KVM loses the trap flag it stepped with
	// across an instruction it emulated itself (a control-register
	// write, on a CPU without decode assists).
	if err := m.cpu.SetGuestDebug(kvm.GuestDebug{Control: kvm.GuestDebugEnable | kvm.GuestDebugSingleStep}); err != nil {
		return &outcome{exitCode: -1, err: err.Error()}
	}
	if m.steps > maxEntrySteps {
		return &outcome{exitCode: -1, err: fmt.Sprintf("the multiboot guest still runs 32-bit code after %d instructions, at %s", maxEntrySteps, m.ripString())}
	}
	return nil
}
