package link

import (
	"context"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
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
//     or whose name or object is ambiguous) has a byte on it,
//   - no live merged string or constant (SHF_MERGE contents, which the map
//     does not place: mergedLive, session 17) has a byte on it,
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

// mergeKind is how ld merges a SHF_MERGE section's contents: strings
// of size-byte characters, each up to and including its zero character
// (SHF_STRINGS), or elements of size bytes.
type mergeKind struct {
	size    uint64
	strings bool
}

// mergeSections lists, per staged object, the input sections ld may
// merge with others (SHF_MERGE) and how: ld keeps one copy of each
// string or element, wherever the first holder lies, so the map's address
// of such a section says nothing about where its bytes end up. A name
// the object also gives a section that is not SHF_MERGE is left out (an
// ordinary section, as far as the map goes).
func (l *linker) mergeSections() (map[[2]string][]mergeKind, error) {
	merge := map[[2]string][]mergeKind{}
	plain := map[[2]string]bool{}
	for i, o := range l.objs {
		f, err := elf.Open(o.Path)
		if err != nil {
			return nil, fmt.Errorf("object %s: %w", o.Path, err)
		}
		for _, s := range f.Sections {
			k := [2]string{l.file[i], s.Name}
			if s.Flags&elf.SHF_MERGE == 0 {
				plain[k] = true
				continue
			}
			merge[k] = addKind(merge[k], mergeKind{size: s.Entsize, strings: s.Flags&elf.SHF_STRINGS != 0})
		}
		f.Close()
	}
	for k := range plain {
		delete(merge, k)
	}
	return merge, nil
}

// addKind adds k to ks unless it is there.
func addKind(ks []mergeKind, k mergeKind) []mergeKind {
	for _, o := range ks {
		if o == k {
			return ks
		}
	}
	return append(ks, k)
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
	kinds := map[string][]mergeKind{} // per output section, how its merged input sections merge
	listed := map[string][]span{}     // per output section, its other input sections' bytes
	var deadSecs []span               // the dead input sections' bytes
	for _, s := range secs {
		k := [2]string{s.file, s.name}
		if ks, ok := merge[k]; ok && staged[s.file] {
			// Where its bytes lie, and which are live, comes from
			// the references to them (mergedLive).
			for _, mk := range ks {
				kinds[s.output] = addKind(kinds[s.output], mk)
			}
			continue
		}
		listed[s.output] = append(listed[s.output], span{s.addr, s.addr + s.size})
		if staged[s.file] && seen[k] == 1 && removed[k] == 1 {
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
			deadSecs = append(deadSecs, span{s.addr, s.addr + s.size})
			continue // dead
		}
		mark(s.addr, s.size)
	}
	var covered []span // plain sections' bytes
	var gaps []gap     // the bytes of plain sections with merged contents that no other input section holds
	for _, s := range im.ELF().Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Size == 0 {
			continue
		}
		if !plain[s.Name] {
			mark(s.Addr, s.Size)
			continue
		}
		covered = append(covered, span{s.Addr, s.Addr + s.Size})
		if ks := kinds[s.Name]; len(ks) > 0 {
			for _, g := range holes(span{s.Addr, s.Addr + s.Size}, listed[s.Name]) {
				gaps = append(gaps, gap{span: g, kinds: ks})
			}
		}
	}
	for _, g := range mergedLive(im, gaps, deadSecs) {
		mark(g.lo, g.hi-g.lo)
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

// span is the addresses [lo, hi).
type span struct{ lo, hi uint64 }

// holes returns the parts of s that none of in covers, in order.
func holes(s span, in []span) []span {
	in = append([]span(nil), in...)
	sort.Slice(in, func(i, j int) bool { return in[i].lo < in[j].lo })
	var out []span
	at := s.lo
	for _, c := range in {
		if c.lo > at && at < s.hi {
			out = append(out, span{at, min(c.lo, s.hi)})
		}
		at = max(at, c.hi)
	}
	if at < s.hi {
		out = append(out, span{at, s.hi})
	}
	return out
}

// gap is a run of a plain output section's bytes that no input section
// the map places exactly holds: merged contents (strings, constants) of
// the kinds its SHF_MERGE input sections have, and padding.
type gap struct {
	span
	kinds []mergeKind
	data  []byte // the bytes at lo
}

// Merged contents (session 17). ld keeps one copy of each merged string
// or constant; the -Map does not say where (a section whose contents all
// went to copies elsewhere is listed at the next section's address), so
// the bytes of a plain section that no other input section holds (its
// gaps) are merged contents or padding. They are live where something
// live refers to them. Every reference a kept section makes to merged
// contents is a relocation the image keeps (--emit-relocs), against the
// string's local label (.LC0, at its copy) or against the output section
// with the copy's offset. A referenced string is live whole (C lets code
// walk back from a pointer into a literal; ld keeps a string together),
// and so are:
//   - from a label's reference, the strings from the label to the target
//     and up to 8 bytes beyond (the target of a PC-relative reference is
//     the addend plus the distance from the field to the instruction's end,
//     4 to 8 bytes; 0 in data);
//   - from another reference, the strings and elements that hold a byte
//     of its target and the 8 bytes after it (whole, back to their start);
//   - the same for every symbol in a gap that is not an assembler-local
//     .L label (something may look it up by name);
//   - every gap, if the image's relocations or symbols cannot be read.
// A constant (elements of n bytes) is live whole: n bytes around it.

// mergedLive returns the live bytes in gaps; deadSecs are the dead input
// sections' bytes (their references do not count).
func mergedLive(im *elfimage.Image, gaps []gap, deadSecs []span) []span {
	if len(gaps) == 0 {
		return nil
	}
	all := func() []span {
		out := make([]span, len(gaps))
		for i, g := range gaps {
			out[i] = g.span
		}
		return out
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i].lo < gaps[j].lo })
	for i := range gaps {
		b, err := im.ReadAt(gaps[i].lo, gaps[i].hi-gaps[i].lo)
		if err != nil {
			return all()
		}
		gaps[i].data = b
	}
	sort.Slice(deadSecs, func(i, j int) bool { return deadSecs[i].lo < deadSecs[j].lo })
	inDead := func(a uint64) bool {
		i := sort.Search(len(deadSecs), func(i int) bool { return deadSecs[i].hi > a })
		return i < len(deadSecs) && deadSecs[i].lo <= a
	}
	f := im.ELF()
	syms, err := f.Symbols()
	if err != nil {
		return all()
	}
	var out []span
	// ref marks the strings from lo (a label's address, taken as a
	// string's start) or, with back, those holding lo, to those holding
	// hi, inclusive.
	ref := func(lo, hi uint64, back bool) {
		for i := sort.Search(len(gaps), func(i int) bool { return gaps[i].hi > lo }); i < len(gaps) && gaps[i].lo <= hi; i++ {
			g := &gaps[i]
			a, b := max(lo, g.lo), min(hi, g.hi-1)
			start, end := a, b+1
			for _, k := range g.kinds {
				s, e := g.extent(k, a, b, back || a != lo)
				start, end = min(start, s), max(end, e)
			}
			out = append(out, span{start, end})
		}
	}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_RELA && s.Type != elf.SHT_REL {
			continue
		}
		if int(s.Info) >= len(f.Sections) || f.Sections[s.Info].Flags&elf.SHF_ALLOC == 0 {
			continue // debug information and the like: nothing a load runs
		}
		if s.Type == elf.SHT_REL || s.Entsize != 24 || int(s.Link) >= len(f.Sections) || f.Sections[s.Link].Type != elf.SHT_SYMTAB {
			return all()
		}
		raw, err := s.Data()
		if err != nil || len(raw)%24 != 0 {
			return all()
		}
		for o := 0; o < len(raw); o += 24 {
			at := binary.LittleEndian.Uint64(raw[o:])
			info := binary.LittleEndian.Uint64(raw[o+8:])
			add := binary.LittleEndian.Uint64(raw[o+16:]) // (two's complement)
			typ, si := elf.R_X86_64(info&0xffffffff), info>>32
			if typ == elf.R_X86_64_NONE || inDead(at) {
				continue
			}
			if si > uint64(len(syms)) {
				return all()
			}
			var sym elf.Symbol
			if si > 0 {
				sym = syms[si-1]
			}
			reach := uint64(8) // beyond the addend: a PC-relative field's distance to its instruction's end
			switch typ {
			case elf.R_X86_64_64, elf.R_X86_64_32, elf.R_X86_64_32S, elf.R_X86_64_16, elf.R_X86_64_8:
				reach = 0
			}
			t := sym.Value + add
			if si > 0 && elf.ST_TYPE(sym.Info) != elf.STT_SECTION && inGap(gaps, sym.Value) {
				// A label: its string, and those to the target.
				hi := sym.Value
				if int64(add+reach) > 0 {
					hi = t + reach
				}
				ref(sym.Value, hi, false)
				continue
			}
			ref(t, t+reach, true)
		}
	}
	for _, s := range syms {
		if t := elf.ST_TYPE(s.Info); t == elf.STT_SECTION || t == elf.STT_FILE || strings.HasPrefix(s.Name, ".L") {
			continue
		}
		if inGap(gaps, s.Value) {
			ref(s.Value, s.Value+max(s.Size, 1)-1, false)
		}
	}
	return out
}

