package kvm

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/unipool/unipool/internal/kvm"
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
	top := uint64(gpaPrivateData)
	for i := range m.layout.Mappings {
		mp := &m.layout.Mappings[i]
		if mp.Addr < loaderLowest && mp.Addr+mp.Size > gpaSystem {
			return fmt.Errorf("mapping %s at %#x overlaps the monitor's low area [%#x,%#x)", what(mp), mp.Addr, gpaSystem, loaderLowest)
		}
		if mp.Addr+mp.Size > identityLimit {
			return fmt.Errorf("mapping %s [%#x,%#x) lies above 4 GiB, past the identity map a Linux-boot guest is started with", what(mp), mp.Addr, mp.Addr+mp.Size)
		}
		// The reservation spans blob ranges too (untouched, so free):
		// a shared page the guest must write is copied there.
		top = max(top, mp.Addr+mp.Size)
	}
	if err := h.mapBlobs(m); err != nil {
		return err
	}
	priv, err := newPrivateMemory(top, h.ksm, nil)
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

	slots := []memSlot{{gpa: 0, size: gpaPrivateData, host: hostAddr(priv.mem)}}
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
			slots = append(slots, memSlot{gpa: mp.Addr, size: mp.Size, host: hostAddr(m.set.mem[part.off+mp.Offset:]), ro: true})
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
			slots = append(slots, memSlot{gpa: mp.Addr, size: mp.Size, host: hostAddr(priv.mem[mp.Addr:])})
		}
	}
	if len(slots) > maxSlots {
		return fmt.Errorf("the layout needs %d memory slots (at most %d)", len(slots), maxSlots)
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].gpa < slots[j].gpa })
	for i := range slots {
		slots[i].id = uint32(i)
		if err := m.setSlot(slots[i]); err != nil {
			return err
		}
	}
	m.slots = slots
	return nil
}

// memSlot is one KVM memory slot of a Linux-boot VM.
type memSlot struct {
	id              uint32
	gpa, size, host uint64
	ro              bool
}

func (m *machine) setSlot(s memSlot) error {
	r := kvm.UserspaceMemoryRegion{Slot: s.id, GuestPhysAddr: s.gpa, MemorySize: s.size, UserspaceAddr: s.host}
	if s.ro {
		r.Flags = kvm.MemReadonly
	}
	return m.vm.SetUserMemoryRegion(r)
}

// SVM's report of a nested page fault, as KVM passes it in an emulation
// failure (kvm_run.internal.data: flags, instruction length and bytes,
// exit code, exit_info_1, exit_info_2).
const (
	svmExitNPF      = 0x400
	npfWrite        = 1 << 1
	npfGuestWalk    = 1 << 33 // the fault came from walking the guest's page tables
	internalEmulErr = 1       // KVM_INTERNAL_ERROR_EMULATION
)

// sharedPageWrite recognises the one write KVM cannot turn into an MMIO
// exit: the CPU setting accessed/dirty bits in guest page tables that lie
// in a read-only slot (Unikraft keeps its boot page tables in its
// platform library's .text). It returns the page's GPA.
func sharedPageWrite(in *kvm.RunInternal) (uint64, bool) {
	if in.Suberror != internalEmulErr || in.NData < 6 {
		return 0, false
	}
	d := in.Data
	if d[3] != svmExitNPF || d[4]&npfWrite == 0 || d[4]&npfGuestWalk == 0 {
		return 0, false
	}
	return d[5] &^ pageMask, true
}

