package loader

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/monitor"
)

// SnapshotBootArea is the boot-info area `unipool snapshot` lays out: the
// command line of an instance started from the snapshot must fit it
// (boot info + command line + NUL), since the stack and heap that follow
// are where the snapshot has them.
const SnapshotBootArea = 64 << 10

// planSnapshot lays out an instance started from the description's
// snapshot. The layout is the cold one the snapshot was taken with (the
// map's bases, its memory size and boot area), except that every private
// range holds the snapshot's memory: each stored page mapped copy-on-write
// from the pool blob it lies in (consecutive pages of one page pack as one
// mapping), every other page zero. The boot-info area is this
// instance's own (command line, seed, instance id), written fresh, and the
// guest resumes at its ready point with the snapshot's registers.
func (p *Prepared) planSnapshot(opt Options) (*Layout, error) {
	s := p.cfg.Snapshot
	if s == nil {
		return nil, fmt.Errorf("unikernel %q has no snapshot (`unipool snapshot %s` takes one)", p.u.Name, p.u.Name)
	}
	if opt.ASLR {
		return nil, fmt.Errorf("unikernel %q: a snapshot fixes the layout it was taken with; it cannot start with --aslr (start it cold, without --snapshot)", p.u.Name)
	}
	if opt.Load != monitor.LoadShared {
		return nil, fmt.Errorf("unikernel %q: a snapshot is mapped from the pool; load mode %q does not apply", p.u.Name, opt.Load)
	}
	if opt.MemSize != 0 && opt.MemSize != s.MemSize {
		return nil, fmt.Errorf("unikernel %q: its snapshot was taken with %d bytes of memory, not %d", p.u.Name, s.MemSize, opt.MemSize)
	}
	cold := opt
	cold.Snapshot, cold.snapshotCold = false, true
	cold.MemSize, cold.BootArea, cold.BootRoom = s.MemSize, s.StackBootArea, s.StackBootRoom
	if s.StackBootArea == 0 {
		cold.BootArea, cold.LegacyBootPage = s.BootArea, true
	}
	lay, err := p.Plan(cold)
	if err != nil {
		return nil, err
	}
	if err := lay.applySnapshot(s, p.u.BlobPath); err != nil {
		return nil, fmt.Errorf("unikernel %q: snapshot: %w", p.u.Name, err)
	}
	return lay, nil
}

