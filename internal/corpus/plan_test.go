package corpus

import (
	"github.com/unipool/unipool/guest"
	"github.com/unipool/unipool/internal/corpus/reference"

	"fmt"
	"os"
	"reflect"
	"testing"
	"testing/fstest"
)

func fixtureTree(t *testing.T) *Tree {
	t.Helper()
	tr, err := LoadTree(os.DirFS("testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// realTree is the guest tree built into unipool.
func realTree(t *testing.T) *Tree {
	t.Helper()
	tr, err := LoadTree(guest.FS())
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func summary(p planned) string {
	s := p.Name + ":" + p.Case.Input + ":"
	for _, l := range p.Libs {
		s += l.Lib.Name + "@" + l.Variant.ID + ","
	}
	return s + fmt.Sprint(p.GenSeed)
}

func TestSmallerCorpusIsPrefixOfLargerOne(t *testing.T) {
	tr := fixtureTree(t)
	small, err := plan(tr, 7, 3, "")
	if err != nil {
		t.Fatal(err)
	}
	big, err := plan(tr, 50, 3, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range small {
		if summary(small[i]) != summary(big[i]) {
			t.Fatalf("unikernel %d: %s in a corpus of 7, %s in one of 50", i, summary(small[i]), summary(big[i]))
		}
	}
}

func TestEveryAppIsUsedEvenly(t *testing.T) {
	tr := fixtureTree(t)
	ps, err := plan(tr, 101, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, p := range ps {
		n[p.App.Name]++
	}
	for _, a := range tr.Apps {
		if n[a.Name] < 101/len(tr.Apps) {
			t.Errorf("app %s in %d of 101 unikernels, want at least %d", a.Name, n[a.Name], 101/len(tr.Apps))
		}
	}
}

func TestPopularLibrariesInMostLongTailInFew(t *testing.T) {
	tr := fixtureTree(t)
	const count = 2000
	ps, err := plan(tr, count, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, p := range ps {
		for _, l := range p.Libs {
			n[l.Lib.Name]++
		}
	}
	// ukrand: popularity 0.5, also pulled in by ukmix (0.05, and every
	// crc app): about 0.5 + 0.5*0.5*... of the fleet.
	if f := float64(n["ukrand"]) / count; f < 0.45 || f > 0.8 {
		t.Errorf("ukrand in %.2f of the fleet", f)
	}
	// ukmix: 0.05 on its own, plus the crc half of the fleet.
	if f := float64(n["ukmix"]) / count; f < 0.45 || f > 0.6 {
		t.Errorf("ukmix in %.2f of the fleet", f)
	}
	if n["ukplat"] != count || n["libc"] != count {
		t.Errorf("core libraries in %d and %d of %d", n["ukplat"], n["libc"], count)
	}
	bump, first := n["ukallocbump"], n["ukallocfirst"]
	if bump+first != count || bump < first*3/2 {
		t.Errorf("allocators: bump %d (popularity 0.7), first %d (0.3)", bump, first)
	}
}

func TestDefaultVariantIsMostCommon(t *testing.T) {
	tr := fixtureTree(t)
	ps, err := plan(tr, 2000, 5, "")
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, p := range ps {
		for _, l := range p.Libs {
			if l.Lib.Name == "ukmix" {
				n[l.Variant.ID]++
			}
		}
	}
	if !(n["fast"] > n["slow"] && n["slow"] > n["tiny"] && n["tiny"] > 0) {
		t.Errorf("ukmix variants %v: want default (fast) > slow > tiny > 0", n)
	}
}

func TestLibraryNamesInLinkOrder(t *testing.T) {
	tr := fixtureTree(t)
	got := linkOrder(tr, map[string]bool{"zlib": true, "ukrand": true, "libc": true, "ukplat": true, "ukallocfirst": true, "ukboot": true, "ukmix": true})
	want := []string{"ukplat", "ukboot", "libc", "ukallocfirst", "ukmix", "ukrand", "zlib"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("link order %v, want %v", got, want)
	}
}

func TestAppDependencyPinsTheAllocator(t *testing.T) {
	fsys := minimalTree()
	fsys["lib/ukalloc2/lib.json"] = &fstest.MapFile{Data: []byte(`{"name": "ukalloc2", "provides": "allocator", "popularity": 1}`)}
	fsys["lib/ukalloc2/exportsyms.uk"] = &fstest.MapFile{Data: []byte("malloc\n")}
	fsys["apps/hello/app.json"] = &fstest.MapFile{Data: []byte(`{"name": "hello", "deps": ["ukalloc"], "cases": [{"expect": "x"}]}`)}
	tr, err := LoadTree(fsys)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := plan(tr, 50, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Libs[2].Lib.Name != "ukalloc" {
			t.Fatalf("%s: allocator %s, but its app depends on ukalloc", p.Name, p.Libs[2].Lib.Name)
		}
	}
}

func TestGeneratedSourcesDiffer(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		s := genSource("x", uint64(i))
		if seen[s] {
			t.Fatalf("seed %d repeats a generated source", i)
		}
		seen[s] = true
	}
}

func TestExtraNeedingAnotherAllocatorIsLeftOut(t *testing.T) {
	fsys := minimalTree()
	fsys["lib/ukalloc2/lib.json"] = &fstest.MapFile{Data: []byte(`{"name": "ukalloc2", "provides": "allocator"}`)}
	fsys["lib/ukalloc2/exportsyms.uk"] = &fstest.MapFile{Data: []byte("malloc\n")}
	fsys["lib/ukgc/lib.json"] = &fstest.MapFile{Data: []byte(`{"name": "ukgc", "popularity": 1, "deps": ["ukalloc2"]}`)}
	fsys["lib/ukgc/exportsyms.uk"] = &fstest.MapFile{Data: []byte("gc\n")}
	fsys["apps/hello/app.json"] = &fstest.MapFile{Data: []byte(`{"name": "hello", "deps": ["ukalloc"], "cases": [{"expect": "x"}]}`)}
	tr, err := LoadTree(fsys)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := plan(tr, 20, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		for _, l := range p.Libs {
			if l.Lib.Name == "ukgc" || l.Lib.Name == "ukalloc2" {
				t.Fatalf("%s links %s although its app pins ukalloc", p.Name, l.Lib.Name)
			}
		}
	}
}

func TestDistinctInputsGiveEachUnikernelItsOwnRequestAndKeepItsLibraries(t *testing.T) {
	tr := realTree(t)
	rep, err := plan(tr, 60, 1, InputsRepeated)
	if err != nil {
		t.Fatal(err)
	}
	dis, err := plan(tr, 60, 1, InputsDistinct)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	drawn := 0
	for i := range dis {
		if len(dis[i].Libs) != len(rep[i].Libs) || dis[i].GenSeed != rep[i].GenSeed {
			t.Fatalf("%s: the distinct fleet changed the libraries or the code", dis[i].Name)
		}
		for j := range dis[i].Libs {
			if dis[i].Libs[j].Lib.Name != rep[i].Libs[j].Lib.Name || dis[i].Libs[j].Variant.ID != rep[i].Libs[j].Variant.ID {
				t.Fatalf("%s: library %d differs", dis[i].Name, j)
			}
		}
		ref := reference.Apps[dis[i].App.Name]
		if !reference.Has(dis[i].App.Name) {
			if dis[i].Case != rep[i].Case {
				t.Errorf("%s: an app without a reference got a drawn input", dis[i].Name)
			}
			continue
		}
		drawn++
		c := dis[i].Case
		if seen[c.Input] || ref(c.Input) != c.Expect {
			t.Errorf("%s: input %q (seen before: %v), expect %q", dis[i].Name, c.Input, seen[c.Input], c.Expect)
		}
		seen[c.Input] = true
	}
	if drawn == 0 {
		t.Fatal("no app of the test tree has a reference")
	}
	if _, err := plan(tr, 1, 1, "some"); err == nil {
		t.Error("inputs \"some\" accepted")
	}
}

func TestNoExtrasLinksOnlyWhatTheAppUses(t *testing.T) {
	tr := realTree(t)
	drawn, err := plan(tr, 42, 1, "", ExtrasDrawn)
	if err != nil {
		t.Fatal(err)
	}
	none, err := plan(tr, 42, 1, "", ExtrasNone)
	if err != nil {
		t.Fatal(err)
	}
	fewer := 0
	for i, p := range none {
		need := map[string]bool{}
		for _, d := range p.App.Deps {
			for n := range closure(tr, d) {
				need[n] = true
			}
		}
		for _, l := range p.Libs {
			if !l.Lib.Core && l.Lib.Provides != ProvidesAllocator && !need[l.Lib.Name] {
				// an allocator's or a core library's own deps are needed too
				needed := false
				for _, o := range p.Libs {
					if (o.Lib.Core || o.Lib.Provides == ProvidesAllocator) && closure(tr, o.Lib.Name)[l.Lib.Name] {
						needed = true
					}
				}
				if !needed {
					t.Errorf("%s: %s linked, which the app does not use", p.Name, l.Lib.Name)
				}
			}
		}
		if len(p.Libs) < len(drawn[i].Libs) {
			fewer++
		}
	}
	if fewer == 0 {
		t.Error("no unikernel lost a library without extras")
	}
}

func TestPlanCasesNamesTheSameUnikernelsForEitherInputs(t *testing.T) {
	rep, err := PlanCases(30, 1, InputsRepeated)
	if err != nil {
		t.Fatal(err)
	}
	dis, err := PlanCases(30, 1, InputsDistinct)
	if err != nil {
		t.Fatal(err)
	}
	differ := 0
	for i := range rep {
		if rep[i].Name != dis[i].Name || rep[i].App != dis[i].App {
			t.Fatalf("unikernel %d: %s/%s against %s/%s", i, rep[i].Name, rep[i].App, dis[i].Name, dis[i].App)
		}
		if rep[i].Input != dis[i].Input {
			differ++
		}
	}
	if differ == 0 {
		t.Fatal("distinct inputs changed no request")
	}
}
