package loader

import (
	"bytes"
	"debug/elf"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/monitor"
)

// readsImage is a plain image whose segments have all-zero pages at the
// start, middle and end of their bytes, a page shared by two segments
// (zero in one, not in the other), a page zero in both, and bss.
func readsImage(t *testing.T) string {
	t.Helper()
	rx, rw := elf.PF_R|elf.PF_X, elf.PF_R|elf.PF_W
	code := make([]byte, 5*abi.PageSize+100)
	code[abi.PageSize+7] = 1    // page 1
	code[3*abi.PageSize] = 2    // page 3, its first byte
	code[5*abi.PageSize+99] = 3 // page 5 (partial), its last byte
	// Two segments sharing their pages: ro ends mid-page 1 with zeros,
	// rw starts there with bytes; then rw's page 2 is all zero, page 3 not.
	ro := make([]byte, abi.PageSize+0x200)
	ro[10] = 4
	data := make([]byte, 2*abi.PageSize+0x300)
	data[2*abi.PageSize+0x2ff] = 5
	zeros := make([]byte, 0x300)
	return segmentImage(t, []seg{
		{vaddr: abi.MapBase, flags: rx, data: code},
		{vaddr: abi.MapBase + 0x10000, flags: elf.PF_R, data: ro},
		{vaddr: abi.MapBase + 0x10000 + abi.PageSize + 0x200, flags: rw, data: data, memsz: 6 * abi.PageSize},
		{vaddr: abi.MapBase + 0x20000, flags: rw, data: zeros, memsz: abi.PageSize},
	})
}

