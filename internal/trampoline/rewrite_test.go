package trampoline

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/unipool/unipool/internal/desc"
)

func readTestdata(t *testing.T, names ...string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		m[filepath.Base(n)] = string(b)
	}
	return m
}

// threeLibs is the app and two libraries: a refers to b (and to the app)
// in every way the rewriter handles.
func threeLibs(t *testing.T) []testLib {
	return []testLib{
		{name: "app", app: true, srcs: readTestdata(t, "app.c", "app_start.S"), private: 0x4000},
		{name: "a", srcs: tlsVariants(readTestdata(t, "liba.c", "liba_asm.S", "liba_got.S", "liba_tls.c")),
			fileFlags: map[string][]string{
				"liba_got.S": {"-Wa,-mrelax-relocations=no"},
				"tls_gd.c":   {"-fPIC", "-DNAME=a_tls_gd"},
				"tls_ie.c":   {"-DNAME=a_tls_ie"},
				"tls_desc.c": {"-fPIC", "-mtls-dialect=gnu2", "-DNAME=a_tls_desc"},
			}},
		{name: "b", srcs: readTestdata(t, "libb.c")},
	}
}

// tlsVariants builds liba_tls.c three ways (see fileFlags).
func tlsVariants(m map[string]string) map[string]string {
	src := m["liba_tls.c"]
	delete(m, "liba_tls.c")
	for _, n := range []string{"tls_gd.c", "tls_ie.c", "tls_desc.c"} {
		m[n] = src
	}
	return m
}

var layout1 = map[string]uint64{"app": 0x1000_0000, "a": 0x4000_0000, "b": 0x4010_0000}

// wantOutput is what app.c prints, worked out by hand from the sources.
const wantOutput = `call=10
tail=15
fp=13
load=8
store=12
apply0=7
apply1=12
hook=11
wide=1234
half=22
app=22
jcc0=7
jcc1=7
plaincall=33
dsjmp=48
abs32=2
abs64=3
abs32s=9
absidx=4
absdisp=9
absbase=3
absbi=4
pushabs=9
storeabs=42
loadr10=14
cmpflags=0
cmpflags5=1
addmem=8
callmem=22
jmpmem=33
jmptab0=100
jmptab1=101
leaext=54
redzone=85
aluimm=1
aluimm_no=0
aluimm_rax=12
memimm=11
sse=5
gotadd=8
gotcall=42
gotcmp=1
weak=3
tls_gd=5
tls_ie=12
tls_desc=21
local=100
`

// buildAndLink builds the three-library program into a fresh directory.
func buildAndLink(t *testing.T, layouts ...map[string]uint64) (string, []*desc.Config) {
	t.Helper()
	needTools(t)
	dir := t.TempDir()
	libs := threeLibs(t)
	copyObjects(t, dir, libs)
	var cfgs []*desc.Config
	for i, l := range layouts {
		cfgs = append(cfgs, linkImage(t, dir, libs, l, "img"+string(rune('0'+i))))
	}
	return dir, cfgs
}

