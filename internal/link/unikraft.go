package link

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Platforms: whose conventions the image follows beyond ELF's.
const (
	// PlatformUnipool is unipool's own guest (guest/plat): entry _start,
	// the unipool boot info.
	PlatformUnipool = "unipool"
	// PlatformUnikraft is a Unikraft kvm-platform build (x86_64): entry
	// _lxboot_entry (the Linux 64-bit boot protocol, as Firecracker boots
	// it), image-wide tables that Unikraft's link64.lds collects
	// (.uk_ctortab*, .uk_inittab*, .uk_event_*, ...) and a .uk_bootinfo
	// section that mkbootinfo.py fills after the link.
	PlatformUnikraft = "unikraft"
)

// Platforms lists the platforms Link knows.
var Platforms = []string{PlatformUnipool, PlatformUnikraft}

// UnikraftEntry is the entry of Unikraft's kvm platform under the Linux
// 64-bit boot protocol (plat/kvm/x86/lxboot.S).
const UnikraftEntry = "_lxboot_entry"

// unikraftTables are the sections Unikraft's platform script
// (plat/common/include/uk/plat/common/common.lds.h) gathers from every
// library into one table sorted by name: each must stay one image-wide
// output section between its start and end symbols, never be split into
// per-library regions (split, uk_ctortab_start..uk_ctortab_end would miss
// libcontext's constructor, and boot fails an assertion). .uk_libinfo
// (lib/uklibid/infosec.ld) and .uk_thread_inittab* (lib/uksched/extra.ld)
// come with fragments Unikraft passes to ld; they are listed here so that
// a link without those fragments still keeps them whole.
var unikraftTables = []string{".uk_ctortab*", ".uk_inittab*", ".uk_event_*", ".uk_libinfo", ".uk_thread_inittab*", ".uk_bootinfo"}

// unikraftTablesScript places Unikraft's tables with the symbols
// Unikraft's link64.lds and fragments define: output sections and symbols
// as there; in an aligned image they lie in the app region's private part
// (every image has its own), in a packed one after .data. Symbols are
// PROVIDEd so a fragment that defines them too wins.
const unikraftTablesScript = `  . = ALIGN(0x1000);
  .uk_ctortab : { PROVIDE(uk_ctortab_start = .); KEEP(*(SORT_BY_NAME(.uk_ctortab[0-9]))) PROVIDE(uk_ctortab_end = .); }
  .uk_inittab : { PROVIDE(uk_inittab_start = .); KEEP(*(SORT_BY_NAME(.uk_inittab[1-6][0-9]))) PROVIDE(uk_inittab_end = .); }
  . = ALIGN(0x8);
  .uk_eventtab : { KEEP(*(SORT_BY_NAME(.uk_event_*))) }
  .uk_libinfo : { PROVIDE(uk_libinfo_start = .); KEEP(*(.uk_libinfo)) PROVIDE(uk_libinfo_end = .); }
  .uk_thread_inittab : { PROVIDE(_uk_thread_inittab_start = .); KEEP(*(SORT_BY_NAME(.uk_thread_inittab[0-9]) SORT_BY_NAME(.uk_thread_inittab[0-9].*))) PROVIDE(_uk_thread_inittab_end = .); }
  . = ALIGN(0x8);
  .uk_bootinfo : { KEEP(*(.uk_bootinfo)) }
`

// unikraftTableOutputs are the output sections of unikraftTablesScript:
// one per image, gathering entries of every library.
var unikraftTableOutputs = map[string]bool{".uk_ctortab": true, ".uk_inittab": true, ".uk_eventtab": true, ".uk_libinfo": true,
	".uk_thread_inittab": true, ".uk_bootinfo": true}

// unikraftTLSSymbols are link64.lds's TLS symbols (Unikraft copies
// _tls_start.._etdata and clears up to _tls_end for each thread), written
// after the TLS output sections.
const unikraftTLSSymbols = `  PROVIDE(_tls_start = ADDR(.tdata)); PROVIDE(_etdata = ADDR(.tdata) + SIZEOF(.tdata)); PROVIDE(_tls_end = ADDR(.tbss) + SIZEOF(.tbss));
`

