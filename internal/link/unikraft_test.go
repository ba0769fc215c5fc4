package link

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/unikraft"
)

// unikraftObjects are a Unikraft build's objects as `unipool link` takes
// them from the command line.
func unikraftObjects(t *testing.T, b *unikraft.Build) []Object {
	t.Helper()
	objs, err := ObjectsFromPaths(b.Objects, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func symbolValue(t *testing.T, f *elf.File, name string) uint64 {
	t.Helper()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name {
			return s.Value
		}
	}
	t.Fatalf("no symbol %s", name)
	return 0
}

// inputBytes sums the sizes of the objects' sections matching pattern.
func inputBytes(t *testing.T, objs []string, pattern string) uint64 {
	t.Helper()
	var n uint64
	for _, p := range objs {
		f, err := elf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range f.Sections {
			if matchesAny(s.Name, []string{pattern}) {
				n += s.Size
			}
		}
		f.Close()
	}
	return n
}

func TestUnikraftHelloworldLinksInEveryLayoutWithImageWideTablesAndBootinfo(t *testing.T) {
	needToolchain(t)
	b := unikraft.HelloWorld(t, unikraft.NoRDSEED)
	dir := t.TempDir()
	ctortab := inputBytes(t, b.Objects, ".uk_ctortab*")
	eventtab := inputBytes(t, b.Objects, ".uk_event_*")
	if ctortab == 0 || eventtab == 0 {
		t.Fatalf("the build has no constructor or event tables (%d, %d bytes)", ctortab, eventtab)
	}
	for _, layout := range Layouts {
		t.Run(layout, func(t *testing.T) {
			out := filepath.Join(dir, layout+".img")
			res := mustLink(t, Options{Layout: layout, Objects: unikraftObjects(t, b), Fragments: b.Fragments,
				Output: out, MapPath: filepath.Join(dir, "map.json")})
			if res.Platform != PlatformUnikraft || res.Entry != UnikraftEntry {
				t.Fatalf("platform %q entry %q, want %q %q (found from the objects)", res.Platform, res.Entry, PlatformUnikraft, UnikraftEntry)
			}
			f, err := elf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// Each table is one section over all libraries, between its symbols.
			for _, tab := range []struct {
				sec, start, end string
				size            uint64
			}{{".uk_ctortab", "uk_ctortab_start", "uk_ctortab_end", ctortab}, {".uk_eventtab", "", "", eventtab}} {
				s := f.Section(tab.sec)
				if s == nil {
					t.Fatalf("no %s section", tab.sec)
				}
				lo, hi := s.Addr, s.Addr+s.Size
				if tab.start != "" {
					lo, hi = symbolValue(t, f, tab.start), symbolValue(t, f, tab.end)
				}
				if lo != s.Addr || hi-lo != tab.size || s.Size != tab.size {
					t.Errorf("%s: [%#x,%#x) section %#x+%#x; want the section, %d bytes (all libraries' tables)", tab.sec, lo, hi, s.Addr, s.Size, tab.size)
				}
			}
			bi := f.Section(".uk_bootinfo")
			if bi == nil {
				t.Fatal("no .uk_bootinfo")
			}
			data, err := bi.Data()
			if err != nil {
				t.Fatal(err)
			}
			n := binary.LittleEndian.Uint32(data[76:])
			if binary.LittleEndian.Uint32(data) != ukBootinfoMagic || n == 0 {
				t.Errorf(".uk_bootinfo: magic %#x, %d regions", binary.LittleEndian.Uint32(data), n)
			}
			// Unikraft asserts page-aligned, non-overlapping regions that
			// cover every loaded byte.
			var prevEnd uint64
			for i := uint32(0); i < n; i++ {
				d := data[ukBootinfoSize+i*ukMemrdSize:]
				base, size := binary.LittleEndian.Uint64(d[8:]), binary.LittleEndian.Uint64(d[24:])
				if base&0xfff != 0 || size&0xfff != 0 || base < prevEnd {
					t.Errorf("region %d [%#x,+%#x): unaligned or overlapping the previous one", i, base, size)
				}
				prevEnd = base + size
			}
			for _, p := range f.Progs {
				if p.Type != elf.PT_LOAD || p.Memsz == 0 {
					continue
				}
				covered := false
				for i := uint32(0); i < n; i++ {
					d := data[ukBootinfoSize+i*ukMemrdSize:]
					base, size := binary.LittleEndian.Uint64(d[8:]), binary.LittleEndian.Uint64(d[24:])
					covered = covered || (p.Vaddr >= base && p.Vaddr+p.Memsz <= base+size)
				}
				if !covered {
					t.Errorf("segment [%#x,+%#x) in no boot-info region", p.Vaddr, p.Memsz)
				}
			}
			if layout == LayoutAligned {
				// Everything below 4 GiB: Unikraft's code is not PIC.
				for _, p := range f.Progs {
					if p.Type == elf.PT_LOAD && p.Vaddr+p.Memsz > abi.MapLimit {
						t.Errorf("segment [%#x,%#x) above 4 GiB", p.Vaddr, p.Vaddr+p.Memsz)
					}
				}
				if res.Config == nil || !strings.HasPrefix(res.Mode, "no-pie") {
					t.Errorf("mode %q: want no-pie (Unikraft's objects are not PIC)", res.Mode)
				}
				// inspect says why no library moves under --aslr: each
				// library names its reason, the summary the image's.
				in, err := Inspect(out)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(in.ASLR, "Linux-boot (Unikraft) image") || !strings.Contains(in.ASLR, "left movable") {
					t.Errorf("inspect's ASLR: %q", in.ASLR)
				}
				for _, l := range in.Libraries {
					if l.ASLRBits != 0 || l.NoASLR == "" {
						t.Errorf("library %s: %d bits of ASLR, reason %q; want 0 and a reason", l.Name, l.ASLRBits, l.NoASLR)
					}
				}
			}
		})
	}
}

func TestUnikraftBootinfoIsWhatMkbootinfoWroteIntoUnikraftsOwnImage(t *testing.T) {
	b := unikraft.HelloWorld(t, unikraft.NoRDSEED)
	// Unikraft's build ran mkbootinfo.py on its image; unipool refills a
	// copy of the same image and must write the same section.
	stock, err := os.ReadFile(b.Image)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "stock.elf")
	if err := os.WriteFile(cp, stock, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fillUnikraftBootinfo(cp); err != nil {
		t.Fatal(err)
	}
	section := func(path string) []byte {
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		d, err := f.Section(".uk_bootinfo").Data()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	want, got := section(b.Image), section(cp)
	if binary.LittleEndian.Uint32(want[76:]) == 0 {
		t.Fatal("Unikraft's own image has an empty boot info")
	}
	// The capacity differs on purpose (mkbootinfo.py divides by 32, the
	// descriptor is 48 bytes); everything else is the same.
	copy(got[72:76], want[72:76])
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && got[i] == want[i] {
			i++
		}
		lo := max(i-16, 0)
		t.Fatalf(".uk_bootinfo differs from mkbootinfo.py's at byte %d:\n got %x\nwant %x", i, got[lo:min(lo+128, len(got))], want[lo:min(lo+128, len(want))])
	}
}

func TestSectionNamesWithTildesAreQuotedNotRefused(t *testing.T) {
	for _, n := range []string{".uk_event_x~", ".uk_event_x~~", ".data.a~b"} {
		if !quotable(n) {
			t.Errorf("%q refused", n)
		}
		if got := scriptName(n); got != `"`+n+`"` {
			t.Errorf("scriptName(%q) = %s", n, got)
		}
	}
	for _, n := range []string{"", "a b", `a"b`, "a\nb"} {
		if quotable(n) {
			t.Errorf("%q accepted", n)
		}
	}
}

func TestAFragmentWithoutInsertIsRefusedByName(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "link64.lds")
	if err := os.WriteFile(p, []byte("SECTIONS { . = 0x100000; .text : { *(.text) } }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := readFragments([]string{p})
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "INSERT") {
		t.Fatalf("err = %v", err)
	}
}

func TestFragmentInputPatternsMakeSectionsImageWide(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "extra.ld")
	frag := "SECTIONS\n{\n  .uk_fs_list : {\n    PROVIDE(uk_fslist_start = .);\n    KEEP (*(.uk_fs_list))\n    PROVIDE(uk_fslist_end = .);\n  }\n}\nINSERT AFTER .rodata;\n"
	if err := os.WriteFile(p, []byte(frag), 0o644); err != nil {
		t.Fatal(err)
	}
	fs, err := readFragments([]string{p})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs[0].patterns) != 1 || fs[0].patterns[0] != ".uk_fs_list" {
		t.Fatalf("patterns %q", fs[0].patterns)
	}
	syms := platformSymbols(PlatformUnipool, fs)
	if !syms["uk_fslist_start"] || !syms["uk_fslist_end"] {
		t.Fatalf("symbols %v", syms)
	}
	if got := fs[0].inserted(tablesAnchor); !strings.Contains(got, "INSERT AFTER "+tablesAnchor+";") || strings.Contains(got, ".rodata;") {
		t.Fatalf("inserted: %s", got)
	}
}

func TestAnAlignedLinkWhoseOnlyTLSIsTbssAndWhoseAppHasNoDataWorks(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	plat := buildLib(t, dir, "plat", `__thread int counter;
__asm__(".section .text._start,\"ax\",@progbits\n.globl _start\n_start:\n  call app_main\n1: hlt\n  jmp 1b\n");
int bump(void) { return ++counter; }
`)
	app := buildLib(t, dir, "appx", `int bump(void);
int app_main(void) { return bump(); }
`)
	res := mustLink(t, Options{Layout: LayoutAligned, Output: filepath.Join(dir, "x.img"), MapPath: filepath.Join(dir, "map.json"),
		Objects: []Object{{Path: plat, Name: "plat"}, {Path: app, Name: "appx", App: true}}})
	if res.Config.TLS == nil || res.Config.TLS.MemSize == 0 {
		t.Fatalf("no TLS in the description: %+v", res.Config.TLS)
	}
}
