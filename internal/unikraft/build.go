package unikraft

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// BuildOptions say what to build.
type BuildOptions struct {
	App       string // an app of the tree ("helloworld")
	Defconfig string // a file in the app's defconfigs/ ("fc-x86_64")
	// Set overrides configuration options after the defconfig:
	// "CONFIG_LIBUKRANDOM" -> "n" (or "y", or a value).
	Set map[string]string
	// Out is the build folder; "" keeps the build in the cache, keyed by
	// everything that makes it (reused when it exists).
	Out string
	// Log receives make's output; nil discards it.
	Log *bytes.Buffer
}

// Build is a finished Unikraft build.
type Build struct {
	Dir string // the build folder (O=)
	// Objects are the per-library objects in the order Unikraft links
	// them (libkvmplat.o, apphelloworld.o, ...).
	Objects []string
	// Fragments are the extra linker-script fragments Unikraft's link
	// passes with -T (bootinfo.lds, infosec.ld, extra.ld, ...); the
	// platform script (-dT link64.lds) is not among them.
	Fragments []string
	// Image is Unikraft's own linked image (stock, as a VMM boots it).
	Image string
	// Config is the final .config.
	Config string
}

// NoRDSEED are the settings a build needs to boot where the CPU has no
// RDRAND/RDSEED (software emulation): ukrandom, which seeds from them,
// off.
var NoRDSEED = map[string]string{"CONFIG_LIBUKRANDOM": "n"}

var buildMu sync.Mutex // one build at a time per process: make -j2 each

// Build builds an app of the tree into per-library objects.
func (t *Tree) Build(ctx context.Context, opt BuildOptions) (*Build, error) {
	appDir, ok := t.Apps[opt.App]
	if !ok {
		return nil, fmt.Errorf("unikraft: no app %q next to %s (have %v)", opt.App, t.Dir, keys(t.Apps))
	}
	defconfig := filepath.Join(appDir, "defconfigs", opt.Defconfig)
	defData, err := os.ReadFile(defconfig)
	if err != nil {
		return nil, fmt.Errorf("unikraft: app %s: %w", opt.App, err)
	}
	gcc, _ := exec.CommandContext(ctx, "gcc", "--version").Output()
	h := sha256.New()
	fmt.Fprintf(h, "tree %s\napp %s\n%s\n%s\n", t.Dir, appDir, defData, gcc)
	for _, k := range keys(opt.Set) {
		fmt.Fprintf(h, "%s=%s\n", k, opt.Set[k])
	}
	out := opt.Out
	if out == "" {
		cache, err := cacheDir()
		if err != nil {
			return nil, err
		}
		out = filepath.Join(cache, "build", fmt.Sprintf("%s-%s-%s", opt.App, opt.Defconfig, hex.EncodeToString(h.Sum(nil))[:12]))
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	// Test binaries of several packages may build the same app at once.
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, err
	}
	lock, err := lockFile(out + ".lock")
	if err != nil {
		return nil, fmt.Errorf("unikraft: %w", err)
	}
	defer lock.Close()
	if exists(filepath.Join(out, ".complete")) {
		return readBuild(out)
	}
	for _, tool := range []string{"make", "gcc", "flex", "bison"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("unikraft: building needs %s (Debian: apt-get install make gcc flex bison; scripts/deps.sh installs them)", tool)
		}
	}
	os.RemoveAll(out)
	// Unikraft writes .config into the app folder: build a copy.
	app := filepath.Join(out, "app")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	if o, err := exec.CommandContext(ctx, "cp", "-a", appDir, app).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("unikraft: copying %s: %v: %s", appDir, err, o)
	}
	build := filepath.Join(out, "build")
	log := opt.Log
	if log == nil {
		log = &bytes.Buffer{}
	}
	mk := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "make", append([]string{"-C", t.Dir, "A=" + app, "O=" + build}, args...)...)
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			tail := log.String()
			if len(tail) > 3000 {
				tail = tail[len(tail)-3000:]
			}
			return fmt.Errorf("unikraft: make %s: %v\n%s", strings.Join(args, " "), err, tail)
		}
		return nil
	}
	if err := mk("UK_DEFCONFIG="+defconfig, "defconfig"); err != nil {
		return nil, err
	}
	if len(opt.Set) > 0 {
		if err := setConfig(filepath.Join(app, ".config"), opt.Set); err != nil {
			return nil, err
		}
		if err := mk("olddefconfig"); err != nil {
			return nil, err
		}
	}
	if err := mk("-j2"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(out, ".complete"), nil, 0o644); err != nil {
		return nil, err
	}
	return readBuild(out)
}

// setConfig rewrites options of a .config.
func setConfig(path string, set map[string]string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(string(data), "\n")
	done := map[string]bool{}
	for i, l := range lines {
		for k, v := range set {
			if strings.HasPrefix(l, k+"=") || l == "# "+k+" is not set" {
				lines[i] = configLine(k, v)
				done[k] = true
			}
		}
	}
	for _, k := range keys(set) {
		if !done[k] {
			lines = append(lines, configLine(k, set[k]))
		}
	}
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)
}

func configLine(k, v string) string {
	if v == "n" {
		return "# " + k + " is not set"
	}
	return k + "=" + v
}

// linkCmd finds the final link's command line Unikraft recorded.
var (
	objArg  = regexp.MustCompile(`(\S+/(?:lib|app)[A-Za-z0-9_+-]*\.o)\b`)
	fragArg = regexp.MustCompile(`-Wl,-T,(\S+)`)
)

// readBuild reads a finished build folder.
func readBuild(out string) (*Build, error) {
	build := filepath.Join(out, "build")
	cmds, _ := filepath.Glob(filepath.Join(build, "*.dbg.cmd"))
	if len(cmds) != 1 {
		return nil, fmt.Errorf("unikraft: %s: want one final link command (*.dbg.cmd), found %d", build, len(cmds))
	}
	data, err := os.ReadFile(cmds[0])
	if err != nil {
		return nil, err
	}
	b := &Build{Dir: build, Image: strings.TrimSuffix(cmds[0], ".dbg.cmd"), Config: filepath.Join(out, "app", ".config")}
	for _, m := range objArg.FindAllStringSubmatch(string(data), -1) {
		b.Objects = append(b.Objects, m[1])
	}
	for _, m := range fragArg.FindAllStringSubmatch(string(data), -1) {
		b.Fragments = append(b.Fragments, m[1])
	}
	if len(b.Objects) == 0 {
		return nil, fmt.Errorf("unikraft: %s names no objects", cmds[0])
	}
	for _, p := range append(append([]string{b.Image}, b.Objects...), b.Fragments...) {
		if !exists(p) {
			return nil, fmt.Errorf("unikraft: build %s: %s is missing", build, p)
		}
	}
	return b, nil
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// lockFile opens (creating) and exclusively flocks path; closing the file
// releases the lock.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
