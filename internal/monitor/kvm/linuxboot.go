package kvm

import (
	"fmt"
	"sort"

	"github.com/unipool/unipool/internal/kvm"
	"github.com/unipool/unipool/internal/loader"
)

// A Linux-boot VM (loader.BootLinux64: Unikraft's kvm platform as
// Firecracker boots it) sees guest-physical = guest-virtual memory below
// 4 GiB: the kernel installs its own identity page tables at once, so
// every mapping lives at its link address in guest-physical memory too.
// Pool blobs are read-only slots at their libraries' addresses, backed by
// the process's one mapping of each blob (so every VM shares the host
// pages); everything else is one private host reservation per VM, of
// which only the mapped ranges become slots. The VM has what Firecracker
// gives such a guest: an in-kernel irqchip and PIT (HLT with interrupts
// on waits for the timer in the kernel), CPUID leaf 1 with the vCPU's
// APIC id and the hypervisor timing leaf 0x40000010 with the TSC
// frequency, and the zero page in %rsi.
const (
	// gpaIdentityPT holds the boot page tables (PML4, PDPT, four PDs):
	// the first 4 GiB identity-mapped with 2 MiB pages, as the boot
	// protocol asks for the kernel, the zero page and the command line.
	gpaIdentityPT = 0x4000
	// identityLimit is the end of the identity map: a Linux-boot layout
	// must lie below it.
	identityLimit = 4 << 30
	// linuxBootStack is %rsp at entry (the protocol gives no stack; the
	// kernel sets its own): the top of the monitor's low area.
	linuxBootStack = gpaPrivateData - 16
	// maxSlots bounds the memory slots of one VM (KVM allows 509 on
	// older kernels).
	maxSlots = 500
)

// CPUID leaves a Linux-boot guest reads.
const (
	cpuidFeatures   = 0x1
	cpuidHypervisor = 0x40000000
	cpuidTiming     = 0x40000010
)

// linuxCPUID is the host's supported CPUID with what Firecracker sets for
// vCPU 0: APIC id 0 in leaf 1 (Unikraft finds its boot CPU by it) and the
// hypervisor timing leaf with the TSC frequency in kHz (else Unikraft
// calibrates the TSC against the PIT for 0.1 s).
func linuxCPUID(host []kvm.CPUIDEntry2, tscKHz uint64) []kvm.CPUIDEntry2 {
	out := make([]kvm.CPUIDEntry2, 0, len(host)+2)
	hasHyp, hasTiming := false, false
	for _, e := range host {
		switch e.Function {
		case cpuidFeatures:
			e.EBX &= 0x00ffffff // APIC id 0
		case cpuidHypervisor:
			hasHyp = true
			if tscKHz > 0 && e.EAX < cpuidTiming {
				e.EAX = cpuidTiming
			}
		case cpuidTiming:
			hasTiming = true
			if tscKHz > 0 {
				e.EAX = uint32(tscKHz)
			}
		}
		out = append(out, e)
	}
	if tscKHz > 0 {
		if !hasHyp {
			out = append(out, kvm.CPUIDEntry2{Function: cpuidHypervisor, EAX: cpuidTiming,
				EBX: 0x4b4d564b, ECX: 0x564b4d56, EDX: 0x4d}) // "KVMKVMKVM\0\0\0"
		}
		if !hasTiming {
			// EBX: the local APIC timer's bus frequency in kHz (KVM's APIC
			// timer counts nanoseconds: 1 GHz).
			out = append(out, kvm.CPUIDEntry2{Function: cpuidTiming, EAX: uint32(tscKHz), EBX: 1000000})
		}
	}
	return out
}

