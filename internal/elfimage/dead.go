package elfimage

import (
	"debug/elf"
	"encoding/binary"
	"fmt"

	"github.com/unipool/unipool/internal/abi"
)

// DeadSectionName is the non-allocated section of an aligned image that
// lists its dead pages: pages that hold no byte of code or data its
// unikernel can reach (GNU ld's --gc-sections over the image's own
// objects, script and roots; internal/link pagedce.go). A copying load
// leaves them out, as it leaves out all-zero pages; the pool, which maps
// whole parts, ignores the section.
//
// Its format (little-endian): "UPDP", version uint16 (1), zero uint16,
// count uint32, then count × {start uint64, end uint64}: page-aligned,
// start < end, in increasing address order, none overlapping.
const DeadSectionName = ".unipool.dead"

// deadVersion is the format's version; deadMaxRanges bounds what a
// parser allocates (an image has a few hundred pages).
const (
	deadVersion   = 1
	deadHeader    = 12
	deadEntry     = 16
	deadMaxRanges = 1 << 16
)

// PageRange is the pages [Start, End) of an image.
type PageRange struct{ Start, End uint64 }

// Pages is the number of pages in r.
func (r PageRange) Pages() uint64 { return (r.End - r.Start) / abi.PageSize }

// EncodeDeadPages is the DeadSectionName contents for ranges (sorted,
// page-aligned, not overlapping: ParseDeadPages checks what it writes).
func EncodeDeadPages(ranges []PageRange) []byte {
	b := make([]byte, deadHeader, deadHeader+deadEntry*len(ranges))
	copy(b, "UPDP")
	binary.LittleEndian.PutUint16(b[4:], deadVersion)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(ranges)))
	for _, r := range ranges {
		b = binary.LittleEndian.AppendUint64(b, r.Start)
		b = binary.LittleEndian.AppendUint64(b, r.End)
	}
	return b
}

// ParseDeadPages reads a DeadSectionName section's contents (untrusted:
// every field is checked); name names the image in errors.
func ParseDeadPages(name string, data []byte) ([]PageRange, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("image %s: %s section: %s", name, DeadSectionName, fmt.Sprintf(format, a...))
	}
	if len(data) < deadHeader {
		return nil, bad("%d bytes, shorter than its %d-byte header", len(data), deadHeader)
	}
	if string(data[:4]) != "UPDP" {
		return nil, bad("magic %q is not \"UPDP\"", data[:4])
	}
	if v := binary.LittleEndian.Uint16(data[4:]); v != deadVersion {
		return nil, bad("version %d, this unipool reads version %d", v, deadVersion)
	}
	if z := binary.LittleEndian.Uint16(data[6:]); z != 0 {
		return nil, bad("reserved field %#x is not zero", z)
	}
	n := uint64(binary.LittleEndian.Uint32(data[8:]))
	if n > deadMaxRanges {
		return nil, bad("%d ranges, more than %d", n, deadMaxRanges)
	}
	if want := deadHeader + deadEntry*n; uint64(len(data)) != want {
		return nil, bad("%d bytes for %d ranges, want %d", len(data), n, want)
	}
	if n == 0 {
		return nil, nil
	}
	ranges := make([]PageRange, n)
	for i := range ranges {
		at := deadHeader + deadEntry*i
		r := PageRange{Start: binary.LittleEndian.Uint64(data[at:]), End: binary.LittleEndian.Uint64(data[at+8:])}
		if r.Start%abi.PageSize != 0 || r.End%abi.PageSize != 0 {
			return nil, bad("range %d [%#x,%#x) is not page-aligned", i, r.Start, r.End)
		}
		if r.Start >= r.End {
			return nil, bad("range %d [%#x,%#x) is empty or reversed", i, r.Start, r.End)
		}
		if i > 0 && r.Start < ranges[i-1].End {
			return nil, bad("range %d [%#x,%#x) overlaps or precedes range %d [%#x,%#x)", i, r.Start, r.End, i-1, ranges[i-1].Start, ranges[i-1].End)
		}
		ranges[i] = r
	}
	return ranges, nil
}

// maxDeadSection bounds the section a reader takes into memory.
const maxDeadSection = deadHeader + deadEntry*deadMaxRanges

// ReadDeadPages returns the dead page ranges f's DeadSectionName section
// lists, nil if it has none (a packed or dce image, or an aligned image
// linked before the section existed). name names the image in errors.
func ReadDeadPages(f *elf.File, name string) ([]PageRange, error) {
	sec := f.Section(DeadSectionName)
	if sec == nil {
		return nil, nil
	}
	if sec.Type == elf.SHT_NOBITS || sec.Flags&(elf.SHF_ALLOC|elf.SHF_COMPRESSED) != 0 {
		return nil, fmt.Errorf("image %s: %s section is %v with flags %v, not a non-allocated, uncompressed section with contents", name, DeadSectionName, sec.Type, sec.Flags)
	}
	if sec.Size > maxDeadSection {
		return nil, fmt.Errorf("image %s: %s section of %d bytes, more than %d", name, DeadSectionName, sec.Size, maxDeadSection)
	}
	// Read at its size (sec.Data grows a buffer: a monitor reads every
	// image of its fleet).
	data := make([]byte, sec.Size)
	if _, err := sec.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("image %s: %s section: %w", name, DeadSectionName, err)
	}
	return ParseDeadPages(name, data)
}

// DeadPages returns the image's dead page ranges (ReadDeadPages).
func (im *Image) DeadPages() ([]PageRange, error) { return ReadDeadPages(im.f, im.path) }

// IsDead reports whether the page at vaddr lies in ranges (sorted, as
// ParseDeadPages returns them).
func IsDead(ranges []PageRange, vaddr uint64) bool {
	lo, hi := 0, len(ranges)
	for lo < hi {
		m := (lo + hi) / 2
		switch {
		case vaddr < ranges[m].Start:
			hi = m
		case vaddr >= ranges[m].End:
			lo = m + 1
		default:
			return true
		}
	}
	return false
}
