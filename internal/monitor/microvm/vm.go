package microvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/devices"
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
	blobs    *blobSets // the process's, for naming a faulting GPA
	set      *blobSet  // this VM's blobs, nil if none
	placed   []placement
	cr3      uint64
	ptBase   uint64 // GPA of the page tables (they end the private slot)
	console  console
	readyAt  time.Time // when the guest wrote the ready port
	ports    devices.Ports
	// slots are a Linux-boot VM's memory slots (buildIdentityMemory).
	slots []memSlot
	// ignoreReports: free-page reports change nothing.
	ignoreReports bool
	// steps counts the single-stepped instructions of a multiboot
	// guest's 32-bit entry; -1 once it runs 64-bit code (multiboot.go).
	steps int

	// mu guards the thread the vCPU runs on, so a timeout never signals a
	// thread that has moved on.
	mu      sync.Mutex
	tid     int
	running bool
	stopped string // why the monitor stopped the VM ("" while it may run)
}

// placement records where a layout mapping sits in guest-physical memory;
// it outlives the layout (Measure reads it after the run).
type placement struct {
	addr, size, gpa uint64
	blob            bool // in the blob set, else in private memory
	library, part   string
	digest          string
	// cowFile and cowOff name the init blob a copy-on-write mapping
	// comes from.
	cowFile string
	cowOff  uint64
	// runtime: boot info, stack or heap (measure.Runtime), not an image part.
	runtime bool
}

// host is what every VM of the process shares: /dev/kvm and its answers,
// and the blob mappings.
type host struct {
	sys     *kvm.System
	runSize int
	cpuid   []kvm.CPUIDEntry2
	blobs   *blobSets
	mu      sync.Mutex
	inits   map[string]initBlob // init blobs, mapped copy-on-write
	// verified opens each blob path of the call's unikernels through
	// the descriptor launch verified (monitor.Unikernel.OpenBlob).
	verified map[string]func() (*os.File, error)
	ksm      bool
	readonly bool // KVM_CAP_READONLY_MEM
	// ignoreReports: free-page reports change nothing
	// (Options.IgnoreFreePageReports).
	ignoreReports bool
}

// newMachine creates the VM and its vCPU. It runs on the thread that will
// run the vCPU. plan is called once the TSC frequency is known.
//
// boot is the layout's boot protocol (loader.Prepared.Boot): a Linux-boot
// guest gets an in-kernel irqchip and PIT, which must exist before the
// vCPU.
//
// vm, if not nil, is the VM to build, created beforehand (createVMs); the
// machine owns it from here on, also when the build fails.
func (h *host) newMachine(vm *kvm.VM, name string, instance int, boot string, plan func(tscKHz uint64) (*loader.Layout, error)) (_ *machine, err error) {
	m := &machine{name: name, instance: instance, blobs: h.blobs, tid: unix.Gettid(), console: console{max: maxOutput},
		ignoreReports: h.ignoreReports, vm: vm}
	m.ports.Console = m.console.write
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	if m.vm == nil {
		if m.vm, err = h.sys.CreateVM(); err != nil {
			return nil, err
		}
	}
	if err = m.vm.SetTSSAddr(gpaKVMTSS); err != nil {
		return nil, err
	}
	linux := identityBoot(boot)
	if linux {
		if err = m.vm.CreateIRQChip(); err != nil {
			return nil, err
		}
		if err = m.vm.CreatePIT2(kvm.PITSpeakerDummy); err != nil {
			return nil, err
		}
		// An instruction KVM fails to emulate is reported to the
		// monitor (an internal-error exit), not queued to the guest as
		// #UD.
		_ = m.vm.EnableCap(kvm.EnableCap{Cap: kvm.CapExitOnEmulationFailure, Args: [4]uint64{1}})
	}
	if m.cpu, err = m.vm.CreateVCPU(0); err != nil {
		return nil, err
	}
	if err = m.cpu.MapRun(h.runSize); err != nil {
		return nil, err
	}
	tsc, _ := m.cpu.TSCKHz() // 0 (unknown) is a valid boot-info value
	cpuid := h.cpuid
	if linux {
		cpuid = linuxCPUID(h.cpuid, tsc)
	}
	if err = m.cpu.SetCPUID2(cpuid); err != nil {
		return nil, err
	}
	if m.layout, err = plan(tsc); err != nil {
		return nil, err
	}
	if identityBoot(m.layout.Boot) != linux || (linux && m.layout.Boot != boot) {
		return nil, fmt.Errorf("the layout boots by protocol %q, the VM was made for %q", m.layout.Boot, boot)
	}
	if linux {
		err = h.buildIdentityMemory(m)
	} else {
		err = h.buildMemory(m)
	}
	if err != nil {
		return nil, err
	}
	s, err := m.cpu.Sregs()
	if err != nil {
		return nil, err
	}
	longModeSregs(&s, m.cr3)
	regs := entryRegs(m.layout.Entry, m.layout.StackTop, m.layout.BootInfo)
	if m.layout.Boot == loader.BootMultiboot && m.layout.Resume == nil {
		regs = multibootEntry(&s, m.layout)
	}
	if r := m.layout.Resume; r != nil {
		// From a snapshot: its registers at the ready point, its
		// console output replayed.
		s.FS.Base, s.GS.Base = r.FSBase, r.GSBase
		regs = resumeRegs(r)
		m.console.write([]byte(m.layout.Console))
	}
	if err = m.cpu.SetSregs(s); err != nil {
		return nil, err
	}
	if m.layout.Boot == loader.BootLinux64 && m.layout.Resume == nil {
		// The boot protocol: the zero page in %rsi.
		regs = kvm.Regs{RIP: m.layout.Entry, RSP: linuxBootStack, RSI: m.layout.BootInfo, RFLAGS: rflagsReserved}
	}
	if err = m.cpu.SetRegs(regs); err != nil {
		return nil, err
	}
	if err = m.stepEntry(); err != nil {
		return nil, err
	}
	return m, nil
}

