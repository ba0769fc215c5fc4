package link

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/libmap"
)

func linkedConfig(t *testing.T, path string) *desc.Config {
	t.Helper()
	im, err := elfimage.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := im.Config()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The core (DefaultGroups) is linked as one unit: one library in the
// description and the map, its members listed in order, its code one
// stream (the members' tails share pages), and the same unit bytes and
// region in every image with the same member objects.
func TestTheCoreIsLinkedAsOneUnitWithItsMembersListed(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	mapPath := filepath.Join(dir, "map.json")
	a := mustLink(t, Options{Layout: LayoutAligned, Objects: g.objects(false), Output: filepath.Join(dir, "a"), MapPath: mapPath})
	b := mustLink(t, Options{Layout: LayoutAligned, Objects: g.objects(true), Output: filepath.Join(dir, "b"), MapPath: mapPath})
	if strings.Join(a.NewRegions, ",") != "ukplat+ukboot+libc,ukalloc" {
		t.Errorf("new regions %v, want the core unit and ukalloc", a.NewRegions)
	}
	unit := func(cfg *desc.Config) desc.Library {
		t.Helper()
		for _, l := range cfg.Libraries {
			if l.Name == "ukplat+ukboot+libc" {
				return l
			}
			if l.Name == "ukplat" || l.Name == "libc" || l.Name == "ukboot" {
				t.Errorf("core member %s linked on its own", l.Name)
			}
		}
		t.Fatal("no core unit in the description")
		return desc.Library{}
	}
	ua, ub := unit(a.Config), unit(b.Config)
	var names, versions []string
	for _, m := range ua.Members {
		names = append(names, m.Name)
		versions = append(versions, m.Version)
		if len(m.ObjectSHA256) != 64 {
			t.Errorf("member %s: object sha256 %q", m.Name, m.ObjectSHA256)
		}
	}
	if strings.Join(names, ",") != "ukplat,ukboot,libc" || ua.Version != strings.Join(versions, "+") {
		t.Errorf("unit %s version %s members %+v", ua.Name, ua.Version, ua.Members)
	}
	if ua.ObjectSHA256 != ub.ObjectSHA256 || ua.MapRegion() != ub.MapRegion() {
		t.Errorf("the same members gave units %s at %+v and %s at %+v", ua.ObjectSHA256, ua.Region, ub.ObjectSHA256, ub.Region)
	}
	m, err := libmap.Load(mapPath)
	if err != nil {
		t.Fatal(err)
	}
	if m.Library("libc") != nil || m.Library("ukplat+ukboot+libc") == nil {
		t.Errorf("map libraries %+v: want the unit, not its members", m.Libraries)
	}
	ia, _ := elfimage.Open(filepath.Join(dir, "a"))
	ib, _ := elfimage.Open(filepath.Join(dir, "b"))
	for off := uint64(0); off < ua.Shared.Size; off += 4096 {
		pa, ok1 := ia.Page(ua.Region.SharedAddr() + off)
		pb, ok2 := ib.Page(ua.Region.SharedAddr() + off)
		if !ok1 || !ok2 || string(pa) != string(pb) {
			t.Errorf("unit page %#x differs between the images", ua.Region.SharedAddr()+off)
		}
	}

	// Linked library by library, the three members take a shared page
	// each; as one unit their code shares pages.
	solo := mustLink(t, Options{Layout: LayoutAligned, Objects: g.objects(false), Output: filepath.Join(dir, "solo"), MapPath: filepath.Join(dir, "solo.json"), Groups: noGroups, NoPacks: true})
	var soloShared uint64
	for _, l := range solo.Config.Libraries {
		if l.Name == "ukplat" || l.Name == "ukboot" || l.Name == "libc" {
			soloShared += l.Shared.Size
			if len(l.Members) != 0 {
				t.Errorf("%s: members %+v when linked on its own", l.Name, l.Members)
			}
		}
	}
	if ua.Shared.Size >= soloShared {
		t.Errorf("the unit's shared part is %#x bytes, the members' alone %#x: nothing saved", ua.Shared.Size, soloShared)
	}
}

// A group applies only to an image that has all its members; groups are
// tried in order and a member goes to the first group that takes it.
func TestAGroupAppliesOnlyWhenAllItsMembersArePresent(t *testing.T) {
	needToolchain(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	groups := [][]string{{"ukrand", "ukalloc"}, {"ukalloc", "libc"}}
	with := mustLink(t, Options{Layout: LayoutAligned, Objects: g.objects(true), Output: filepath.Join(dir, "with"), MapPath: filepath.Join(dir, "m.json"), Groups: groups})
	without := mustLink(t, Options{Layout: LayoutAligned, Objects: g.objects(false), Output: filepath.Join(dir, "without"), MapPath: filepath.Join(dir, "m.json"), Groups: groups})
	namesOf := func(cfg *desc.Config) string {
		var n []string
		for _, l := range cfg.Libraries {
			if !l.App && !l.PackPage {
				n = append(n, l.Name)
			}
		}
		return strings.Join(n, ",")
	}
	if got := namesOf(with.Config); got != "ukplat,ukboot,libc,ukrand+ukalloc" {
		t.Errorf("with ukrand: libraries %s, want ukrand+ukalloc as a unit and libc on its own", got)
	}
	if got := namesOf(without.Config); got != "ukplat,ukboot,ukalloc+libc" {
		t.Errorf("without ukrand: libraries %s, want the second group ukalloc+libc", got)
	}
	// Both images run their code from the units: the descriptions hold.
	for _, p := range []string{"with", "without"} {
		if err := linkedConfig(t, filepath.Join(dir, p)).Validate(); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	// Packed links never group.
	pk := mustLink(t, Options{Layout: LayoutPacked, Objects: g.objects(true), Output: filepath.Join(dir, "p"), Groups: groups})
	if pk.Config != nil {
		t.Errorf("packed link has a description")
	}
	if _, err := os.Stat(filepath.Join(dir, "p")); err != nil {
		t.Error(err)
	}
}

func TestParseGroupRefusesWhatCannotBeAUnit(t *testing.T) {
	if g, err := ParseGroup("ukplat+ukboot+libc"); err != nil || strings.Join(g, ",") != "ukplat,ukboot,libc" {
		t.Errorf("ParseGroup: %v, %v", g, err)
	}
	for _, bad := range []string{"libc", "libc+libc", "libc+", "a b+c", strings.Repeat("x", 70) + "+" + strings.Repeat("y", 70)} {
		if _, err := ParseGroup(bad); err == nil {
			t.Errorf("ParseGroup(%q) accepted", bad)
		}
	}
}
