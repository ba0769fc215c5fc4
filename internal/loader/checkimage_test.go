package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/monitor"
)

// withSections rewrites the image at path with n more section headers
// (PROGBITS, no bytes, each named in a section-name table of its own),
// as an aligned image has ~99 and a DCE one ~25.
func withSections(t *testing.T, path string, n int) {
	t.Helper()
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	var names bytes.Buffer
	names.WriteByte(0)
	nameAt := make([]uint32, n+1)
	for i := range n {
		nameAt[i] = uint32(names.Len())
		fmt.Fprintf(&names, ".text.section%d", i)
		names.WriteByte(0)
	}
	nameAt[n] = uint32(names.Len())
	names.WriteString(".shstrtab\x00")
	strOff := uint64(len(file))
	file = append(file, names.Bytes()...)
	for len(file)%8 != 0 {
		file = append(file, 0)
	}
	shOff := uint64(len(file))
	var sh bytes.Buffer
	binary.Write(&sh, le, elf.Section64{}) // SHN_UNDEF
	for i := range n {
		binary.Write(&sh, le, elf.Section64{Name: nameAt[i], Type: uint32(elf.SHT_PROGBITS), Off: strOff, Addralign: 1})
	}
	binary.Write(&sh, le, elf.Section64{Name: nameAt[n], Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(names.Len()), Addralign: 1})
	file = append(file, sh.Bytes()...)
	// The ELF header's e_shoff, e_shentsize, e_shnum, e_shstrndx.
	le.PutUint64(file[0x28:], shOff)
	le.PutUint16(file[0x3a:], 64)
	le.PutUint16(file[0x3c:], uint16(n+2))
	le.PutUint16(file[0x3e:], uint16(n+1))
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("the image with %d sections: %v", n, err)
	}
	defer f.Close()
	if len(f.Sections) != n+2 {
		t.Fatalf("the image has %d sections, want %d", len(f.Sections), n+2)
	}
}

// An image checked once (CheckImage) is laid out from the headers kept
// (PrepareReadsFrom) as PrepareReads lays it out from the file: the same
// mappings and reads, with or without a HeaderStore.
func TestPrepareReadsFromTheCheckedHeadersLaysOutWhatPrepareReadsDoes(t *testing.T) {
	img := readsImage(t)
	withSections(t, img, 40)
	uk := monitor.Unikernel{Name: "img", Image: img}
	opt := Options{Load: monitor.LoadNaive, Seed: 1, Canary: 2}
	pr, err := PrepareReads(uk, true)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pr.PlanLast(opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, store := range []*HeaderStore{nil, {}} {
		h, err := CheckImage(uk, store)
		if err != nil {
			t.Fatal(err)
		}
		p, err := PrepareReadsFrom(uk, h)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.PlanLast(opt)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Mappings, want.Mappings) {
			t.Fatalf("store %v: mappings\n%+v\nwant\n%+v", store != nil, got.Mappings, want.Mappings)
		}
		if !reflect.DeepEqual(got.Reads, want.Reads) || got.Entry != want.Entry || got.BootInfo != want.BootInfo {
			t.Fatalf("store %v: reads %+v entry %#x boot info %#x, want %+v %#x %#x", store != nil,
				got.Reads, got.Entry, got.BootInfo, want.Reads, want.Entry, want.BootInfo)
		}
	}
}

// Laying an instance out from the checked headers parses nothing: what it
// allocates does not grow with the image's section headers (elf.NewFile
// makes a Section, a reader and a name per header), while a parse does.
func TestPrepareReadsFromAllocatesTheSameForAnyNumberOfSections(t *testing.T) {
	allocs := func(sections int) (from, parse float64) {
		img := readsImage(t)
		if sections > 0 {
			withSections(t, img, sections)
		}
		uk := monitor.Unikernel{Name: "img", Image: img}
		h, err := CheckImage(uk, nil)
		if err != nil {
			t.Fatal(err)
		}
		from = testing.AllocsPerRun(20, func() {
			if _, err := PrepareReadsFrom(uk, h); err != nil {
				t.Fatal(err)
			}
		})
		parse = testing.AllocsPerRun(20, func() {
			if _, err := PrepareReads(uk, true); err != nil {
				t.Fatal(err)
			}
		})
		return from, parse
	}
	from0, parse0 := allocs(0)
	from99, parse99 := allocs(99)
	t.Logf("allocations: from the headers %v (0 sections) and %v (99); parsing %v and %v", from0, from99, parse0, parse99)
	if from99 != from0 {
		t.Errorf("from the checked headers: %v allocations with 99 sections, %v with none: it parses the image", from99, from0)
	}
	if parse99 < parse0+2*99 {
		t.Errorf("a parse of 99 sections made %v allocations, of none %v: the test image's sections are not read", parse99, parse0)
	}
	if from0 > 16 {
		t.Errorf("from the checked headers: %v allocations, want at most 16", from0)
	}
}

