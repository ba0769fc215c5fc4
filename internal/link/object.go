package link

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// class is where a section of a library object goes in an aligned image.
type class int

const (
	classNone     class = iota // not loaded, or dropped
	classText                  // the library's shared part: code
	classRodata                // the library's shared part: read-only data
	classData                  // the library's private part: initialised data
	classBss                   // the library's private part: zero-initialised
	classGlobal                // one image-wide output section in the app region (below)
	classDiscard               // notes: nothing reads them in a guest
	classNonAlloc              // debug info and the like: kept, not loaded
)

// Image-wide sections must each be one contiguous array over all
// libraries, so they cannot live in per-library regions: constructor and
// destructor arrays (ukboot walks __init_array_start..__init_array_end),
// TLS (one PT_TLS: the guest copies one template per thread), the GOT ld
// creates, and "collection" sections named like C identifiers, whose
// __start_NAME/__stop_NAME symbols ld defines over the whole output
// section. They go in the app region's private part.
const (
	initArrayInputs = "KEEP(*(SORT_BY_INIT_PRIORITY(.init_array.*) SORT_BY_INIT_PRIORITY(.ctors.*))) KEEP(*(.init_array .ctors))"
	finiArrayInputs = "KEEP(*(SORT_BY_INIT_PRIORITY(.fini_array.*) SORT_BY_INIT_PRIORITY(.dtors.*))) KEEP(*(.fini_array .dtors))"
)

// Standard input-section names per class. Anything else found in an
// object is classified by its flags and listed by name.
var (
	textPatterns   = []string{".text", ".text.*", ".gnu.linkonce.t.*"}
	rodataPatterns = []string{".rodata", ".rodata.*", ".gnu.linkonce.r.*", ".eh_frame", ".gcc_except_table", ".gcc_except_table.*", ".lrodata", ".lrodata.*"}
	dataPatterns   = []string{".data", ".data.*", ".gnu.linkonce.d.*", ".ldata", ".ldata.*", ".tm_clone_table"}
	bssPatterns    = []string{".bss", ".bss.*", ".gnu.linkonce.b.*", ".lbss", ".lbss.*"}
)

// cIdent is a name for which ld defines __start_NAME and __stop_NAME.
var cIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// scriptSafe is what a section name must look like to be written into a
// linker script unquoted.
var scriptSafe = regexp.MustCompile(`^[A-Za-z0-9._$-]+$`)

// quotable is what a section name must look like to be written into a
// linker script at all: names outside scriptSafe (Unikraft's
// ".uk_event_NAME~~") are written in double quotes, which GNU ld takes
// as a literal name.
func quotable(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r <= ' ' || r >= 0x7f || r == '"' || r == '\\' {
			return false
		}
	}
	return true
}

// scriptName writes a section name into a linker script: as it is if it
// is script-safe, else quoted.
func scriptName(name string) string {
	if scriptSafe.MatchString(name) {
		return name
	}
	return `"` + name + `"`
}

// object is one input library object, read and classified.
type object struct {
	Object
	sha256 string
	// extra lists, per class, section names the standard patterns miss.
	extra map[class][]string
	// nonAlloc lists the names of non-loaded sections to keep.
	nonAlloc []string
	// globals lists collection sections (C-identifier names).
	globals []string
	// tables lists sections that a platform's table or a linker-script
	// fragment gathers over all libraries (Unikraft's .uk_inittab*, ...):
	// image-wide, placed by those scripts, never by the library's own
	// input statements. unikraftTables says Unikraft's own names are
	// among them.
	tables         []string
	unikraftTables bool
	// size estimates (upper bounds) of the library's parts
	text, rodata, private, tls uint64
	// data is the part of private that is initialised data (classData,
	// an upper bound as private is): it follows the slots in the
	// library's private part, before the bss.
	data uint64
	// defined global symbols (not COMMON), common symbols, and undefined
	// global (non-weak) symbols it references.
	defined, common, undefined map[string]bool
	// weak lists the weak references to symbols it does not define;
	// weakDefined its weak definitions (which never clash).
	weak, weakDefined map[string]bool
	// members are the libraries of a group unit (groupObjects), in
	// link order; nil for a library of its own.
	members []member
	// absolute is the first relocation that a position-independent link
	// refuses (an absolute 32-bit address in a loaded section), if any.
	absolute string
}

