package link

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/elfimage"
)

func TestReadOnlyDataSharesTheFirstPageOfItsCodeAndTheStubsFollowTheCode(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	small := buildLib(t, dir, "small", `
static const char table[5000] = {1, 2, 3};
int small_get(int i) { return table[i % sizeof table]; }
`)
	out := filepath.Join(dir, "image")
	res := mustLink(t, Options{Layout: LayoutAligned, Objects: append(g.objects(false), Object{Path: small, Name: "small"}),
		Output: out, MapPath: filepath.Join(dir, "map.json"), NoPacks: true}) // (a small library: no pack)
	im, err := elfimage.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	text, ro := im.ELF().Section(".text.small"), im.ELF().Section(".rodata.small")
	if text == nil || ro == nil {
		t.Fatal("no .text.small or .rodata.small")
	}
	l := res.Config.Libraries[slicesIndex(res.Config, "small")]
	if ro.Addr != l.Region.SharedAddr() {
		t.Errorf("rodata at %#x, want first in the shared part (%#x)", ro.Addr, l.Region.SharedAddr())
	}
	roEnd := pageUp(ro.Addr + ro.Size)
	if text.Addr >= roEnd {
		t.Errorf("code at %#x, after the rodata's last page (which ends at %#x): a page wasted", text.Addr, roEnd)
	}
	// Read-only data's whole pages r--, then one r-x run: the page the
	// data shares with the code, the code, the trampoline stubs (one host
	// mapping, where code | rodata | stubs took two r-x and one r--).
	roOnly := (ro.Addr + ro.Size) &^ (abi.PageSize - 1)
	want := []desc.Segment{
		{Off: 0, Size: roOnly - l.Region.SharedAddr(), Prot: desc.ProtR},
		{Off: roOnly - l.Region.SharedAddr(), Size: l.Shared.Size - (roOnly - l.Region.SharedAddr()), Prot: desc.ProtRX},
	}
	if len(l.Shared.Segments) != 2 || l.Shared.Segments[0] != want[0] || l.Shared.Segments[1] != want[1] {
		t.Errorf("shared segments %+v, want %+v (the rodata's whole pages read-only, the page it shares with the code and the rest r-x)", l.Shared.Segments, want)
	}
	if stubs := im.ELF().Section(".stubs.small"); stubs != nil && (stubs.Addr < text.Addr+text.Size || pageUp(stubs.Addr+stubs.Size) != l.Region.SharedAddr()+l.Shared.Size) {
		t.Errorf("stubs at [%#x,%#x): want after the code, ending the shared part (%#x bytes)", stubs.Addr, stubs.Addr+stubs.Size, l.Shared.Size)
	}
	if l.Shared.Size != pageUp(text.Addr+text.Size)-l.Region.SharedAddr() && im.ELF().Section(".stubs.small") == nil {
		t.Errorf("shared part %#x bytes, want up to the end of the code's page", l.Shared.Size)
	}
	in, err := Inspect(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, li := range in.Libraries {
		if li.Name == "small" && li.SharedPages != l.Shared.Size {
			t.Errorf("inspect: %d bytes of shared pages, want %d (the shared page counted once)", li.SharedPages, l.Shared.Size)
		}
	}
}

func TestLibrariesKeepTheirTablesAndPrivateDataInPagesTheyShare(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	out := filepath.Join(dir, "image")
	res := mustLink(t, Options{Layout: LayoutAligned, Objects: g.objects(false), Output: out, MapPath: filepath.Join(dir, "map.json")})
	var privBytes, privLibs, stubs, slots, top uint64
	for _, l := range res.Config.Libraries {
		if !l.App && !l.PackPage {
			top = max(top, l.Region.PrivateEnd())
		}
	}
	for _, l := range res.Config.Libraries {
		if l.App {
			// The app's private part follows the highest library's.
			if r := l.Region; !r.Dense() || r.PrivateStart != (top+appPrivateAlign-1)&^(appPrivateAlign-1) || l.Private.MemSize == 0 {
				t.Errorf("app: private part [%#x,%#x) (%d bytes used), want it in the arena right after %#x", r.PrivateStart, r.PrivateEnd(), l.Private.MemSize, top)
			}
			privBytes += l.Private.MemSize
			continue
		}
		if l.PackPage {
			continue // a page of a pack: its members' code
		}
		r := l.Region
		if r.TrampSize != 0 || !l.Tramp.Split || l.Tramp.Size != 0 {
			t.Errorf("%s: tramp area %#x, table %+v: want a split table and no tramp page", l.Name, r.TrampSize, l.Tramp)
		}
		if !r.Dense() || !abi.InArena(r.PrivateStart, r.PrivateSize) {
			t.Errorf("%s: private part [%#x,%#x) not in the data arena", l.Name, r.PrivateStart, r.PrivateEnd())
		}
		if l.Tramp.StubSize > 0 && !l.InPack() { // (a member's stubs: in its pack's r-x pages)
			if last := l.Shared.Segments[len(l.Shared.Segments)-1]; last.Prot != desc.ProtRX || last.Off+last.Size < l.Tramp.StubOff+l.Tramp.StubSize {
				t.Errorf("%s: stubs at %#x+%#x not in an r-x shared segment (%+v)", l.Name, l.Tramp.StubOff, l.Tramp.StubSize, l.Shared.Segments)
			}
			if l.Shared.Size != pageUp(l.Tramp.StubOff+l.Tramp.StubSize) {
				t.Errorf("%s: shared part %#x bytes does not end with its stubs' page", l.Name, l.Shared.Size)
			}
		}
		stubs += l.Tramp.StubSize
		slots += l.Tramp.SlotSize
		if l.Private.MemSize > 0 {
			privLibs++
			privBytes += l.Private.MemSize
		}
	}
	if stubs == 0 || slots == 0 {
		t.Errorf("no stubs (%d bytes) or slots (%d bytes): the guest's libraries call each other", stubs, slots)
	}
	in, err := Inspect(out)
	if err != nil {
		t.Fatal(err)
	}
	// Packed: the private parts take about the pages of their bytes, not
	// one (or more) per library.
	if max := pageUp(privBytes) + abi.PageSize; in.DensePrivatePages > max {
		t.Errorf("%d libraries' private parts (%d bytes) take %d bytes of pages", privLibs, privBytes, in.DensePrivatePages)
	}
	// Under --aslr the image slides as one: the private parts stay dense.
	if !strings.Contains(in.ASLR, "one slide of") || !strings.Contains(in.ASLR, "stay on the pages they share") {
		t.Errorf("inspect's ASLR: %q", in.ASLR)
	}
}

// An image linked against a fresh map has every private part (its
// libraries' and its app's) and its app's code in the 2 MiB of the
// per-instance memory (abi.PrivateBase): an instance's private parts,
// app, boot info, stack and first heap pages need one page-table page,
// not one more for a data arena of their own.
func TestAFreshMapPutsEveryPrivatePartInThe2MiBOfTheAppAndTheInstancesMemory(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	small := buildLib(t, dir, "small", `
static int counter[100];
int small_get(int i) { return counter[i % 100]++; }
`)
	out := filepath.Join(dir, "image")
	res := mustLink(t, Options{Layout: LayoutAligned, Objects: append(g.objects(false), Object{Path: small, Name: "small"}),
		Output: out, MapPath: filepath.Join(dir, "map.json")})
	const chunk = 2 << 20
	home := uint64(abi.PrivateBase) &^ (chunk - 1)
	in := func(a, n uint64) bool { return a >= home && a+n <= home+chunk }
	privates := 0
	for _, l := range res.Config.Libraries {
		r := l.Region
		if l.App && !in(r.Start, l.Shared.Size+r.TrampSize) {
			t.Errorf("the app's code at %#x+%#x: not in the 2 MiB at %#x", r.Start, l.Shared.Size, home)
		}
		if r.Dense() && l.Private.MemSize > 0 {
			privates++
			if !in(r.PrivateStart, l.Private.MemSize) || r.PrivateStart < abi.NearArenaBase {
				t.Errorf("%s: private part at %#x+%#x: not in the near arena of the 2 MiB at %#x", l.Name, r.PrivateStart, l.Private.MemSize, home)
			}
		}
	}
	if privates < 3 {
		t.Errorf("%d private parts, want the guest's and small's", privates)
	}
}
