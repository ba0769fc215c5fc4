package corpus

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/unipool/unipool/guest"
	"github.com/unipool/unipool/internal/unikraft"
)

// Flavors: what a corpus is built from.
const (
	// FlavorUnipool builds from unipool's own guest tree (the default).
	FlavorUnipool = "unipool"
	// FlavorUnikraft builds real Unikraft unikernels with Unikraft's own
	// make: the apps of guest/unikraft over configurations of the tree's
	// in-tree libraries (internal/unikraft).
	FlavorUnikraft = "unikraft"
	// OriginUnikraft marks a library of the Unikraft tree.
	OriginUnikraft = "unikraft"
)

// Flavors lists the flavors Build knows.
var Flavors = []string{FlavorUnipool, FlavorUnikraft}

// unikraftAppsRoot is the folder of the guest tree holding the Unikraft
// fleet's apps.
const unikraftAppsRoot = "unikraft"

// UnikraftConfig is one configuration of a Unikraft corpus, as corpus.json
// records it.
type UnikraftConfig struct {
	Name string `json:"name"`
	// Key is the hash the build cache keeps it under.
	Key string `json:"key"`
	// Features are the choices drawn over the defconfig (unikraft.Features),
	// Set all settings over the defconfig (features, the apps' needs and
	// the fleet's base).
	Features []string          `json:"features"`
	Set      map[string]string `json:"set"`
	Apps     []string          `json:"apps"`
}

// unikraftPlan is one unikernel of a Unikraft corpus.
type unikraftPlan struct {
	name, input, expect string
	app                 unikraft.FleetApp
	config              int
}

// planUnikraft draws the configurations and gives each unikernel its
// configuration (i mod K) and app (the configuration's apps in turn, at
// most perConfig different ones; 0: all). With one app per
// configuration, configuration c depends on c and the seed only, not on
// K: the first K of a larger plan are the same builds.
func planUnikraft(apps []unikraft.FleetApp, count, configs, perConfig int, seed uint64, inputs string) ([]UnikraftConfig, []unikraftPlan, error) {
	if configs <= 0 {
		configs = (count + len(apps) - 1) / len(apps)
	}
	configs = min(configs, count)
	if perConfig <= 0 || perConfig > len(apps) {
		perConfig = len(apps)
	}
	rng := rand.New(rand.NewPCG(seed, 0x756b666c656574))
	cfgs := make([]UnikraftConfig, configs)
	var plans []unikraftPlan
	for i := 0; i < count; i++ {
		c := i % configs
		app := apps[((i/configs)%perConfig+c)%len(apps)]
		req := "unipool"
		if inputs == InputsDistinct {
			req = fmt.Sprintf("req%04d", i)
		}
		// Unikraft's kvm platform makes the whole command line argv
		// (ukplat_entry_argp(NULL, cmdline)): the program's name first,
		// as Linux's init gets it, then the request as argv[1].
		plans = append(plans, unikraftPlan{name: fmt.Sprintf("uk%04d-%s-c%03d", i, app.Name, c), input: app.Name + " " + req, expect: app.Expect(req), app: app, config: c})
		cfgs[c].Apps = append(cfgs[c].Apps, app.Name)
	}
	byName := map[string]unikraft.FleetApp{}
	for _, a := range apps {
		byName[a.Name] = a
	}
	seenSet := map[string]bool{}
	for c := range cfgs {
		cfg := &cfgs[c]
		cfg.Name = fmt.Sprintf("c%03d", c)
		needs := map[string]string{}
		for _, a := range cfg.Apps {
			for k, v := range byName[a].Needs {
				needs[k] = v
			}
		}
		// A draw whose settings an earlier configuration already has is
		// drawn again (a few times at most: with few features the space
		// can run out), so K configurations are K different builds.
		for try := 0; ; try++ {
			cfg.Features, cfg.Set = drawFeatures(rng, c, needs)
			if c == 0 || try == maxRedraws || !seenSet[settingsKey(cfg.Set)] {
				break
			}
		}
		seenSet[settingsKey(cfg.Set)] = true
		cfg.Apps = dedupe(cfg.Apps)
	}
	return cfgs, plans, nil
}

// maxRedraws bounds how often planUnikraft draws a configuration again
// whose settings an earlier one has.
const maxRedraws = 64

// drawFeatures draws configuration c's features: configuration 0 is the
// defconfig itself (with its apps' needs); the others draw each feature
// with p = 1/3, leaving out one that contradicts an app's need.
func drawFeatures(rng *rand.Rand, c int, needs map[string]string) ([]string, map[string]string) {
	var features []string
	set := map[string]string{}
	for _, f := range unikraft.Features {
		if c == 0 || rng.IntN(3) != 0 {
			continue
		}
		clash := false
		for k, v := range f.Set {
			if w, ok := needs[k]; ok && w != v {
				clash = true
			}
		}
		if clash {
			continue // an app of this configuration needs otherwise
		}
		features = append(features, f.Name)
		for k, v := range f.Set {
			set[k] = v
		}
	}
	for k, v := range needs {
		set[k] = v
	}
	return features, set
}

// settingsKey is a configuration's settings as one comparable string.
func settingsKey(set map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(set) {
		fmt.Fprintf(&b, "%s=%s\n", k, set[k])
	}
	return b.String()
}

