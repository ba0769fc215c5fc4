package microvm

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/kvm"
	"github.com/unipool/unipool/internal/monitor"
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
// page the guest may write, plus its page tables and system area, with
// copy-on-write file pieces (init blobs, snapshot pages) in place.
type privateMemory struct {
	mem []byte
}

// cowPiece is a range of a private slot backed by a file mapped private
// (copy-on-write): read, its pages are the file's page-cache pages,
// shared by every VM; written, the VM's own. A hole is a range mapped
// with no access at all (fd -1): a guest access to it makes KVM_RUN fail
// with EFAULT, so a memory slot may span it and still never back it.
type cowPiece struct {
	off, size uint64 // in the slot; page-aligned
	fd        int
	fileOff   int64
	own       *os.File // closed by closePieces (a snapshot page opened for one VM)
	hole      bool
}

func closePieces(pieces []cowPiece) {
	for _, p := range pieces {
		if p.own != nil {
			p.own.Close()
		}
	}
}

// Private slots with copy-on-write pieces are placed in an address range
// of their own, each piece mmapped right after the last with
// MAP_FIXED_NOREPLACE: no mapping is ever replaced. Replacing one (the
// older way: an anonymous slot, then each piece mapped MAP_FIXED over
// its range) unmaps, and every unmap in a process runs the MMU notifier
// of every KVM VM of that process (KVM registers one per VM on the mm),
// under the mm's write lock, and makes a pending memslot change of any VM
// wait for it: with N VMs built at once that is N pieces x N notifiers,
// and starting a shared VM took ~13x a naive one's time in the emulated
// host. The range is far below where the kernel places mappings top-down
// and above the Go heap's hints; a collision (another mapping got there
// first) only moves the slot on.
const (
	privArenaBase  = 0x2000_0000_0000
	privArenaLimit = 0x5000_0000_0000
	privArenaAlign = hugeSize
)

var privArenaNext atomic.Uint64

// privArenaTake reserves size bytes (plus a 2 MiB guard) of the range
// for one slot; it returns 0 when the range is used up.
func privArenaTake(size uint64) uint64 {
	step := (size + privArenaAlign + hugeMask) &^ uint64(hugeMask)
	end := privArenaNext.Add(step)
	if end > privArenaLimit-privArenaBase {
		return 0
	}
	return privArenaBase + end - step
}

// mapCountHint names the likely limit when an mmap fails with ENOMEM:
// each VM takes a mapping for its slot, one per copy-on-write piece and
// one between pieces, and one for its kvm_run area, against the process's
// vm.max_map_count (65530 by default).
func mapCountHint(err error) string {
	if !errors.Is(err, unix.ENOMEM) {
		return ""
	}
	limit, _ := os.ReadFile("/proc/sys/vm/max_map_count")
	maps, _ := os.ReadFile("/proc/self/maps")
	return fmt.Sprintf(" (this process has %d mappings; vm.max_map_count is %s)", bytes.Count(maps, []byte("\n")), strings.TrimSpace(string(limit)))
}

// addrPtr is the address a of memory mapped outside the Go heap.
func addrPtr(a uint64) unsafe.Pointer { return unsafe.Add(unsafe.Pointer(nil), uintptr(a)) }

// errCollision: something else is mapped where a slot was to go.
var errCollision = errors.New("address range taken")

// mapPiecesAt maps the slot [base, base+size): anonymous memory with the
// pieces (sorted by offset) in place, each mmap at the next address with
// MAP_FIXED_NOREPLACE. On a collision it unmaps what it mapped.
func mapPiecesAt(base, size uint64, pieces []cowPiece) error {
	var cur uint64
	mapAt := func(off, n uint64, fd int, fileOff int64, prot int) error {
		flags := unix.MAP_PRIVATE | unix.MAP_FIXED_NOREPLACE
		if fd < 0 {
			flags |= unix.MAP_ANONYMOUS | unix.MAP_NORESERVE
			fileOff = 0
		}
		want := addrPtr(base + off)
		got, err := unix.MmapPtr(fd, fileOff, want, uintptr(n), prot, flags)
		if err == nil && got != want {
			// A kernel before 4.17 takes the address as a hint only.
			unix.MunmapPtr(got, uintptr(n))
			err = errCollision
		}
		if errors.Is(err, unix.EEXIST) {
			err = errCollision
		}
		if err != nil {
			if cur > 0 {
				unix.MunmapPtr(addrPtr(base), uintptr(cur))
			}
			return err
		}
		cur = off + n
		return nil
	}
	const rw = unix.PROT_READ | unix.PROT_WRITE
	for _, p := range pieces {
		if p.off > cur {
			if err := mapAt(cur, p.off-cur, -1, 0, rw); err != nil {
				return err
			}
		}
		if p.hole {
			if err := mapAt(p.off, p.size, -1, 0, unix.PROT_NONE); err != nil {
				return err
			}
			continue
		}
		if err := mapAt(p.off, p.size, p.fd, p.fileOff, rw); err != nil {
			return fmt.Errorf("init blob: mmap: %w", err)
		}
	}
	if size > cur {
		return mapAt(cur, size-cur, -1, 0, rw)
	}
	return nil
}

