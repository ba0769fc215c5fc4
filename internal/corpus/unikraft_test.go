package corpus

import (
	"os"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/unikraft"
)

func fleetApps(t *testing.T) []unikraft.FleetApp {
	t.Helper()
	apps, err := unikraft.FleetApps(os.DirFS("../../guest"))
	if err != nil {
		t.Fatal(err)
	}
	return apps
}

// TestUnikraftPlanSpreadsTheFleetOverFewConfigurationsEachWithWhatItsAppsNeed:
// N unikernels over K configurations (not N builds), every configuration
// holding the settings its apps need and no feature that contradicts them,
// configuration 0 the defconfig itself, and no two unikernels of one
// configuration the same app while it has apps left.
func TestUnikraftPlanSpreadsTheFleetOverFewConfigurationsEachWithWhatItsAppsNeed(t *testing.T) {
	apps := fleetApps(t)
	byName := map[string]unikraft.FleetApp{}
	for _, a := range apps {
		byName[a.Name] = a
	}
	cfgs, plans, err := planUnikraft(apps, 60, 0, 0, 7, InputsDistinct)
	if err != nil {
		t.Fatal(err)
	}
	if want := (60 + len(apps) - 1) / len(apps); len(cfgs) != want {
		t.Fatalf("%d configurations for 60 unikernels of %d apps, want %d", len(cfgs), len(apps), want)
	}
	if len(cfgs[0].Features) != 0 {
		t.Errorf("configuration 0 draws features %v; it is the defconfig", cfgs[0].Features)
	}
	drawn := 0
	for _, c := range cfgs {
		drawn += len(c.Features)
		for _, a := range c.Apps {
			for k, v := range byName[a].Needs {
				if c.Set[k] != v {
					t.Errorf("configuration %s has app %s, which needs %s=%s, but sets %q", c.Name, a, k, v, c.Set[k])
				}
			}
		}
	}
	if drawn == 0 {
		t.Error("no configuration drew a feature")
	}
	seen := map[string]bool{}
	inputs := map[string]bool{}
	for _, p := range plans {
		key := cfgs[p.config].Name + "/" + p.app.Name
		if seen[key] && len(cfgs[p.config].Apps) < len(apps) {
			t.Errorf("app %s twice in configuration %s", p.app.Name, cfgs[p.config].Name)
		}
		seen[key] = true
		if inputs[p.input] {
			t.Errorf("distinct inputs: %q twice", p.input)
		}
		inputs[p.input] = true
		// The command line is argv: the app's name, then the request.
		name, req, _ := strings.Cut(p.input, " ")
		if name != p.app.Name || !strings.HasPrefix(p.expect, p.app.Name+" "+req+" ") {
			t.Errorf("%s: expect %q", p.name, p.expect)
		}
	}
	again, _, _ := planUnikraft(apps, 60, 0, 0, 7, InputsDistinct)
	for i := range cfgs {
		if strings.Join(cfgs[i].Features, ",") != strings.Join(again[i].Features, ",") {
			t.Fatalf("the plan is not a function of the seed: %v then %v", cfgs[i].Features, again[i].Features)
		}
	}
	// --apps-per-config 1: every configuration one app (one make), its
	// other unikernels the same app with their own requests; and the
	// first K configurations of a larger plan are the same builds.
	single, splans, _ := planUnikraft(apps, 200, 50, 1, 1, InputsDistinct)
	fewer, _, _ := planUnikraft(apps, 60, 30, 1, 1, InputsDistinct)
	for _, c := range single {
		if len(c.Apps) != 1 {
			t.Errorf("--apps-per-config 1: configuration %s has apps %v", c.Name, c.Apps)
		}
	}
	if len(splans) != 200 || splans[0].app.Name == splans[1].app.Name {
		t.Errorf("--apps-per-config 1: neighbouring configurations share their app (%s)", splans[0].app.Name)
	}
	for i := range fewer {
		if settingsKey(fewer[i].Set) != settingsKey(single[i].Set) || fewer[i].Apps[0] != single[i].Apps[0] {
			t.Errorf("configuration %d differs between --configs 30 and --configs 50: %v %v / %v %v", i, fewer[i].Apps, fewer[i].Set, single[i].Apps, single[i].Set)
		}
	}
	for _, seed := range []uint64{1, 7} {
		fifty, _, _ := planUnikraft(apps, 200, 50, 0, seed, InputsRepeated)
		if len(fifty) != 50 {
			t.Errorf("--configs 50: %d configurations", len(fifty))
		}
		// K configurations are K different builds: no two with the
		// same settings (a repeated draw is drawn again).
		sets := map[string]string{}
		for _, c := range fifty {
			k := settingsKey(c.Set)
			if prev, ok := sets[k]; ok {
				t.Errorf("seed %d: configurations %s and %s have the same settings %v", seed, prev, c.Name, c.Set)
			}
			sets[k] = c.Name
		}
	}
}

// TestACorpusWhoseFragmentPathLeavesTheFolderIsRefusedByName: ld_fragments
// and stock_image are paths from a file, kept inside the corpus folder.
func TestACorpusWhoseFragmentPathLeavesTheFolderIsRefusedByName(t *testing.T) {
	const sha = "0000000000000000000000000000000000000000000000000000000000000000"
	for _, bad := range []string{`"ld_fragments": ["../x.ld"]`, `"stock_image": "/etc/passwd"`, `"config": "nope"`} {
		data := `{"seed": 1, "count": 1, "flavor": "unikraft", "unikernels": [{"name": "u", "app": "apphello", "input": "", "expect": "x", ` + bad + `,
		  "libraries": [{"name": "apphello", "version": "v", "origin": "app", "object": "u/app.o", "sha256": "` + sha + `"}]}]}`
		if _, err := Parse([]byte(data)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