func dedupe(s []string) []string {
	sort.Strings(s)
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// buildUnikraft is Build for FlavorUnikraft.
func buildUnikraft(ctx context.Context, o Options) (*Corpus, error) {
	if o.Guest == nil {
		o.Guest = guest.FS()
	}
	if o.Inputs == "" {
		o.Inputs = InputsRepeated
	}
	apps, err := unikraft.FleetApps(o.Guest)
	if err != nil {
		return nil, err
	}
	wd, _ := os.Getwd()
	tree, err := unikraft.Find(ctx, o.Unikraft, wd)
	if err != nil {
		return nil, fmt.Errorf("corpus --flavor unikraft: %w", err)
	}
	cfgs, plans, err := planUnikraft(apps, o.Count, o.Configs, o.AppsPerConfig, o.Seed, o.Inputs)
	if err != nil {
		return nil, err
	}
	byName := map[string]unikraft.FleetApp{}
	for _, a := range apps {
		byName[a.Name] = a
	}
	// One configuration after another: every build runs in the one
	// build folder of the cache (make -j2 each).
	builds := make([]*unikraft.ConfigBuild, len(cfgs))
	var st Stats
	for c := range cfgs {
		var capps []unikraft.FleetApp
		for _, a := range cfgs[c].Apps {
			capps = append(capps, byName[a])
		}
		b, err := tree.BuildConfig(ctx, unikraft.FleetConfig{Set: cfgs[c].Set}, capps, unikraft.FleetBuildOptions{Cache: filepath.Join(o.CacheDir, "unikraft"), Log: o.UnikraftLog})
		if err != nil {
			return nil, fmt.Errorf("corpus: Unikraft configuration %s (%s): %w", cfgs[c].Name, strings.Join(cfgs[c].Features, " "), err)
		}
		builds[c] = b
		cfgs[c].Key = b.Key
		cfgs[c].Set = b.Settings
		st.Configs++
		if b.Built {
			st.ConfigsBuilt++
		}
		if o.Progress != nil {
			o.Progress(c+1, len(cfgs))
		}
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	corp := &Corpus{Dir: o.Out, Seed: o.Seed, Count: len(plans), Inputs: o.Inputs, Flavor: FlavorUnikraft, Configs: cfgs, Unikernels: make([]Unikernel, len(plans))}
	keep := map[string]bool{}
	for _, p := range plans {
		keep[p.name] = true
	}
	if old, err := Load(o.Out); err == nil {
		for _, u := range old.Unikernels {
			if !keep[u.Name] {
				if err := os.RemoveAll(filepath.Join(o.Out, u.Name)); err != nil {
					return nil, fmt.Errorf("corpus: %w", err)
				}
			}
		}
	}
	sums := map[string]string{} // cache file -> sha256
	sum := func(p string) (string, error) {
		if s, ok := sums[p]; ok {
			return s, nil
		}
		s, err := sha256File(p)
		sums[p] = s
		return s, err
	}
	for i, p := range plans {
		b := builds[p.config]
		dir := filepath.Join(o.Out, p.name)
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("corpus: %w", err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "ld"), 0o755); err != nil {
			return nil, fmt.Errorf("corpus: %w", err)
		}
		u := Unikernel{Name: p.name, App: p.app.Name, Input: p.input, Expect: p.expect, Config: cfgs[p.config].Name}
		ab := b.Apps[p.app.Name]
		objs := append(append([]string{}, b.Libraries...), ab.Object)
		for j, obj := range objs {
			s, err := sum(obj)
			if err != nil {
				return nil, fmt.Errorf("corpus: %w", err)
			}
			ref := LibraryRef{Name: strings.TrimPrefix(strings.TrimSuffix(filepath.Base(obj), ".o"), "lib"), Version: s[:12], Origin: OriginUnikraft,
				Object: p.name + "/" + filepath.Base(obj), SHA256: s}
			if j == len(objs)-1 {
				ref.Name, ref.Origin, ref.Object = p.app.Name, OriginApp, p.name+"/app-"+p.app.Name+".o"
			}
			if err := linkOrCopy(obj, filepath.Join(o.Out, filepath.FromSlash(ref.Object))); err != nil {
				return nil, fmt.Errorf("corpus: %w", err)
			}
			u.Libraries = append(u.Libraries, ref)
		}
		for _, f := range b.Fragments {
			rel := p.name + "/ld/" + filepath.Base(f)
			if err := linkOrCopy(f, filepath.Join(o.Out, filepath.FromSlash(rel))); err != nil {
				return nil, fmt.Errorf("corpus: %w", err)
			}
			u.LDFragments = append(u.LDFragments, rel)
		}
		u.StockImage = p.name + "/stock.elf"
		if err := linkOrCopy(ab.Image, filepath.Join(o.Out, filepath.FromSlash(u.StockImage))); err != nil {
			return nil, fmt.Errorf("corpus: %w", err)
		}
		corp.Unikernels[i] = u
	}
	distinct := map[string]bool{}
	for _, s := range sums {
		distinct[s] = true
	}
	st.Objects, st.Unikernels = len(distinct), len(plans)
	if o.Stats != nil {
		*o.Stats = st
	}
	if err := corp.validate(); err != nil {
		return nil, fmt.Errorf("corpus: built an invalid corpus: %w", err)
	}
	if err := corp.write(); err != nil {
		return nil, err
	}
	return corp, nil
}

// Fragments are a unikernel's extra linker-script fragments (Unikraft's
// bootinfo.lds, infosec.ld, extra.ld, ...) as files, in order.
func (c *Corpus) Fragments(u *Unikernel) []string {
	var out []string
	for _, f := range u.LDFragments {
		out = append(out, filepath.Join(c.Dir, filepath.FromSlash(f)))
	}
	return out
}
