package kvm

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/kvm"
)

// blobSet is the pool blobs of one unikernel, mapped into this process
// read-only and shared straight from their pool files, back to back in one
// host range, once per process. Every VM of that unikernel gets the whole
// range as a single read-only memory slot: one slot instead of one per
// library keeps KVM's per-VM cost (memslot metadata, slot updates) at that
// of a VM without libraries, and a VM sees exactly its own blobs. Two
// unikernels that share a library map its file once each; the pages are
// the same page-cache pages, so memory holds one copy.
type blobSet struct {
	mem   []byte // the host range
	gpa   uint64 // where every VM of the set sees it
	parts []setPart
}

// setPart is one blob within a set.
type setPart struct {
	id, path  string
	off, size uint64 // in the set; size is page-rounded
}

// blobFile names a blob a layout maps: its digest (id) and its pool file.
type blobFile struct {
	id, path string
	open     func() (*os.File, error) // the verified descriptor's duplicate
}

func (s *blobSet) size() uint64 { return uint64(len(s.mem)) }

// part returns the blob id within the set.
func (s *blobSet) part(id string) (setPart, bool) {
	for _, p := range s.parts {
		if p.id == id {
			return p, true
		}
	}
	return setPart{}, false
}

// blobSets is the process's blob sets, keyed by their ordered blob ids.
type blobSets struct {
	mu    sync.Mutex
	byKey map[string]*blobSet
	next  uint64 // next free GPA
}

func newBlobSets() *blobSets { return &blobSets{byKey: map[string]*blobSet{}, next: gpaSharedBase} }

// get maps the set on first use and returns the process's one mapping.
func (bs *blobSets) get(files []blobFile) (*blobSet, error) {
	ids := make([]string, len(files))
	for i, f := range files {
		ids[i] = f.id
	}
	key := strings.Join(ids, "\x00")
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if s, ok := bs.byKey[key]; ok {
		return s, nil
	}
	set := &blobSet{gpa: bs.next}
	var fds []*os.File
	defer func() {
		for _, f := range fds {
			f.Close()
		}
	}()
	var total uint64
	for _, bf := range files {
		f, err := bf.open()
		if err != nil {
			return nil, fmt.Errorf("blob %s: %w", bf.path, err)
		}
		fds = append(fds, f)
		fi, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("blob %s: %w", bf.path, err)
		}
		if fi.Size() == 0 {
			return nil, fmt.Errorf("blob %s: empty file", bf.path)
		}
		size := pageUp(uint64(fi.Size()))
		set.parts = append(set.parts, setPart{id: bf.id, path: bf.path, off: total, size: size})
		total += size
	}
	if bs.next+total > gpaSharedLimit {
		return nil, fmt.Errorf("the blobs of this call exceed %d GiB of guest-physical space", (gpaSharedLimit-gpaSharedBase)>>30)
	}
	// Reserve the range, then map each file over its part of it.
	mem, err := unix.Mmap(-1, 0, int(total), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("reserving %d bytes for %d blobs: %w", total, len(files), err)
	}
	for i, p := range set.parts {
		if _, err := unix.MmapPtr(int(fds[i].Fd()), 0, unsafe.Pointer(&mem[p.off]), uintptr(p.size),
			unix.PROT_READ, unix.MAP_SHARED|unix.MAP_FIXED); err != nil {
			unix.Munmap(mem)
			return nil, fmt.Errorf("blob %s: mmap: %w", p.path, err)
		}
	}
	set.mem = mem
	bs.byKey[key] = set
	bs.next += total + gpaSharedGap
	return set, nil
}

// find returns the set and blob holding gpa.
func (bs *blobSets) find(gpa uint64) (*blobSet, setPart, bool) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for _, s := range bs.byKey {
		if gpa >= s.gpa && gpa < s.gpa+s.size() {
			for _, p := range s.parts {
				if gpa-s.gpa >= p.off && gpa-s.gpa < p.off+p.size {
					return s, p, true
				}
			}
		}
	}
	return nil, setPart{}, false
}

// close unmaps every set; no VM may use them afterwards.
func (bs *blobSets) close() {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for k, s := range bs.byKey {
		unix.Munmap(s.mem)
		delete(bs.byKey, k)
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

// Memory slots of a VM: the private slot, and the unikernel's blob set.
const (
	slotPrivate = 0
	slotBlobs   = 1
)

// addSlots registers the private slot and, if the VM maps blobs, their
// set as one read-only slot.
func addSlots(vm *kvm.VM, priv *privateMemory, set *blobSet) error {
	if err := vm.SetUserMemoryRegion(kvm.UserspaceMemoryRegion{Slot: slotPrivate, GuestPhysAddr: 0,
		MemorySize: uint64(len(priv.mem)), UserspaceAddr: hostAddr(priv.mem)}); err != nil {
		return fmt.Errorf("private memory: %w", err)
	}
	if set == nil {
		return nil
	}
	if err := vm.SetUserMemoryRegion(kvm.UserspaceMemoryRegion{Slot: slotBlobs, Flags: kvm.MemReadonly,
		GuestPhysAddr: set.gpa, MemorySize: set.size(), UserspaceAddr: hostAddr(set.mem)}); err != nil {
		return fmt.Errorf("library blobs: %w", err)
	}
	return nil
}

func hostAddr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }
