package apps_test

// The apps and microlibs are freestanding standard C, so the host's gcc and
// glibc can build and run them natively: that is how these tests check the
// apps' logic without a monitor. Objects are built the way the corpus
// builder builds them (same code-generation flags, `ld -r` per library,
// symbols localised per exportsyms.uk, third-party members pulled from the
// Debian archives with `ld -r -u`) and cached for the whole test run.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// platformLibs belong to the guest platform (boot, libc, allocators, clock,
// random): they need the guest ABI and are not built on the host.
var platformLibs = map[string]bool{
	"libc": true, "ukboot": true, "ukallocbuddy": true, "ukalloctlsf": true,
	"uktime": true, "ukrand": true,
}

// guestCFlags are the corpus builder's code-generation flags (docs/formats.md)
// plus warnings as errors. -nostdlib is a link flag: native links use glibc.
var guestCFlags = []string{
	"-O2", "-ffreestanding", "-fpie", "-mno-red-zone", "-ffunction-sections",
	"-fdata-sections", "-fstack-protector-strong", "-fno-plt",
	"-Wall", "-Wextra", "-Werror",
}

type variant struct {
	ID      string   `json:"id"`
	Defines []string `json:"defines"`
}

// library is a guest/lib/<name>/lib.json or guest/third_party/<name>/lib.json.
type library struct {
	Name       string    `json:"name"`
	Core       bool      `json:"core"`
	Popularity *float64  `json:"popularity"`
	Deps       []string  `json:"deps"`
	Variants   []variant `json:"variants"`
	Cflags     []string  `json:"cflags"`
	Origin     string    `json:"origin"`
	Archive    string    `json:"archive"`
	Symbols    []string  `json:"symbols"`

	dir        string
	thirdParty bool
}

type testCase struct {
	Input  string `json:"input"`
	Expect string `json:"expect"`
}

// app is a guest/apps/<name>/app.json.
type app struct {
	Name  string     `json:"name"`
	Deps  []string   `json:"deps"`
	Cases []testCase `json:"cases"`

	dir string
}

type guestTree struct {
	root string
	libs map[string]*library
	apps map[string]*app
}

var (
	treeOnce sync.Once
	tree     *guestTree
	treeErr  error
)

// loadTree reads every library and app description once per test run.
func loadTree(t testing.TB) *guestTree {
	t.Helper()
	treeOnce.Do(func() { tree, treeErr = readTree("..") })
	if treeErr != nil {
		t.Fatal(treeErr)
	}
	return tree
}

func readJSONStrict(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func readTree(guest string) (*guestTree, error) {
	root, err := filepath.Abs(guest)
	if err != nil {
		return nil, err
	}
	gt := &guestTree{root: root, libs: map[string]*library{}, apps: map[string]*app{}}
	for _, part := range []string{"lib", "third_party"} {
		dirs, _ := filepath.Glob(filepath.Join(root, part, "*", "lib.json"))
		for _, p := range dirs {
			dir := filepath.Dir(p)
			if part == "lib" && platformLibs[filepath.Base(dir)] {
				continue
			}
			l := &library{dir: dir, thirdParty: part == "third_party"}
			if err := readJSONStrict(p, l); err != nil {
				return nil, err
			}
			if l.Name != filepath.Base(dir) {
				return nil, fmt.Errorf("%s: name %q differs from its folder", p, l.Name)
			}
			gt.libs[l.Name] = l
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(root, "apps", "*", "app.json"))
	for _, p := range dirs {
		a := &app{dir: filepath.Dir(p)}
		if err := readJSONStrict(p, a); err != nil {
			return nil, err
		}
		if a.Name != filepath.Base(a.dir) {
			return nil, fmt.Errorf("%s: name %q differs from its folder", p, a.Name)
		}
		gt.apps[a.Name] = a
	}
	return gt, nil
}

// closure returns deps and everything they need, dependencies after their
// users (link order), each once.
func (gt *guestTree) closure(deps []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, from string) error
	visit = func(n, from string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("dependency cycle through %s", n)
		case 2:
			return nil
		}
		l, ok := gt.libs[n]
		if !ok {
			return fmt.Errorf("%s needs unknown library %q", from, n)
		}
		state[n] = 1
		for _, d := range l.Deps {
			if err := visit(d, n); err != nil {
				return err
			}
		}
		state[n] = 2
		order = append(order, n)
		return nil
	}
	for _, d := range deps {
		if err := visit(d, "app"); err != nil {
			return nil, err
		}
	}
	// reverse post-order: users before what they use
	for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
		order[i], order[j] = order[j], order[i]
	}
	return order, nil
}

