package kvm

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/kvm"
)

// blob is one pool blob mapped into this process: read-only and shared,
// from its pool file, once, whatever the number of VMs using it.
type blob struct {
	path string
	mem  []byte // the host mapping, page-rounded
	gpa  uint64 // where every VM sees it
}

// size is the blob's slot size (a page multiple).
func (b *blob) size() uint64 { return uint64(len(b.mem)) }

// blobs is the process-wide set of mapped blobs, keyed by digest (or path
// when a mapping has no digest).
type blobs struct {
	mu   sync.Mutex
	byID map[string]*blob
	next uint64 // next free GPA
}

func newBlobs() *blobs { return &blobs{byID: map[string]*blob{}, next: gpaSharedBase} }

// get maps the blob on first use and returns the process's one mapping.
func (bs *blobs) get(id, path string) (*blob, error) {
	if id == "" {
		id = path
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if b, ok := bs.byID[id]; ok {
		return b, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", path, err)
	}
	if fi.Size() == 0 {
		return nil, fmt.Errorf("blob %s: empty file", path)
	}
	size := pageUp(uint64(fi.Size()))
	if bs.next+size > gpaSharedLimit {
		return nil, fmt.Errorf("blob %s: the blobs of this call exceed %d GiB of guest-physical space",
			path, (gpaSharedLimit-gpaSharedBase)>>30)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("blob %s: mmap: %w", path, err)
	}
	b := &blob{path: path, mem: mem, gpa: bs.next}
	bs.byID[id] = b
	bs.next += size + gpaSharedGap
	return b, nil
}

// find returns the blob holding gpa, or nil.
func (bs *blobs) find(gpa uint64) *blob {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for _, b := range bs.byID {
		if gpa >= b.gpa && gpa < b.gpa+b.size() {
			return b
		}
	}
	return nil
}

// close unmaps every blob; no VM may use them afterwards.
func (bs *blobs) close() {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for id, b := range bs.byID {
		unix.Munmap(b.mem)
		delete(bs.byID, id)
	}
}

// privateMemory is a VM's private slot: anonymous memory that holds every
// page the guest may write, plus its page tables and system area.
type privateMemory struct {
	mem []byte
}

func newPrivateMemory(size uint64, ksm bool) (*privateMemory, error) {
	if size > privateSlotLimit {
		return nil, fmt.Errorf("private guest memory of %d MiB exceeds the monitor's %d MiB limit",
			size>>20, privateSlotLimit>>20)
	}
	mem, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("private guest memory (%d MiB): mmap: %w", size>>20, err)
	}
	// Transparent huge pages would back a guest's first touch of a 2 MiB
	// range with 2 MiB of host memory; small guests touch a few pages.
	if err := unix.Madvise(mem, unix.MADV_NOHUGEPAGE); err != nil && !errors.Is(err, unix.EINVAL) {
		unix.Munmap(mem)
		return nil, fmt.Errorf("private guest memory: madvise(MADV_NOHUGEPAGE): %w", err)
	}
	if ksm {
		if err := unix.Madvise(mem, unix.MADV_MERGEABLE); err != nil {
			unix.Munmap(mem)
			return nil, fmt.Errorf("private guest memory: madvise(MADV_MERGEABLE): %w (is KSM built into this kernel?)", err)
		}
	}
	return &privateMemory{mem: mem}, nil
}

func (p *privateMemory) close() {
	if p.mem != nil {
		unix.Munmap(p.mem)
		p.mem = nil
	}
}

// Memory slots of a VM: the private slot first, then one per blob.
const slotPrivate = 0

// addSlots registers the private slot and one read-only slot per blob.
func addSlots(vm *kvm.VM, priv *privateMemory, used []*blob) error {
	if err := vm.SetUserMemoryRegion(kvm.UserspaceMemoryRegion{Slot: slotPrivate, GuestPhysAddr: 0,
		MemorySize: uint64(len(priv.mem)), UserspaceAddr: hostAddr(priv.mem)}); err != nil {
		return fmt.Errorf("private memory: %w", err)
	}
	for i, b := range used {
		if err := vm.SetUserMemoryRegion(kvm.UserspaceMemoryRegion{Slot: uint32(slotPrivate + 1 + i),
			Flags: kvm.MemReadonly, GuestPhysAddr: b.gpa, MemorySize: b.size(),
			UserspaceAddr: hostAddr(b.mem)}); err != nil {
			return fmt.Errorf("blob %s: %w", b.path, err)
		}
	}
	return nil
}

func hostAddr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }
