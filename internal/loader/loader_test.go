package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/monitor"
)

// testUnikernel builds a two-library description (lib "a" in the map, an
// app) whose tramp slot and data reloc point at each other.
func testUnikernel(t testing.TB) monitor.Unikernel {
	t.Helper()
	dir := t.TempDir()
	shared := make([]byte, 2*abi.PageSize)
	shared[0] = 0xc3
	private := make([]byte, 3*abi.PageSize)
	copy(private[abi.PageSize:], "data")
	os.WriteFile(filepath.Join(dir, "shared"), shared, 0o644)
	os.WriteFile(filepath.Join(dir, "private"), private, 0o644)
	reg := func(start uint64) desc.Region {
		return desc.Region{Start: start, TrampSize: abi.PageSize, SharedSize: 4 * abi.PageSize, PrivateSize: 2 * abi.PageSize}
	}
	cfg := &desc.Config{
		SchemaVersion: desc.SchemaVersion, Layout: "aligned",
		Entry: desc.Addr{Lib: 0, Off: abi.PageSize},
		Libraries: []desc.Library{
			{Name: "a", Region: reg(abi.MapBase),
				Tramp:   desc.Tramp{Size: 16, BlobOff: 0, Slots: []desc.Slot{{Off: 8, Target: desc.Addr{Lib: 1, Off: abi.PageSize + 0x10}}}},
				Shared:  desc.Shared{Size: 2 * abi.PageSize, Digest: "sha256:s", Segments: []desc.Segment{{Off: 0, Size: abi.PageSize, Prot: desc.ProtRX}, {Off: abi.PageSize, Size: abi.PageSize, Prot: desc.ProtR}}},
				Private: desc.Part{FileSize: 4, MemSize: abi.PageSize, BlobOff: abi.PageSize}},
			{Name: "app", App: true, Region: reg(abi.AppRegionBase),
				Private: desc.Part{FileSize: 16, MemSize: abi.PageSize, BlobOff: 2 * abi.PageSize},
				Relocs:  []desc.Reloc{{Off: 8, Target: desc.Addr{Lib: 0, Off: abi.PageSize}}}},
		},
		Private: &desc.BlobRef{Digest: "sha256:p", Size: int64(len(private))},
	}
	paths := map[string]string{"sha256:s": filepath.Join(dir, "shared"), "sha256:p": filepath.Join(dir, "private")}
	return monitor.Unikernel{Name: "t", Config: cfg, BlobPath: func(d string) string { return paths[d] }, Cmdline: "hello world"}
}

func TestSharedLoadMapsBlobFileAndFillsTablesAtMapAddresses(t *testing.T) {
	lay, err := Plan(testUnikernel(t), Options{Load: monitor.LoadShared})
	if err != nil {
		t.Fatal(err)
	}
	if lay.Entry != abi.MapBase+abi.PageSize {
		t.Errorf("entry %#x", lay.Entry)
	}
	var files, tramp int
	for _, m := range lay.Mappings {
		if m.Part == PartShared {
			files++
			if m.File == "" || m.Data != nil || m.Prot&ProtWrite != 0 {
				t.Errorf("shared mapping %+v not a read-only file mapping", m)
			}
		}
		if m.Part == PartTramp {
			tramp++
			if got := binary.LittleEndian.Uint64(m.Data[8:]); got != abi.AppRegionBase+abi.PageSize+0x10 {
				t.Errorf("slot holds %#x", got)
			}
		}
		if m.Library == "app" && m.Part == PartPrivate {
			if got := binary.LittleEndian.Uint64(m.Data[8:]); got != abi.MapBase+abi.PageSize {
				t.Errorf("reloc holds %#x", got)
			}
		}
	}
	if files != 2 || tramp != 1 {
		t.Errorf("%d shared mappings, %d tables", files, tramp)
	}
	if d := lay.Describe(abi.MapBase + abi.PageSize + 5); d != "library a, shared part" {
		t.Errorf("Describe: %q", d)
	}
}

func TestNaiveLoadCopiesBlobs(t *testing.T) {
	lay, err := Plan(testUnikernel(t), Options{Load: monitor.LoadNaive})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range lay.Mappings {
		if m.File != "" {
			t.Fatalf("naive load maps a file: %+v", m)
		}
		if m.Part == PartShared && m.Addr == abi.MapBase+abi.PageSize && m.Data[0] != 0xc3 {
			t.Fatalf("code not copied")
		}
	}
}