// applySnapshot replaces the contents of every private range but the boot
// info with the snapshot's pages. The stack and heap are written before
// they are read (allocators never read what they have not handed out), so
// their zero runs stay anonymous; a library's private part may be read
// where nothing wrote it (bss), and on a host without a shared zero page
// each such read would cost the instance a page: with a zero blob those
// runs map it instead.
func (lay *Layout) applySnapshot(s *desc.Snapshot, blobPath func(string) string) error {
	var out []Mapping
	next := 0 // the next snapshot page to place
	for _, m := range lay.AllMappings() {
		if lay.BootEnd != 0 && m.Addr <= lay.BootInfo && lay.BootInfo < m.Addr+m.Size {
			// The stack's top: the snapshot's pages (its frames, the
			// TCB) with this instance's boot area written over theirs
			// (stored zero: ScrubBootArea).
			var err error
			if next, err = lay.mergeBootArea(&m, s, next, blobPath); err != nil {
				return err
			}
			out = append(out, m)
			continue
		}
		if (m.File != "" && !m.COW) || m.Part == PartBootInfo {
			if next < len(s.Pages) && s.Pages[next].Addr < m.Addr+m.Size && m.Part != PartBootInfo {
				return fmt.Errorf("page at %#x lies in %s, which is not private", s.Pages[next].Addr, lay.Describe(s.Pages[next].Addr))
			}
			for next < len(s.Pages) && s.Pages[next].Addr < m.Addr+m.Size {
				next++ // a boot-info page: this instance writes its own
			}
			out = append(out, m)
			continue
		}
		if next < len(s.Pages) && s.Pages[next].Addr < m.Addr {
			return fmt.Errorf("page at %#x lies in no private range", s.Pages[next].Addr)
		}
		// Zero runs are anonymous memory, or in a library's private
		// part copy-on-write mappings of the zero blob; stored pages
		// their blobs.
		zero := func(lo, hi uint64) {
			if s.Zero == "" || m.Part == PartStack || m.Part == PartHeap {
				if hi > lo {
					out = append(out, Mapping{Addr: lo, Size: hi - lo, Prot: m.Prot, Library: m.Library, Part: m.Part})
				}
				return
			}
			for ; hi > lo; lo += min(hi-lo, desc.SnapshotZeroSize) {
				out = append(out, Mapping{Addr: lo, Size: min(hi-lo, desc.SnapshotZeroSize), Prot: m.Prot, File: blobPath(s.Zero),
					Digest: s.Zero, COW: true, Library: m.Library, Part: m.Part})
			}
		}
		at := m.Addr
		for next < len(s.Pages) && s.Pages[next].Addr < m.Addr+m.Size {
			pg := s.Pages[next]
			zero(at, pg.Addr)
			if m.Part == PartStack || m.Part == PartHeap {
				// The stack's and heap's stored pages are written by
				// (nearly) every instance: the frames it resumes in and
				// the TCB its canary goes to; the init phase's blocks and
				// the allocator's metadata next to them (304 of 310
				// written, 200 unikernels). A copy in its anonymous
				// memory costs the same page and no mapping of its own
				// (see copiedPage).
				data, err := copiedPage(blobPath(pg.BlobDigest()), pg.Offset)
				if err != nil {
					return fmt.Errorf("%s page at %#x: %w", m.Part, pg.Addr, err)
				}
				out = append(out, Mapping{Addr: pg.Addr, Size: abi.PageSize, Prot: m.Prot, Data: data, Library: m.Library, Part: m.Part})
			} else if n := len(out); n > 0 && out[n-1].COW && out[n-1].Digest == pg.BlobDigest() && out[n-1].Digest != s.Zero &&
				out[n-1].Addr+out[n-1].Size == pg.Addr && out[n-1].Offset+out[n-1].Size == pg.Offset &&
				out[n-1].Prot == m.Prot && out[n-1].Library == m.Library && out[n-1].Part == m.Part {
				// The next page of the same blob: one mapping for both
				// (consecutive pages of a page pack), one kernel mapping
				// an instance pays instead of two.
				out[n-1].Size += abi.PageSize
			} else {
				out = append(out, Mapping{Addr: pg.Addr, Size: abi.PageSize, Prot: m.Prot, File: blobPath(pg.BlobDigest()),
					Digest: pg.BlobDigest(), Offset: pg.Offset, COW: true, Library: m.Library, Part: m.Part})
			}
			at = pg.Addr + abi.PageSize
			next++
		}
		zero(at, m.Addr+m.Size)
	}
	if next < len(s.Pages) {
		return fmt.Errorf("page at %#x lies in no private range", s.Pages[next].Addr)
	}
	lay.Mappings = out
	regs := s.Regs
	lay.Resume, lay.Console = &regs, s.Console
	return lay.check()
}

// mergeBootArea puts the snapshot's pages that lie in m (the stack
// mapping holding the boot area, whose Data is this instance's boot area
// from the page the stack starts in) under m's Data below the boot info:
// m becomes one copied range. It returns the next snapshot page to place.
func (lay *Layout) mergeBootArea(m *Mapping, s *desc.Snapshot, next int, blobPath func(string) string) (int, error) {
	boot := lay.BootInfo - m.Addr
	var merged []byte
	for next < len(s.Pages) && s.Pages[next].Addr < m.Addr+m.Size {
		pg := s.Pages[next]
		if pg.Addr < m.Addr {
			return next, fmt.Errorf("page at %#x lies in no private range", pg.Addr)
		}
		off := pg.Addr - m.Addr
		if off < boot {
			data, err := copiedPage(blobPath(pg.BlobDigest()), pg.Offset)
			if err != nil {
				return next, fmt.Errorf("stack page at %#x: %w", pg.Addr, err)
			}
			if merged == nil {
				merged = make([]byte, max(uint64(len(m.Data)), boot))
			}
			copy(merged[off:min(off+abi.PageSize, boot)], data)
		}
		next++
	}
	if merged != nil {
		copy(merged[boot:], m.Data[min(boot, uint64(len(m.Data))):])
		m.Data = merged
	}
	return next, nil
}