func TestRewrittenProgramPrintsTheSame(t *testing.T) {
	dir, cfgs := buildAndLink(t, layout1)
	img, cfg := filepath.Join(dir, "img0"), cfgs[0]
	before := runProgram(t, img)
	if before != wantOutput {
		t.Fatalf("the test program itself is wrong: got\n%s\nwant\n%s", before, wantOutput)
	}
	// The program holds relaxed thread-local accesses with their stale
	// relocations: the rewrite must leave them be.
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	im, err := parseImage(img, data)
	if err != nil {
		t.Fatal(err)
	}
	stale := map[elf.R_X86_64]bool{}
	for _, r := range im.relocs {
		stale[r.Type] = true
	}
	for _, typ := range []elf.R_X86_64{elf.R_X86_64_TLSGD, elf.R_X86_64_GOTTPOFF, elf.R_X86_64_GOTPC32_TLSDESC} {
		if !stale[typ] {
			t.Errorf("no %v relocation in the test program", typ)
		}
	}
	rep, err := RewriteReport(img, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var txt strings.Builder
	if err := rep.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", txt.String())
	if after := runProgram(t, img); after != before {
		t.Fatalf("rewritten program prints\n%s\nwant\n%s", after, before)
	}
	for _, l := range rep.Libraries {
		for _, p := range l.Pins {
			t.Errorf("library %q pinned: %s", l.Name, p)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("description after rewrite: %v", err)
	}
	for k := Kind(0); k < numKinds; k++ {
		if rep.Sites(k) == 0 {
			t.Errorf("no site of kind %v rewritten: the test program should have some", k)
		}
	}
	a := rep.Libraries[1]
	if !a.SharedIdentical || a.Failed != 0 || a.Relocs != 4 {
		t.Errorf("library a: %+v, want shared identical, nothing failed, 4 relocs (a_ops, a_tab)", a)
	}
}

func TestSharedPartsIdenticalWhereverOtherLibrariesAre(t *testing.T) {
	layout2 := map[string]uint64{"app": 0x1000_0000, "a": 0x4000_0000, "b": 0x4800_0000}
	dir, cfgs := buildAndLink(t, layout1, layout2)
	imgs := []string{filepath.Join(dir, "img0"), filepath.Join(dir, "img1")}
	shared := func(i int, l desc.Library) []byte {
		return part(t, imgs[i], l.Region.SharedAddr(), l.Region.SharedSize)
	}
	a := cfgs[0].Libraries[1]
	if bytes.Equal(shared(0, a), shared(1, cfgs[1].Libraries[1])) {
		t.Fatal("before rewriting, library a's code is already the same in both images: the test shows nothing")
	}
	for i := range imgs {
		if err := Rewrite(imgs[i], cfgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if out0, out1 := runProgram(t, imgs[0]), runProgram(t, imgs[1]); out0 != wantOutput || out1 != wantOutput {
		t.Fatalf("rewritten programs print\n%s\nand\n%s", out0, out1)
	}
	for li := range cfgs[0].Libraries {
		l0, l1 := cfgs[0].Libraries[li], cfgs[1].Libraries[li]
		if !bytes.Equal(shared(0, l0), shared(1, l1)) {
			t.Errorf("library %q: shared part differs between the images", l0.Name)
		}
		if !reflect.DeepEqual(l0.Tramp, l1.Tramp) || !reflect.DeepEqual(l0.Relocs, l1.Relocs) {
			t.Errorf("library %q: tables or relocations differ: %+v %+v / %+v %+v", l0.Name, l0.Tramp, l0.Relocs, l1.Tramp, l1.Relocs)
		}
		// Tables and private parts differ only where the loader writes.
		t0 := part(t, imgs[0], l0.Region.TrampAddr(), l0.Region.TrampSize)
		t1 := part(t, imgs[1], l1.Region.TrampAddr(), l1.Region.TrampSize)
		for _, s := range l0.Tramp.Slots {
			if got := binary.LittleEndian.Uint64(t0[s.Off:]); got != cfgs[0].Libraries[s.Target.Lib].Region.Start+s.Target.Off {
				t.Errorf("library %q: slot %#x holds %#x, not its link-time target", l0.Name, s.Off, got)
			}
			copy(t0[s.Off:s.Off+8], make([]byte, 8))
			copy(t1[s.Off:s.Off+8], make([]byte, 8))
		}
		if !bytes.Equal(t0, t1) {
			t.Errorf("library %q: trampoline tables differ outside their slots", l0.Name)
		}
		p0 := part(t, imgs[0], l0.Region.PrivateAddr(), l0.Region.PrivateSize)
		p1 := part(t, imgs[1], l1.Region.PrivateAddr(), l1.Region.PrivateSize)
		for _, r := range l0.Relocs {
			copy(p0[r.Off:r.Off+8], make([]byte, 8))
			copy(p1[r.Off:r.Off+8], make([]byte, 8))
		}
		if !bytes.Equal(p0, p1) {
			t.Errorf("library %q: private parts differ outside their relocations", l0.Name)
		}
	}
}

func TestRewrittenRegionsRunAnywhereOnceTheLoaderFillsThem(t *testing.T) {
	dir, cfgs := buildAndLink(t, layout1)
	img, cfg := filepath.Join(dir, "img0"), cfgs[0]
	if err := Rewrite(img, cfg); err != nil {
		t.Fatal(err)
	}
	// Bases as --aslr would pick: above 4 GiB, far apart, in another order.
	for n, bases := range [][]uint64{
		{0x7_3456_7000, 0x2_0000_1000, 0x5_dead_b000},
		{0x1000_0000, 0x9_8765_4000, 0x1_0000_0000},
	} {
		moved := filepath.Join(dir, "moved"+string(rune('0'+n)))
		if err := os.WriteFile(moved, placeAt(t, img, cfg, bases), 0o755); err != nil {
			t.Fatal(err)
		}
		if got := runProgram(t, moved); got != wantOutput {
			t.Errorf("bases %#x: program prints\n%s\nwant\n%s", bases, got, wantOutput)
		}
	}
}

func TestUnrewrittenImageBreaksWhenMoved(t *testing.T) {
	// The counter-test: without the rewrite, moving a region is wrong,
	// so the test above shows something.
	dir, cfgs := buildAndLink(t, layout1)
	img, cfg := filepath.Join(dir, "img0"), cfgs[0]
	rep, err := RewriteReport(img, cfg, Options{DryRun: true})
	if err != nil || rep.Libraries[1].TableSize == 0 {
		t.Fatalf("dry run: %v %+v", err, rep)
	}
	for _, l := range cfg.Libraries {
		if len(l.Tramp.Slots) != 0 {
			t.Fatal("a dry run changed the description")
		}
	}
	moved := filepath.Join(dir, "moved")
	if err := os.WriteFile(moved, placeAt(t, img, cfg, []uint64{0x1000_0000, 0x4000_0000, 0x7_0000_0000}), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec_(moved)
	if err == nil && out == wantOutput {
		t.Fatal("the unrewritten program ran unchanged with library b moved")
	}
}

func TestEveryPatchedSiteIsOneJumpOrSlotReferenceIntoTheTable(t *testing.T) {
	dir, cfgs := buildAndLink(t, layout1)
	img, cfg := filepath.Join(dir, "img0"), cfgs[0]
	orig, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := analyse(img, append([]byte(nil), orig...), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.apply(); err != nil {
		t.Fatal(err)
	}
	patched := map[uint64]bool{}
	konst := 0
	for li, lw := range rw.libs {
		if lw.tab == nil {
			continue
		}
		reg := cfg.Libraries[li].Region
		inTable := func(a uint64) bool { return a >= reg.TrampAddr() && a < reg.TrampAddr()+lw.tab.size() }
		for _, p := range lw.tab.patches {
			s := p.site
			var real []x86asm.Inst
			var pcs []uint64
			for off := 0; off < len(p.b); {
				in, err := x86asm.Decode(p.b[off:], 64)
				if err != nil {
					t.Fatalf("site %#x: % x: %v", s.addr, p.b, err)
				}
				if in.Op != x86asm.NOP {
					real = append(real, in)
					pcs = append(pcs, s.addr+uint64(off))
				}
				off += in.Len
			}
			if len(real) != 1 || len(p.b) != s.inst.Len {
				t.Fatalf("site %#x (%v): patch % x is not one instruction + NOPs of the original length", s.addr, s.kind, p.b)
			}
			in, end := real[0], pcs[0]+uint64(real[0].Len)
			var to uint64
			switch a := in.Args[0].(type) {
			case x86asm.Rel:
				to = end + uint64(int64(a))
			case x86asm.Mem:
				to = end + uint64(a.Disp)
			default:
				if m, ok := in.Args[1].(x86asm.Mem); ok && m.Base == x86asm.RIP {
					to = end + uint64(m.Disp)
				}
			}
			want := map[Kind]x86asm.Op{KindCall: x86asm.CALL, KindJmp: x86asm.JMP, KindCallSlot: x86asm.CALL,
				KindJmpSlot: x86asm.JMP, KindLea: x86asm.MOV, KindMem: x86asm.JMP, KindLoad: x86asm.JMP, KindBranchMem: x86asm.JMP}
			if s.kind == KindBranchMem && s.inst.Op == x86asm.CALL {
				want[KindBranchMem] = x86asm.CALL
			}
			if op, ok := want[s.kind]; ok && in.Op != op {
				t.Errorf("site %#x (%v, was %v): patched to %v", s.addr, s.kind, s.inst, in)
			}
			if s.kind == KindCall && pcs[0]+5 != s.addr+uint64(s.inst.Len) {
				t.Errorf("site %#x: call does not end where the original did: return address moved", s.addr)
			}
			if !inTable(to) {
				t.Errorf("site %#x (%v): %v reaches %#x, outside the table", s.addr, s.kind, in, to)
			}
			for a := s.addr; a < s.addr+uint64(s.inst.Len); a++ {
				patched[a] = true
			}
			if s.konst {
				konst++
			}
		}
	}
	if konst != 2 {
		t.Errorf("%d sites read a constant word of the table, want 2 (a_weak's GOT loads)", konst)
	}
	// Outside the patched sites and the tables, no byte changed.
	for li, l := range cfg.Libraries {
		reg := l.Region
		for a := reg.SharedAddr(); a < reg.PrivateAddr(); a++ {
			off, ok := rw.im.fileOff(a, 1)
			if ok && !patched[a] && rw.im.data[off] != orig[off] {
				t.Fatalf("library %q: byte at %#x changed outside every site", cfg.Libraries[li].Name, a)
			}
		}
	}
}

func TestStubsDecodeAndEndByJumpingBack(t *testing.T) {
	dir, cfgs := buildAndLink(t, layout1)
	img, cfg := filepath.Join(dir, "img0"), cfgs[0]
	if err := Rewrite(img, cfg); err != nil {
		t.Fatal(err)
	}
	for _, l := range cfg.Libraries {
		if l.Tramp.Size == 0 {
			continue
		}
		tab := part(t, img, l.Region.TrampAddr(), l.Tramp.Size)
		code := 8 * uint64(len(l.Tramp.Slots))
		for off := code; off < l.Tramp.Size; {
			in, err := x86asm.Decode(tab[off:], 64)
			if err != nil {
				t.Fatalf("library %q: table at +%#x does not decode: %v", l.Name, off, err)
			}
			off += uint64(in.Len)
		}
		if rest := part(t, img, l.Region.TrampAddr()+l.Tramp.Size, l.Region.TrampSize-l.Tramp.Size); len(bytes.Trim(rest, "\xcc")) != 0 {
			t.Errorf("library %q: bytes after the table are not the 0xcc fill", l.Name)
		}
	}
}

func TestUnrewritableAddressesPinTheLibrariesTheyName(t *testing.T) {
	needTools(t)
	dir := t.TempDir()
	libs := append(threeLibs(t), testLib{name: "c", srcs: map[string]string{"libc.c": `
extern int b_counter, b_array[];
/* Non-PIC: a pointer table in .rodata (R_X86_64_64 in a shared part). */
const int *const c_tbl[] = {&b_counter};
const int *c_get(int i) { return c_tbl[i]; }
`, "libc_data.S": `
	.section .note.GNU-stack,"",@progbits
	.data
	.globl c_narrow
c_narrow: .long b_array		/* R_X86_64_32 in data */
`}, cflags: []string{"-O2", "-fno-pie", "-fno-asynchronous-unwind-tables", "-ffreestanding"}})
	copyObjects(t, dir, libs[:3])
	buildObjects(t, dir, libs[3:])
	lay := map[string]uint64{"app": 0x1000_0000, "a": 0x4000_0000, "b": 0x4010_0000, "c": 0x4020_0000}
	cfg := linkImage(t, dir, libs, lay, "img")
	img := filepath.Join(dir, "img")
	rep, err := RewriteReport(img, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, c, a := cfg.Libraries[2], cfg.Libraries[3], cfg.Libraries[1]
	if !strings.Contains(b.NoASLR, "read-only data") || !strings.Contains(b.NoASLR, "(and 1 more)") {
		t.Errorf("b.NoASLR = %q, want pinned by c's read-only pointer and its 32-bit field", b.NoASLR)
	}
	if a.NoASLR != "" || c.NoASLR != "" {
		t.Errorf("a and c can still move: a %q, c %q", a.NoASLR, c.NoASLR)
	}
	if lr := rep.Libraries[3]; lr.SharedIdentical || lr.Residual != 1 {
		t.Errorf("c's report %+v: want its shared part to keep one address (b's)", lr)
	}
	if out := runProgram(t, img); out != wantOutput {
		t.Errorf("program prints\n%s", out)
	}
}

func TestEstimateBoundsTheTable(t *testing.T) {
	dir, cfgs := buildAndLink(t, layout1)
	rep, err := RewriteReport(filepath.Join(dir, "img0"), cfgs[0], Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range rep.Libraries {
		est, err := Estimate(filepath.Join(dir, "lib"+l.Name+".o"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("library %s: table %d bytes, estimate %d", l.Name, l.TableSize, est)
		if est < l.TableSize {
			t.Errorf("library %s: estimate %d below the table's %d bytes", l.Name, est, l.TableSize)
		}
	}
	if est, err := Estimate(filepath.Join(dir, "libb.o")); err != nil || est != 0 {
		t.Errorf("library b refers to nothing outside itself: estimate %d, %v", est, err)
	}
}

// A library's reference to its own entry of an image-wide table (a
// Unikraft event header, placed with every library's entries in one
// section per image) leaves the library's region: it needs a word of the
// table, or the table area is too small for the sites the rewrite finds
// and the whole library stays unrewritten.
func TestEstimateCountsOwnReferencesIntoImageWideSections(t *testing.T) {
	needTools(t)
	dir := t.TempDir()
	buildObjects(t, dir, []testLib{{name: "ev", srcs: map[string]string{"ev.c": `
__attribute__((section(".uk_event_x~"), used)) static long ev = 3;
long ev_get(void) { return ev; }
`}}})
	obj := filepath.Join(dir, "libev.o")
	inside, err := EstimateParts(obj, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if inside.Slots != 0 {
		t.Errorf("with the section in the library: %d bytes of slots, want 0", inside.Slots)
	}
	away, err := EstimateParts(obj, false, []string{".uk_event_x~"})
	if err != nil {
		t.Fatal(err)
	}
	if away.Slots != slotSize || away.Stubs < inside.Stubs+12 {
		t.Errorf("with the section image-wide: %+v, want one slot and room for a stub more than %+v", away, inside)
	}
}

func TestRewriteRejectsBadImagesNamingTheFile(t *testing.T) {
	dir, cfgs := buildAndLink(t, layout1)
	img, cfg := filepath.Join(dir, "img0"), cfgs[0]
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("not an ELF file at all"), 0o644)
	if err := Rewrite(junk, cfg); err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("non-ELF: %v", err)
	}
	if _, err := Estimate(img); err == nil || !strings.Contains(err.Error(), "relocatable") {
		t.Errorf("Estimate of an executable: %v", err)
	}
	bad := *cfg
	bad.Libraries = append([]desc.Library(nil), bad.Libraries...)
	bad.Libraries[2].Region.TrampSize = 0x100000
	if err := Rewrite(img, &bad); err == nil || !strings.Contains(err.Error(), "not in the file") || !strings.Contains(err.Error(), img) {
		t.Errorf("tramp area outside the file: %v", err)
	}
	again := *cfg
	again.Libraries = append([]desc.Library(nil), cfg.Libraries...)
	if err := Rewrite(img, cfg); err != nil {
		t.Fatal(err)
	}
	if err := Rewrite(img, &again); err == nil || !strings.Contains(err.Error(), "already rewritten") {
		t.Errorf("second rewrite: %v", err)
	}
}

// debianLibrary links an app over one of Debian's static archives, checks
// the program works, rewrites it, and runs it again at its link addresses
// and moved above 4 GiB.
func debianLibrary(t *testing.T, archive string, syms []string, app string, appPrivate, shared uint64, ok func(string) bool) *LibraryReport {
	t.Helper()
	needTools(t)
	if _, err := os.Stat(archive); err != nil {
		t.Skipf("%s not installed", archive)
	}
	dir := t.TempDir()
	var ldr []string
	for _, s := range syms {
		ldr = append(ldr, "-u", s)
	}
	libs := []testLib{
		{name: "app", app: true, srcs: readTestdata(t, app, "zlib/app_start.S"), private: appPrivate,
			cflags: append(append([]string{}, guestCFlags...), "-fno-tree-loop-distribute-patterns")},
		{name: "lib", ldr: append(ldr, archive), shared: shared, private: 0x10000},
	}
	buildObjects(t, dir, libs)
	cfg := linkImage(t, dir, libs, map[string]uint64{"app": 0x1000_0000, "lib": 0x4000_0000}, "img")
	img := filepath.Join(dir, "img")
	want := runProgram(t, img)
	if !ok(want) {
		t.Fatalf("the program itself fails: %q", want)
	}
	rep, err := RewriteReport(img, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	lib := rep.Libraries[1]
	t.Logf("%s: table %d bytes, sites %v, relocs %d", archive, lib.TableSize, lib.Sites, lib.Relocs)
	for _, l := range rep.Libraries {
		for _, p := range l.Pins {
			t.Errorf("library %q pinned: %s", l.Name, p)
		}
	}
	if got := runProgram(t, img); got != want {
		t.Fatalf("rewritten: %q, want %q", got, want)
	}
	moved := filepath.Join(dir, "moved")
	if err := os.WriteFile(moved, placeAt(t, img, cfg, []uint64{0x3_0000_0000, 0x6_789a_b000}), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := runProgram(t, moved); got != want {
		t.Errorf("moved: %q, want %q", got, want)
	}
	return &lib
}

func TestDebianZlibRunsAnywhereOnceRewritten(t *testing.T) {
	lib := debianLibrary(t, "/usr/lib/x86_64-linux-gnu/libz.a", []string{"compress2", "uncompress"}, "zlib/app.c", 0x120000, 0x20000,
		func(out string) bool {
			// compress2 and uncompress return Z_OK, all 20000 bytes come back, equal.
			f := strings.Fields(out)
			return len(f) == 5 && f[0] == "0" && f[2] == "0" && f[3] == "20000" && f[4] == "0"
		})
	if lib.Sites["call"] == 0 || lib.Relocs == 0 {
		t.Errorf("zlib: no calls out or no private relocations rewritten: %+v", lib)
	}
}

func TestDebianZstdRunsAnywhereOnceRewritten(t *testing.T) {
	lib := debianLibrary(t, "/usr/lib/x86_64-linux-gnu/libzstd.a", []string{"ZSTD_compress", "ZSTD_decompress"}, "zstd/app.c", 0x900000, 0x100000,
		func(out string) bool { return out == "11\n" })
	if lib.Sites["call"] == 0 {
		t.Errorf("zstd: no calls rewritten: %+v", lib)
	}
}
