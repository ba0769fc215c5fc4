package measure

import (
	"os/exec"
	"testing"

	"github.com/unipool/unipool/internal/loader"

	"golang.org/x/sys/unix"
)

// page returns a page filled with b (0 gives the zero page's content).
func page(b byte) []byte {
	p := make([]byte, PageSize)
	for i := range p {
		p[i] = b
	}
	return p
}

// A synthetic fleet whose answer is known by construction: ten instances,
// each with four library pages (L, the same in all), an app page of its
// own (A_i), one data page (D; six instances wrote it to the same W) and
// two bss pages still zero as images; at run time a boot-info page of its
// own (B_i), a heap page of its own (H_i), a heap page and a stack page
// that every instance writes alike (H, S) and five heap pages it zeroed.
func TestCensusOfASyntheticFleetGivesTheIdealsByConstruction(t *testing.T) {
	const n = 10
	c := NewCensus()
	lib := []byte{1, 2, 3, 4}
	const d, w, h, s = 5, 6, 7, 8
	app := func(i int) byte { return byte(100 + i) }
	boot := func(i int) byte { return byte(150 + i) }
	heap := func(i int) byte { return byte(200 + i) }
	for i := 0; i < n; i++ { // the images, as loaded
		for _, l := range lib {
			c.AddLoaded(page(l))
		}
		c.AddLoaded(page(app(i)))
		c.AddLoaded(page(d))
		c.AddLoaded(page(0))
	}
	for i := 0; i < n; i++ {
		for _, l := range lib {
			c.Add(page(l), Image)
		}
		c.Add(page(app(i)), Image)
		if i < 6 {
			c.Add(page(w), Image)
		} else {
			c.Add(page(d), Image)
		}
		c.Add(page(0), Image)
		c.Add(page(0), Image)
		c.Add(page(boot(i)), Runtime)
		c.Add(page(heap(i)), Runtime)
		c.Add(page(h), Runtime)
		c.Add(page(s), Runtime)
		for k := 0; k < 5; k++ {
			c.Add(page(0), Runtime)
		}
		c.Add(page(9), Outside) // the stub: never counted
	}
	want := Counts{
		Pages:          170, // 17 a instance
		ZeroPages:      70,  // 2 bss + 5 heap, each instance
		ImageLoaded:    54,  // 10×4 L + 10 A_i + 4 D
		ImageWritten:   6,   // the six W
		Runtime:        40,  // 10 × (B_i, H_i, H, S)
		Distinct:       38,  // L×4, A×10, D, W, B×10, H_i×10, H, S
		LoadedDistinct: 15,  // L×4, A×10, D
	}
	if got := c.Counts; got != want {
		t.Fatalf("census\n got %+v\nwant %+v", got, want)
	}
	id := c.Ideals()
	if id.Ideal != 38*PageSize || id.LoadTime != (15+6+40)*PageSize || id.Zero != 70*PageSize {
		t.Fatalf("ideals %+v, want 38, 61 and 70 pages", id)
	}
}