func TestASLRGivesEachInstanceOwnBasesAndRefillsSlots(t *testing.T) {
	p, err := Prepare(testUnikernel(t), false)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	a, err := p.Plan(Options{ASLR: true, Rand: rng})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Plan(Options{ASLR: true, Rand: rng})
	if err != nil {
		t.Fatal(err)
	}
	if a.Bases["a"] == b.Bases["a"] || a.Bases["app"] == b.Bases["app"] {
		t.Fatalf("same bases: %v %v", a.Bases, b.Bases)
	}
	for _, lay := range []*Layout{a, b} {
		for name, base := range lay.Bases {
			if base < abi.ASLRBase || base >= abi.ASLRBase+abi.ASLRSize || base%abi.PageSize != 0 {
				t.Errorf("%s at %#x outside the window", name, base)
			}
		}
		if lay.Entry != lay.Bases["a"]+abi.PageSize {
			t.Errorf("entry %#x not relative to a's base %#x", lay.Entry, lay.Bases["a"])
		}
		tr := lay.Find(lay.Bases["a"])
		if got := binary.LittleEndian.Uint64(tr.Data[8:]); got != lay.Bases["app"]+abi.PageSize+0x10 {
			t.Errorf("slot %#x, app base %#x", got, lay.Bases["app"])
		}
	}
}

