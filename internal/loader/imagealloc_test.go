package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/monitor"
)

// manySegmentImage writes an ELF64 image of n PT_LOAD segments of segSize
// file bytes each, every one sharing a page with the next (one merged
// mapping, as in the aligned images the linker makes: 22 segments), each
// filled with its own byte. It returns the path and the segments' vaddrs.
func manySegmentImage(t *testing.T, n int, segSize uint64) (string, []uint64) {
	t.Helper()
	const ehsize, phsize = 64, 56
	dataOff := uint64(abi.PageSize)
	base := uint64(abi.AppRegionBase)
	var buf bytes.Buffer
	le := binary.LittleEndian
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1,
		Entry: base + 0x100, Phoff: ehsize, Ehsize: ehsize, Phentsize: phsize, Phnum: uint16(n),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS], hdr.Ident[elf.EI_DATA], hdr.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1
	binary.Write(&buf, le, hdr)
	var vaddrs []uint64
	for k := 0; k < n; k++ {
		off := dataOff + uint64(k)*segSize
		v := base + 0x100 + uint64(k)*segSize
		vaddrs = append(vaddrs, v)
		binary.Write(&buf, le, elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X),
			Off: off, Vaddr: v, Paddr: v, Filesz: segSize, Memsz: segSize, Align: 16})
	}
	data := make([]byte, dataOff+uint64(n)*segSize)
	copy(data, buf.Bytes())
	for k := 0; k < n; k++ {
		off := dataOff + uint64(k)*segSize
		for i := off; i < off+segSize; i++ {
			data[i] = byte(k + 1)
		}
	}
	path := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, vaddrs
}

// The plain-image monitor's CPU is its collector's: with a small live heap
// it collects every ~1 MB allocated, so what loading an image allocates
// per instance sets how often. Loading one instance of an image whose 22
// segments share pages allocated each segment's bytes, the merged bytes
// grown segment by segment, and a copy for the layout (~5x the image); it
// now allocates its bytes about once.
func TestLoadingAPlainImagesOnlyInstanceAllocatesItsBytesAboutOnce(t *testing.T) {
	const n, segSize = 22, 12 << 10
	img, vaddrs := manySegmentImage(t, n, segSize)
	u := monitor.Unikernel{Name: "img", Image: img}
	image := uint64(n * segSize)
	check := func(lay *Layout) {
		t.Helper()
		for k, v := range vaddrs {
			m := lay.Find(v)
			if m == nil || m.Part != PartImage {
				t.Fatalf("segment %d at %#x: no image mapping", k, v)
			}
			got := m.Data[v-m.Addr : v-m.Addr+segSize]
			if !bytes.Equal(got, bytes.Repeat([]byte{byte(k + 1)}, segSize)) {
				t.Fatalf("segment %d at %#x: its bytes are not the file's", k, v)
			}
		}
	}
	least := ^uint64(0)
	for i := 0; i < 3; i++ {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		p, err := Prepare(u, true)
		if err != nil {
			t.Fatal(err)
		}
		lay, err := p.PlanLast(Options{Load: monitor.LoadNaive})
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		check(lay)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	t.Logf("image %d KiB, allocated %d KiB to prepare and plan its only instance", image>>10, least>>10)
	if least > image+image/2 {
		t.Errorf("preparing and planning the only instance of a %d KiB image allocated %d KiB; want at most 1.5x the image", image>>10, least>>10)
	}

	// Instances planned before the last get a copy: one's bytes written
	// do not show in the next.
	p, err := Prepare(u, true)
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.Plan(Options{Load: monitor.LoadNaive})
	if err != nil {
		t.Fatal(err)
	}
	a.Find(vaddrs[0]).Data[vaddrs[0]-a.Find(vaddrs[0]).Addr] = 0xff
	b, err := p.PlanLast(Options{Load: monitor.LoadNaive})
	if err != nil {
		t.Fatal(err)
	}
	check(b)
}
