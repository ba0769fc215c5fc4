package link

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/elfimage"
)

// Page-granular dead-code elimination of an aligned image (issue 19,
// session 16). An aligned image carries whole libraries at their map
// addresses; a copying load (the KSM baselines) copied every page of them.
// The link finds the pages that hold no byte its unikernel can reach and
// lists them in elfimage.DeadSectionName; a copying load leaves them out.
// The library bytes, addresses and pool blobs stay as they are.
//
// Liveness is GNU ld's own: the link is run a second time with the same
// script, objects, flags and roots plus --gc-sections
// --print-gc-sections (its output thrown away), and the input sections ld
// removes are dead. Their addresses in the image come from the real
// link's -Map. A page is dead only if
//   - no input section ld kept (or that is not one of the link's objects',
//     or whose name or object is ambiguous, or that ld merges: SHF_MERGE)
//     has a byte on it,
//   - every allocated output section with a byte on it is a library's
//     code, read-only data, data or bss (the sections the script names
//     .text.LIB ...), whose bytes are its input sections and the padding
//     between them, or a pack fill (bytes of pack members the image does
//     not link); stubs, slots, GOT, tables, TLS and everything else keep
//     their pages,
//   - and every non-zero byte of the page lies in such a section.

// untrusted is deadPages' answer when ld's liveness does not fit the
// image: the link lists no dead page and says why in a warning.
type untrusted string

func (u untrusted) Error() string { return string(u) }

// gcRemoved matches ld's --print-gc-sections lines.
var gcRemoved = regexp.MustCompile(`removing unused section '([^']*)' in file '([^']*)'`)

// gcResult is what gcPass returns.
type gcResult struct {
	removed map[[2]string]int
	err     error
}

// gcPass links once more with --gc-sections over the final aligned
// link's arguments and returns the (object, section) pairs ld removes,
// counted.
func (l *linker) gcPass(ctx context.Context, args []string) (map[[2]string]int, error) {
	var gcArgs []string
	for i := 0; i < len(args); i++ {
		switch {
		case strings.HasPrefix(args[i], "-Map="):
			continue
		case args[i] == "-o" && i+1 < len(args):
			gcArgs = append(gcArgs, "--gc-sections", "--print-gc-sections", "-o", "image.gc")
			i++
			continue
		}
		gcArgs = append(gcArgs, args[i])
	}
	out, err := l.runLD(ctx, gcArgs)
	os.Remove(filepath.Join(l.work, "image.gc"))
	if err != nil {
		return nil, fmt.Errorf("link %s: the liveness pass (ld --gc-sections) failed: %v\n%s", l.opt.Output, err, strings.TrimSpace(l.realNames(out)))
	}
	removed := map[[2]string]int{}
	for _, m := range gcRemoved.FindAllStringSubmatch(out, -1) {
		removed[[2]string{m[2], m[1]}]++
	}
	return removed, nil
}

// mergeSections lists, per staged object, the input sections ld may
// merge with other objects' (SHF_MERGE): the map's address of such a
// section need not be where its bytes end up.
func (l *linker) mergeSections() (map[[2]string]bool, error) {
	merge := map[[2]string]bool{}
	for i, o := range l.objs {
		f, err := elf.Open(o.Path)
		if err != nil {
			return nil, fmt.Errorf("object %s: %w", o.Path, err)
		}
		for _, s := range f.Sections {
			if s.Flags&elf.SHF_MERGE != 0 {
				merge[[2]string{l.file[i], s.Name}] = true
			}
		}
		f.Close()
	}
	return merge, nil
}

// deadPages returns the pages of the finished aligned image at out
// (before its description is added) that hold nothing its unikernel can
// reach, merged into ranges; mapText is the final link's -Map, removed
// what gcPass found over its arguments, libs its libraries.
func (l *linker) deadPages(out, mapText string, removed map[[2]string]int, libs []*placed) ([]elfimage.PageRange, error) {
	merge, err := l.mergeSections()
	if err != nil {
		return nil, err
	}
	staged := map[string]bool{}
	for _, f := range l.file {
		staged[f] = true
	}
	secs := parseMapSections(mapText)
	seen := map[[2]string]int{}
	for _, s := range secs {
		seen[[2]string{s.file, s.name}]++
	}
	// Pages with a byte of a live input section.
	live := map[uint64]bool{}
	mark := func(addr, size uint64) {
		for p := addr &^ (abi.PageSize - 1); p < addr+size; p += abi.PageSize {
			live[p] = true
		}
	}
	// Output sections whose bytes are input sections and padding (or
	// pack fills); any other keeps its pages.
	plain := map[string]bool{}
	for _, p := range libs {
		for _, c := range []string{".text.", ".rodata.", ".data.", ".bss."} {
			plain[c+p.name] = true
		}
	}
	for _, f := range l.fills {
		plain[f.section] = true
	}
	im, err := elfimage.Open(out)
	if err != nil {
		return nil, err
	}
	// The output sections a load puts in memory (not .comment and the
	// other non-allocated ones, nor those the link removed).
	loaded := map[string]bool{}
	for _, s := range im.ELF().Sections {
		if s.Flags&elf.SHF_ALLOC != 0 {
			loaded[s.Name] = true
		}
	}
	for _, s := range secs {
		k := [2]string{s.file, s.name}
		if staged[s.file] && seen[k] == 1 && removed[k] == 1 && !merge[k] {
			if loaded[s.output] && !plain[s.output] && s.output != ".tdata" && s.output != ".tbss" {
				// A section ld removes that the image keeps
				// elsewhere than a library's code or data (a
				// table read by means --gc-sections does not
				// see, which the script did not KEEP): what it
				// reaches may run. Trust nothing. (An unused
				// thread-local's template bytes are only
				// copied, never run or followed.)
				return nil, untrusted(fmt.Sprintf("the liveness pass (ld --gc-sections) removes %s of %s, which the image holds in %s, not in a library's code or data: no page is listed dead",
					s.name, l.realNames(s.file), s.output))
			}
			continue // dead
		}
		mark(s.addr, s.size)
	}
	type span struct{ lo, hi uint64 }
	var covered []span // plain sections' bytes
	for _, s := range im.ELF().Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Size == 0 {
			continue
		}
		if !plain[s.Name] {
			mark(s.Addr, s.Size)
			continue
		}
		covered = append(covered, span{s.Addr, s.Addr + s.Size})
	}
	var dead []elfimage.PageRange
	for _, seg := range im.Segments() {
		if seg.FileSize == 0 {
			continue // nothing a load reads
		}
		for p := seg.Vaddr &^ (abi.PageSize - 1); p < seg.Vaddr+seg.FileSize; p += abi.PageSize {
			if live[p] {
				continue
			}
			if k := len(dead); k > 0 && dead[k-1].End > p {
				continue // (a page two segments share)
			}
			page, _ := im.Page(p)
			var in [abi.PageSize]bool
			for _, c := range covered {
				for a := max(c.lo, p); a < min(c.hi, p+abi.PageSize); a++ {
					in[a-p] = true
				}
			}
			ok := true
			for b, v := range page {
				if v != 0 && !in[b] {
					ok = false
					break
				}
			}
			if !ok {
				live[p] = true
				continue
			}
			if k := len(dead); k > 0 && dead[k-1].End == p {
				dead[k-1].End += abi.PageSize
			} else {
				dead = append(dead, elfimage.PageRange{Start: p, End: p + abi.PageSize})
			}
		}
	}
	return dead, nil
}

// mapSection is one input section line of a GNU ld -Map.
type mapSection struct {
	file, name, output string
	addr, size         uint64
}
