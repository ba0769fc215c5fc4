package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/monitor"
)

// seg is one PT_LOAD of a synthetic image: data are its file bytes.
type seg struct {
	vaddr, memsz uint64
	flags        elf.ProgFlag
	data         []byte
}

// segmentImage writes an ELF64 executable of segs (entry at the first).
func segmentImage(t *testing.T, segs []seg) string {
	t.Helper()
	const ehsize, phsize = 64, 56
	le := binary.LittleEndian
	var buf bytes.Buffer
	hdr := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1,
		Entry: segs[0].vaddr, Phoff: ehsize, Ehsize: ehsize, Phentsize: phsize, Phnum: uint16(len(segs))}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS], hdr.Ident[elf.EI_DATA], hdr.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1
	binary.Write(&buf, le, hdr)
	off := uint64(abi.PageSize)
	var body []byte
	for _, s := range segs {
		binary.Write(&buf, le, elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(s.flags), Off: off + uint64(len(body)),
			Vaddr: s.vaddr, Paddr: s.vaddr, Filesz: uint64(len(s.data)), Memsz: max(s.memsz, uint64(len(s.data))), Align: 16})
		body = append(body, s.data...)
	}
	file := make([]byte, off, off+uint64(len(body)))
	copy(file, buf.Bytes())
	path := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, append(file, body...), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func filled(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// hostMappings is how many mappings the process monitor makes for lay's
// image: one per run of JoinNext, and adjacent ones of one protection
// become one in the kernel anyway (as /proc/PID/maps shows).
func hostMappings(lay *Layout) (n int, joinedBytes uint64) {
	var prev *Mapping
	for i := range lay.Mappings {
		m := &lay.Mappings[i]
		if m.Part != PartImage {
			continue
		}
		joined := prev != nil && prev.JoinNext
		adjacent := prev != nil && prev.Addr+prev.Size == m.Addr && prev.Prot == m.Prot
		if !joined && !adjacent {
			n++
		}
		if joined {
			joinedBytes += m.Addr - (prev.Addr + prev.Size)
		}
		prev = m
	}
	return n, joinedBytes
}

// An aligned image run as a plain image (the KSM baselines) has a segment
// per library region, slack between them: its instance made a kernel
// mapping (VMA, 384 bytes of charged kernel memory) per library. Segments
// of one protection in one 2 MiB are now one: here the map's code, the
// app's and the data arena's, 3 instead of 6. A packed image's segments
// (each of its own protection) stay 4, as before.
func TestAPlainImagesSegmentsOfOneProtectionIn2MiBAreOneHostMapping(t *testing.T) {
	rx, rw := elf.PF_R|elf.PF_X, elf.PF_R|elf.PF_W
	aligned := segmentImage(t, []seg{
		{vaddr: abi.MapBase, flags: rx, data: filled(0x2400, 1)},
		{vaddr: abi.MapBase + 0x23000, flags: rx, data: filled(0x800, 2)},
		{vaddr: abi.MapBase + 0x5b000, flags: rx, data: filled(0x1000, 3)},
		{vaddr: abi.AppRegionBase, flags: rx, data: filled(0x300, 4)},
		{vaddr: abi.NearArenaBase, flags: rw, data: filled(0x40, 5), memsz: 0x2600},
		{vaddr: abi.NearArenaBase + 0x7000, flags: rw, data: filled(0x10, 6)},
	})
	lay, err := Plan(monitor.Unikernel{Name: "aligned", Image: aligned}, Options{Load: monitor.LoadNaive})
	if err != nil {
		t.Fatal(err)
	}
	n, gaps := hostMappings(lay)
	if n != 3 {
		t.Errorf("aligned image: %d host mappings, want 3 (map code, app code, data arena)", n)
	}
	// The gaps are mapped, never copied: the layout's bytes are the
	// segments' pages only.
	var data int
	for _, m := range lay.Mappings {
		data += len(m.Data)
	}
	if want := 0x3000 + 0x800 + 0x1000 + 0x300 + 0x40 + 0x10 + 2*abi.PageSize; data > want {
		t.Errorf("aligned image: %d bytes of data, want ≤ %d: gaps copied", data, want)
	}
	if gaps == 0 {
		t.Error("no gap joined")
	}
	// The instance's memory after the app starts with the guard page
	// below the stack (the process monitor's discard page), the boot info
	// in the stack's top page: the data arena's last page is joined with
	// nothing after it.
	if m := lastImageMapping(t, lay); m.JoinNext {
		t.Errorf("aligned image: the data arena at %#x is joined with the stack after the guard page", m.Addr)
	}
	packed := segmentImage(t, []seg{
		{vaddr: abi.PackedBase, flags: elf.PF_R, data: filled(0x100, 1)},
		{vaddr: abi.PackedBase + 0x1000, flags: rx, data: filled(0x3000, 2)},
		{vaddr: abi.PackedBase + 0x4000, flags: elf.PF_R, data: filled(0x1000, 3)},
		{vaddr: abi.PackedBase + 0x5000, flags: rw, data: filled(0x100, 4), memsz: 0x3000},
	})
	lay, err = Plan(monitor.Unikernel{Name: "packed", Image: packed}, Options{Load: monitor.LoadNaive})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := hostMappings(lay); n != 4 {
		t.Errorf("packed image: %d host mappings, want 4 (one per protection)", n)
	}
	if m := lastImageMapping(t, lay); m.JoinNext {
		t.Errorf("packed image: its data at %#x joined with a boot info in another 2 MiB", m.Addr)
	}
	// Under ASLR the per-instance areas never land in a joined gap (the
	// layout's check refuses a join with anything else).
	for range 50 {
		if _, err := Plan(monitor.Unikernel{Name: "aligned", Image: aligned}, Options{Load: monitor.LoadNaive, ASLR: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// Segments across 2 MiB, or of two protections, are not joined: a join
// would cost a page-table page, or give a page a protection it lacks.
func TestSegmentsAcross2MiBOrProtectionsAreNotJoined(t *testing.T) {
	rx := elf.PF_R | elf.PF_X
	img := segmentImage(t, []seg{
		{vaddr: abi.MapBase + 0x1f0000, flags: rx, data: filled(0x100, 1)},
		{vaddr: abi.MapBase + 0x210000, flags: rx, data: filled(0x100, 2)},
		{vaddr: abi.MapBase + 0x220000, flags: elf.PF_R, data: filled(0x100, 3)},
	})
	lay, err := Plan(monitor.Unikernel{Name: "img", Image: img}, Options{Load: monitor.LoadNaive})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := hostMappings(lay); n != 3 {
		t.Errorf("%d host mappings, want 3", n)
	}
}

// A copying monitor writes a plain image's pages but its all-zero ones,
// which read as zero unwritten (a data arena's bss between two private
// parts): fewer pages for the instance, and for ksmd to track.
func TestDataRunsLeaveOutAllZeroPages(t *testing.T) {
	data := make([]byte, 5*abi.PageSize+0x80)
	data[10] = 1                  // page 0
	data[2*abi.PageSize+5] = 2    // page 2
	data[3*abi.PageSize+4095] = 3 // page 3
	data[5*abi.PageSize+0x7f] = 4 // the last, partial page
	m := Mapping{Addr: abi.NearArenaBase, Size: 6 * abi.PageSize, Data: data}
	got := m.DataRuns()
	want := [][2]uint64{{0, abi.PageSize}, {2 * abi.PageSize, 4 * abi.PageSize}, {5 * abi.PageSize, 5*abi.PageSize + 0x80}}
	if len(got) != len(want) {
		t.Fatalf("runs %#x, want %#x", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("runs %#x, want %#x", got, want)
		}
	}
	if r := (&Mapping{Data: make([]byte, 3*abi.PageSize)}).DataRuns(); len(r) != 0 {
		t.Errorf("all-zero data: runs %#x", r)
	}
}

// lastImageMapping is lay's image mapping of the highest address; the
// mapping after it must be the boot info.
func lastImageMapping(t *testing.T, lay *Layout) Mapping {
	t.Helper()
	for i := len(lay.Mappings) - 1; i >= 0; i-- {
		if lay.Mappings[i].Part == PartImage {
			if i+1 == len(lay.Mappings) || lay.Mappings[i+1].Part != PartStack {
				t.Fatalf("the mapping after the image is not its stack")
			}
			return lay.Mappings[i]
		}
	}
	t.Fatal("no image mapping")
	return Mapping{}
}
