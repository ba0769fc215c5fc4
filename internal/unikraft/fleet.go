package unikraft

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// A Unikraft fleet is many Unikraft unikernels built from one tree: a few
// small apps (guest/unikraft/<app>/main.c) over different configurations
// (the fc-x86_64 defconfig plus a selection of in-tree libraries and
// options). Every configuration is one real build by Unikraft's own make;
// every other app of the same configuration is an incremental make in the
// same build folder (only the app library is compiled again and the image
// linked again). Configurations are cached by a hash of everything that
// makes them, apps within them by their sources.
//
// Objects are reproducible across builds and configurations: every build
// happens in the same folder (paths end up in the objects), the compile
// date is left out of uklibid's metadata, and debug sections (-g3 records
// every CONFIG_ macro, so they differ whenever the configuration does) are
// stripped before an object is kept. A library whose code does not depend
// on what a configuration changes then has the same object, byte for byte,
// in every configuration.

// FleetApp is one app of the fleet: guest/unikraft/<name>/.
type FleetApp struct {
	Name string `json:"name"`
	// Needs are the Kconfig settings the app needs on top of a
	// configuration (a library it uses).
	Needs map[string]string `json:"needs"`
	// Sources are the app's files (main.c) plus the shared header.
	sources map[string][]byte
}

// fleetBase are the settings of every fleet configuration over the
// defconfig: ukrandom off (it seeds from RDSEED, which software emulation
// lacks; the poster's ukrandom insertion is measured on link level), and
// no compile date in uklibid's metadata (it would make every build's
// libuklibid.o different).
var fleetBase = map[string]string{
	"CONFIG_LIBUKRANDOM":                 "n",
	"CONFIG_LIBUKLIBID_INFO_COMPILEDATE": "n",
	// Debug level 1 (-g1; the defconfig has -g3): debug information is
	// stripped anyway (level 0 fails: plat/kvm/x86/setup.c has CFI
	// directives that need it),
	// -g3 slows every compile, and its macro records keep ccache from
	// finding a compile another configuration already did.
	"CONFIG_DEBUG_SYMBOLS_LVL1": "y",
	"CONFIG_DEBUG_SYMBOLS_LVL3": "n",
	// No VGA consoles (the defconfig has both): a Firecracker-flavoured
	// VM has no display to show them, the serial console carries every
	// print, and the text buffer at 0xb8000 they write cost each VM two
	// pages of its own (the buffer's page and the boot page table that
	// maps the first 2 MiB): 51.0 -> 49.0 private pages per pooled
	// helloworld VM (docs/notes/boot-info.md, Session 17 (ukpt17)).
	"CONFIG_KVM_KERNEL_VGA_CONSOLE": "n",
	"CONFIG_KVM_DEBUG_VGA_CONSOLE":  "n",
}

// fleetVersion changes when the way fleet builds are made changes.
const fleetVersion = "unipool-unikraft-fleet-v2"

// FleetApps reads the apps of guest/unikraft from fsys (the guest tree).
func FleetApps(fsys fs.FS) ([]FleetApp, error) {
	common, err := fs.ReadFile(fsys, "unikraft/common.h")
	if err != nil {
		return nil, fmt.Errorf("unikraft fleet apps: %w", err)
	}
	dirs, err := fs.ReadDir(fsys, "unikraft")
	if err != nil {
		return nil, fmt.Errorf("unikraft fleet apps: %w", err)
	}
	var apps []FleetApp
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		file := path.Join("unikraft", d.Name(), "app.json")
		data, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("unikraft fleet app: %w", err)
		}
		var a FleetApp
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if a.Name != d.Name() || !appNameRE.MatchString(a.Name) {
			return nil, fmt.Errorf("%s: name %q must be the folder's name and start with app (a library named like the app would clash)", file, a.Name)
		}
		if _, ok := appWork[a.Name]; !ok {
			return nil, fmt.Errorf("%s: no Go reference of app %s's work (internal/unikraft/apps.go)", file, a.Name)
		}
		for k := range a.Needs {
			if !configRE.MatchString(k) {
				return nil, fmt.Errorf("%s: need %q is not a CONFIG_ option", file, k)
			}
		}
		main, err := fs.ReadFile(fsys, path.Join("unikraft", d.Name(), "main.c"))
		if err != nil {
			return nil, fmt.Errorf("unikraft fleet app %s: %w", a.Name, err)
		}
		a.sources = map[string][]byte{"main.c": main, "common.h": common}
		apps = append(apps, a)
	}
	if len(apps) == 0 {
		return nil, fmt.Errorf("unikraft fleet apps: none in unikraft/ of the guest tree")
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })
	return apps, nil
}