// buildMemory places every mapping of the layout: pool blobs at their
// process-wide GPA (read-only slots), everything else packed into the
// private slot, followed by the page tables that give each its guest
// virtual address.
func (h *host) buildMemory(m *machine) error {
	for i := range m.layout.Mappings {
		mp := &m.layout.Mappings[i]
		if mp.Addr < loaderLowest {
			return fmt.Errorf("mapping %s at %#x is below %#x, which the monitor keeps for itself", what(mp), mp.Addr, loaderLowest)
		}
	}
	if err := h.mapBlobs(m); err != nil {
		return err
	}

	cursor := uint64(gpaPrivateData)
	for i := range m.layout.Mappings {
		mp := &m.layout.Mappings[i]
		p := placement{addr: mp.Addr, size: mp.Size, library: mp.Library, part: mp.Part, digest: mp.Digest,
			runtime: loader.IsRuntime(mp.Part)}
		// Copy-on-write mappings (a library's tramp table and data from its
		// init blob) are copied into the private slot from their Data: a
		// memory slot cannot be copy-on-write per VM.
		if mp.File != "" && !mp.COW {
			part, _ := m.set.part(blobID(mp))
			if mp.Offset&pageMask != 0 {
				return fmt.Errorf("mapping %s: offset %#x in blob %s is not page-aligned", what(mp), mp.Offset, part.path)
			}
			if err := mp.CheckFileRange(part.size); err != nil { // part.size: the file's, to the page
				return err
			}
			p.gpa, p.blob = m.set.gpa+part.off+mp.Offset, true
			m.placed = append(m.placed, p)
			continue
		}
		if mp.Size >= hugeSize {
			// Same offset within a 2 MiB page as the GVA, so the page
			// tables can use 2 MiB pages for big ranges (the heap).
			cursor += (mp.Addr - cursor) & hugeMask
		}
		p.gpa = cursor
		m.placed = append(m.placed, p)
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
	for i, p := range m.placed {
		prot := m.layout.Mappings[i].Prot
		var flags uint64
		// A blob is mapped writable on purpose: a guest write then reaches
		// KVM, which refuses it (read-only slot) and reports it to us.
		if prot&loader.ProtWrite != 0 || p.blob {
			flags |= pteWritable
		}
		if prot&loader.ProtExec == 0 {
			flags |= pteNX
		}
		if err := pt.Map(p.addr, p.gpa, p.size, flags); err != nil {
			return fmt.Errorf("mapping %s: %w", what(&m.layout.Mappings[i]), err)
		}
	}
	m.cr3, m.ptBase = pt.CR3(), pt.base

	// The copy-on-write ranges (init blobs, snapshot pages) are mapped
	// with the slot, in one pass that replaces no mapping (see
	// newPrivateMemory); the rest is copied.
	// The system page: the process's one copy (systemPiece).
	sysPiece, shared := systemPiece()
	var pieces []cowPiece
	if shared {
		pieces = append(pieces, sysPiece)
	}
	cow := make([]bool, len(m.placed))
	for i, p := range m.placed {
		mp := &m.layout.Mappings[i]
		if !mp.COW {
			continue
		}
		piece, ok, err := h.cowPieceOf(mp, p.gpa, m.layout.Resume != nil)
		if err != nil {
			closePieces(pieces)
			return err
		}
		if ok {
			pieces, cow[i] = append(pieces, piece), true
		}
	}
	priv, err := newPrivateMemory(pt.base+pt.Size(), h.ksm, pieces)
	closePieces(pieces)
	if err != nil {
		return err
	}
	m.priv = priv
	if !shared {
		writeSystemArea(priv.mem)
	}
	pt.Encode(priv.mem[pt.base:])
	for i, p := range m.placed {
		mp := &m.layout.Mappings[i]
		switch {
		case cow[i]:
			dst := priv.mem[p.gpa : p.gpa+p.size]
			// File-backed: only the instance's patches are written
			// (each makes its page the VM's own).
			for _, pt := range mp.Patches {
				if pt.Off+8 > uint64(len(dst)) {
					return fmt.Errorf("init blob %s: patch at %#x outside %s", mp.File, pt.Off, what(mp))
				}
				binary.LittleEndian.PutUint64(dst[pt.Off:], pt.Value)
			}
			m.placed[i].cowFile, m.placed[i].cowOff = mp.File, mp.Offset
		case !p.blob && len(mp.Data) > 0:
			copy(priv.mem[p.gpa:p.gpa+p.size], mp.Data)
		}
		// The guest has its copy; the layout stays only to name addresses.
		mp.Data = nil
	}
	return addSlots(m.vm, priv, m.set)
}

// cowPieceOf is the copy-on-write piece of the private slot at gpa that
// backs mapping mp with its init blob (or snapshot page); ok is false when
// the range is not mappable page for page (it is copied then, as a naive
// loader would). Under a snapshot (once) the file is opened for this
// VM only: closePieces closes it once the slot is mapped.
func (h *host) cowPieceOf(mp *loader.Mapping, gpa uint64, once bool) (_ cowPiece, ok bool, _ error) {
	open := h.initFile
	if once {
		open = openOnce
	}
	f, size, err := open(mp.File)
	if err != nil {
		return cowPiece{}, false, err
	}
	// Inside the file (the size its descriptor had when opened): before,
	// a range past the file's end was copied from mp.Data, which for a
	// snapshot page is nothing (the page read as zeros).
	if err := mp.CheckFileRange(size); err != nil {
		if once {
			f.Close()
		}
		return cowPiece{}, false, err
	}
	if mp.Offset&pageMask != 0 || gpa&pageMask != 0 {
		if once {
			f.Close()
		}
		return cowPiece{}, false, nil
	}
	piece := cowPiece{off: gpa, size: pageUp(mp.Size), fd: int(f.Fd()), fileOff: int64(mp.Offset)}
	if once {
		piece.own = f
	}
	return piece, true, nil
}

// initBlob is an init blob opened for the call, and its size.
type initBlob struct {
	f    *os.File
	size uint64
}

// initFile opens an init blob once per call and reads its size once:
// a VM's build makes no system call for it but the mmap (where the pool
// is a network or 9p mount, each fstat is a round trip).
func (h *host) initFile(path string) (*os.File, uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b, ok := h.inits[path]; ok {
		return b.f, b.size, nil
	}
	f, err := h.opener(path)()
	if err != nil {
		return nil, 0, fmt.Errorf("init blob: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("init blob %s: %w", path, err)
	}
	h.inits[path] = initBlob{f, uint64(fi.Size())}
	return f, uint64(fi.Size()), nil
}

// openOnce opens a blob for one mapping.
func openOnce(path string) (*os.File, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot page: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("snapshot page %s: %w", path, err)
	}
	return f, uint64(fi.Size()), nil
}

// opener returns how to open the blob file at path: through the verified
// descriptor of the unikernel that names it (launch.Resolve), else by path.
// h.verified is filled before any VM is built and only read after, so no
// lock: initFile calls this holding h.mu.
func (h *host) opener(path string) func() (*os.File, error) {
	if open := h.verified[path]; open != nil {
		return open
	}
	return func() (*os.File, error) { return os.Open(path) }
}

// blobID names a mapping's blob: its digest, or its file.
func blobID(m *loader.Mapping) string {
	if m.Digest != "" {
		return m.Digest
	}
	return m.File
}

// forgetLayout drops what only the run needed (addresses are named only
// while the guest runs): a held VM keeps its private ranges, merged, for
// Measure, and nothing else.
func (m *machine) forgetLayout() {
	var kept []placement
	for _, p := range m.placed {
		if p.blob {
			continue
		}
		if n := len(kept); n > 0 && p.cowFile == "" && kept[n-1].cowFile == "" && kept[n-1].gpa+kept[n-1].size == p.gpa &&
			kept[n-1].runtime == p.runtime {
			kept[n-1].size += p.size
			continue
		}
		kept = append(kept, placement{gpa: p.gpa, size: p.size, cowFile: p.cowFile, cowOff: p.cowOff, runtime: p.runtime})
	}
	m.placed = slices.Clip(kept)
	m.layout = nil
}

// close releases the VM; the blobs stay (other VMs use them).
func (m *machine) close() error {
	err := m.closeKVM()
	m.unmapMemory()
	return err
}

// closeKVM releases the VM's KVM part: its fds and the vCPU's kvm_run
// mapping, the last reference to the VM, so KVM destroys it and its MMU
// notifier leaves the process. Its guest memory stays mapped.
func (m *machine) closeKVM() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	if m.vm != nil {
		errs = append(errs, m.vm.Close())
		m.vm = nil
	}
	if m.cpu != nil {
		errs = append(errs, m.cpu.Close())
		m.cpu = nil
	}
	return errors.Join(errs...)
}