func (gt *guestTree) includeFlags() []string {
	var names []string
	for n, l := range gt.libs {
		if !l.thirdParty {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var flags []string
	for _, n := range names {
		flags = append(flags, "-I"+filepath.Join(gt.libs[n].dir, "include"))
	}
	// ukboot's header alone (UK_INIT_PHASE): it includes nothing, so it
	// builds against glibc too. Natively nothing runs the init phase; the
	// apps call their init functions from main as well.
	return append(flags, "-I"+filepath.Join(gt.root, "lib", "ukboot", "include"))
}

// builder caches build products for the whole test run, keyed by what
// determines them; concurrent requests for one key wait for one build.
type builder struct {
	dir string
	mu  sync.Mutex
	m   map[string]*buildEntry
}

type buildEntry struct {
	once sync.Once
	path string
	err  error
}

var (
	theBuilder  *builder
	builderOnce sync.Once
)

func getBuilder(t testing.TB) *builder {
	t.Helper()
	builderOnce.Do(func() {
		dir, err := os.MkdirTemp("", "guest-apps-test-")
		if err != nil {
			panic(err)
		}
		theBuilder = &builder{dir: dir, m: map[string]*buildEntry{}}
	})
	return theBuilder
}

func (b *builder) once(key string, build func(out string) error) (string, error) {
	b.mu.Lock()
	e, ok := b.m[key]
	if !ok {
		e = &buildEntry{}
		b.m[key] = e
	}
	b.mu.Unlock()
	e.once.Do(func() {
		name := strings.NewReplacer("/", "_", "=", "-", " ", "_", ":", "_").Replace(key)
		e.path = filepath.Join(b.dir, name)
		e.err = build(e.path)
	})
	return e.path, e.err
}

func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return nil
}

// compileDir compiles every .c file of dir into one relocatable object.
func (b *builder) compileDir(gt *guestTree, dir string, defines []string, extra []string, out string) error {
	srcs, _ := filepath.Glob(filepath.Join(dir, "*.c"))
	if len(srcs) == 0 {
		return fmt.Errorf("%s: no C sources", dir)
	}
	var objs []string
	for i, src := range srcs {
		obj := fmt.Sprintf("%s.%d.o", out, i)
		args := append([]string{}, guestCFlags...)
		args = append(args, extra...)
		for _, d := range defines {
			args = append(args, "-D"+d)
		}
		args = append(args, gt.includeFlags()...)
		args = append(args, "-c", src, "-o", obj)
		if err := run("gcc", args...); err != nil {
			return err
		}
		objs = append(objs, obj)
	}
	return run("ld", append([]string{"-r", "-o", out}, objs...)...)
}

// sanitizeFlags instrument builds that parse untrusted input, so an
// out-of-bounds access or undefined behaviour fails the test run.
var sanitizeFlags = []string{"-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"}

// libObject builds library name in variant v, before localisation.
func (b *builder) libObject(gt *guestTree, name string, v variant) (string, error) {
	return b.libObjectFlavour(gt, name, v, false)
}

func (b *builder) libObjectFlavour(gt *guestTree, name string, v variant, sanitize bool) (string, error) {
	l := gt.libs[name]
	key := "lib:" + name + ":" + v.ID
	extra := l.Cflags
	if sanitize && !l.thirdParty {
		key += ":san"
		extra = append(append([]string{}, l.Cflags...), sanitizeFlags...)
	}
	return b.once(key, func(out string) error {
		if l.thirdParty {
			args := []string{"-r", "-o", out}
			for _, s := range l.Symbols {
				args = append(args, "-u", s)
			}
			return run("ld", append(args, l.Archive)...)
		}
		return b.compileDir(gt, l.dir, v.Defines, extra, out)
	})
}

// localObject is libObject with every symbol not in exportsyms.uk made
// local, as the corpus builder does, so apps can only reach exports.
func (b *builder) localObject(gt *guestTree, name string, v variant) (string, error) {
	return b.localObjectFlavour(gt, name, v, false)
}

func (b *builder) localObjectFlavour(gt *guestTree, name string, v variant, sanitize bool) (string, error) {
	l := gt.libs[name]
	obj, err := b.libObjectFlavour(gt, name, v, sanitize)
	if err != nil || l.thirdParty {
		return obj, err
	}
	key := "local:" + name + ":" + v.ID
	if sanitize {
		key += ":san"
	}
	return b.once(key, func(out string) error {
		return run("objcopy", "--keep-global-symbols="+filepath.Join(l.dir, "exportsyms.uk"), obj, out)
	})
}

func defaultVariant(l *library) variant {
	if len(l.Variants) == 0 {
		return variant{ID: "default"}
	}
	return l.Variants[0]
}

// config chooses a variant per library; libraries not named use their first.
type config map[string]variant

func (c config) key() string {
	var parts []string
	for n, v := range c {
		parts = append(parts, n+"="+v.ID)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// appBinary links app a natively with its library closure in cfg.
func (b *builder) appBinary(gt *guestTree, a *app, cfg config) (string, error) {
	libs, err := gt.closure(a.Deps)
	if err != nil {
		return "", fmt.Errorf("%s: %w", a.dir, err)
	}
	var used []string
	for n := range cfg {
		for _, l := range libs {
			if l == n {
				used = append(used, n+"="+cfg[n].ID)
			}
		}
	}
	sort.Strings(used)
	appObj, err := b.once("appobj:"+a.Name, func(out string) error {
		return b.compileDir(gt, a.dir, nil, nil, out)
	})
	if err != nil {
		return "", err
	}
	return b.once("app:"+a.Name+":"+strings.Join(used, ","), func(out string) error {
		args := []string{"-o", out, appObj}
		for _, n := range libs {
			v, ok := cfg[n]
			if !ok {
				v = defaultVariant(gt.libs[n])
			}
			obj, err := b.localObject(gt, n, v)
			if err != nil {
				return err
			}
			args = append(args, obj)
		}
		return run("gcc", args...)
	})
}

// driverBinary links a C test driver from testdata/drivers with libs (and
// what they need), each in its cfg variant, optionally sanitized.
func (b *builder) driverBinary(gt *guestTree, driver string, cfg config, sanitize bool, libs ...string) (string, error) {
	closure, err := gt.closure(libs)
	if err != nil {
		return "", err
	}
	key := "driver:" + driver + ":" + cfg.key()
	var extra []string
	if sanitize {
		key += ":san"
		extra = sanitizeFlags
	}
	return b.once(key, func(out string) error {
		src, err := filepath.Abs(filepath.Join("testdata", "drivers", driver+".c"))
		if err != nil {
			return err
		}
		obj := out + ".o"
		args := append(append([]string{}, guestCFlags...), extra...)
		args = append(args, gt.includeFlags()...)
		if err := run("gcc", append(args, "-c", src, "-o", obj)...); err != nil {
			return err
		}
		link := append([]string{"-o", out, obj}, extra...)
		for _, n := range closure {
			v, ok := cfg[n]
			if !ok {
				v = defaultVariant(gt.libs[n])
			}
			o, err := b.localObjectFlavour(gt, n, v, sanitize)
			if err != nil {
				return err
			}
			link = append(link, o)
		}
		return run("gcc", link...)
	})
}

// runDriver feeds lines to a driver and returns its output lines.
func runDriver(t testing.TB, bin string, lines []string) []string {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, stderr.String())
	}
	var res []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		res = append(res, sc.Text())
	}
	if len(res) != len(lines) {
		t.Fatalf("%s: %d output lines for %d input lines", bin, len(res), len(lines))
	}
	return res
}

// nmSymbols lists an object's symbols by nm class letter.
func nmSymbols(obj string) (defined, undefined []string, err error) {
	out, err := exec.Command("nm", obj).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("nm %s: %w", obj, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && (f[0] == "U" || f[0] == "w"):
			undefined = append(undefined, f[1])
		case len(f) == 3 && strings.ContainsAny(f[1], "TDBRVWiu"):
			defined = append(defined, f[2])
		}
	}
	return defined, undefined, nil
}

func readLines(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if theBuilder != nil {
		os.RemoveAll(theBuilder.dir)
	}
	os.Exit(code)
}