// A checked image whose file changed since (size or modification time)
// is refused, not laid out from headers that may not be its own.
func TestPrepareReadsFromRefusesAnImageChangedSinceItWasChecked(t *testing.T) {
	img := readsImage(t)
	uk := monitor.Unikernel{Name: "img", Image: img}
	h, err := CheckImage(uk, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PrepareReadsFrom(uk, h); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(img, later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := PrepareReadsFrom(uk, h); err == nil {
		t.Fatal("an image touched since it was checked was laid out from its old headers")
	}
	other := monitor.Unikernel{Name: "other", Image: img + ".other"}
	if _, err := PrepareReadsFrom(other, h); err == nil {
		t.Fatal("another unikernel's image was laid out from these headers")
	}
}

// The PT_LOAD lists a HeaderStore hands out come from chunks of one size
// (the 4,096-byte class), a few images a chunk, whatever their PT_LOAD
// counts; each list is the image's own (filling one leaves the others as
// they were); a list longer than a chunk gets a slice of its own.
func TestHeaderStoreTakesPTLoadListsFromChunksOfOneSize(t *testing.T) {
	const images = 40
	var s HeaderStore
	lists := make([][]elf.ProgHeader, images)
	n := func(i int) int { return 1 + (i*7)%30 } // 1..30 PT_LOADs
	allocs := testing.AllocsPerRun(1, func() {
		s = HeaderStore{}
		for i := range lists {
			lists[i] = s.take(n(i))
		}
	})
	total := 0
	for i := range images {
		total += n(i)
	}
	if max := float64(total/headerChunk + images/2); allocs > max {
		t.Errorf("%d lists of %d PT_LOADs in all: %v allocations, want at most %v", images, total, allocs, max)
	}
	for i, l := range lists {
		if len(l) != 0 || cap(l) != n(i) {
			t.Fatalf("list %d: len %d cap %d, want 0 and %d", i, len(l), cap(l), n(i))
		}
		for k := range n(i) {
			lists[i] = append(lists[i], elf.ProgHeader{Vaddr: uint64(i), Off: uint64(k)})
		}
	}
	for i, l := range lists {
		for k, p := range l {
			if p.Vaddr != uint64(i) || p.Off != uint64(k) {
				t.Fatalf("list %d entry %d is %+v: lists overlap", i, k, p)
			}
		}
	}
	if big := s.take(headerChunk + 1); cap(big) != headerChunk+1 {
		t.Fatalf("a list of %d: cap %d", headerChunk+1, cap(big))
	}
	if size := int(unsafe.Sizeof(elf.ProgHeader{})); size*headerChunk > 4096 || size*(headerChunk+1) <= 4096 {
		t.Fatalf("a chunk of %d PT_LOADs of %d bytes is not the 4,096-byte class", headerChunk, size)
	}
	// The reads kept: copies at their length, from chunks.
	runs := make([][]Read, images)
	src := make([]Read, 30)
	allocs = testing.AllocsPerRun(1, func() {
		s = HeaderStore{}
		for i := range runs {
			for k := range n(i) {
				src[k] = Read{Addr: uint64(i), FileOff: uint64(k)}
			}
			runs[i] = s.keepRuns(src[:n(i)])
		}
	})
	if max := float64(total/runsChunk + images/4); allocs > max {
		t.Errorf("%d lists of %d reads in all: %v allocations, want at most %v", images, total, allocs, max)
	}
	for i, l := range runs {
		if len(l) != n(i) || cap(l) != n(i) {
			t.Fatalf("reads %d: len %d cap %d, want %d", i, len(l), cap(l), n(i))
		}
		for k, r := range l {
			if r.Addr != uint64(i) || r.FileOff != uint64(k) {
				t.Fatalf("reads %d entry %d is %+v", i, k, r)
			}
		}
	}
}

// Which pages of a mapping are all zero is kept on the stack for any
// mapping up to 16 MiB: fileReads allocates nothing but the reads it
// appends (a byte per page on the heap was a size class per mapping
// size; an aligned image's mappings are MiBs).
func TestFileReadsKeepsItsPagesOnTheStack(t *testing.T) {
	for _, pages := range []uint64{1, 768, 4096} {
		size := pages * abi.PageSize
		file := make([]byte, size)
		for pg := uint64(0); pg < pages; pg += 2 {
			file[pg*abi.PageSize] = 1 // every other page not zero
		}
		prog := &elf.ProgHeader{Off: 0, Filesz: size, Memsz: size}
		segs := []loadSeg{{lo: abi.MapBase, hi: abi.MapBase + size, vaddr: abi.MapBase, prot: ProtRead, prog: prog}}
		buf := make([]byte, readsBuffer)
		reads := make([]Read, 0, pages)
		var err error
		r := bytes.NewReader(file)
		n := testing.AllocsPerRun(5, func() {
			reads, err = fileReads(reads[:0], r, abi.MapBase, size, segs, nil, buf)
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := (pages + 1) / 2; uint64(len(reads)) != want {
			t.Fatalf("%d pages: %d reads, want %d", pages, len(reads), want)
		}
		if n != 0 {
			t.Errorf("%d pages: %v allocations, want 0", pages, n)
		}
	}
}