// An image prepared for reads (the process monitor's copying loads) puts
// the very bytes Prepare's Data holds, and only in the pages DataRuns
// writes: the instance's memory is the same, page for page.
func TestReadsPutTheBytesOfDataInThePagesDataRunsWrites(t *testing.T) {
	img := readsImage(t)
	file, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	uk := monitor.Unikernel{Name: "img", Image: img}
	opt := Options{Load: monitor.LoadNaive, Seed: 1, Canary: 2} // the same boot info twice
	pd, err := Prepare(uk, true)
	if err != nil {
		t.Fatal(err)
	}
	withData, err := pd.PlanLast(opt)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := PrepareReads(uk, true)
	if err != nil {
		t.Fatal(err)
	}
	withReads, err := pr.PlanLast(opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(withData.Mappings) != len(withReads.Mappings) {
		t.Fatalf("%d mappings with reads, %d with data", len(withReads.Mappings), len(withData.Mappings))
	}
	reads := withReads.Reads
	if withData.Reads != nil || reads == nil || reads.From != img {
		t.Fatalf("reads: with data %v, prepared for reads %+v; want none, and reads from %s", withData.Reads, reads, img)
	}
	// The memory each makes: Data's bytes; the reads' bytes.
	fromData, fromReads := map[uint64][]byte{}, map[uint64][]byte{} // page -> bytes, pages written only
	images := 0
	for i, d := range withData.Mappings {
		r := withReads.Mappings[i]
		if d.Part != PartImage {
			if !bytes.Equal(r.Data, d.Data) {
				t.Errorf("mapping %s at %#x differs", d.Part, d.Addr)
			}
			continue
		}
		images++
		if r.Data != nil || r.Addr != d.Addr || r.Size != d.Size || r.JoinNext != d.JoinNext {
			t.Fatalf("image mapping at %#x: data %d bytes, [%#x+%#x] join %v; want no data, [%#x+%#x] join %v",
				r.Addr, len(r.Data), r.Addr, r.Size, r.JoinNext, d.Addr, d.Size, d.JoinNext)
		}
		for _, run := range d.DataRuns() {
			for off := run[0] &^ (abi.PageSize - 1); off < run[1]; off += abi.PageSize {
				pg := make([]byte, abi.PageSize)
				copy(pg, d.Data[off:min(uint64(len(d.Data)), off+abi.PageSize)])
				fromData[d.Addr+off] = pg
			}
		}
	}
	for k, rd := range reads.Runs {
		if k > 0 && reads.Runs[k-1].Addr+reads.Runs[k-1].Len >= rd.Addr {
			t.Errorf("read %d at %#x does not follow the one before (ends at %#x): not sorted or not joined",
				k, rd.Addr, reads.Runs[k-1].Addr+reads.Runs[k-1].Len)
		}
		for a := rd.Addr; a < rd.Addr+rd.Len; {
			pa := a &^ (abi.PageSize - 1)
			if fromReads[pa] == nil {
				fromReads[pa] = make([]byte, abi.PageSize)
			}
			n := min(rd.Addr+rd.Len, pa+abi.PageSize) - a
			copy(fromReads[pa][a-pa:], file[rd.FileOff+(a-rd.Addr):][:n])
			a += n
		}
	}
	for pa, want := range fromData {
		if got := fromReads[pa]; !bytes.Equal(got, want) {
			t.Errorf("page %#x: the reads' bytes differ from Data's (or it is not read)", pa)
		}
	}
	for pa := range fromReads {
		if fromData[pa] == nil {
			t.Errorf("page %#x is read, DataRuns does not write it", pa)
		}
	}
	pages := len(fromReads)
	// The code's pages 1, 3, 5; the shared page of ro and rw, and rw's
	// page 3 (its page 2 is zero); the all-zero segment: none.
	if images != 3 || pages != 5 {
		t.Errorf("%d image mappings, %d pages read; want 3 and 5", images, pages)
	}
	// Its bytes are not in hand: stock loading (whose bss tail patch is
	// made of them) is refused, not made of zeros.
	if _, err := pr.Plan(Options{Load: monitor.LoadStock}); err == nil || !strings.Contains(err.Error(), "stock") {
		t.Errorf("stock plan of an image prepared for reads: %v, want a refusal", err)
	}
}

// The monitor holds none of an image's bytes: preparing and planning an
// image of 2 MiB of code allocates a small buffer and the layout, not the
// image (Prepare allocates all of it, which checks the measure).
func TestPrepareReadsAllocatesFarLessThanTheImage(t *testing.T) {
	code := bytes.Repeat([]byte{0x90}, 2<<20)
	img := segmentImage(t, []seg{{vaddr: abi.MapBase, flags: elf.PF_R | elf.PF_X, data: code}})
	uk := monitor.Unikernel{Name: "img", Image: img}
	allocated := func(prepare func(monitor.Unikernel, bool) (*Prepared, error)) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		p, err := prepare(uk, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.PlanLast(Options{Load: monitor.LoadNaive}); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	data, reads := allocated(Prepare), allocated(PrepareReads)
	if data < uint64(len(code)) {
		t.Fatalf("Prepare allocated %d bytes for an image of %d: the measure is off", data, len(code))
	}
	if reads > 128<<10 {
		t.Errorf("PrepareReads + PlanLast allocated %d bytes (Prepare: %d), want at most 128 KiB", reads, data)
	}
}

// A read the file no longer holds is the build's to catch (a short read);
// one that lies outside an image mapping without data, or out of order,
// is refused by the layout's check.
func TestLayoutRefusesReadsOutsideTheirMapping(t *testing.T) {
	lay := &Layout{Mappings: []Mapping{{Addr: abi.MapBase, Size: abi.PageSize, Prot: ProtRead, Part: PartImage},
		{Addr: abi.MapBase + abi.PageSize, Size: abi.PageSize, Prot: ProtRead, Part: PartStack}},
		Reads: &ImageReads{From: "img", Runs: []Read{{Addr: abi.MapBase + 0x800, FileOff: 0, Len: abi.PageSize}}}}
	if err := lay.check(); err == nil {
		t.Error("a read past its mapping's end accepted")
	}
	lay.Reads.Runs[0].Len = 0x800
	if err := lay.check(); err != nil {
		t.Errorf("a read that fits: %v", err)
	}
	lay.Reads.Runs = append(lay.Reads.Runs, Read{Addr: abi.MapBase, FileOff: 0, Len: 0x10})
	if err := lay.check(); err == nil {
		t.Error("reads out of order accepted")
	}
	lay.Reads.Runs[1] = Read{Addr: abi.MapBase + abi.PageSize, Len: 0x10}
	if err := lay.check(); err == nil {
		t.Error("a read into the stack accepted")
	}
	lay.Reads.Runs = lay.Reads.Runs[:1]
	lay.Mappings[0].Data = []byte{1}
	if err := lay.check(); err == nil {
		t.Error("reads into a mapping with data accepted")
	}
}
