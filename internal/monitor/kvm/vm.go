package kvm

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/kvm"
	"github.com/unipool/unipool/internal/loader"
)

// machine is one microVM: its KVM fds, its private memory, the blobs it
// shares with the other VMs of the process, and its devices' state.
type machine struct {
	name     string
	instance int
	layout   *loader.Layout
	vm       *kvm.VM
	cpu      *kvm.VCPU
	priv     *privateMemory
	blobs    *blobs // the process's, for naming a faulting GPA
	placed   []placement
	cr3      uint64
	ptBase   uint64 // GPA of the page tables (they end the private slot)
	console  console

	// mu guards the thread the vCPU runs on, so a timeout never signals a
	// thread that has moved on.
	mu      sync.Mutex
	tid     int
	running bool
	stopped string // why the monitor stopped the VM ("" while it may run)
}

// placement records where a layout mapping sits in guest-physical memory.
type placement struct {
	m    *loader.Mapping
	gpa  uint64
	blob *blob // nil for private memory
}

// host is what every VM of the process shares: /dev/kvm and its answers,
// and the blob mappings.
type host struct {
	sys      *kvm.System
	runSize  int
	cpuid    []kvm.CPUIDEntry2
	blobs    *blobs
	ksm      bool
	readonly bool // KVM_CAP_READONLY_MEM
}

// newMachine creates the VM and its vCPU. It runs on the thread that will
// run the vCPU. plan is called once the TSC frequency is known.
func (h *host) newMachine(name string, instance int, plan func(tscKHz uint64) (*loader.Layout, error)) (_ *machine, err error) {
	m := &machine{name: name, instance: instance, blobs: h.blobs, tid: unix.Gettid()}
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	if m.vm, err = h.sys.CreateVM(); err != nil {
		return nil, err
	}
	if err = m.vm.SetTSSAddr(gpaKVMTSS); err != nil {
		return nil, err
	}
	if m.cpu, err = m.vm.CreateVCPU(0); err != nil {
		return nil, err
	}
	if err = m.cpu.MapRun(h.runSize); err != nil {
		return nil, err
	}
	if err = m.cpu.SetCPUID2(h.cpuid); err != nil {
		return nil, err
	}
	tsc, _ := m.cpu.TSCKHz() // 0 (unknown) is a valid boot-info value
	if m.layout, err = plan(tsc); err != nil {
		return nil, err
	}
	if err = h.buildMemory(m); err != nil {
		return nil, err
	}
	s, err := m.cpu.Sregs()
	if err != nil {
		return nil, err
	}
	longModeSregs(&s, m.cr3)
	if err = m.cpu.SetSregs(s); err != nil {
		return nil, err
	}
	if err = m.cpu.SetRegs(entryRegs(m.layout.Entry, m.layout.StackTop, m.layout.BootInfo)); err != nil {
		return nil, err
	}
	return m, nil
}

// buildMemory places every mapping of the layout: pool blobs at their
// process-wide GPA (read-only slots), everything else packed into the
// private slot, followed by the page tables that give each its guest
// virtual address.
func (h *host) buildMemory(m *machine) error {
	cursor := uint64(gpaPrivateData)
	var used []*blob
	seen := map[*blob]bool{}
	for i := range m.layout.Mappings {
		mp := &m.layout.Mappings[i]
		if mp.Addr < loaderLowest {
			return fmt.Errorf("mapping %s at %#x is below %#x, which the monitor keeps for itself", what(mp), mp.Addr, loaderLowest)
		}
		if mp.File != "" {
			if !h.readonly {
				return fmt.Errorf("this KVM lacks read-only memory slots (KVM_CAP_READONLY_MEM); use --load naive")
			}
			b, err := h.blobs.get(mp.Digest, mp.File)
			if err != nil {
				return err
			}
			if mp.Offset&pageMask != 0 || mp.Offset+mp.Size > b.size() {
				return fmt.Errorf("mapping %s: [%#x,+%#x) outside blob %s (%d bytes)", what(mp), mp.Offset, mp.Size, b.path, b.size())
			}
			if !seen[b] {
				seen[b] = true
				used = append(used, b)
			}
			m.placed = append(m.placed, placement{m: mp, gpa: b.gpa + mp.Offset, blob: b})
			continue
		}
		if mp.Size >= hugeSize {
			// Same offset within a 2 MiB page as the GVA, so the page
			// tables can use 2 MiB pages for big ranges (the heap).
			cursor += (mp.Addr - cursor) & hugeMask
		}
		m.placed = append(m.placed, placement{m: mp, gpa: cursor})
		cursor += mp.Size
	}

	pt := newPageTables(cursor)
	system := []struct{ gpa, size, flags uint64 }{
		{gpaSystem, pageSize, 0},
		{gpaFaultStack, gpaFaultStackTop - gpaFaultStack, pteWritable | pteNX},
	}
	for _, s := range system {
		if err := pt.Map(s.gpa, s.gpa, s.size, s.flags); err != nil {
			return err
		}
	}
	for _, p := range m.placed {
		var flags uint64
		// A blob is mapped writable on purpose: a guest write then reaches
		// KVM, which refuses it (read-only slot) and reports it to us.
		if p.m.Prot&loader.ProtWrite != 0 || p.blob != nil {
			flags |= pteWritable
		}
		if p.m.Prot&loader.ProtExec == 0 {
			flags |= pteNX
		}
		if err := pt.Map(p.m.Addr, p.gpa, p.m.Size, flags); err != nil {
			return fmt.Errorf("mapping %s: %w", what(p.m), err)
		}
	}
	m.cr3, m.ptBase = pt.CR3(), pt.base

	priv, err := newPrivateMemory(pt.base+pt.Size(), h.ksm)
	if err != nil {
		return err
	}
	m.priv = priv
	writeSystemArea(priv.mem)
	pt.Encode(priv.mem[pt.base:])
	for _, p := range m.placed {
		if p.blob == nil && len(p.m.Data) > 0 {
			copy(priv.mem[p.gpa:p.gpa+p.m.Size], p.m.Data)
		}
		// The guest has its copy; the layout stays only to name addresses.
		p.m.Data = nil
	}
	return addSlots(m.vm, priv, used)
}

// close releases the VM; the blobs stay (other VMs use them).
func (m *machine) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	if m.cpu != nil {
		errs = append(errs, m.cpu.Close())
		m.cpu = nil
	}
	if m.vm != nil {
		errs = append(errs, m.vm.Close())
		m.vm = nil
	}
	if m.priv != nil {
		m.priv.close()
		m.priv = nil
	}
	return errors.Join(errs...)
}

// what names a mapping in messages.
func what(m *loader.Mapping) string {
	if m.Library != "" {
		return fmt.Sprintf("%s/%s", m.Library, m.Part)
	}
	return m.Part
}

// gvaOfBlobGPA names the guest virtual address and mapping of a GPA in a
// blob, as this VM's page tables were built.
func (m *machine) gvaOfBlobGPA(gpa uint64) (uint64, *loader.Mapping, bool) {
	for _, p := range m.placed {
		if p.blob != nil && gpa >= p.gpa && gpa < p.gpa+p.m.Size {
			return p.m.Addr + gpa - p.gpa, p.m, true
		}
	}
	return 0, nil, false
}
