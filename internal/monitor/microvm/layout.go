// Package microvm is the KVM monitor: it runs every instance of a `unipool run`
// call as a microVM over /dev/kvm, all in this one process, each VM with
// one vCPU on its own locked OS thread.
//
// Memory: the pool blobs of a unikernel are mmapped from their pool files
// read-only and shared, back to back in one host range, once per process,
// and every VM of that unikernel gets that range as one KVM_MEM_READONLY
// slot; the guest's page tables map it writable, so a guest write reaches
// KVM, which refuses it, and the VM is stopped with a report. Everything
// else (tramp tables, data, boot info, stack, heap, page tables) is one
// private slot per VM; init blobs are mapped into it copy-on-write, and so
// is the system page (GDT, TSS, IDT, exception stubs), the same in every
// VM: one sealed memfd page for the whole process (sharedSystemFile).
//
// One file per concern: layout.go (fixed guest addresses), memory.go
// (slots and blob mappings), pagetables.go, cpu.go (long-mode state),
// devices.go (console, exit port, fault port), vcpu.go (the run loop),
// vm.go (builds one VM from a loader.Layout), monitor.go (the
// monitor.Monitor: threads, timeouts, hold), measure.go (memory per VM),
// probe.go (does this host's KVM run guests at all).
package microvm

// Guest-physical layout of a VM. Everything the guest may write lives in
// one private slot at GPA 0; pool blobs live in read-only slots above 4 GiB.
//
// The system area (GDT, TSS, IDT, fault stubs and their stack) is mapped at
// guest virtual == guest physical, below the lowest address a loader
// layout may use (it starts at loaderLowest), so it never collides with an
// image or a library region.
const (
	// gpaSystem is one page holding the GDT, the 64-bit TSS, the IDT and
	// the exception stubs, mapped read-only and executable: the CPU only
	// reads them (descriptors come pre-accessed, TR pre-loaded busy), so
	// every VM maps the process's one copy (sharedSystemFile).
	gpaSystem = 0x1000
	gpaGDT    = gpaSystem
	gpaTSS    = gpaSystem + 0x80
	// gpaIDT holds the IDT: 32 exception gates, all on IST1.
	gpaIDT = gpaSystem + 0x200
	// gpaStubs holds the exception stubs: each reports its vector on
	// portFault, so a guest fault becomes a readable report, not a triple
	// fault.
	gpaStubs = gpaSystem + 0x400
	// gpaFaultStack..gpaFaultStackTop is IST1: exceptions switch to it, so
	// the frame the monitor reads sits at a fixed address even when the
	// guest's own stack overflowed. Untouched (not resident) until a fault.
	gpaFaultStack    = 0x2000
	gpaFaultStackTop = 0x4000
	// gpaPrivateData is where the layout's private mappings (tramp tables,
	// data, boot info, stack, heap) start; the page tables follow them.
	gpaPrivateData = 0x10000
	// loaderLowest is the lowest guest virtual address a layout may map
	// (the loader keeps the first 16 pages free for the monitor).
	loaderLowest = 0x10000
	// privateSlotLimit bounds the private slot: it must stay below
	// gpaTSSAddr.
	privateSlotLimit = 0xc000_0000
	// gpaKVMTSS is the three pages KVM_SET_TSS_ADDR asks for (Intel hosts
	// emulate real mode with them); a 32-bit address, outside every slot.
	gpaKVMTSS = 0xfffb_d000
	// gpaSharedBase..gpaSharedLimit is where this process places the pool
	// blobs, each once, at the same GPA in every VM; 64 GiB fits the
	// 36-bit physical address width every x86-64 CPU has.
	gpaSharedBase  = 0x1_0000_0000
	gpaSharedLimit = 0x10_0000_0000
	// gpaSharedGap keeps blobs one page apart so a fault report can never
	// run from one blob into the next.
	gpaSharedGap = 0x1000
)

// GDT selectors.
const (
	selCode = 0x08
	selData = 0x10
	selTSS  = 0x18
)

// portFault is the monitor's own port: the exception stubs write the
// vector to it. It is no part of the guest ABI.
const portFault = 0x510

const (
	pageSize  = 0x1000
	hugeSize  = 0x20_0000 // a 2 MiB page
	pageMask  = pageSize - 1
	hugeMask  = hugeSize - 1
	maxOutput = 1 << 20 // console bytes kept per VM by default
)

func pageUp(n uint64) uint64 { return (n + pageMask) &^ pageMask }