// readObject validates and classifies a library object.
func readObject(in Object, tablePatterns []string) (*object, error) {
	data, err := os.ReadFile(in.Path)
	if err != nil {
		return nil, fmt.Errorf("object: %w", err)
	}
	o, err := parseObject(in, data, tablePatterns)
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", in.Path, err)
	}
	return o, nil
}

// parseObject reads an object; sections matching tablePatterns (from
// linker-script fragments) are image-wide tables, as are Unikraft's.
func parseObject(in Object, data []byte, tablePatterns []string) (*object, error) {
	if len(data) < 4 || string(data[:4]) != elf.ELFMAG {
		return nil, errors.New("not an ELF file")
	}
	f, err := elf.NewFile(strings.NewReader(string(data)))
	if err != nil {
		return nil, err
	}
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		return nil, fmt.Errorf("%v %v, want a little-endian ELFCLASS64 object", f.Class, f.Data)
	}
	if f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("machine %v, want EM_X86_64", f.Machine)
	}
	if f.Type != elf.ET_REL {
		return nil, fmt.Errorf("ELF type %v, want a relocatable object (ET_REL)", f.Type)
	}
	sum := sha256.Sum256(data)
	o := &object{Object: in, sha256: hex.EncodeToString(sum[:]), extra: map[class][]string{},
		defined: map[string]bool{}, common: map[string]bool{}, undefined: map[string]bool{}, weak: map[string]bool{}, weakDefined: map[string]bool{}}
	seenExtra := map[string]bool{}
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC != 0 && s.Type != elf.SHT_NOTE {
			uk := matchesAny(s.Name, unikraftTables)
			if uk || matchesAny(s.Name, tablePatterns) {
				if !seenExtra[s.Name] {
					seenExtra[s.Name] = true
					o.tables = append(o.tables, s.Name)
				}
				o.unikraftTables = o.unikraftTables || uk
				continue
			}
		}
		c, err := classify(s)
		if err != nil {
			return nil, err
		}
		// Upper bounds: ld may order sections differently from the
		// file (extra names come after the patterns), so each section
		// is charged its worst-case alignment padding.
		size := s.Size + max(s.Addralign, 1) - 1
		switch c {
		case classText:
			o.text += size
		case classRodata:
			o.rodata += size
		case classData, classBss:
			o.private += size
			if c == classData {
				o.data += size
			}
		case classGlobal:
			if s.Flags&elf.SHF_TLS != 0 {
				o.tls += size
			}
		}
		if c == classNonAlloc {
			if !seenExtra[s.Name] {
				seenExtra[s.Name] = true
				o.nonAlloc = append(o.nonAlloc, s.Name)
			}
			continue
		}
		if c == classGlobal && isCollection(s.Name) {
			if !seenExtra[s.Name] {
				seenExtra[s.Name] = true
				o.globals = append(o.globals, s.Name)
			}
			continue
		}
		if c == classText || c == classRodata || c == classData || c == classBss {
			if patternClass(s.Name) != c && !seenExtra[s.Name] {
				if !quotable(s.Name) {
					return nil, fmt.Errorf("section %q: name cannot be placed by a linker script", s.Name)
				}
				seenExtra[s.Name] = true
				o.extra[c] = append(o.extra[c], s.Name)
			}
		}
	}
	syms, err := f.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("symbols: %w", err)
	}
	for _, s := range syms {
		bind := elf.ST_BIND(s.Info)
		if bind != elf.STB_GLOBAL && bind != elf.STB_WEAK && bind != elf.STB_LOOS { // STB_LOOS: STB_GNU_UNIQUE
			continue
		}
		switch {
		case s.Section == elf.SHN_UNDEF:
			if bind == elf.STB_GLOBAL && s.Name != "" {
				o.undefined[s.Name] = true
			}
			if bind == elf.STB_WEAK && s.Name != "" {
				o.weak[s.Name] = true
			}
		case s.Section == elf.SHN_COMMON:
			o.common[s.Name] = true
			// A COMMON symbol's value is its alignment.
			o.private += s.Size + max(s.Value, 1) - 1
		case bind == elf.STB_GLOBAL || bind == elf.STB_LOOS:
			o.defined[s.Name] = true
		default:
			o.weakDefined[s.Name] = true
		}
	}
	if err := o.scanRelocs(f); err != nil {
		return nil, err
	}
	return o, nil
}