func TestBootInfoCarriesCommandLineAndMemory(t *testing.T) {
	lay, err := Plan(testUnikernel(t), Options{MemSize: 1 << 20, InstanceID: 7, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	m := lay.Find(lay.BootInfo)
	if m == nil || m.Part != PartStack || lay.BootInfo/abi.PageSize != (lay.StackTop-8)/abi.PageSize {
		t.Fatalf("boot info at %#x not in the stack's top page (stack top %#x, %+v)", lay.BootInfo, lay.StackTop, m)
	}
	m.Data = m.Data[lay.BootInfo-m.Addr:]
	le := binary.LittleEndian
	if le.Uint64(m.Data) != abi.BootInfoMagic || le.Uint64(m.Data[64:]) != 7 || le.Uint64(m.Data[72:]) != 9 {
		t.Fatalf("boot info header wrong")
	}
	cmd := le.Uint64(m.Data[16:]) - lay.BootInfo
	if string(m.Data[cmd:cmd+11]) != "hello world" || m.Data[cmd+11] != 0 {
		t.Fatalf("command line wrong")
	}
	heap := lay.Find(le.Uint64(m.Data[32:]))
	if heap == nil || heap.Part != PartHeap || le.Uint64(m.Data[40:])+abi.DefaultStackSize != 1<<20 {
		t.Fatalf("heap wrong")
	}
	if lay.Find(lay.StackTop-8).Part != PartStack {
		t.Fatalf("stack top not in the stack")
	}
}

// The boot info lies in the stack mapping's top page, BootStackRoom into
// it, the TLS area (TLS block and TCB, with the canary) right below it and
// the stack the guest is told of below that: the boot info and the canary
// share the page the first frames write, no page of their own.
func TestBootInfoAndTLSAreaAreTheTopOfTheStackMapping(t *testing.T) {
	u := testUnikernel(t)
	u.Config.BootInfoVersion = abi.BootInfoVersion
	for _, aslr := range []bool{false, true} {
		lay, err := Plan(u, Options{MemSize: 1 << 20, ASLR: aslr})
		if err != nil {
			t.Fatal(err)
		}
		le := binary.LittleEndian
		top := lay.Find(lay.BootInfo)
		if top == nil || top.Part != PartStack || lay.BootEnd != top.Addr+top.Size || lay.BootInfo != lay.BootEnd-abi.PageSize+BootStackRoom {
			t.Fatalf("aslr %v: boot info at %#x (end %#x) is not BootStackRoom into the stack's top page %+v", aslr, lay.BootInfo, lay.BootEnd, top)
		}
		bi := top.Data[lay.BootInfo-top.Addr:]
		stackStart, stackSize := le.Uint64(bi[48:]), le.Uint64(bi[56:])
		tls, tlsSize := le.Uint64(bi[136:]), le.Uint64(bi[144:])
		stack := lay.Find(stackStart)
		if stack == nil || stack.Part != PartStack || stack.Addr != stackStart || lay.Areas[PartStack] != stackStart {
			t.Fatalf("aslr %v: stack_start %#x is not the stack mapping's start (%+v)", aslr, stackStart, stack)
		}
		if tlsSize == 0 || tlsSize > BootStackRoom || tls+tlsSize != lay.BootInfo {
			t.Fatalf("aslr %v: TLS area %#x+%#x does not end at the boot info %#x", aslr, tls, tlsSize, lay.BootInfo)
		}
		if stackStart+stackSize != tls || lay.StackTop != tls || lay.StackTop%16 != 0 || stackSize < abi.DefaultStackSize {
			t.Fatalf("aslr %v: stack %#x+%#x (top %#x) does not end where the TLS area %#x starts", aslr, stackStart, stackSize, lay.StackTop, tls)
		}
		if lay.Areas[PartTLS] != tls || lay.TLSSize != tlsSize || lay.Areas[PartBootInfo] != lay.BootInfo {
			t.Fatalf("aslr %v: areas say TLS %#x+%#x, boot info %#x+%#x", aslr, lay.Areas[PartTLS], lay.TLSSize, tls, tlsSize)
		}
		for _, m := range lay.Mappings {
			if m.Part == PartBootInfo {
				t.Fatalf("aslr %v: a boot-info mapping of its own: %+v", aslr, m)
			}
		}
	}

	// A version-1 guest knows no TLS area: its stack ends at the boot info.
	u.Config.BootInfoVersion = 1
	lay, err := Plan(u, Options{MemSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if m := lay.Find(lay.StackTop - 8); m == nil || m.Part != PartStack || lay.StackTop != lay.BootInfo || lay.Areas[PartTLS] != 0 {
		t.Fatalf("version 1: stack top %#x is not the boot info %#x (%+v)", lay.StackTop, lay.BootInfo, m)
	}

	// A command line longer than the page: the boot area takes the pages
	// it needs, the boot info still BootStackRoom into the first.
	long := strings.Repeat("x", 5000)
	if lay, err = Plan(u, Options{MemSize: 1 << 20, Cmdline: long}); err != nil {
		t.Fatal(err)
	}
	m := lay.Find(lay.BootInfo)
	if lay.BootInfo%abi.PageSize != BootStackRoom || m == nil || m.Addr+m.Size != lay.BootEnd ||
		string(m.Data[lay.BootInfo-m.Addr+abi.BootInfoSizeV1:]) != long+"\x00" || lay.BootEnd-lay.BootInfo < uint64(len(long)) {
		t.Fatalf("long command line: boot info %#x, end %#x, mapping %#x+%#x", lay.BootInfo, lay.BootEnd, m.Addr, m.Size)
	}
}

func TestCorruptDescriptionIsRefused(t *testing.T) {
	u := testUnikernel(t)
	u.Config.Libraries[0].Tramp.BlobOff = 1 << 40
	if _, err := Plan(u, Options{}); err == nil {
		t.Fatal("tramp table outside the private blob accepted")
	}
	u = testUnikernel(t)
	u.Config.Libraries[1].Region.Start = abi.MapBase
	if _, err := Plan(u, Options{}); err == nil {
		t.Fatal("overlapping regions accepted")
	}
}

func TestPlainImageSegmentsAreCopied(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "a.c")
	os.WriteFile(src, []byte("const char msg[] = \"hi\"; int counter = 5; void _start(void) { for (;;) ; }\n"), 0o644)
	img := filepath.Join(dir, "img")
	out, err := exec.Command("gcc", "-static", "-nostdlib", "-fno-pie", "-no-pie", "-O2", "-o", img, src).CombinedOutput()
	if err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	lay, err := Plan(monitor.Unikernel{Name: "img", Image: img}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var seen bool
	for _, m := range lay.Mappings {
		if m.Part == PartImage && m.Addr <= lay.Entry && lay.Entry < m.Addr+m.Size {
			seen = m.Prot&ProtExec != 0
		}
	}
	if !seen {
		t.Fatalf("entry %#x not in an executable image mapping", lay.Entry)
	}
	if _, err := Plan(monitor.Unikernel{Name: "x", Image: src}, Options{}); err == nil {
		t.Fatal("a C file accepted as image")
	}
	// Check (a monitor's look before it starts anything) refuses what
	// Prepare refuses, reading the headers only: a file whose segments
	// are cut off too.
	if err := Check(monitor.Unikernel{Name: "img", Image: img}, true); err != nil {
		t.Fatalf("Check of a good image: %v", err)
	}
	if err := Check(monitor.Unikernel{Name: "x", Image: src}, false); err == nil {
		t.Fatal("Check: a C file accepted as image")
	}
	data, _ := os.ReadFile(img)
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var end uint64
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Filesz > 0 {
			end = max(end, p.Off+p.Filesz)
		}
	}
	cut := filepath.Join(dir, "cut")
	os.WriteFile(cut, data[:end-1], 0o644)
	if err := Check(monitor.Unikernel{Name: "cut", Image: cut}, false); err == nil || !strings.Contains(err.Error(), cut) {
		t.Errorf("Check of an image whose last segment is cut off: %v, want an error naming it", err)
	}
	if _, err := Prepare(monitor.Unikernel{Name: "cut", Image: cut}, false); err == nil {
		t.Errorf("Prepare of an image whose last segment is cut off: no error")
	}
}

// An aligned image run as a plain image (the KSM baselines) has its
// per-instance memory after its app, in the app's 2 MiB, as when it is
// loaded from the pool; a packed image at the legacy base below the map.
func TestPlainImagePerInstanceMemoryFollowsAnAlignedAppAndIsAtTheLegacyBaseOtherwise(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "a.c")
	os.WriteFile(src, []byte("int counter = 5; void _start(void) { for (;;) counter++; }\n"), 0o644)
	for _, c := range []struct {
		base, boot uint64
	}{{abi.PackedBase, abi.LegacyPrivateBase}, {abi.AppRegionBase, abi.PrivateBase}} {
		img := filepath.Join(dir, fmt.Sprintf("img-%x", c.base))
		out, err := exec.Command("gcc", "-static", "-nostdlib", "-fno-pie", "-no-pie", "-O2", "-Wl,-z,norelro",
			fmt.Sprintf("-Wl,-Ttext-segment=%#x", c.base), "-o", img, src).CombinedOutput()
		if err != nil {
			t.Fatalf("gcc: %v\n%s", err, out)
		}
		lay, err := Plan(monitor.Unikernel{Name: "img", Image: img}, Options{Load: monitor.LoadNaive})
		if err != nil {
			t.Fatal(err)
		}
		if lay.Areas[PartStack] != c.boot+abi.PageSize || lay.BootInfo/abi.PageSize != lay.StackTop/abi.PageSize {
			t.Errorf("image at %#x: stack at %#x, boot info at %#x (stack top %#x), want the stack after a guard page at %#x, the boot info in its top page",
				c.base, lay.Areas[PartStack], lay.BootInfo, lay.StackTop, c.boot)
		}
		for _, m := range lay.Mappings {
			if (m.Part == PartStack || m.Part == PartHeap) && (m.Addr < c.boot || m.Addr >= abi.PrivateLimitFor(c.base)) {
				t.Errorf("image at %#x: %s at %#x, outside [%#x,%#x)", c.base, m.Part, m.Addr, c.boot, abi.PrivateLimitFor(c.base))
			}
		}
	}
}

func TestInitBlobIsMappedCopyOnWriteAndPatchedOnlyUnderASLR(t *testing.T) {
	u := testUnikernel(t)
	dir := t.TempDir()
	// The init blob of library a: its table at 0, its data at the next page.
	init := make([]byte, 2*abi.PageSize)
	binary.LittleEndian.PutUint64(init[8:], abi.AppRegionBase+abi.PageSize+0x10)
	copy(init[abi.PageSize:], "data")
	path := filepath.Join(dir, "init")
	os.WriteFile(path, init, 0o644)
	u.Config.Libraries[0].Init = &desc.BlobRef{Digest: "sha256:i", Size: int64(len(init))}
	blob := u.BlobPath
	// The pool writes the same pre-filled table into the private blob.
	priv, _ := os.ReadFile(blob("sha256:p"))
	copy(priv, init[:16])
	os.WriteFile(blob("sha256:p"), priv, 0o644)
	u.BlobPath = func(d string) string {
		if d == "sha256:i" {
			return path
		}
		return blob(d)
	}
	p, err := Prepare(u, false)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := p.Plan(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var cow int
	for _, m := range plain.Mappings {
		if m.Library == "a" && (m.Part == PartTramp || m.Part == PartPrivate) {
			if !m.COW || m.File != path || len(m.Patches) != 0 {
				t.Errorf("%s: COW %v file %q patches %v", m.Part, m.COW, m.File, m.Patches)
			}
			cow++
		}
	}
	if cow != 2 {
		t.Fatalf("%d copy-on-write mappings, want 2", cow)
	}
	aslr, err := p.Plan(Options{ASLR: true})
	if err != nil {
		t.Fatal(err)
	}
	tr := aslr.Find(aslr.Bases["a"])
	if !tr.COW || len(tr.Patches) != 1 || tr.Patches[0].Value != aslr.Bases["app"]+abi.PageSize+0x10 {
		t.Fatalf("ASLR table: %+v", tr.Patches)
	}
	naive, err := Plan(u, Options{Load: monitor.LoadNaive})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range naive.Mappings {
		if m.COW || m.File != "" {
			t.Fatalf("naive load maps a file: %+v", m)
		}
	}
}

func TestStockLoadMapsEachSegmentFromTheFileAndClearsTheBssTail(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "a.c")
	os.WriteFile(src, []byte("int counter = 5; char big[10000]; void _start(void) { big[counter] = 1; for (;;) ; }\n"), 0o644)
	img := filepath.Join(dir, "img")
	if out, err := exec.Command("gcc", "-static", "-nostdlib", "-fno-pie", "-no-pie", "-O2", "-o", img, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	file, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	u := monitor.Unikernel{Name: "img", Image: img}
	stock, err := Plan(u, Options{Load: monitor.LoadStock})
	if err != nil {
		t.Fatal(err)
	}
	naive, err := Plan(u, Options{Load: monitor.LoadNaive})
	if err != nil {
		t.Fatal(err)
	}
	// What each image address holds once loaded, both ways.
	loaded := func(lay *Layout, patched bool) map[uint64]byte {
		mem := map[uint64]byte{}
		for _, m := range lay.Mappings {
			if m.Part != PartImage {
				continue
			}
			buf := make([]byte, m.Size)
			if m.File != "" {
				if m.File != img || !m.COW || m.Offset%abi.PageSize != 0 {
					t.Fatalf("mapping at %#x: file %s offset %#x cow %v: want the image file, private, page-aligned", m.Addr, m.File, m.Offset, m.COW)
				}
				copy(buf, file[m.Offset:])
				if patched {
					for _, p := range m.Patches {
						binary.LittleEndian.PutUint64(buf[p.Off:], p.Value)
					}
				}
			} else {
				copy(buf, m.Data)
			}
			for i, b := range buf {
				mem[m.Addr+uint64(i)] = b
			}
		}
		return mem
	}
	want, got, unpatched := loaded(naive, false), loaded(stock, true), loaded(stock, false)
	if len(got) != len(want) {
		t.Fatalf("stock maps %d image bytes, naive %d", len(got), len(want))
	}
	differ := 0
	for a, b := range want {
		if got[a] != b {
			t.Fatalf("%#x: stock %#x, naive %#x", a, got[a], b)
		}
		if unpatched[a] != b {
			differ++
		}
	}
	// The file bytes past the data segment (the symbol table) would show
	// in the bss without the patches.
	if differ == 0 {
		t.Error("the patches change nothing: the test image's bss tail was already zero in the file")
	}
	if _, err := Plan(testUnikernel(t), Options{Load: monitor.LoadStock}); err == nil {
		t.Error("stock loading of a pooled unikernel accepted")
	}
}

// denseUnikernel is two libraries whose private parts lie next to each
// other in the data arena, sharing one page; b's slot points at a's data.
func denseUnikernel(t *testing.T) monitor.Unikernel {
	t.Helper()
	dir := t.TempDir()
	shared := make([]byte, abi.PageSize)
	shared[0] = 0xc3
	private := []byte("AAAAAAAA" + "BBBBBBBB" + "\x00\x00\x00\x00\x00\x00\x00\x00")
	os.WriteFile(filepath.Join(dir, "shared"), shared, 0o644)
	os.WriteFile(filepath.Join(dir, "private"), private, 0o644)
	lib := func(name string, start, priv uint64, blobOff, fsize uint64) desc.Library {
		return desc.Library{Name: name,
			Region: desc.Region{Start: start, SharedSize: 4 * abi.PageSize, PrivateStart: priv, PrivateSize: 32},
			Shared: desc.Shared{Size: abi.PageSize, Digest: "sha256:s"},
			Tramp:  desc.Tramp{Split: true, SlotSize: 8},
			// 8 bytes of data, then bss.
			Private: desc.Part{FileSize: fsize, MemSize: 32, BlobOff: blobOff}}
	}
	a := lib("a", abi.MapBase, abi.DataArenaBase, 0, 8)
	a.Tramp = desc.Tramp{Split: true}
	b := lib("b", abi.MapBase+4*abi.PageSize, abi.DataArenaBase+32, 8, 16)
	b.Relocs = []desc.Reloc{{Off: 8, Target: desc.Addr{Lib: 0, Off: abi.DataArenaBase - abi.MapBase}}}
	cfg := &desc.Config{SchemaVersion: desc.SchemaVersionDense, Layout: "aligned", Entry: desc.Addr{Lib: 0},
		Libraries: []desc.Library{a, b}, Private: &desc.BlobRef{Digest: "sha256:p", Size: int64(len(private))}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{"sha256:s": filepath.Join(dir, "shared"), "sha256:p": filepath.Join(dir, "private")}
	return monitor.Unikernel{Name: "dense", Config: cfg, BlobPath: func(d string) string { return paths[d] }}
}

func TestDensePrivatePartsShareOnePageAlsoUnderASLRWithTheSlotsMoved(t *testing.T) {
	private := mapPrivateMappings
	lay, err := Plan(denseUnikernel(t), Options{Load: monitor.LoadShared})
	if err != nil {
		t.Fatal(err)
	}
	ms := private(lay)
	if len(ms) != 1 || ms[0].Addr != abi.DataArenaBase || ms[0].Size != abi.PageSize || ms[0].Library != "a+b" || ms[0].File != "" {
		t.Fatalf("private mappings %+v, want one copied page for a and b", ms)
	}
	if got := string(ms[0].Data[:16]); got != "AAAAAAAA\x00\x00\x00\x00\x00\x00\x00\x00" {
		t.Errorf("a's part holds %q (data, then bss)", got)
	}
	if got := string(ms[0].Data[32:40]); got != "BBBBBBBB" {
		t.Errorf("b's part holds %q", got)
	}
	if got := binary.LittleEndian.Uint64(ms[0].Data[40:]); got != abi.DataArenaBase {
		t.Errorf("b's slot holds %#x, want a's data at %#x", got, uint64(abi.DataArenaBase))
	}

	// Under ASLR the image slides as one: a and b keep sharing their
	// page, at the slide, and b's slot points at a's moved data.
	for seed := uint64(1); seed <= 20; seed++ {
		lay, err = Plan(denseUnikernel(t), Options{Load: monitor.LoadShared, ASLR: true, Rand: rand.New(rand.NewPCG(seed, 2))})
		if err != nil {
			t.Fatal(err)
		}
		a, b := lay.Bases["a"], lay.Bases["b"]
		if b-a != 4*abi.PageSize || a == abi.MapBase {
			t.Fatalf("under ASLR: a at %#x, b at %#x: want them moved, 4 pages apart as in the map", a, b)
		}
		ms = private(lay)
		want := a + abi.DataArenaBase - abi.MapBase
		if len(ms) != 1 || ms[0].Library != "a+b" || ms[0].Addr != want || ms[0].Size != abi.PageSize {
			t.Fatalf("under ASLR: private mappings %+v, want one page for a and b at %#x", ms, want)
		}
		if got := binary.LittleEndian.Uint64(ms[0].Data[40:]); got != want {
			t.Errorf("under ASLR: b's slot holds %#x, want a's moved data %#x", got, want)
		}
	}
}

func TestPerLibraryASLRMovesEachLibraryOnItsOwnAndKeepsSlotsAndPrivatePartsRight(t *testing.T) {
	offsets := map[uint64]bool{}
	for seed := uint64(1); seed <= 40; seed++ {
		lay, err := Plan(denseUnikernel(t), Options{Load: monitor.LoadShared, ASLR: true, ASLRPerLibrary: true,
			Rand: rand.New(rand.NewPCG(seed, 3))})
		if err != nil {
			t.Fatal(err)
		}
		a, b := lay.Bases["a"], lay.Bases["b"]
		offsets[b-a] = true
		var ms []Mapping
		for _, m := range lay.Mappings {
			if m.Part == PartPrivate && m.Addr >= abi.MapBase {
				ms = append(ms, m)
			}
		}
		// Each library's private part moved with its code, on a page
		// of its own; b's slot points at a's moved data.
		wantA, wantB := a+abi.DataArenaBase-abi.MapBase, b+abi.DataArenaBase+32-(abi.MapBase+4*abi.PageSize)
		if len(ms) != 2 {
			t.Fatalf("seed %d: private mappings %+v, want a page for a and one for b", seed, ms)
		}
		for _, m := range ms {
			at := map[string]uint64{"a": wantA &^ (abi.PageSize - 1), "b": wantB &^ (abi.PageSize - 1)}[m.Library]
			if m.Addr != at {
				t.Fatalf("seed %d: %s's private page at %#x, want %#x", seed, m.Library, m.Addr, at)
			}
			if m.Library == "b" {
				if got := binary.LittleEndian.Uint64(m.Data[wantB-m.Addr+8:]); got != wantA {
					t.Errorf("seed %d: b's slot holds %#x, want a's moved data %#x", seed, got, wantA)
				}
			}
		}
		// What one library's base leaves of another's: the span's
		// positions, not 0 as with one slide.
		if lay.EntropyGiven["a"] < 10 || lay.EntropyGiven["b"] < 10 || len(lay.Groups["a"]) != 1 {
			t.Errorf("seed %d: entropy given another base %v, groups %v: want each library its own group, bits left", seed, lay.EntropyGiven, lay.Groups)
		}
	}
	if len(offsets) < 35 {
		t.Errorf("b's offset from a took %d values in 40 layouts: not independent", len(offsets))
	}
}

// arenaUnikernel is denseUnikernel with its data-arena page also in the
// private blob, as whole page at a page offset (desc.Config.Arena), the
// way `pool add` stores it.
func arenaUnikernel(t *testing.T) monitor.Unikernel {
	t.Helper()
	u := denseUnikernel(t)
	page := make([]byte, abi.PageSize)
	copy(page, "AAAAAAAA")
	copy(page[32:], "BBBBBBBB")
	binary.LittleEndian.PutUint64(page[40:], abi.DataArenaBase) // b's slot at the map's addresses
	blob := append(make([]byte, abi.PageSize), page...)
	copy(blob, "AAAAAAAABBBBBBBB")
	binary.LittleEndian.PutUint64(blob[16:], abi.DataArenaBase)
	path := u.BlobPath("sha256:p")
	if err := os.WriteFile(path, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	u.Config.Private.Size = int64(len(blob))
	u.Config.Arena = []desc.ArenaRun{{Addr: abi.DataArenaBase, Size: abi.PageSize, BlobOff: abi.PageSize}}
	if err := u.Config.Validate(); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestArenaPagesAreMappedCopyOnWriteFromThePrivateBlobWithOnlyMovedWordsPatched(t *testing.T) {
	arena := mapPrivateMappings
	u := arenaUnikernel(t)
	lay, err := Plan(u, Options{Load: monitor.LoadShared})
	if err != nil {
		t.Fatal(err)
	}
	ms := arena(lay)
	if len(ms) != 1 || ms[0].File != u.BlobPath("sha256:p") || !ms[0].COW || ms[0].Offset != abi.PageSize || ms[0].Addr != abi.DataArenaBase || len(ms[0].Patches) != 0 {
		t.Fatalf("arena mappings %+v, want the page mapped copy-on-write from the private blob at its page, nothing patched", ms)
	}
	if got := string(ms[0].Data[32:40]); got != "BBBBBBBB" {
		t.Errorf("the mapping's Data (for monitors that copy) holds %q at b's part", got)
	}

	// Under ASLR the image slides: the same blob page, b's slot patched
	// to a's moved data and nothing else.
	lay, err = Plan(u, Options{Load: monitor.LoadShared, ASLR: true, Rand: rand.New(rand.NewPCG(7, 2))})
	if err != nil {
		t.Fatal(err)
	}
	ms = arena(lay)
	want := lay.Bases["a"] + abi.DataArenaBase - abi.MapBase
	if len(ms) != 1 || !ms[0].COW || ms[0].Offset != abi.PageSize || ms[0].Addr != want {
		t.Fatalf("under ASLR: arena mappings %+v, want the blob page copy-on-write at %#x", ms, want)
	}
	if p := ms[0].Patches; len(p) != 1 || p[0].Off != 40 || p[0].Value != want {
		t.Errorf("under ASLR: patches %+v, want b's slot (offset 40) = %#x only", p, want)
	}

	// Per-library ASLR moves the parts apart: a page mapped from the
	// blob is patched into what the instance must hold (Data).
	blob, err := os.ReadFile(u.BlobPath("sha256:p"))
	if err != nil {
		t.Fatal(err)
	}
	for seed := uint64(1); seed <= 10; seed++ {
		lay, err = Plan(u, Options{Load: monitor.LoadShared, ASLR: true, ASLRPerLibrary: true, Rand: rand.New(rand.NewPCG(seed, 3))})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range arena(lay) {
			if !m.COW {
				continue
			}
			got := append([]byte(nil), blob[m.Offset:m.Offset+m.Size]...)
			for _, pt := range m.Patches {
				binary.LittleEndian.PutUint64(got[pt.Off:], pt.Value)
			}
			if !bytes.Equal(got, m.Data) {
				t.Errorf("per-library ASLR, seed %d: %s's page from the blob with its patches differs from what it must hold", seed, m.Library)
			}
		}
	}

	// Loading naive copies, as before.
	lay, err = Plan(u, Options{Load: monitor.LoadNaive})
	if err != nil {
		t.Fatal(err)
	}
	if ms = arena(lay); len(ms) != 1 || ms[0].File != "" || ms[0].COW {
		t.Errorf("naive: arena mappings %+v, want a copied page", ms)
	}
}

// mapPrivateMappings are a layout's private mappings in the library map's
// part of the address space (libraries' private parts, the data arena).
func mapPrivateMappings(lay *Layout) []Mapping {
	var ms []Mapping
	for _, m := range lay.Mappings {
		if m.Part == PartPrivate && m.Addr >= abi.MapBase {
			ms = append(ms, m)
		}
	}
	return ms
}

// A checked unikernel (monitor.Unikernel.Checked: Check passed on the
// description Describe returns) is prepared without validating its
// description again: the same Prepared, fewer allocations (a description
// with packs: Validate allocates); an unchecked one is refused.
func TestPrepareCheckedIsPrepareWithoutValidatingAgain(t *testing.T) {
	u := packUnikernel(t)
	if _, err := PrepareChecked(u, false); err == nil || !strings.Contains(err.Error(), "not checked") {
		t.Fatalf("PrepareChecked of an unchecked unikernel: %v, want refused", err)
	}
	if err := Check(u, false); err != nil {
		t.Fatal(err)
	}
	u.Checked = true
	want, err := Prepare(u, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := PrepareChecked(u, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.cfg != want.cfg || !bytes.Equal(got.private, want.private) || !reflect.DeepEqual(got.blobs, want.blobs) || got.image != nil {
		t.Errorf("PrepareChecked's Prepared differs from Prepare's")
	}
	checked := testing.AllocsPerRun(20, func() { PrepareChecked(u, false) })
	full := testing.AllocsPerRun(20, func() { Prepare(u, false) })
	if checked >= full {
		t.Errorf("PrepareChecked made %.0f allocations, Prepare %.0f: want fewer (no second Validate)", checked, full)
	}
}

// A run of arena pages becomes one mapping whose bytes are allocated once
// at their size, not grown page by page (each growth a copy: ~100 KB of
// garbage per snapshot instance planned).
func TestArenaMappingsAllocateARunsBytesOnce(t *testing.T) {
	const pages = 64
	a := arenaPages{}
	for i := range uint64(pages) {
		a.put(abi.MapBase+i*abi.PageSize, abi.PageSize, []byte{byte(i)}, "lib", 0, true)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ms := a.mappings(nil, true)
	runtime.ReadMemStats(&after)
	if len(ms) != 1 || ms[0].Size != pages*abi.PageSize || len(ms[0].Data) != pages*abi.PageSize || ms[0].Data[5*abi.PageSize] != 5 {
		t.Fatalf("mappings of %d adjacent pages: %d mappings, want one of their bytes", pages, len(ms))
	}
	// The run's bytes, and a little for the page list and the names.
	if got, bound := after.TotalAlloc-before.TotalAlloc, uint64(pages*abi.PageSize+16<<10); got > bound {
		t.Errorf("mappings allocated %d bytes for a %d-byte run, want at most %d", got, pages*abi.PageSize, bound)
	}
}

// A run of 3 to 8 pages is allocated past 32 KiB (desc.Scratch): a large
// object, not one of the size classes between, which the runtime would
// keep metadata for after the plans are gone.
func TestArenaMappingsTakeMidSizedRunsOutOfTheSizeClasses(t *testing.T) {
	for pages := uint64(1); pages <= 10; pages++ {
		a := arenaPages{}
		for i := range pages {
			a.put(abi.MapBase+i*abi.PageSize, abi.PageSize, []byte{byte(i + 1)}, "lib", 0, true)
		}
		ms := a.mappings(nil, true)
		if len(ms) != 1 || uint64(len(ms[0].Data)) != pages*abi.PageSize || ms[0].Data[(pages-1)*abi.PageSize] != byte(pages) {
			t.Fatalf("%d pages: %d mappings, want one of their bytes", pages, len(ms))
		}
		size := pages * abi.PageSize
		if c := uint64(cap(ms[0].Data)); size > 8<<10 && size <= 32<<10 && c <= 32<<10 {
			t.Errorf("a run of %d pages: capacity %d, want past 32 KiB", pages, c)
		}
	}
}