// inGap tells whether a lies in one of gaps (sorted).
func inGap(gaps []gap, a uint64) bool {
	i := sort.Search(len(gaps), func(i int) bool { return gaps[i].hi > a })
	return i < len(gaps) && gaps[i].lo <= a
}

// extent returns the bytes [start, end) of g that the strings or
// elements of kind k holding a and b span: from a's (or, if back is
// false, from a itself) to b's. A string runs to its zero character
// inclusive and back to the one before it; a kind ld would not merge
// (no size) spans the whole gap.
func (g *gap) extent(k mergeKind, a, b uint64, back bool) (uint64, uint64) {
	n := k.size
	if n == 0 || n > abi.PageSize {
		return g.lo, g.hi
	}
	if !k.strings {
		start, end := a, min(b+n, g.hi)
		if back {
			start = max(g.lo, a-min(a-g.lo, n-1))
		}
		return start, end
	}
	zero := func(at uint64) bool { // a zero character at at (or past the gap)
		if at+n > g.hi {
			return true
		}
		for _, c := range g.data[at-g.lo : at-g.lo+n] {
			if c != 0 {
				return false
			}
		}
		return true
	}
	start := a
	if back {
		for start-g.lo >= n && !zero(start-n) {
			start -= n
		}
	}
	end := b
	for !zero(end) {
		end += n
	}
	return start, min(end+n, g.hi)
}

// mapSection is one input section line of a GNU ld -Map.
type mapSection struct {
	file, name, output string
	addr, size         uint64
}
