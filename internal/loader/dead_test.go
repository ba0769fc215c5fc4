package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/monitor"
)

// withSection appends to the image at path (made by segmentImage: no
// section headers) a section table with one non-allocated PROGBITS
// section name holding data.
func withSection(t *testing.T, path, name string, data []byte, flags elf.SectionFlag) {
	t.Helper()
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	secOff := uint64(len(file))
	file = append(file, data...)
	strtab := append([]byte("\x00"+name+"\x00.shstrtab\x00"), 0)
	strOff := uint64(len(file))
	file = append(file, strtab...)
	for len(file)%8 != 0 {
		file = append(file, 0)
	}
	shoff := uint64(len(file))
	var sh bytes.Buffer
	binary.Write(&sh, le, elf.Section64{})
	binary.Write(&sh, le, elf.Section64{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(flags), Off: secOff, Size: uint64(len(data)), Addralign: 1})
	binary.Write(&sh, le, elf.Section64{Name: uint32(2 + len(name)), Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(strtab)), Addralign: 1})
	file = append(file, sh.Bytes()...)
	// e_shoff, e_shentsize, e_shnum, e_shstrndx
	le.PutUint64(file[0x28:], shoff)
	le.PutUint16(file[0x3a:], 64)
	le.PutUint16(file[0x3c:], 3)
	le.PutUint16(file[0x3e:], 2)
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pagesLoaded is the set of pages a copying load of lay writes (reads or
// DataRuns), with their bytes.
func pagesLoaded(t *testing.T, lay *Layout) map[uint64][]byte {
	t.Helper()
	pages := map[uint64][]byte{}
	page := func(pa uint64) []byte {
		if pages[pa] == nil {
			pages[pa] = make([]byte, abi.PageSize)
		}
		return pages[pa]
	}
	if lay.Reads != nil {
		file, err := os.ReadFile(lay.Reads.From)
		if err != nil {
			t.Fatal(err)
		}
		for _, rd := range lay.Reads.Runs {
			for a := rd.Addr; a < rd.Addr+rd.Len; {
				pa := a &^ (abi.PageSize - 1)
				n := min(rd.Addr+rd.Len, pa+abi.PageSize) - a
				copy(page(pa)[a-pa:], file[rd.FileOff+(a-rd.Addr):][:n])
				a += n
			}
		}
	}
	for _, m := range lay.Mappings {
		if m.Part != PartImage {
			continue
		}
		for _, run := range m.DataRuns() {
			for off := run[0]; off < run[1]; {
				pa := (m.Addr + off) &^ (abi.PageSize - 1)
				n := min(run[1], pa+abi.PageSize-m.Addr) - off
				copy(page(pa)[m.Addr+off-pa:], m.Data[off:off+n])
				off += n
			}
		}
	}
	return pages
}

// A copying load leaves out the pages the image's .unipool.dead section
// lists, as it leaves out all-zero pages (not read, not written, not
// present), both prepared for reads (the process monitor) and with Data
// (the KVM monitor's naive loads); every other page is loaded as before.
func TestACopyingLoadLeavesOutTheImagesDeadPages(t *testing.T) {
	plain := readsImage(t)
	dead := readsImage(t)
	// The code's page 1 and ro's first page; the code's page 4 (all zero
	// anyway) and the page ro and rw share (zero in both) too.
	withSection(t, dead, elfimage.DeadSectionName, elfimage.EncodeDeadPages([]elfimage.PageRange{
		{Start: abi.MapBase + abi.PageSize, End: abi.MapBase + 2*abi.PageSize},
		{Start: abi.MapBase + 4*abi.PageSize, End: abi.MapBase + 5*abi.PageSize},
		{Start: abi.MapBase + 0x10000, End: abi.MapBase + 0x12000}}), 0)
	opt := Options{Load: monitor.LoadNaive, Seed: 1, Canary: 2}
	load := func(img string, prepare func(monitor.Unikernel, bool) (*Prepared, error)) map[uint64][]byte {
		p, err := prepare(monitor.Unikernel{Name: "img", Image: img}, true)
		if err != nil {
			t.Fatal(err)
		}
		lay, err := p.PlanLast(opt)
		if err != nil {
			t.Fatal(err)
		}
		return pagesLoaded(t, lay)
	}
	all := load(plain, PrepareReads)
	if len(all) != 5 {
		t.Fatalf("the image without the section loads %d pages, want 5", len(all))
	}
	for name, prepare := range map[string]func(monitor.Unikernel, bool) (*Prepared, error){"reads": PrepareReads, "data": Prepare} {
		got := load(dead, prepare)
		for pa, want := range all {
			isDead := pa == abi.MapBase+abi.PageSize || pa == abi.MapBase+0x10000
			switch {
			case isDead && got[pa] != nil:
				t.Errorf("%s: dead page %#x loaded", name, pa)
			case !isDead && !bytes.Equal(got[pa], want):
				t.Errorf("%s: page %#x differs from the load without the section (or is missing)", name, pa)
			}
		}
		if len(got) != 3 {
			t.Errorf("%s: %d pages loaded, want 3", name, len(got))
		}
	}
}

// The section is untrusted input: a bad one, or one that calls the
// entry's page dead, is refused by Check with the image's name.
func TestCheckRefusesABadDeadPagesSection(t *testing.T) {
	good := elfimage.EncodeDeadPages([]elfimage.PageRange{{Start: abi.MapBase + abi.PageSize, End: abi.MapBase + 2*abi.PageSize}})
	for name, c := range map[string]struct {
		data  []byte
		flags elf.SectionFlag
	}{
		"magic":      {[]byte("XXXX\x01\x00\x00\x00\x00\x00\x00\x00"), 0},
		"entry":      {elfimage.EncodeDeadPages([]elfimage.PageRange{{Start: abi.MapBase, End: abi.MapBase + abi.PageSize}}), 0},
		"length":     {good[:20], 0},
		"compressed": {good, elf.SHF_COMPRESSED},
		"allocated":  {good, elf.SHF_ALLOC},
	} {
		img := readsImage(t)
		withSection(t, img, elfimage.DeadSectionName, c.data, c.flags)
		err := Check(monitor.Unikernel{Name: "img", Image: img}, true)
		if err == nil || !strings.Contains(err.Error(), img) || !strings.Contains(err.Error(), elfimage.DeadSectionName) {
			t.Errorf("%s: Check: %v, want an error naming %s and the section", name, err, img)
		}
	}
}