// newPrivateMemory maps a VM's private slot of size bytes with the given
// copy-on-write pieces and holes (within size, none overlapping) in place;
// the rest is anonymous memory.
func newPrivateMemory(size uint64, ksm bool, pieces []cowPiece) (*privateMemory, error) {
	if size > privateSlotLimit {
		return nil, fmt.Errorf("private guest memory of %d MiB exceeds the monitor's %d MiB limit",
			size>>20, privateSlotLimit>>20)
	}
	slices.SortFunc(pieces, func(a, b cowPiece) int { return cmp.Compare(a.off, b.off) })
	var end uint64
	for _, p := range pieces {
		if p.off < end || p.off+p.size > size || (p.off|p.size)&pageMask != 0 {
			return nil, fmt.Errorf("private guest memory: copy-on-write range [%#x,+%#x) overlaps another or leaves the slot", p.off, p.size)
		}
		end = p.off + p.size
	}
	var mem []byte
	for try := 0; len(pieces) > 0 && mem == nil && try < 64; try++ {
		base := privArenaTake(size)
		if base == 0 {
			break
		}
		err := mapPiecesAt(base, size, pieces)
		if errors.Is(err, errCollision) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("private guest memory (%d MiB): %w%s", size>>20, err, mapCountHint(err))
		}
		mem = unsafe.Slice((*byte)(addrPtr(base)), size)
	}
	if mem == nil {
		ptr, err := unix.MmapPtr(-1, 0, nil, uintptr(size), unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			return nil, fmt.Errorf("private guest memory (%d MiB): mmap: %w%s", size>>20, err, mapCountHint(err))
		}
		mem = unsafe.Slice((*byte)(ptr), size)
		// The range is used up (or every try collided): the pieces go
		// over the anonymous slot, the older way.
		for _, p := range pieces {
			if p.hole {
				if err := unix.Mprotect(mem[p.off:p.off+p.size], unix.PROT_NONE); err != nil {
					unix.MunmapPtr(ptr, uintptr(size))
					return nil, fmt.Errorf("private guest memory: mprotect: %w%s", err, mapCountHint(err))
				}
				continue
			}
			if _, err := unix.MmapPtr(p.fd, p.fileOff, unsafe.Pointer(&mem[p.off]), uintptr(p.size),
				unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED); err != nil {
				unix.MunmapPtr(ptr, uintptr(size))
				return nil, fmt.Errorf("init blob: mmap: %w%s", err, mapCountHint(err))
			}
		}
	}
	priv := &privateMemory{mem: mem}
	// Only the anonymous ranges get the advice, as before.
	var cur uint64
	advise := func(lo, hi uint64) error {
		if hi <= lo {
			return nil
		}
		r := mem[lo:hi]
		// Transparent huge pages would back a guest's first touch of a
		// 2 MiB range with 2 MiB of host memory; small guests touch a
		// few pages.
		if err := unix.Madvise(r, unix.MADV_NOHUGEPAGE); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("private guest memory: madvise(MADV_NOHUGEPAGE): %w", err)
		}
		if ksm {
			if err := unix.Madvise(r, unix.MADV_MERGEABLE); err != nil {
				return fmt.Errorf("private guest memory: madvise(MADV_MERGEABLE): %w (is KSM built into this kernel?)", err)
			}
		}
		return nil
	}
	for _, p := range pieces {
		if err := advise(cur, p.off); err != nil {
			priv.close()
			return nil, err
		}
		cur = p.off + p.size
	}
	if err := advise(cur, size); err != nil {
		priv.close()
		return nil, err
	}
	return priv, nil
}

func (p *privateMemory) close() {
	if p.mem != nil {
		unix.MunmapPtr(unsafe.Pointer(&p.mem[0]), uintptr(len(p.mem)))
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

// The system page (GDT, TSS, IDT, exception stubs at gpaSystem) is the
// same in every VM: writeSystemArea fills it from constants alone, with
// every bit the CPU would set already set (descriptors accessed, the TSS
// descriptor busy as KVM_SET_SREGS loads TR), and the CPU only reads it
// (IDT gates and the TSS are read; exception frames go to the fault
// stack, a private page). So the process holds it once, in a sealed
// memfd, and each VM's private slot maps it copy-on-write at gpaSystem,
// as it maps init blobs: every VM reads the one page-cache page, a page
// per VM less. A guest that writes it anyway (its own page tables, or a
// multiboot guest with paging off) gets its own copy, as before, and
// changes no other VM's: the file is sealed against writes, so no one,
// this process included, can change the shared page. Nothing in it
// depends on an instance, an image or a layout.
//
// Not a read-only memory slot: KVM allocates every slot's metadata with
// vmalloc (Linux 6.1: 12 KiB per slot, whatever its size, measured in the
// emulated host, docs/results/kvm-session-16-lowarea16), three pages per
// VM to save one; a copy-on-write piece of the private slot costs KVM
// nothing (the host kernel: two more VMAs per VM).
var sharedSystemFile = sync.OnceValues(func() (*os.File, error) {
	var area [gpaSystem + pageSize]byte
	writeSystemArea(area[:])
	return monitor.SealedFile("unipool-system-page", area[gpaSystem:])
})

// systemPiece is the copy-on-write piece of a VM's private slot that
// holds the system page; ok is false where this kernel has no sealed
// memfds, and the VM writes its own copy then (writeSystemArea).
func systemPiece() (_ cowPiece, ok bool) {
	f, err := sharedSystemFile()
	if err != nil {
		return cowPiece{}, false
	}
	return cowPiece{off: gpaSystem, size: pageSize, fd: int(f.Fd())}, true
}
