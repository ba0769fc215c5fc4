package pool

import (
	"crypto/sha256"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
	"github.com/unipool/unipool/internal/desc"
)

// image is an aligned image opened to be taken apart.
type image struct {
	path   string
	size   int64
	digest digest.Digest
	f      *os.File
	loads  []*elf.Prog
	config *desc.Config
}

// openImage opens an aligned image and reads its description. Errors name
// the file and what is wrong with it.
func openImage(path string) (*image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	im, err := readImage(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return im, nil
}

func readImage(path string, f *os.File) (*image, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	im := &image{path: path, size: st.Size(), f: f, digest: digest.NewDigest(digest.SHA256, h)}

	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("image %s: not an ELF file (%v)", path, err)
	}
	if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("image %s: %v %v, want an x86-64 ELF64 executable", path, ef.Class, ef.Machine)
	}
	if ef.Type != elf.ET_EXEC {
		return nil, fmt.Errorf("image %s: ELF type %v, want an executable (ET_EXEC)", path, ef.Type)
	}
	for i, p := range ef.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		if p.Off+p.Filesz < p.Off || p.Off+p.Filesz > uint64(im.size) {
			return nil, fmt.Errorf("image %s: truncated: segment %d (file bytes %#x-%#x) ends past the end of the file (%d bytes)", path, i, p.Off, p.Off+p.Filesz, im.size)
		}
		if p.Filesz > p.Memsz || p.Vaddr+p.Memsz < p.Vaddr {
			return nil, fmt.Errorf("image %s: segment %d: bad sizes (file %#x, memory %#x at %#x)", path, i, p.Filesz, p.Memsz, p.Vaddr)
		}
		im.loads = append(im.loads, p)
	}
	sec := ef.Section(desc.SectionName)
	if sec == nil {
		return nil, fmt.Errorf("image %s: no %s section: not an aligned image (link it with `unipool link --layout aligned`)", path, desc.SectionName)
	}
	if sec.Type == elf.SHT_NOBITS || sec.Offset+sec.Size < sec.Offset || sec.Offset+sec.Size > uint64(im.size) {
		return nil, fmt.Errorf("image %s: truncated: section %s (file bytes %#x-%#x) ends past the end of the file (%d bytes)", path, desc.SectionName, sec.Offset, sec.Offset+sec.Size, im.size)
	}
	if sec.Size > maxMetaSize {
		return nil, fmt.Errorf("image %s: section %s: %d bytes, too large for a description", path, desc.SectionName, sec.Size)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("image %s: section %s: %w", path, desc.SectionName, err)
	}
	c, err := desc.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("image %s: section %s: %w", path, desc.SectionName, err)
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
	if entry := c.Libraries[c.Entry.Lib].Region.Start + c.Entry.Off; entry != ef.Entry {
		return nil, fmt.Errorf("image %s: ELF entry %#x, but its description says %#x (library %q + %#x)", path, ef.Entry, entry, c.Libraries[c.Entry.Lib].Name, c.Entry.Off)
	}
	if err := im.checkCovered(); err != nil {
		return nil, err
	}
	return im, nil
}

func (im *image) Close() error { return im.f.Close() }

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
	var inside uint64
	for _, p := range im.loads {
		lo, hi := max(vaddr, p.Vaddr), min(vaddr+n, p.Vaddr+p.Memsz)
		if lo < hi {
			inside += hi - lo
		}
		hi = min(hi, p.Vaddr+p.Filesz)
		if lo >= hi {
			continue
		}
		if _, err := im.f.ReadAt(buf[lo-vaddr:hi-vaddr], int64(p.Off+(lo-p.Vaddr))); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("image %s: truncated at vaddr %#x", im.path, lo)
			}
			return nil, fmt.Errorf("image %s: %w", im.path, err)
		}
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
		lo, hi := p.Vaddr, p.Vaddr+p.Filesz
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