// isUnikraft tells whether the objects are a Unikraft build: one of them
// defines the kvm platform's entry or has one of its tables.
func isUnikraft(objs []*object) bool {
	for _, o := range objs {
		if o.defined[UnikraftEntry] || len(o.tables) > 0 && o.unikraftTables {
			return true
		}
	}
	return false
}

// choosePlatform settles opt.Platform and opt.Entry.
func choosePlatform(opt *Options, objs []*object) error {
	switch opt.Platform {
	case "":
		opt.Platform = PlatformUnipool
		if isUnikraft(objs) {
			opt.Platform = PlatformUnikraft
		}
	case PlatformUnipool, PlatformUnikraft:
	default:
		return fmt.Errorf("link: unknown platform %q (want %s)", opt.Platform, strings.Join(Platforms, ", "))
	}
	if opt.Entry == "" {
		opt.Entry = "_start"
		if opt.Platform == PlatformUnikraft {
			opt.Entry = UnikraftEntry
		}
	}
	return nil
}

// fragment is one extra linker-script fragment (--ld-fragment): a
// SECTIONS block ending in INSERT AFTER|BEFORE SECTION, as Unikraft's
// libraries ship them (lib/uklibid/infosec.ld, lib/uksched/extra.ld,
// plat/common/bootinfo.lds, libparam.lds, vfscore/extra.ld, ...).
type fragment struct {
	path string
	text string
	// patterns are the input-section patterns it collects: sections
	// matching them are image-wide, never a library's own.
	patterns []string
}

var (
	insertCmd     = regexp.MustCompile(`(?m)\bINSERT\s+(AFTER|BEFORE)\s+[^\s;]+\s*;?`)
	inputSpec     = regexp.MustCompile(`\*\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)`)
	sortWrapper   = regexp.MustCompile(`SORT[A-Z_]*\s*\(([^()]*)\)`)
	scriptComment = regexp.MustCompile(`(?s)/\*.*?\*/`)
)

// readFragments reads and checks the fragment files.
func readFragments(paths []string) ([]fragment, error) {
	var frags []fragment
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("linker-script fragment: %w", err)
		}
		text := string(data)
		body := scriptComment.ReplaceAllString(text, " ")
		if !insertCmd.MatchString(body) {
			return nil, fmt.Errorf("linker-script fragment %s: no INSERT AFTER|BEFORE command: unipool writes the main linker script itself "+
				"(a platform script such as Unikraft's link64.lds is replaced by --platform); pass only fragments that INSERT their sections", p)
		}
		if strings.Contains(body, "PHDRS") || strings.Contains(body, "MEMORY") {
			return nil, fmt.Errorf("linker-script fragment %s: PHDRS and MEMORY belong to the main script, which unipool writes", p)
		}
		f := fragment{path: p, text: text}
		for _, m := range inputSpec.FindAllStringSubmatch(body, -1) {
			inner := sortWrapper.ReplaceAllString(m[1], "$1")
			for _, pat := range strings.Fields(inner) {
				if pat != "" && pat != "EXCLUDE_FILE" {
					f.patterns = append(f.patterns, pat)
				}
			}
		}
		frags = append(frags, f)
	}
	return frags, nil
}

// inserted is the fragment with its INSERT redirected to anchor: in an
// aligned image the sections a fragment adds are image-wide, so they go
// to the app region's private part, wherever the fragment wanted them
// relative to a stock script's .rodata or .data.
func (f fragment) inserted(anchor string) string {
	text := scriptComment.ReplaceAllString(f.text, " ")
	return insertCmd.ReplaceAllString(text, "INSERT AFTER "+anchor+";")
}

// matchesAny tells whether section name matches one of ld's wildcard
// patterns.
func matchesAny(name string, patterns []string) bool {
	for _, p := range patterns {
		if ok, err := path.Match(p, name); err == nil && ok {
			return true
		}
	}
	return false
}