func TestCensusReadsAProcesssPresentPages(t *testing.T) {
	const n = 9
	b, err := unix.Mmap(-1, 0, n*PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	// Pages 0-2: X (an image had it), 3-4: Y (written), 5-7: written with
	// zeros, 8: never touched (not present).
	for i := 0; i < 8; i++ {
		v := byte(0)
		switch {
		case i < 3:
			v = 'X'
		case i < 5:
			v = 'Y'
		}
		copy(b[i*PageSize:], page(v))
		b[i*PageSize] = v // zero pages too are written, so present
	}
	c := NewCensus()
	c.AddLoaded(page('X'))
	c.AddMemory(b, Image)
	if c.Pages != 8 || c.ZeroPages != 3 || c.ImageLoaded != 3 || c.LoadedDistinct != 1 || c.ImageWritten != 2 || c.Distinct != 2 {
		t.Fatalf("%+v", *c)
	}
	lo := uint64(uintptrOf(b))
	p := NewCensus()
	p.AddLoaded(page('X'))
	if err := p.AddProcess(Self, func(a uint64) Area {
		if a >= lo && a < lo+n*PageSize {
			return Runtime
		}
		return Outside
	}); err != nil {
		t.Fatal(err)
	}
	if p.Pages != 8 || p.ZeroPages != 3 || p.Runtime != 5 || p.ImageLoaded != 0 || p.Distinct != 2 {
		t.Fatalf("%+v", *p)
	}
	// The same eight pages are the process's own (anonymous): three X, two
	// Y (3 duplicates beyond the first of each) and three zero.
	if got := p.Private["other"]; got.Pages != 8 || got.Zero != 3 || got.Duplicate != 3 || len(p.Private) != 1 {
		t.Fatalf("private pages %+v, want 8 in place other, 3 all-zero, 3 duplicates", p.Private)
	}
	// Their page tables: one last-level page per 2 MiB they lie in, one
	// middle page per GiB.
	leaves, middles := uint64(1), uint64(1)
	if last := lo + 7*PageSize; last>>21 != lo>>21 {
		leaves++
		if last>>30 != lo>>30 {
			middles++
		}
	}
	if p.TableLeaves != leaves || p.TableMiddles != middles || p.Tables["other"] != leaves {
		t.Errorf("page tables: %d leaves, %d middles, by place %v; want %d, %d", p.TableLeaves, p.TableMiddles, p.Tables, leaves, middles)
	}
}

func TestPrivatePagesAreNamedByTheirPlaceInTheGuest(t *testing.T) {
	var pl placer
	for _, c := range []struct {
		start, end uint64
		file       bool
		want       string
	}{
		{0x1000_0000, 0x1000_1000, true, "app (copied from a pool blob)"},
		{0x2000_0000, 0x2001_0000, false, "boot info"},
		{0x2001_1000, 0x2005_0000, false, "stack"},
		{0x2005_0000, 0x2005_1000, true, "stack (copied from a pool blob)"}, // a snapshot page, right after
		{0x2005_2000, 0x2081_2000, false, "heap"},
		{0x4000_0000, 0x4000_1000, true, "libraries (copied from a pool blob)"},
		{0x6000_0000, 0x6000_1000, true, "app (copied from a pool blob)"},
		{0x6008_0000, 0x6008_1000, true, "data arena (copied from a pool blob)"}, // the near arena
		{0x7000_1000, 0x7000_2000, true, "data arena (copied from a pool blob)"},
		{0x1_0000_0000, 0x1_0000_1000, false, "aslr window"},
	} {
		if got := pl.of(c.start, c.end, c.file); got != c.want {
			t.Errorf("%#x: %q, want %q", c.start, got, c.want)
		}
	}
	// The process monitor's discard page fills the guard page below the
	// stack: the census skips it and the stack is a run of its own.
	pl = placer{}
	for _, c := range []struct {
		start, end uint64
		gap        bool
		want       string
	}{
		{0x2000_0000, 0x2001_0000, false, "boot info"},
		{0x2001_0000, 0x2001_1000, true, ""},
		{0x2001_1000, 0x2005_0000, false, "stack"},
		{0x2005_1000, 0x2081_1000, false, "heap"},
	} {
		if c.gap {
			pl.gap()
			continue
		}
		if got := pl.of(c.start, c.end, false); got != c.want {
			t.Errorf("with the discard page: %#x: %q, want %q", c.start, got, c.want)
		}
	}
	// The boot info in the stack's top page (since session 15): the
	// discard page in the guard page at the per-instance base, then the
	// stack, then the heap; no boot-info run.
	pl = placer{}
	for _, c := range []struct {
		start, end uint64
		gap        bool
		want       string
	}{
		{0x6010_0000, 0x6010_1000, true, ""},
		{0x6010_1000, 0x6014_2000, false, "stack"},
		{0x6014_3000, 0x6094_3000, false, "heap"},
	} {
		if c.gap {
			pl.gap()
			continue
		}
		if got := pl.of(c.start, c.end, false); got != c.want {
			t.Errorf("boot info in the stack: %#x: %q, want %q", c.start, got, c.want)
		}
	}
}

func TestInstanceAreasFollowTheGuestAddressSpace(t *testing.T) {
	for addr, want := range map[uint64]Area{
		0x40_0000: Image, 0x1000_0000: Image, 0x2000_0000: Runtime, 0x3fff_f000: Runtime,
		0x4000_0000: Image, 0x1_0000_0000: Image, 0x7f00_0000_0000: Outside, 0: Outside,
		// An image linked with its app at abi.AppRegionBase: its
		// per-instance memory follows the app, below the data arena.
		0x6000_0000: Image, 0x6010_0000: Runtime, 0x6fff_f000: Runtime, 0x7000_0000: Image,
	} {
		if got := InstanceArea(addr); got != want {
			t.Errorf("%#x: %v, want %v", addr, got, want)
		}
	}
}

func TestHostCountsInstancesMonitorAndKernelApart(t *testing.T) {
	base, err := TakeBaseline([]int{Self})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer cmd.Process.Kill()
	h, missing, err := TakeHost(Fleet{Instances: []int{cmd.Process.Pid}, Monitors: []int{Self}}, base)
	if err != nil || missing != 0 {
		t.Fatal(err, missing)
	}
	if h.Instances == 0 || h.Monitor == 0 || h.Kernel.PageTables == 0 {
		t.Fatalf("%+v", h)
	}
	if h.Total != h.Instances+h.Monitor+h.Kernel.Total || h.Kernel.Total < h.Kernel.PageTables {
		t.Fatalf("parts do not add up: %+v", h)
	}
	g, _, _ := TakeHost(Fleet{Monitors: []int{Self}, MonitorGrowth: true}, base)
	if g.Monitor >= h.Monitor {
		t.Fatalf("growth %d not below the whole %d", g.Monitor, h.Monitor)
	}
}

func TestRepeatsSayWhichPrivatePagesAnotherPageThePoolOrAFilePageHoldsToo(t *testing.T) {
	const n = 6
	b, err := unix.Mmap(-1, 0, n*PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	// Private: X X X (repeated), Y Y (repeated, and the pool stores Y),
	// Z (once, and a file page holds it).
	for i, v := range []byte("XXXYYZ") {
		copy(b[i*PageSize:], page(v))
	}
	fd, err := unix.MemfdCreate("census-test", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.Pwrite(fd, page('Z'), 0); err != nil {
		t.Fatal(err)
	}
	fb, err := unix.Mmap(fd, 0, PageSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(fb)
	if fb[0] != 'Z' { // present
		t.Fatal("the file page does not read back")
	}
	lo, flo := uint64(uintptrOf(b)), uint64(uintptrOf(fb))
	c := NewCensus()
	if err := c.AddStoredLayout(&loader.Layout{Mappings: []loader.Mapping{{Addr: 0, Size: 2 * PageSize, Data: append(page('Y'), make([]byte, PageSize)...)}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.AddProcess(Self, func(a uint64) Area {
		if a >= lo && a < lo+n*PageSize || a >= flo && a < flo+PageSize {
			return Runtime
		}
		return Outside
	}); err != nil {
		t.Fatal(err)
	}
	var got []PageRepeats
	for _, r := range c.Repeats() {
		if r.Place == "other" {
			got = append(got, r)
		}
	}
	if len(got) != 1 {
		t.Fatalf("groups %+v, want one in place other", c.Repeats())
	}
	if g := got[0]; g.Pages != 6 || g.Repeated != 5 || g.OtherApp != 0 || g.Stored != 2 || g.FilePage != 1 {
		t.Fatalf("%+v, want 6 pages, 5 repeated (none in another app), 2 stored, 1 a file page's", g)
	}
}

func TestAPageIsNamedFromTheHeapsStartAndTheStacksTop(t *testing.T) {
	heap := [2]uint64{0x10000, 0x20000}
	stack := [2]uint64{0x8000, 0xc000}
	for _, c := range []struct {
		place string
		addr  uint64
		ext   [2]uint64
		want  string
	}{
		{"heap", 0x10000, heap, "0"}, {"heap", 0x13000, heap, "3"}, {"heap", 0x14000, heap, "4+"},
		{"stack", 0xb000, stack, "top"}, {"stack", 0xa000, stack, "top-1"}, {"stack", 0x8000, stack, "below"},
		{"data arena", 0x7000_0000, [2]uint64{0x7000_0000, 0x7001_0000}, ""},
	} {
		if got := pageInPlace(c.place, c.addr, c.ext); got != c.want {
			t.Errorf("%s %#x: %q, want %q", c.place, c.addr, got, c.want)
		}
	}
}