// unmapMemory unmaps the VM's private guest memory.
func (m *machine) unmapMemory() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.priv != nil {
		m.priv.close()
		m.priv = nil
	}
}

// what names a mapping in messages.
func what(m *loader.Mapping) string {
	if m.Library != "" {
		return fmt.Sprintf("%s/%s", m.Library, m.Part)
	}
	return m.Part
}

// gvaOfBlobGPA names the guest virtual address and mapping of a GPA in
// the blob set, as this VM's page tables were built.
func (m *machine) gvaOfBlobGPA(gpa uint64) (uint64, placement, bool) {
	for _, p := range m.placed {
		if p.blob && gpa >= p.gpa && gpa < p.gpa+p.size {
			return p.addr + gpa - p.gpa, p, true
		}
	}
	return 0, placement{}, false
}

// mapBlobs gives m the process's one mapping of each pool blob its layout
// maps shared (not copy-on-write), as read-only slots.
func (h *host) mapBlobs(m *machine) error {
	files := h.sharedBlobFiles(m.layout)
	if len(files) == 0 {
		return nil
	}
	if !h.readonly {
		return fmt.Errorf("this KVM lacks read-only memory slots (KVM_CAP_READONLY_MEM); use --load naive")
	}
	set, err := h.blobs.get(files)
	if err != nil {
		return err
	}
	m.set = set
	return nil
}