var (
	appNameRE = regexp.MustCompile(`^app[a-z0-9]+$`)
	configRE  = regexp.MustCompile(`^CONFIG_[A-Z0-9_]+$`)
)

// key hashes an app's sources.
func (a FleetApp) key() string {
	h := sha256.New()
	for _, k := range keys(a.sources) {
		fmt.Fprintf(h, "%s %d\n", k, len(a.sources[k]))
		h.Write(a.sources[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// FleetConfig is one configuration of the fleet.
type FleetConfig struct {
	// Set are the settings over the defconfig (fleetBase is added).
	Set map[string]string
}

// Settings are the configuration's settings with the fleet's base.
func (c FleetConfig) Settings() map[string]string {
	s := map[string]string{}
	for k, v := range fleetBase {
		s[k] = v
	}
	for k, v := range c.Set {
		s[k] = v
	}
	return s
}

// ConfigBuild is one configuration, built, with some of its apps.
type ConfigBuild struct {
	Dir string // the configuration's cache folder
	Key string // its hash
	// Libraries are the non-app objects in Unikraft's link order
	// (debug-stripped): Dir/libs/libNAME.o.
	Libraries []string
	// Fragments are the extra linker-script fragments of the link, in
	// order: Dir/ld/NN-NAME.
	Fragments []string
	// Config is the final .config.
	Config string
	// Apps maps an app's name to its object (debug-stripped) and
	// Unikraft's own image of it.
	Apps map[string]AppBuild
	// Settings are all settings over the defconfig.
	Settings map[string]string
	// Built says whether this call ran Unikraft's make (false: all
	// from the cache).
	Built bool
}

// AppBuild is one app built in a configuration.
type AppBuild struct {
	Object string // the app library (appukfleet.o, stripped)
	Image  string // Unikraft's own (stock) image
}

// FleetBuildOptions say where and how to build.
type FleetBuildOptions struct {
	// Cache holds configurations (cfg-<key>/) and the one build folder
	// (work/) every build runs in.
	Cache string
	// Log receives make's output; nil discards it.
	Log io.Writer
}

// fleetDefconfig is the defconfig every configuration starts from:
// app-helloworld's fc-x86_64 (kvm platform, Firecracker VMM, x86_64).
const fleetDefconfig = "fc-x86_64"

// BuildConfig builds the configuration with the given apps (or finds them
// in the cache). Apps missing from a cached configuration make one build
// of it again, which must reproduce its libraries byte for byte.
func (t *Tree) BuildConfig(ctx context.Context, cfg FleetConfig, apps []FleetApp, o FleetBuildOptions) (*ConfigBuild, error) {
	hello, ok := t.Apps["helloworld"]
	if !ok {
		return nil, fmt.Errorf("unikraft fleet: the tree %s has no app-helloworld next to it (its %s defconfig is the fleet's base)", t.Dir, fleetDefconfig)
	}
	defData, err := os.ReadFile(filepath.Join(hello, "defconfigs", fleetDefconfig))
	if err != nil {
		return nil, fmt.Errorf("unikraft fleet: %w", err)
	}
	set := cfg.Settings()
	gcc, _ := exec.CommandContext(ctx, "gcc", "--version").Output()
	h := sha256.New()
	fmt.Fprintf(h, "%s\ntree %s\n%s\n%s\n", fleetVersion, t.Dir, defData, gcc)
	for _, k := range keys(set) {
		fmt.Fprintf(h, "%s=%s\n", k, set[k])
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	dir := filepath.Join(o.Cache, "cfg-"+key)
	cb := &ConfigBuild{Dir: dir, Key: key, Apps: map[string]AppBuild{}, Settings: set}
	if err := os.MkdirAll(o.Cache, 0o755); err != nil {
		return nil, fmt.Errorf("unikraft fleet: %w", err)
	}
	// One build folder for all: paths must be the same in every build.
	lock, err := lockFile(filepath.Join(o.Cache, "work.lock"))
	if err != nil {
		return nil, fmt.Errorf("unikraft fleet: %w", err)
	}
	defer lock.Close()
	var missing []FleetApp
	for _, a := range apps {
		ab := AppBuild{Object: filepath.Join(dir, "apps", a.Name+"-"+a.key(), "app.o"), Image: filepath.Join(dir, "apps", a.Name+"-"+a.key(), "image")}
		if !exists(ab.Image) {
			missing = append(missing, a)
		}
		cb.Apps[a.Name] = ab
	}
	complete := exists(filepath.Join(dir, "config.json"))
	if complete {
		if err := readConfigBuild(cb); err != nil {
			return nil, err
		}
	}
	if len(missing) == 0 && complete {
		return cb, nil
	}
	if len(apps) == 0 {
		return nil, fmt.Errorf("unikraft fleet: a configuration needs at least one app to build")
	}
	if len(missing) == 0 {
		missing = apps[:1]
	}
	for _, tool := range []string{"make", "gcc", "flex", "bison", "objcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("unikraft: building needs %s (Debian: apt-get install make gcc flex bison binutils; scripts/deps.sh installs them)", tool)
		}
	}
	if err := t.buildConfig(ctx, o, cb, defData, set, missing, complete); err != nil {
		return nil, err
	}
	cb.Built = true
	return cb, nil
}

// configRecord is cfg-<key>/config.json: what the build left.
type configRecord struct {
	Libraries []string          `json:"libraries"` // file names in libs/, link order
	Fragments []string          `json:"fragments"` // file names in ld/, in order
	Set       map[string]string `json:"set"`
}

func readConfigBuild(cb *ConfigBuild) error {
	data, err := os.ReadFile(filepath.Join(cb.Dir, "config.json"))
	if err != nil {
		return fmt.Errorf("unikraft fleet: %w", err)
	}
	var r configRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("unikraft fleet: %s: %w", filepath.Join(cb.Dir, "config.json"), err)
	}
	cb.Libraries, cb.Fragments = nil, nil
	for _, l := range r.Libraries {
		cb.Libraries = append(cb.Libraries, filepath.Join(cb.Dir, "libs", l))
	}
	for _, f := range r.Fragments {
		cb.Fragments = append(cb.Fragments, filepath.Join(cb.Dir, "ld", f))
	}
	cb.Config = filepath.Join(cb.Dir, "config")
	return nil
}

// fleetAppLib is the app library's name in every fleet build: one name,
// so that uklibid's list of libraries (and so libuklibid.o) is the same
// whatever the app.
const fleetAppLib = "appukfleet"

// buildConfig runs Unikraft's make in Cache/work for the configuration:
// a full build with the first app, then for each further app its new
// main.c, the app library and the image made again.
func (t *Tree) buildConfig(ctx context.Context, o FleetBuildOptions, cb *ConfigBuild, defData []byte, set map[string]string, apps []FleetApp, complete bool) error {
	work := filepath.Join(o.Cache, "work")
	app := filepath.Join(work, "app")
	build := filepath.Join(work, "build")
	// A fresh build folder, but for Kconfig's own tools (built from the
	// tree, the same for every configuration).
	if err := os.RemoveAll(app); err != nil {
		return fmt.Errorf("unikraft fleet: %w", err)
	}
	if ents, err := os.ReadDir(build); err == nil {
		for _, e := range ents {
			if e.Name() != "kconfig" {
				if err := os.RemoveAll(filepath.Join(build, e.Name())); err != nil {
					return fmt.Errorf("unikraft fleet: %w", err)
				}
			}
		}
	}
	if err := os.MkdirAll(app, 0o755); err != nil {
		return fmt.Errorf("unikraft fleet: %w", err)
	}
	files := map[string]string{
		"Makefile.uk": "$(eval $(call addlib," + fleetAppLib + "))\n\n" + strings.ToUpper(fleetAppLib) + "_SRCS-y += $(" + strings.ToUpper(fleetAppLib) + "_BASE)/main.c\n",
		"Config.uk":   "config " + strings.ToUpper(fleetAppLib) + "_DEPENDENCIES\n\tbool\n\tdefault y\n\tselect LIBNOLIBC if !HAVE_LIBC\n",
	}
	def := regexp.MustCompile(`(?m)^CONFIG_UK_(DEF)?NAME=.*$`).ReplaceAllString(string(defData), `CONFIG_UK_${1}NAME="ukfleet"`)
	files["defconfig"] = def
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(app, name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("unikraft fleet: %w", err)
		}
	}
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	var tail bytes.Buffer
	mk := func(goal ...string) error {
		args := append([]string{"-C", t.Dir, "A=" + app, "O=" + build}, goal...)
		if cc, err := exec.LookPath("ccache"); err == nil {
			// Compiles that come out the same in another configuration
			// are taken from ccache (preprocessed-source keyed).
			args = append(args, "COMPILER="+cc+" gcc")
		}
		cmd := exec.CommandContext(ctx, "make", args...)
		cmd.Env = append(os.Environ(), "LC_ALL=C", "CCACHE_DIR="+filepath.Join(o.Cache, "ccache"), "CCACHE_NOHASHDIR=1", "CCACHE_BASEDIR="+work)
		tail.Reset()
		w := io.MultiWriter(log, &tail)
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Run(); err != nil {
			s := tail.String()
			if len(s) > 3000 {
				s = s[len(s)-3000:]
			}
			return fmt.Errorf("unikraft fleet: make %s: %v\n%s", strings.Join(goal, " "), err, s)
		}
		return nil
	}
	writeApp := func(a FleetApp) error {
		for name, data := range a.sources {
			if err := os.WriteFile(filepath.Join(app, name), data, 0o644); err != nil {
				return fmt.Errorf("unikraft fleet: %w", err)
			}
		}
		return nil
	}
	if err := writeApp(apps[0]); err != nil {
		return err
	}
	if err := mk("UK_DEFCONFIG="+filepath.Join(app, "defconfig"), "defconfig"); err != nil {
		return err
	}
	if err := setConfig(filepath.Join(app, ".config"), set); err != nil {
		return err
	}
	if err := mk("olddefconfig"); err != nil {
		return err
	}
	if err := checkConfig(filepath.Join(app, ".config"), set); err != nil {
		return err
	}
	// Unikraft's first prepare may write .config once more (syncconfig);
	// a second one settles build/config and config.h, so that making the
	// next app does not find the configuration changed and compile
	// everything again.
	for range 2 {
		if err := mk("prepare"); err != nil {
			return err
		}
	}
	for i, a := range apps {
		if i > 0 {
			// Only the app library and the image are made again.
			old, _ := filepath.Glob(filepath.Join(build, fleetAppLib+"*"))
			imgs, _ := filepath.Glob(filepath.Join(build, "ukfleet_*"))
			for _, p := range append(old, imgs...) {
				os.RemoveAll(p)
			}
			if err := writeApp(a); err != nil {
				return err
			}
		}
		if err := mk("-j2"); err != nil {
			return fmt.Errorf("app %s: %w", a.Name, err)
		}
		b, err := readBuild(work)
		if err != nil {
			return err
		}
		if i == 0 {
			if err := keepConfig(cb, b, set, complete); err != nil {
				return err
			}
		}
		var appObj string
		for _, obj := range b.Objects {
			if filepath.Base(obj) == fleetAppLib+".o" {
				appObj = obj
			}
		}
		if appObj == "" {
			return fmt.Errorf("unikraft fleet: the build in %s linked no %s.o", build, fleetAppLib)
		}
		ab := cb.Apps[a.Name]
		if err := os.MkdirAll(filepath.Dir(ab.Object), 0o755); err != nil {
			return fmt.Errorf("unikraft fleet: %w", err)
		}
		if err := stripDebug(ctx, appObj, ab.Object); err != nil {
			return err
		}
		if err := copyFile(b.Image, ab.Image+".tmp", 0o755); err != nil {
			return err
		}
		if err := os.Rename(ab.Image+".tmp", ab.Image); err != nil {
			return fmt.Errorf("unikraft fleet: %w", err)
		}
	}
	return nil
}

// keepConfig stores the configuration's libraries, fragments and .config
// from a finished build; when the configuration was kept before, the
// libraries must come out byte for byte the same.
func keepConfig(cb *ConfigBuild, b *Build, set map[string]string, complete bool) error {
	tmp := cb.Dir + ".tmp"
	os.RemoveAll(tmp)
	for _, d := range []string{"libs", "ld"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			return fmt.Errorf("unikraft fleet: %w", err)
		}
	}
	rec := configRecord{Set: set}
	for _, obj := range b.Objects {
		base := filepath.Base(obj)
		if base == fleetAppLib+".o" {
			continue
		}
		if err := stripDebug(context.Background(), obj, filepath.Join(tmp, "libs", base)); err != nil {
			return err
		}
		rec.Libraries = append(rec.Libraries, base)
	}
	for i, f := range b.Fragments {
		name := fmt.Sprintf("%02d-%s", i, filepath.Base(f))
		if err := copyFile(f, filepath.Join(tmp, "ld", name), 0o444); err != nil {
			return err
		}
		rec.Fragments = append(rec.Fragments, name)
	}
	if err := copyFile(b.Config, filepath.Join(tmp, "config"), 0o444); err != nil {
		return err
	}
	if complete {
		// Kept before: the new build must be the same.
		for _, l := range rec.Libraries {
			a, _ := os.ReadFile(filepath.Join(tmp, "libs", l))
			b, err := os.ReadFile(filepath.Join(cb.Dir, "libs", l))
			if err != nil || !bytes.Equal(a, b) {
				os.RemoveAll(tmp)
				return fmt.Errorf("unikraft fleet: building configuration %s again gave another %s than the one kept in %s: the build is not reproducible", cb.Key, l, cb.Dir)
			}
		}
		os.RemoveAll(tmp)
		return readConfigBuild(cb)
	}
	data, _ := json.MarshalIndent(rec, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "config.json"), append(data, '\n'), 0o444); err != nil {
		return fmt.Errorf("unikraft fleet: %w", err)
	}
	// Apps kept by an earlier, unfinished attempt go with the old folder.
	os.RemoveAll(cb.Dir)
	if err := os.Rename(tmp, cb.Dir); err != nil {
		return fmt.Errorf("unikraft fleet: %w", err)
	}
	return readConfigBuild(cb)
}