// ScrubBootArea zeroes the bytes of b, guest memory from addr, that lie in
// the boot area [BootInfo, BootEnd): a snapshot stores none of the boot
// info or command line of the boot it was taken from (every instance
// writes its own), so its pages depend on the image alone.
func (lay *Layout) ScrubBootArea(addr uint64, b []byte) {
	if lay.BootEnd == 0 {
		return
	}
	lo, hi := max(addr, lay.BootInfo), min(addr+uint64(len(b)), lay.BootEnd)
	if lo < hi {
		clear(b[lo-addr : hi-addr])
	}
}

// copiedPage reads a stored page (at off in its blob) for an instance to copy into its
// anonymous stack or heap. Mapped copy-on-write from its blob, as a
// library's data pages are, it would be copied anyway (the instance writes
// it) and cost a mapping of its own, a split of the anonymous one around
// it and an open file in the monitor process: kernel memory per instance,
// ~0.5 KiB a page, for nothing shared. Adjacent anonymous mappings of one
// protection merge. Given back (free-page reporting), such a page reads
// as zero, which the guest ABI allows.
func copiedPage(path string, off uint64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Mapped and copied, not read at the offset: the process monitor
	// plans in its tracer thread, whose seccomp filter allows read, fstat
	// and mmap but not pread.
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if off&(abi.PageSize-1) != 0 || off >= uint64(fi.Size()) || uint64(fi.Size())-off < abi.PageSize {
		return nil, fmt.Errorf("%s: not a page at %#x (%d bytes)", path, off, fi.Size())
	}
	m, err := unix.Mmap(int(f.Fd()), int64(off), abi.PageSize, unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("%s: page at %#x: mmap: %w", path, off, err)
	}
	data := make([]byte, abi.PageSize)
	copy(data, m)
	unix.Munmap(m)
	return data, nil
}

// PrivateRanges are the ranges a snapshot keeps: everything the guest may
// have written (tramp tables, private data and bss, stack, heap), that is
// every mapping but the shared blobs and the boot-info area.
func (lay *Layout) PrivateRanges() []Mapping {
	var out []Mapping
	for _, m := range lay.Mappings {
		if (m.File != "" && !m.COW) || m.Part == PartBootInfo {
			continue
		}
		out = append(out, m)
	}
	return out
}

// Discardable is the part of [addr, addr+size) a guest may give back to
// the host (abi.PortDiscard, free-page reporting): its whole pages that lie
// in the instance's heap or stack, as [start, end) ranges in address order,
// adjacent ones merged; not the stack's top page(s), which hold the boot
// info (and the TCB and first frames, never dead stack). Both monitors ask it before they drop a page, so a
// guest can never make one drop anything else (the boot info, a library's
// data, a shared blob, a monitor's own page).
func (lay *Layout) Discardable(addr, size uint64) [][2]uint64 {
	end := addr + size
	if end < addr {
		end = ^uint64(0)
	}
	lo, hi := pageUp(addr), end&^(abi.PageSize-1)
	if lo < addr || hi <= lo {
		return nil
	}
	var out [][2]uint64
	add := func(mAddr uint64, m *Mapping) {
		if m.Part != PartHeap && m.Part != PartStack {
			return
		}
		if m.File != "" && !m.COW || m.Prot&ProtWrite == 0 {
			return
		}
		if lay.BootEnd != 0 && mAddr <= lay.BootInfo && lay.BootInfo < mAddr+m.Size {
			return // the stack's top page(s): the boot info, the TCB, the first frames
		}
		a, b := max(lo, mAddr), min(hi, mAddr+m.Size)
		if a >= b {
			return
		}
		if n := len(out); n > 0 && out[n-1][1] == a {
			out[n-1][1] = b
			return
		}
		out = append(out, [2]uint64{a, b})
	}
	if lay.Mappings == nil && lay.Placed != nil {
		for _, p := range lay.Placed {
			add(p.Addr, p.M)
		}
		return out
	}
	for i := range lay.Mappings {
		add(lay.Mappings[i].Addr, &lay.Mappings[i])
	}
	return out
}
