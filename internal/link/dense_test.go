package link

import (
	"path/filepath"
	"testing"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/elfimage"
)

func TestReadOnlyDataSharesTheLastPageOfItsCode(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	small := buildLib(t, dir, "small", `
static const char table[5000] = {1, 2, 3};
int small_get(int i) { return table[i % sizeof table]; }
`)
	out := filepath.Join(dir, "image")
	res := mustLink(t, Options{Layout: LayoutAligned, Objects: append(g.objects(false), Object{Path: small, Name: "small"}),
		Output: out, MapPath: filepath.Join(dir, "map.json")})
	im, err := elfimage.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	text, ro := im.ELF().Section(".text.small"), im.ELF().Section(".rodata.small")
	if text == nil || ro == nil {
		t.Fatal("no .text.small or .rodata.small")
	}
	l := res.Config.Libraries[slicesIndex(res.Config, "small")]
	codeEnd := pageUp(text.Addr + text.Size)
	if ro.Addr >= codeEnd {
		t.Errorf("rodata at %#x, after the code's last page (which ends at %#x): a page wasted", ro.Addr, codeEnd)
	}
	want := []desc.Segment{
		{Off: 0, Size: codeEnd - l.Region.SharedAddr(), Prot: desc.ProtRX},
		{Off: codeEnd - l.Region.SharedAddr(), Size: pageUp(ro.Addr+ro.Size) - codeEnd, Prot: desc.ProtR},
	}
	if len(l.Shared.Segments) != 2 || l.Shared.Segments[0] != want[0] || l.Shared.Segments[1] != want[1] {
		t.Errorf("shared segments %+v, want %+v (the shared page with the code, the rest of the rodata read-only)", l.Shared.Segments, want)
	}
	if l.Shared.Size != pageUp(ro.Addr+ro.Size)-l.Region.SharedAddr() {
		t.Errorf("shared part %#x bytes, want up to the end of the rodata's page", l.Shared.Size)
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
