package link

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/elfimage"
)

// ELF64 header and program header fields setLoadSizes reads and writes.
const (
	ehPhoff     = 0x20
	ehPhentsize = 0x36
	ehPhnum     = 0x38
	phType      = 0
	phVaddr     = 16
	phFilesz    = 32
	phMemsz     = 40
	ptLoad      = 1
)

// trimSplit fits the image at path and its description cfg to the split
// trampoline tables the pass built, given the room reserved for them
// before (reserved, per library). The unused rest of each stub and slot
// area becomes zero, as a loader would give it (the 0xcc filler was for
// the pass, which refuses to overwrite anything else). The shared part
// ends with the stubs used, so the image and the pool load no page of
// unused room: it returns the stub segments' new sizes (address ->
// bytes) for setLoadSizes. Regions keep the map's capacities.
func trimSplit(path string, cfg *desc.Config, reserved []desc.Tramp) (map[uint64]uint64, error) {
	im, err := elfimage.Open(path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zero := func(from, to uint64) error {
		for _, s := range im.Segments() {
			lo, hi := max(from, s.Vaddr), min(to, s.Vaddr+s.FileSize)
			if lo >= hi {
				continue
			}
			if _, err := f.WriteAt(make([]byte, hi-lo), int64(s.Offset+(lo-s.Vaddr))); err != nil {
				return err
			}
		}
		return nil
	}
	loads := map[uint64]uint64{}
	for i := range cfg.Libraries {
		l, res := &cfg.Libraries[i], reserved[i]
		if !res.Split {
			continue
		}
		r := l.Region
		if err := zero(r.PrivateAddr()+l.Tramp.SlotSize, r.PrivateAddr()+res.SlotSize); err != nil {
			return nil, err
		}
		if res.StubSize == 0 {
			continue
		}
		used := l.Tramp.StubSize
		stubs := r.SharedAddr() + res.StubOff
		if err := zero(stubs+used, stubs+res.StubSize); err != nil {
			return nil, err
		}
		if l.InPack() {
			continue // in its pack's segment, which keeps its pages
		}
		loads[stubs] = used
		l.Shared.Size = pageUp(res.StubOff + used)
		var segs []desc.Segment
		for _, s := range l.Shared.Segments {
			if s.Off < l.Shared.Size {
				s.Size = min(s.Size, l.Shared.Size-s.Off)
				segs = append(segs, s)
			}
		}
		l.Shared.Segments = segs
	}
	return loads, f.Close()
}

// setLoadSizes sets the size of the PT_LOAD segments that start at the
// given addresses (file and memory size; never growing them) in the ELF
// image at path.
func setLoadSizes(path string, sizes map[uint64]uint64) error {
	if len(sizes) == 0 {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(data) < 0x40 {
		return fmt.Errorf("%s: not an ELF64 file", path)
	}
	le := binary.LittleEndian
	off, size, n := le.Uint64(data[ehPhoff:]), uint64(le.Uint16(data[ehPhentsize:])), uint64(le.Uint16(data[ehPhnum:]))
	if size < 56 || off+size*n < off || off+size*n > uint64(len(data)) {
		return fmt.Errorf("%s: program headers outside the file", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for i := range n {
		ph := data[off+i*size : off+(i+1)*size]
		keep, ok := sizes[le.Uint64(ph[phVaddr:])]
		if le.Uint32(ph[phType:]) != ptLoad || !ok || keep >= le.Uint64(ph[phMemsz:]) {
			continue
		}
		le.PutUint64(ph[phFilesz:], min(keep, le.Uint64(ph[phFilesz:])))
		le.PutUint64(ph[phMemsz:], keep)
		if _, err := f.WriteAt(ph, int64(off+i*size)); err != nil {
			return err
		}
	}
	return f.Close()
}
