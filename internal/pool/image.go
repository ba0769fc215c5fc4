package pool

import (
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/elfimage"
)

// image is an aligned image opened to be taken apart.
type image struct {
	path   string
	size   int64
	digest digest.Digest
	el     *elfimage.Image
	loads  []elfimage.Segment
	config *desc.Config
}

// openImage opens an aligned image and reads its description. Errors name
// the file and what is wrong with it.
func openImage(path string) (*image, error) {
	el, err := elfimage.Open(path)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%w (truncated: the file ends before what its headers describe)", err)
	}
	if err != nil {
		return nil, err
	}
	data := el.Bytes()
	im := &image{path: path, size: int64(len(data)), digest: digest.SHA256.FromBytes(data), el: el, loads: el.Segments()}
	c, err := el.Config()
	if errors.Is(err, elfimage.ErrNoConfig) {
		return nil, fmt.Errorf("%w: not an aligned image (link it with `unipool link --layout aligned`)", err)
	}
	if err != nil {
		return nil, err
	}
	if c.Layout != "aligned" {
		return nil, fmt.Errorf("image %s: section %s: layout %q, only aligned images can be pooled", path, desc.SectionName, c.Layout)
	}
	im.config = c
	// Every part the pool copies out is file-backed (shared parts up to
	// their last page), so none can be larger than the file: a description
	// claiming more is wrong, and would make the pool allocate its claim.
	limit := pageUp(uint64(im.size))
	for _, l := range c.Libraries {
		if l.Tramp.Size > limit || l.Shared.Size > limit || l.Private.FileSize > limit {
			return nil, fmt.Errorf("image %s: section %s: library %q has parts larger than the whole file (%d bytes)", path, desc.SectionName, l.Name, im.size)
		}
	}
	if err := im.checkCovered(); err != nil {
		return nil, err
	}
	return im, nil
}

// read returns the n bytes the image loads at vaddr. Bytes no segment
// gives from the file (bss, padding between sections or past the last one)
// read as zero. If whole is set, every byte must lie inside some segment:
// a tramp table or initialised data the image does not contain is an error,
// not zeros.
func (im *image) read(vaddr, n uint64, whole bool) ([]byte, error) {
	if vaddr+n < vaddr {
		return nil, fmt.Errorf("image %s: range %#x+%#x wraps", im.path, vaddr, n)
	}
	buf := make([]byte, n)
	data := im.el.Bytes()
	var inside uint64
	for _, p := range im.loads {
		lo, hi := max(vaddr, p.Vaddr), min(vaddr+n, p.End())
		if lo < hi {
			inside += hi - lo
		}
		hi = min(hi, p.Vaddr+p.FileSize)
		if lo >= hi {
			continue
		}
		// elfimage checked every segment's file range lies in the file.
		off := p.Offset + (lo - p.Vaddr)
		copy(buf[lo-vaddr:hi-vaddr], data[off:off+(hi-lo)])
	}
	if whole && inside < n {
		return nil, fmt.Errorf("image %s: %#x bytes at %#x are not all loaded by the image's segments", im.path, n, vaddr)
	}
	return buf, nil
}

// checkCovered makes sure splitting loses nothing: every non-zero byte a
// segment loads from the file lies in some library's tramp table, shared
// part, or initialised private data, as the description places them.
func (im *image) checkCovered() error {
	type span struct{ lo, hi uint64 }
	var parts []span
	for _, l := range im.config.Libraries {
		r := l.Region
		parts = append(parts,
			span{r.TrampAddr(), r.TrampAddr() + l.Tramp.Size},
			span{r.SharedAddr(), r.SharedAddr() + pageUp(l.Shared.Size)},
			span{r.PrivateAddr(), r.PrivateAddr() + l.Private.FileSize})
	}
	for _, p := range im.loads {
		lo, hi := p.Vaddr, p.Vaddr+p.FileSize
		for lo < hi {
			// Skip to the end of a part covering lo, else check the bytes up
			// to the next part's start.
			next := hi
			covered := false
			for _, s := range parts {
				if s.lo <= lo && lo < s.hi {
					next, covered = min(s.hi, hi), true
					break
				}
				if s.lo > lo && s.lo < next {
					next = s.lo
				}
			}
			if !covered {
				buf, err := im.read(lo, next-lo, false)
				if err != nil {
					return err
				}
				for i, b := range buf {
					if b != 0 {
						return fmt.Errorf("image %s: byte at %#x (segment at %#x) lies in no library part its %s section describes", im.path, lo+uint64(i), p.Vaddr, desc.SectionName)
					}
				}
			}
			lo = next
		}
	}
	return nil
}