// classify decides where a section goes. It refuses a writable section
// whose name would put it in the shared part: every instance would
// then write into the one shared copy (or fault on it).
func classify(s *elf.Section) (class, error) {
	switch s.Type {
	case elf.SHT_NULL, elf.SHT_SYMTAB, elf.SHT_STRTAB, elf.SHT_RELA, elf.SHT_REL, elf.SHT_GROUP, elf.SHT_SYMTAB_SHNDX:
		return classNone, nil
	case elf.SHT_INIT_ARRAY, elf.SHT_FINI_ARRAY, elf.SHT_PREINIT_ARRAY:
		return classGlobal, nil
	case elf.SHT_NOTE:
		if s.Flags&elf.SHF_ALLOC != 0 {
			return classDiscard, nil
		}
	}
	if s.Name == ".note.GNU-stack" {
		return classNone, nil
	}
	if s.Flags&elf.SHF_ALLOC == 0 {
		return classNonAlloc, nil
	}
	if s.Flags&elf.SHF_TLS != 0 || isInitName(s.Name) || s.Name == ".init" || s.Name == ".fini" {
		return classGlobal, nil
	}
	if isCollection(s.Name) {
		return classGlobal, nil
	}
	byFlags := classRodata
	switch {
	case s.Flags&elf.SHF_EXECINSTR != 0:
		byFlags = classText
	case s.Flags&elf.SHF_WRITE != 0 && s.Type == elf.SHT_NOBITS:
		byFlags = classBss
	case s.Flags&elf.SHF_WRITE != 0:
		byFlags = classData
	}
	byName := patternClass(s.Name)
	if byName == classNone {
		return byFlags, nil
	}
	if (byName == classText || byName == classRodata) && s.Flags&elf.SHF_WRITE != 0 {
		return 0, fmt.Errorf("section %s is writable but named like shared (read-only) code or data", s.Name)
	}
	if byName == classBss && s.Type != elf.SHT_NOBITS && s.Size > 0 {
		// ld would place file contents in bss; classify by flags instead
		// would not help either: the name decides for ld.
		return 0, fmt.Errorf("section %s has contents but is named like bss", s.Name)
	}
	return byName, nil
}

func isInitName(n string) bool {
	for _, p := range []string{".init_array", ".fini_array", ".preinit_array", ".ctors", ".dtors"} {
		if n == p || strings.HasPrefix(n, p+".") {
			return true
		}
	}
	return false
}

func isCollection(n string) bool { return cIdent.MatchString(n) }

// patternClass is the class the standard patterns give a section name.
func patternClass(name string) class {
	for _, g := range []struct {
		c class
		p []string
	}{{classText, textPatterns}, {classRodata, rodataPatterns}, {classData, dataPatterns}, {classBss, bssPatterns}} {
		for _, p := range g.p {
			if p == name || (strings.HasSuffix(p, "*") && strings.HasPrefix(name, p[:len(p)-1])) {
				return g.c
			}
		}
	}
	return classNone
}

// scanRelocs looks for relocations that only a position-dependent link
// accepts: absolute addresses narrower than 64 bits (non-PIC code such as
// Unikraft's default build), and 64-bit absolute addresses in code.
func (o *object) scanRelocs(f *elf.File) error {
	for _, s := range f.Sections {
		if s.Type != elf.SHT_RELA || int(s.Info) >= len(f.Sections) {
			continue
		}
		target := f.Sections[s.Info]
		if target.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return fmt.Errorf("section %s: %w", s.Name, err)
		}
		for i := 0; i+24 <= len(data); i += 24 {
			info := f.ByteOrder.Uint64(data[i+8:])
			t := elf.R_X86_64(info & 0xffffffff)
			switch {
			case t == elf.R_X86_64_32 || t == elf.R_X86_64_32S || t == elf.R_X86_64_16 || t == elf.R_X86_64_8,
				t == elf.R_X86_64_64 && target.Flags&elf.SHF_EXECINSTR != 0:
				o.absolute = fmt.Sprintf("%v in %s", t, target.Name)
				return nil
			}
		}
	}
	return nil
}