// copySharedPage makes the shared page at gpa this VM's own: its bytes
// are copied into the private reservation and the read-only slot holding
// it is split around one writable page. The other VMs keep the shared
// page; this one pays one page.
func (m *machine) copySharedPage(gpa uint64) error {
	if m.written >= maxWrittenPages {
		return fmt.Errorf("the guest wrote %d pages of its read-only libraries", m.written)
	}
	i := -1
	for k, s := range m.slots {
		if s.ro && gpa >= s.gpa && gpa < s.gpa+s.size {
			i = k
		}
	}
	if i < 0 || gpa+pageSize > uint64(len(m.priv.mem)) {
		return fmt.Errorf("GPA %#x is in no read-only slot", gpa)
	}
	s := m.slots[i]
	off := s.host + (gpa - s.gpa) - hostAddr(m.set.mem)
	if off+pageSize > m.set.size() {
		return fmt.Errorf("GPA %#x: slot outside the blob set", gpa)
	}
	copy(m.priv.mem[gpa:gpa+pageSize], m.set.mem[off:off+pageSize])
	// KVM moves no slot in place: delete it, then add the pieces.
	del := s
	del.size = 0
	if err := m.setSlot(del); err != nil {
		return err
	}
	pieces := []memSlot{
		{gpa: s.gpa, size: gpa - s.gpa, host: s.host, ro: true},
		{gpa: gpa, size: pageSize, host: hostAddr(m.priv.mem[gpa:])},
		{gpa: gpa + pageSize, size: s.gpa + s.size - gpa - pageSize, host: s.host + gpa + pageSize - s.gpa, ro: true},
	}
	m.slots = append(m.slots[:i:i], m.slots[i+1:]...)
	for _, p := range pieces {
		if p.size == 0 {
			continue
		}
		p.id = m.nextSlot()
		if err := m.setSlot(p); err != nil {
			return err
		}
		m.slots = append(m.slots, p)
	}
	sort.Slice(m.slots, func(a, b int) bool { return m.slots[a].gpa < m.slots[b].gpa })
	m.written++
	lib := ""
	if _, pl, ok := m.gvaOfBlobGPA(gpa); ok {
		lib = pl.library
	}
	m.placed = append(m.placed, placement{addr: gpa, size: pageSize, gpa: gpa, library: lib, part: "written shared page"})
	return nil
}

// maxWrittenPages bounds the shared pages one VM may turn private.
const maxWrittenPages = 256

// nextSlot returns a slot id no slot of the VM uses.
func (m *machine) nextSlot() uint32 {
	used := map[uint32]bool{}
	for _, s := range m.slots {
		used[s.id] = true
	}
	for id := uint32(0); ; id++ {
		if !used[id] {
			return id
		}
	}
}

// writeSharedPage completes a guest write that KVM refused because it hit
// a read-only slot: the pages it touches become the VM's own
// (copySharedPage), then the bytes are stored. An address in no
// read-only slot is an error (the caller reports the write).
func (m *machine) writeSharedPage(gpa uint64, data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("empty write")
	}
	for page := gpa &^ pageMask; page <= (gpa+uint64(len(data))-1)&^pageMask; page += pageSize {
		if m.inReadonlySlot(page) {
			if err := m.copySharedPage(page); err != nil {
				return err
			}
		} else if !m.inPrivateSlot(page) {
			return fmt.Errorf("GPA %#x is not guest memory", page)
		}
	}
	copy(m.priv.mem[gpa:gpa+uint64(len(data))], data)
	return nil
}

func (m *machine) inReadonlySlot(gpa uint64) bool {
	for _, s := range m.slots {
		if s.ro && gpa >= s.gpa && gpa < s.gpa+s.size {
			return true
		}
	}
	return false
}

func (m *machine) inPrivateSlot(gpa uint64) bool {
	for _, s := range m.slots {
		if !s.ro && gpa >= s.gpa && gpa < s.gpa+s.size {
			return true
		}
	}
	return false
}

// copyPageTables makes every page of the guest's current page tables
// that lies in a read-only slot the VM's own: the CPU sets accessed and
// dirty bits in them as it walks, which a read-only slot cannot take
// (KVM cannot emulate the walk's write). Unikraft's boot page tables
// (x86_bpt_*) are in its platform library's .text: seven pages.
func (m *machine) copyPageTables() error {
	s, err := m.cpu.Sregs()
	if err != nil {
		return err
	}
	var walk func(table uint64, level int) error
	walk = func(table uint64, level int) error {
		if m.inReadonlySlot(table) {
			if err := m.copySharedPage(table); err != nil {
				return err
			}
		}
		if level == 1 {
			return nil
		}
		page, ok := m.readPage(table)
		if !ok {
			return nil // not memory: the walk faults in the guest
		}
		for i := 0; i < 512; i++ {
			e := binary.LittleEndian.Uint64(page[i*8:])
			if e&ptePresent == 0 || (level <= 3 && e&pteHuge != 0) {
				continue
			}
			if err := walk(e&pteAddrMask, level-1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(s.CR3&pteAddrMask, 4)
}

// readPage returns the bytes of the guest page at gpa, from whichever
// slot holds it.
func (m *machine) readPage(gpa uint64) ([]byte, bool) {
	for _, s := range m.slots {
		if gpa < s.gpa || gpa+pageSize > s.gpa+s.size {
			continue
		}
		if !s.ro {
			return m.priv.mem[gpa : gpa+pageSize], true
		}
		off := s.host + (gpa - s.gpa) - hostAddr(m.set.mem)
		return m.set.mem[off : off+pageSize], true
	}
	return nil, false
}