// checkConfig checks that every setting survived olddefconfig: an option
// whose dependencies are off is silently dropped by Kconfig.
func checkConfig(file string, set map[string]string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("unikraft fleet: %w", err)
	}
	have := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			have[k] = v
		}
	}
	var bad []string
	for _, k := range keys(set) {
		want := set[k]
		got, ok := have[k]
		switch {
		case want == "n" && ok && got != "n":
			bad = append(bad, fmt.Sprintf("%s=n but it is %s", k, got))
		case want != "n" && got != want:
			if !ok {
				got = "not set"
			}
			bad = append(bad, fmt.Sprintf("%s=%s but it is %s", k, want, got))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("unikraft fleet: %s: Kconfig did not keep %s (an unmet dependency or a choice)", file, strings.Join(bad, "; "))
	}
	return nil
}

// stripDebug writes obj without its debug sections: -g3 puts every
// CONFIG_ macro into .debug_macro, so debug sections differ between
// configurations even where the code does not; nothing unipool does
// reads them.
func stripDebug(ctx context.Context, obj, dst string) error {
	tmp := dst + ".tmp"
	os.Remove(tmp)
	if out, err := exec.CommandContext(ctx, "objcopy", "--strip-debug", obj, tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("unikraft fleet: objcopy --strip-debug %s: %v: %s", obj, err, out)
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("unikraft fleet: %w", err)
	}
	os.Remove(dst)
	if err := os.WriteFile(dst, data, mode); err != nil {
		return fmt.Errorf("unikraft fleet: %w", err)
	}
	return nil
}