// sharedBlobFiles lists the pool blobs a layout maps shared (not
// copy-on-write), each once, in the layout's order (the blob set's key).
func (h *host) sharedBlobFiles(lay *loader.Layout) []blobFile {
	var files []blobFile
	seen := map[string]bool{}
	for i := range lay.Mappings {
		mp := &lay.Mappings[i]
		if id := blobID(mp); mp.File != "" && !mp.COW && !seen[id] {
			seen[id] = true
			files = append(files, blobFile{id: id, path: mp.File, open: h.opener(mp.File)})
		}
	}
	return files
}

// prepareBlobs maps a unikernel's blob set and opens its init blobs
// before its VMs are built, as a naive load reads its blobs in
// loader.Prepare: the work done once per unikernel and process, not once
// per VM, is not a VM's start. Its VMs then find the set mapped
// (blobSets.get) and the init blobs open and sized (initFile), and wait
// for no other VM's opening of the files (one round trip each where the
// pool is a 9p or network mount).
func (h *host) prepareBlobs(p *loader.Prepared, lo loader.Options) error {
	if !h.readonly {
		return nil // each VM reports it
	}
	lay, err := p.Plan(lo)
	if err != nil {
		return err
	}
	if identityBoot(lay.Boot) {
		// Each VM maps the files itself (buildIdentityMemory).
		for i := range lay.Mappings {
			if mp := &lay.Mappings[i]; mp.File != "" && (!mp.COW || lay.Resume == nil) {
				if _, _, err := h.initFile(mp.File); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if files := h.sharedBlobFiles(lay); len(files) > 0 {
		if _, err := h.blobs.get(files); err != nil {
			return err
		}
	}
	if lay.Resume != nil {
		return nil // a snapshot's pages are opened per VM (openOnce)
	}
	for i := range lay.Mappings {
		if mp := &lay.Mappings[i]; mp.COW {
			if _, _, err := h.initFile(mp.File); err != nil {
				return err
			}
		}
	}
	return nil
}
