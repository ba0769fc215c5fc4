package link

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/unipool/unipool/internal/corpus"
)

// Bench on a corpus of three unikernels that share their libraries: the
// aligned layouts find every sharable page in another image, packed
// fewer, and the size figures add up.
func TestBenchFindsAlignedLibraryPagesAtTheSameAddress(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	ref := func(o Object) corpus.LibraryRef {
		data, err := os.ReadFile(o.Path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		rel, _ := filepath.Rel(dir, o.Path)
		origin := "unipool"
		if o.App {
			origin = corpus.OriginApp
		}
		return corpus.LibraryRef{Name: o.Name, Version: "v1", Origin: origin, Object: filepath.ToSlash(rel), SHA256: hex.EncodeToString(sum[:])}
	}
	c := corpus.Corpus{Seed: 1}
	for i, withRand := range []bool{false, true, true} {
		u := corpus.Unikernel{Name: []string{"a", "b", "c"}[i], App: "apphello", Input: "", Expect: "x"}
		for _, o := range g.objects(withRand) {
			u.Libraries = append(u.Libraries, ref(o))
		}
		c.Unikernels = append(c.Unikernels, u)
	}
	c.Count = len(c.Unikernels)
	data, _ := json.Marshal(c)
	if err := os.WriteFile(filepath.Join(dir, corpus.FileName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := Bench(context.Background(), BenchOptions{Corpus: dir})
	if err != nil {
		t.Fatal(err)
	}
	byLayout := map[string]LayoutBench{}
	for _, l := range rep.Layouts {
		byLayout[l.Layout] = l
		if len(l.Images) != 3 || l.FileBytes == 0 || l.LoadedBytes == 0 || l.SharablePages == 0 {
			t.Errorf("%s: %+v", l.Layout, l)
		}
	}
	// Every library page is found in another image. The app's code
	// reaches its private part, which follows the image's highest
	// library private part in the data arena: image a (without ukrand)
	// has it elsewhere than b and c, so a's app page is its own.
	if al := byLayout[LayoutAligned]; al.IdenticalPages < al.SharablePages-1 || (al.IdenticalPages != al.SharablePages && (len(al.Misses) != 1 || al.Misses["apphello"] != 1)) {
		t.Errorf("aligned: %d of %d sharable pages identical (misses %v), want all but the app's page of image a", al.IdenticalPages, al.SharablePages, al.Misses)
	}
	if pk := byLayout[LayoutPacked]; pk.Share >= byLayout[LayoutAligned].Share {
		t.Errorf("packed share %.2f, not below aligned", pk.Share)
	}
	if al, pk := byLayout[LayoutAligned], byLayout[LayoutPacked]; al.DistinctReadOnlyBytes >= al.ReadOnlyBytes || pk.DistinctReadOnlyBytes > pk.ReadOnlyBytes {
		t.Errorf("distinct read-only bytes: aligned %d of %d, packed %d of %d", al.DistinctReadOnlyBytes, al.ReadOnlyBytes, pk.DistinctReadOnlyBytes, pk.ReadOnlyBytes)
	}
	if rep.LoadedOverPacked <= 0 || rep.FileOverDCE <= 0 {
		t.Errorf("overheads %+v", rep)
	}
	// An aligned image's pages are its regions' parts; packed images
	// have no parts.
	al := byLayout[LayoutAligned]
	if parts := (al.TrampPages + al.SharedPages + al.PrivatePages) * 4096; parts == 0 || parts != al.LoadedBytes {
		t.Errorf("aligned: pages by part (tramp %d, shared %d, private %d) do not add up to the %d loaded bytes", al.TrampPages, al.SharedPages, al.PrivatePages, al.LoadedBytes)
	}
	if pk := byLayout[LayoutPacked]; pk.TrampPages+pk.SharedPages+pk.PrivatePages != 0 {
		t.Errorf("packed: pages by part %+v", pk)
	}
	// What the parts hold fits in their pages; moved or not, the private
	// pages are no more than at the map's addresses.
	if al.SharedBytes == 0 || al.SharedBytes > al.SharedPages*4096 || al.PrivateBytes == 0 || al.PrivateBytes > al.PrivatePages*4096 ||
		al.MapPrivatePages < al.PrivatePages {
		t.Errorf("aligned: shared %d bytes in %d pages, private %d bytes in %d pages (%d at the map's addresses)",
			al.SharedBytes, al.SharedPages, al.PrivateBytes, al.PrivatePages, al.MapPrivatePages)
	}
}
