package unikraft_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/link"
	"github.com/unipool/unipool/internal/unikraft"
)

// libPages is where one library's loaded input sections went in an image,
// and the digest of every page they touch.
type libPages struct {
	sections []string // "name@addr+size", sorted
	pages    map[uint64][32]byte
}

// linkConfig links one built configuration's app in layout (aligned
// against mapPath) and returns, per library, its sections and pages.
func linkConfig(t *testing.T, b *unikraft.ConfigBuild, app, layout, mapPath, out string) (map[string]libPages, map[string][32]byte) {
	t.Helper()
	var objs []link.Object
	sums := map[string][32]byte{}
	for _, p := range b.Libraries {
		objs = append(objs, link.Object{Path: p, Origin: "unikraft"})
	}
	objs = append(objs, link.Object{Path: b.Apps[app].Object, Name: app, App: true, Origin: link.OriginApp})
	for i := range objs {
		data, err := os.ReadFile(objs[i].Path)
		if err != nil {
			t.Fatal(err)
		}
		if objs[i].Name == "" {
			objs[i].Name = link.NameFromPath(objs[i].Path)
		}
		sums[objs[i].Name] = sha256.Sum256(data)
	}
	res, err := link.Link(context.Background(), link.Options{Layout: layout, Objects: objs, Fragments: b.Fragments, MapPath: mapPath, Output: out, Trace: true})
	if err != nil {
		t.Fatalf("link %s: %v", layout, err)
	}
	im, err := elfimage.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	libs := map[string]libPages{}
	for _, s := range res.Inputs {
		if s.Size == 0 || strings.HasPrefix(s.Output, ".uk_") {
			continue // empty, or an entry of an image-wide table
		}
		lp := libs[s.Library]
		if lp.pages == nil {
			lp.pages = map[uint64][32]byte{}
		}
		lp.sections = append(lp.sections, fmt.Sprintf("%s@%#x+%#x", s.Name, s.Addr, s.Size))
		for p := s.Addr &^ (abi.PageSize - 1); p < s.Addr+s.Size; p += abi.PageSize {
			if page, ok := im.Page(p); ok {
				lp.pages[p] = sha256.Sum256(page)
			}
		}
		libs[s.Library] = lp
	}
	for _, lp := range libs {
		sort.Strings(lp.sections)
	}
	return libs, sums
}

// TestInsertingUkrandomIntoAUnikraftConfigurationMovesNoOtherLibrarysPages
// is the poster's ukrand case on real Unikraft objects: the same app built
// by Unikraft's make without and with CONFIG_LIBUKRANDOM, both linked
// aligned against one library map. Every library whose object is the same
// in both builds keeps every section at the same address and every page
// byte for byte; packed, the insertion moves libraries that did not change.
func TestInsertingUkrandomIntoAUnikraftConfigurationMovesNoOtherLibrarysPages(t *testing.T) {
	without := unikraft.FleetBuild(t, nil, "appalloc", "apphello") // the CLI test's configuration too
	with := unikraft.FleetBuild(t, map[string]string{"CONFIG_LIBUKRANDOM": "y"}, "apphello")
	has := func(b *unikraft.ConfigBuild, lib string) bool {
		for _, p := range b.Libraries {
			if filepath.Base(p) == "lib"+lib+".o" {
				return true
			}
		}
		return false
	}
	if has(without, "ukrandom") || !has(with, "ukrandom") {
		t.Fatalf("want ukrandom only in the second build: %v / %v", without.Libraries, with.Libraries)
	}
	dir := t.TempDir()
	mapPath := filepath.Join(dir, "map.json")
	for _, layout := range []string{link.LayoutAligned, link.LayoutPacked} {
		a, sa := linkConfig(t, without, "apphello", layout, mapPath, filepath.Join(dir, layout+"-without.elf"))
		b, sb := linkConfig(t, with, "apphello", layout, mapPath, filepath.Join(dir, layout+"-with.elf"))
		var same, changed, moved []string
		for lib, pa := range a {
			pb, ok := b[lib]
			if !ok {
				t.Fatalf("%s: library %s is gone with ukrandom", layout, lib)
			}
			if sa[lib] != sb[lib] {
				changed = append(changed, lib)
				continue
			}
			same = append(same, lib)
			if strings.Join(pa.sections, " ") != strings.Join(pb.sections, " ") {
				moved = append(moved, lib)
				continue
			}
			for p, h := range pa.pages {
				if pb.pages[p] != h && layout == link.LayoutAligned {
					t.Errorf("aligned: library %s (same object) has page %#x different with ukrandom", lib, p)
				}
			}
		}
		sort.Strings(same)
		sort.Strings(changed)
		sort.Strings(moved)
		t.Logf("%s: %d libraries with the same object (%d of them moved), objects changed by CONFIG_LIBUKRANDOM: %v; moved: %v",
			layout, len(same), len(moved), changed, moved)
		if len(same) < len(a)/2 {
			t.Errorf("%s: only %d of %d libraries kept their object: %v changed", layout, len(same), len(a), changed)
		}
		switch layout {
		case link.LayoutAligned:
			if len(moved) > 0 {
				t.Errorf("aligned: inserting ukrandom moved libraries whose object did not change: %v", moved)
			}
		case link.LayoutPacked:
			// The claim can fail: packed, it does.
			if len(moved) == 0 {
				t.Errorf("packed: inserting ukrandom moved nothing; the aligned check above proves nothing")
			}
		}
	}
}

// TestFleetAppsAreOneLineEachWithTheirGoReference: every app of
// guest/unikraft has a reference of its work and prints its line.
func TestFleetAppsEachCarryAGoReferenceAndPrintTheirName(t *testing.T) {
	apps, err := unikraft.FleetApps(os.DirFS("../../guest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) < 5 {
		t.Fatalf("only %d fleet apps", len(apps))
	}
	for _, a := range apps {
		e := a.Expect("x")
		if !strings.HasPrefix(e, a.Name+" x ") || len(e) != len(a.Name)+3+8 {
			t.Errorf("%s: expect %q", a.Name, e)
		}
		src, err := os.ReadFile(filepath.Join("../../guest/unikraft", a.Name, "main.c"))
		if err != nil || !bytes.Contains(src, []byte(`report("`+a.Name+`"`)) {
			t.Errorf("%s/main.c does not report as %s (%v)", a.Name, a.Name, err)
		}
	}
}
