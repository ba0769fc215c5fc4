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
	cfgs, plans, err := planUnikraft(apps, 60, 0, 7, InputsDistinct)
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
	again, _, _ := planUnikraft(apps, 60, 0, 7, InputsDistinct)
	for i := range cfgs {
		if strings.Join(cfgs[i].Features, ",") != strings.Join(again[i].Features, ",") {
			t.Fatalf("the plan is not a function of the seed: %v then %v", cfgs[i].Features, again[i].Features)
		}
	}
	one, _, _ := planUnikraft(apps, 50, 50, 7, InputsRepeated)
	if len(one) != 50 {
		t.Errorf("--configs 50: %d configurations", len(one))
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
