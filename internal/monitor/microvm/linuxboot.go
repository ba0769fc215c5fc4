package microvm

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"sync"

	"github.com/unipool/unipool/internal/kvm"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
)

// A Linux-boot VM (loader.BootLinux64: Unikraft's kvm platform as
// Firecracker boots it) sees guest-physical = guest-virtual memory below
// 4 GiB: the kernel installs its own identity page tables at once, so
// every mapping lives at its link address in guest-physical memory too.
// Its memory is one host reservation per VM mirroring guest-physical
// memory, with pool blobs mapped private (copy-on-write) from their files
// at their libraries' addresses, so every VM shares the host pages it only
// reads, and a few memory slots over it (buildIdentityMemory). The VM has what Firecracker
// gives such a guest: an in-kernel irqchip and PIT (HLT with interrupts
// on waits for the timer in the kernel), CPUID leaf 1 with the vCPU's
// APIC id and the hypervisor timing leaf 0x40000010 with the TSC
// frequency, and the zero page in %rsi.
const (
	// gpaIdentityPT holds the boot page tables (PML4, PDPT, four PDs):
	// the first 4 GiB identity-mapped with 2 MiB pages, as the boot
	// protocol asks for the kernel, the zero page and the command line;
	// the process's one copy, mapped copy-on-write (identityTablesPiece).
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
//
// Memory slots are the costly part of a VM in the host kernel: for each,
// KVM allocates its metadata (large-page and page-tracking arrays, at
// least a page of vmalloc each, ~12 KiB per slot) whatever its size. A
// slot per mapping (one per library part: ~60 for a Unikraft VM) cost
// ~700 KiB per VM. So the VM's memory is one host reservation mirroring
// guest-physical memory below top, in which every backed range lies at
// its own address: pool blobs and init blobs mapped private from their
// files (copy-on-write: the pages read are the page cache's, one copy for
// every VM of the host; a page the guest writes, such as Unikraft's boot
// page tables in its platform library's code, becomes this VM's own, and
// the file never changes), everything else anonymous. The gaps between
// mappings are holes mapped without access. A few slots cover it all:
// one per cluster of ranges less than slotGap apart (a Unikraft VM: the
// low area, the app, boot info and RAM, the library map), so a guest
// touching a hole inside a slot makes KVM_RUN fail (EFAULT) and one
// outside every slot exits as MMIO; either ends only that VM.
func (h *host) buildIdentityMemory(m *machine) error {
	top := uint64(gpaPrivateData)
	for i := range m.layout.Mappings {
		mp := &m.layout.Mappings[i]
		if mp.Addr < loaderLowest && mp.Addr+mp.Size > gpaSystem {
			return fmt.Errorf("mapping %s at %#x overlaps the monitor's low area [%#x,%#x)", what(mp), mp.Addr, gpaSystem, loaderLowest)
		}
		if mp.Addr+mp.Size > identityLimit {
			return fmt.Errorf("mapping %s [%#x,%#x) lies above 4 GiB, past the identity map a Linux-boot guest is started with", what(mp), mp.Addr, mp.Addr+mp.Size)
		}
		if (mp.Addr|mp.Size)&pageMask != 0 {
			return fmt.Errorf("mapping %s [%#x,+%#x) is not page-aligned", what(mp), mp.Addr, mp.Size)
		}
		top = max(top, mp.Addr+mp.Size)
	}
	once := m.layout.Resume != nil
	backed := []span{{0, gpaPrivateData}}
	// The low area: the system page (the process's one copy,
	// systemPiece), the fault stack, the identity page tables (not for
	// a multiboot guest) and the entry stack.
	sysPiece, shared := systemPiece()
	var pieces []cowPiece
	if shared {
		pieces = append(pieces, sysPiece)
	}
	tables := m.layout.Boot != loader.BootMultiboot || m.layout.Resume != nil
	ptPiece, ptShared := identityTablesPiece()
	if tables && ptShared {
		pieces = append(pieces, ptPiece)
	}
	defer func() { closePieces(pieces) }()
	file := make([]bool, len(m.layout.Mappings))
	for i := range m.layout.Mappings {
		mp := &m.layout.Mappings[i]
		backed = append(backed, span{mp.Addr, mp.Size})
		p := placement{addr: mp.Addr, size: mp.Size, gpa: mp.Addr, library: mp.Library, part: mp.Part, digest: mp.Digest,
			runtime: loader.IsRuntime(mp.Part)}
		switch {
		case mp.File != "" && !mp.COW:
			// A pool blob: mapped private from its verified file.
			f, size, err := h.initFile(mp.File)
			if err != nil {
				return err
			}
			if mp.Offset&pageMask != 0 {
				return fmt.Errorf("mapping %s: offset %#x in blob %s is not page-aligned", what(mp), mp.Offset, mp.File)
			}
			if err := mp.CheckFileRange(size); err != nil {
				return err
			}
			pieces = append(pieces, cowPiece{off: mp.Addr, size: mp.Size, fd: int(f.Fd()), fileOff: int64(mp.Offset)})
			file[i] = true
		case mp.COW:
			piece, ok, err := h.cowPieceOf(mp, mp.Addr, once)
			if err != nil {
				return err
			}
			if ok {
				pieces, file[i] = append(pieces, piece), true
			}
		}
		if file[i] {
			p.cowFile, p.cowOff = mp.File, mp.Offset
		}
		m.placed = append(m.placed, p)
	}
	backed = unionSpans(backed)
	slots := identitySlots(backed)
	if len(slots) > maxSlots {
		return fmt.Errorf("the layout needs %d memory slots (at most %d)", len(slots), maxSlots)
	}
	for _, hole := range holesBetween(backed, top) {
		pieces = append(pieces, cowPiece{off: hole.gpa, size: hole.size, fd: -1, hole: true})
	}
	priv, err := newPrivateMemory(top, h.ksm, pieces)
	if err != nil {
		return err
	}
	m.priv = priv
	if !shared {
		writeSystemArea(priv.mem)
	}
	// A multiboot guest starts with paging off and loads its own page
	// tables before it turns paging on (multibootEntry: CR3 0): it is
	// given none, and the six pages stay untouched.
	if tables {
		if !ptShared {
			b, err := identityTables()
			if err != nil {
				return err
			}
			copy(priv.mem[gpaIdentityPT:], b)
		}
		m.cr3 = gpaIdentityPT
	}
	m.ptBase = uint64(len(priv.mem)) // the tables are in the low area

	for i := range m.layout.Mappings {
		mp := &m.layout.Mappings[i]
		dst := priv.mem[mp.Addr : mp.Addr+mp.Size]
		switch {
		case file[i]:
			// File-backed: only the instance's patches are written.
			for _, pt := range mp.Patches {
				if pt.Off+8 > uint64(len(dst)) {
					return fmt.Errorf("init blob %s: patch at %#x outside %s", mp.File, pt.Off, what(mp))
				}
				binary.LittleEndian.PutUint64(dst[pt.Off:], pt.Value)
			}
		case len(mp.Data) > 0:
			copy(dst, mp.Data)
		}
		mp.Data = nil
	}
	for i := range slots {
		slots[i].host = hostAddr(priv.mem[slots[i].gpa:])
		if err := m.vm.SetUserMemoryRegion(kvm.UserspaceMemoryRegion{Slot: slots[i].id, GuestPhysAddr: slots[i].gpa,
			MemorySize: slots[i].size, UserspaceAddr: slots[i].host}); err != nil {
			return fmt.Errorf("memory slot [%#x,+%#x): %w", slots[i].gpa, slots[i].size, err)
		}
	}
	m.slots = slots
	return nil
}

// slotGap is the widest hole a memory slot spans: a slot costs KVM at
// least three pages of metadata, a hole inside one two bytes per page of
// page-tracking array (and nothing else while the guest leaves it alone).
const slotGap = 16 << 20

// span is a range of guest-physical memory.
type span struct{ gpa, size uint64 }

// unionSpans sorts spans and merges those that overlap or touch.
func unionSpans(spans []span) []span {
	sort.Slice(spans, func(i, j int) bool { return spans[i].gpa < spans[j].gpa })
	var out []span
	for _, s := range spans {
		if s.size == 0 {
			continue
		}
		if n := len(out) - 1; n >= 0 && s.gpa <= out[n].gpa+out[n].size {
			out[n].size = max(out[n].size, s.gpa+s.size-out[n].gpa)
			continue
		}
		out = append(out, s)
	}
	return out
}

// identitySlots groups backed ranges (sorted, disjoint) into memory
// slots, one per cluster of ranges less than slotGap apart.
func identitySlots(backed []span) []memSlot {
	var slots []memSlot
	for _, s := range backed {
		if n := len(slots) - 1; n >= 0 && s.gpa-(slots[n].gpa+slots[n].size) < slotGap {
			slots[n].size = s.gpa + s.size - slots[n].gpa
			continue
		}
		slots = append(slots, memSlot{id: uint32(len(slots)), gpa: s.gpa, size: s.size})
	}
	return slots
}

// holesBetween is what of [0, top) no backed range (sorted, disjoint)
// covers.
func holesBetween(backed []span, top uint64) []span {
	var holes []span
	var cur uint64
	for _, s := range backed {
		if s.gpa > cur {
			holes = append(holes, span{cur, s.gpa - cur})
		}
		cur = max(cur, s.gpa+s.size)
	}
	if top > cur {
		holes = append(holes, span{cur, top - cur})
	}
	return holes
}

// memSlot is one KVM memory slot of a Linux-boot VM.
type memSlot struct {
	id              uint32
	gpa, size, host uint64
}

// identityTables encodes the identity page tables of a Linux-boot guest
// (PML4, PDPT, four PDs of 2 MiB pages at gpaIdentityPT), with every
// entry's accessed bit and every leaf's dirty bit set: the CPU's page
// walker then never writes them.
func identityTables() ([]byte, error) {
	pt := newPageTables(gpaIdentityPT)
	if err := pt.Map(0, 0, identityLimit, pteWritable); err != nil {
		return nil, err
	}
	if gpaIdentityPT+pt.Size() > linuxBootStack-pageSize {
		return nil, fmt.Errorf("identity page tables of %d bytes do not fit the low area", pt.Size())
	}
	b := make([]byte, pt.Size())
	pt.Encode(b)
	for i := 0; i < len(b); i += 8 {
		e := binary.LittleEndian.Uint64(b[i:])
		if e == 0 {
			continue
		}
		e |= pteAccessed
		if e&pteHuge != 0 {
			e |= pteDirty
		}
		binary.LittleEndian.PutUint64(b[i:], e)
	}
	return b, nil
}

// The identity tables are the same in every Linux-boot VM: the process
// holds them once, in a sealed memfd, and each VM maps them copy-on-write
// at gpaIdentityPT, like the system page; a Linux-boot guest runs on them
// only until it loads its own (Unikraft: a few instructions). A table
// page the host writes for the guest makes it the VM's own copy, as
// before, and changes no other VM's: with A and D preset the walker has
// nothing to write, but a host may check a walk's table accesses as
// writes. The emulated host (QEMU 7.2 TCG's nested SVM, scripts/kvmhost)
// does for every walk (its ptw_translate probes each table page as a
// store), as KVM models nested paging with A/D bits (paging_tmpl.h:
// AMD's NPT, Intel's EPT with A/D): each of the six pages a VM's walks
// go through becomes its own copy there, preset or not (3 for stock
// Unikraft, 4 pooled, either way: docs/notes/boot-info.md, ukpt17); the
// preset keeps them shared on a host that reads guest tables as reads.
// (In a read-only memory slot, such a walk exits as a write to GPA
// 0x4000: that VM could not run at all.)
var sharedIdentityTables = sync.OnceValues(func() (*os.File, error) {
	b, err := identityTables()
	if err != nil {
		return nil, err
	}
	return monitor.SealedFile("unipool-identity-tables", b)
})

// identityTablesPiece is the copy-on-write piece of the identity tables;
// ok is false where the VM writes its own copy.
func identityTablesPiece() (_ cowPiece, ok bool) {
	f, err := sharedIdentityTables()
	if err != nil {
		return cowPiece{}, false
	}
	fi, err := f.Stat()
	if err != nil {
		return cowPiece{}, false
	}
	return cowPiece{off: gpaIdentityPT, size: uint64(fi.Size()), fd: int(f.Fd())}, true
}