// buildIdentityMemory places every mapping of a Linux-boot layout at its
// own address in guest-physical memory.
func (h *host) buildIdentityMemory(m *machine) error {
	var files []blobFile
	seen := map[string]bool{}
	top := uint64(gpaPrivateData)
	for i := range m.layout.Mappings {
		mp := &m.layout.Mappings[i]
		if mp.Addr < loaderLowest && mp.Addr+mp.Size > gpaSystem {
			return fmt.Errorf("mapping %s at %#x overlaps the monitor's low area [%#x,%#x)", what(mp), mp.Addr, gpaSystem, loaderLowest)
		}
		if mp.Addr+mp.Size > identityLimit {
			return fmt.Errorf("mapping %s [%#x,%#x) lies above 4 GiB, past the identity map a Linux-boot guest is started with", what(mp), mp.Addr, mp.Addr+mp.Size)
		}
		if mp.File != "" && !mp.COW {
			if id := blobID(mp); !seen[id] {
				seen[id] = true
				files = append(files, blobFile{id: id, path: mp.File})
			}
			continue
		}
		top = max(top, mp.Addr+mp.Size)
	}
	if len(files) > 0 {
		if !h.readonly {
			return fmt.Errorf("this KVM lacks read-only memory slots (KVM_CAP_READONLY_MEM); use --load naive")
		}
		set, err := h.blobs.get(files)
		if err != nil {
			return err
		}
		m.set = set
	}
	priv, err := newPrivateMemory(top, h.ksm)
	if err != nil {
		return err
	}
	m.priv = priv
	writeSystemArea(priv.mem)
	pt := newPageTables(gpaIdentityPT)
	if err := pt.Map(0, 0, identityLimit, pteWritable); err != nil {
		return err
	}
	if gpaIdentityPT+pt.Size() > linuxBootStack-pageSize {
		return fmt.Errorf("identity page tables of %d bytes do not fit the low area", pt.Size())
	}
	pt.Encode(priv.mem[gpaIdentityPT:])
	m.cr3 = pt.CR3()
	m.ptBase = uint64(len(priv.mem)) // the tables are in the low area

	type slot struct {
		gpa, size, host uint64
		ro              bool
	}
	slots := []slot{{gpa: 0, size: gpaPrivateData, host: hostAddr(priv.mem)}}
	for i := range m.layout.Mappings {
		mp := &m.layout.Mappings[i]
		p := placement{addr: mp.Addr, size: mp.Size, gpa: mp.Addr, library: mp.Library, part: mp.Part, digest: mp.Digest}
		if mp.File != "" && !mp.COW {
			part, _ := m.set.part(blobID(mp))
			if mp.Offset&pageMask != 0 || mp.Offset+mp.Size > part.size {
				return fmt.Errorf("mapping %s: [%#x,+%#x) outside blob %s (%d bytes)", what(mp), mp.Offset, mp.Size, part.path, part.size)
			}
			p.blob = true
			m.placed = append(m.placed, p)
			slots = append(slots, slot{gpa: mp.Addr, size: mp.Size, host: hostAddr(m.set.mem[part.off+mp.Offset:]), ro: true})
			continue
		}
		dst := priv.mem[mp.Addr : mp.Addr+mp.Size]
		if mp.COW {
			mapped, err := h.mapCOW(dst, mp, m.layout.Resume != nil)
			if err != nil {
				return err
			}
			if mapped {
				p.cowFile, p.cowOff = mp.File, mp.Offset
			}
		} else if len(mp.Data) > 0 {
			copy(dst, mp.Data)
		}
		mp.Data = nil
		m.placed = append(m.placed, p)
		// Adjacent private ranges share a slot.
		if n := len(slots) - 1; !slots[n].ro && slots[n].gpa+slots[n].size == mp.Addr {
			slots[n].size += mp.Size
		} else {
			slots = append(slots, slot{gpa: mp.Addr, size: mp.Size, host: hostAddr(priv.mem[mp.Addr:])})
		}
	}
	if len(slots) > maxSlots {
		return fmt.Errorf("the layout needs %d memory slots (at most %d)", len(slots), maxSlots)
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].gpa < slots[j].gpa })
	for i, s := range slots {
		r := kvm.UserspaceMemoryRegion{Slot: uint32(i), GuestPhysAddr: s.gpa, MemorySize: s.size, UserspaceAddr: s.host}
		if s.ro {
			r.Flags = kvm.MemReadonly
		}
		if err := m.vm.SetUserMemoryRegion(r); err != nil {
			return err
		}
	}
	return nil
}

// isLinuxBoot tells whether the machine's guest boots by the Linux protocol.
func isLinuxBoot(boot string) bool { return boot == loader.BootLinux64 }