// writeFragments writes the link's fragments into the work directory and
// returns their file names, for ld's -T. anchor, if set, is where an
// aligned image inserts them; a packed link keeps their own INSERTs.
func (l *linker) writeFragments(anchor string) ([]string, error) {
	var names []string
	write := func(name, text string) error {
		if err := os.WriteFile(filepath.Join(l.work, name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("link: %w", err)
		}
		names = append(names, name)
		return nil
	}
	if anchor == "" && l.opt.Platform == PlatformUnikraft {
		// A packed link uses ld's own script; Unikraft's tables then go
		// after its .data, TLS symbols after its .tbss.
		text := "SECTIONS\n{\n" + l.unikraftTables() + "}\nINSERT AFTER .data;\nSECTIONS\n{\n" + unikraftTLSSymbols + "}\nINSERT AFTER .tbss;\n"
		if err := write("unikraft.ld", text); err != nil {
			return nil, err
		}
	}
	for i, f := range l.frags {
		text := f.text
		if anchor != "" {
			text = f.inserted(anchor)
		}
		if err := write(fmt.Sprintf("frag%02d.ld", i+1), text); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// fragmentArgs turns fragment file names into ld arguments.
func fragmentArgs(names []string) []string {
	var args []string
	for _, n := range names {
		args = append(args, "-T", n)
	}
	return args
}

// Unikraft's boot info (plat/common/include/uk/plat/common/bootinfo.h,
// include/uk/plat/memory.h, support/scripts/mkbootinfo.py).
const (
	ukBootinfoMagic   = 0xB007B0B0
	ukBootinfoVersion = 0x01
	ukBootinfoSize    = 80
	// ukMemrdSize is struct ukplat_memregion_desc without region names
	// (CONFIG_UKPLAT_MEMRNAME off): five 64-bit fields, type and flags,
	// padded to 8 bytes. mkbootinfo.py computes the capacity with 32,
	// which overstates it (192 instead of 128 for the default section);
	// unipool writes the real capacity, so the guest never appends past
	// the section.
	ukMemrdSize    = 48
	ukMemrtKernel  = 0x0004
	ukMemrfRead    = 0x0001
	ukMemrfWrite   = 0x0002
	ukMemrfExecute = 0x0004
)

// fillUnikraftBootinfo fills the image's .uk_bootinfo section as
// Unikraft's mkbootinfo.py does after a link: the header, then one
// kernel memory region per PT_LOAD (sorted by address, page-rounded), so
// the guest knows which memory its image occupies. An image without the
// section is left alone.
func fillUnikraftBootinfo(file string) error {
	f, err := elf.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sec := f.Section(".uk_bootinfo")
	if sec == nil || sec.Type == elf.SHT_NOBITS {
		return nil
	}
	data, err := unikraftBootinfo(f.Progs, sec.Size)
	if err != nil {
		return err
	}
	w, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := w.WriteAt(data, int64(sec.Offset)); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// unikraftBootinfo encodes the boot info of an image with these program
// headers for a section of size bytes.
func unikraftBootinfo(progs []*elf.Prog, size uint64) ([]byte, error) {
	if size < ukBootinfoSize {
		return nil, fmt.Errorf(".uk_bootinfo is %d bytes, smaller than Unikraft's boot info header (%d)", size, ukBootinfoSize)
	}
	// One region per page range: a segment's range is widened to whole
	// pages (Unikraft asserts page-aligned regions), and segments that
	// share a page (an aligned image packs read-only data right after
	// the code) become one region with both protections.
	type region struct {
		lo, hi uint64
		flags  uint16
	}
	var regs []region
	var loads []*elf.Prog
	for _, p := range progs {
		if p.Type == elf.PT_LOAD && p.Memsz > 0 {
			loads = append(loads, p)
		}
	}
	sort.SliceStable(loads, func(i, j int) bool { return loads[i].Vaddr < loads[j].Vaddr })
	for _, p := range loads {
		var flags uint16
		if p.Flags&elf.PF_R != 0 {
			flags |= ukMemrfRead
		}
		if p.Flags&elf.PF_W != 0 {
			flags |= ukMemrfWrite
		}
		if p.Flags&elf.PF_X != 0 {
			flags |= ukMemrfExecute
		}
		lo, hi := p.Vaddr&^0xfff, pageUp(p.Vaddr+p.Memsz)
		if n := len(regs); n > 0 && lo < regs[n-1].hi {
			regs[n-1].hi = max(regs[n-1].hi, hi)
			regs[n-1].flags |= flags
			continue
		}
		regs = append(regs, region{lo, hi, flags})
	}
	capacity := (size - ukBootinfoSize) / ukMemrdSize
	if uint64(len(regs)) > capacity {
		return nil, fmt.Errorf(".uk_bootinfo holds %d memory regions, the image has %d loaded page ranges", capacity, len(regs))
	}
	le := binary.LittleEndian
	out := make([]byte, size)
	le.PutUint32(out[0:], ukBootinfoMagic)
	out[4] = ukBootinfoVersion
	le.PutUint32(out[72:], uint32(capacity))
	le.PutUint32(out[76:], uint32(len(regs)))
	for i, r := range regs {
		d := out[ukBootinfoSize+i*ukMemrdSize:]
		le.PutUint64(d[0:], r.lo) // pbase (1:1 mapping)
		le.PutUint64(d[8:], r.lo) // vbase
		le.PutUint64(d[16:], 0)   // pg_off
		le.PutUint64(d[24:], r.hi-r.lo)
		le.PutUint64(d[32:], (r.hi-r.lo)/0x1000)
		le.PutUint16(d[40:], ukMemrtKernel)
		le.PutUint16(d[42:], r.flags)
	}
	return out, nil
}

// tablesAnchor is the output section of an aligned image after which
// extra fragments insert their sections (see fragment.inserted).
const tablesAnchor = ".unipool.tables"

// platformTables is what an aligned image's app private part holds for
// the platform: Unikraft's tables and TLS symbols, and the anchor for
// fragments.
func (l *linker) platformTables() string {
	var b strings.Builder
	if l.opt.Platform == PlatformUnikraft {
		b.WriteString(unikraftTLSSymbols)
		b.WriteString(l.unikraftTables())
	}
	if b.Len() == 0 && len(l.frags) == 0 {
		return ""
	}
	return b.String()
}

// finishPlatform does what the platform's build does after ld: for
// Unikraft, fill .uk_bootinfo (mkbootinfo.py).
func (l *linker) finishPlatform(out string) error {
	if l.opt.Platform != PlatformUnikraft {
		return nil
	}
	if err := fillUnikraftBootinfo(out); err != nil {
		return fmt.Errorf("link %s: %w", l.opt.Output, err)
	}
	return nil
}

// unikraftSymbols are the symbols unikraftTablesScript and
// unikraftTLSSymbols define.
var unikraftSymbols = []string{"uk_ctortab_start", "uk_ctortab_end", "uk_inittab_start", "uk_inittab_end",
	"uk_libinfo_start", "uk_libinfo_end", "_uk_thread_inittab_start", "_uk_thread_inittab_end",
	"_tls_start", "_etdata", "_tls_end"}

// fragmentSymbol matches a symbol assignment in a linker script.
var fragmentSymbol = regexp.MustCompile(`(?:PROVIDE(?:_HIDDEN)?\s*\(\s*)?\b([A-Za-z_][A-Za-z0-9_]*)\s*=[^=]`)

// platformSymbols are the symbols the platform's tables and the fragments
// define, which objects may reference without defining.
func platformSymbols(platform string, frags []fragment) map[string]bool {
	defined := map[string]bool{}
	if platform == PlatformUnikraft {
		for _, s := range unikraftSymbols {
			defined[s] = true
		}
	}
	for _, f := range frags {
		for _, m := range fragmentSymbol.FindAllStringSubmatch(scriptComment.ReplaceAllString(f.text, " "), -1) {
			defined[m[1]] = true
		}
	}
	return defined
}

// outputSection matches an output section statement's name.
var outputSection = regexp.MustCompile(`(?m)^\s*(\.[A-Za-z0-9_.$~-]+)\s*(?:\([^)]*\))?\s*:`)

// unikraftTables is unikraftTablesScript without the tables a fragment
// of the link defines itself (Unikraft's infosec.ld defines .uk_libinfo,
// extra.ld .uk_thread_inittab, bootinfo.lds .uk_bootinfo): one output
// section and one set of symbols per table.
func (l *linker) unikraftTables() string {
	own := map[string]bool{}
	for _, f := range l.frags {
		for _, m := range outputSection.FindAllStringSubmatch(scriptComment.ReplaceAllString(f.text, " "), -1) {
			own[m[1]] = true
		}
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(unikraftTablesScript, "\n") {
		if m := outputSection.FindStringSubmatch(line); m != nil && own[m[1]] {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}
