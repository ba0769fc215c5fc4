package runtimetest

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/corpus"
)

// guestRoot is the guest tree, seen from this package's directory.
const guestRoot = ".."

// libJSON is the part of lib.json these tests use.
type libJSON struct {
	Name     string   `json:"name"`
	Cflags   []string `json:"cflags"`
	Variants []struct {
		ID      string   `json:"id"`
		Defines []string `json:"defines"`
	} `json:"variants"`
}

func readLib(t testing.TB, dir string) libJSON {
	t.Helper()
	file := filepath.Join(guestRoot, dir, "lib.json")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var l libJSON
	if err := json.Unmarshal(data, &l); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(l.Variants) == 0 {
		l.Variants = append(l.Variants, struct {
			ID      string   `json:"id"`
			Defines []string `json:"defines"`
		}{ID: "default"})
	}
	return l
}

func (l libJSON) defines(t testing.TB, variant string) []string {
	for _, v := range l.Variants {
		if v.ID == variant {
			return v.Defines
		}
	}
	t.Fatalf("%s has no variant %q", l.Name, variant)
	return nil
}

// includeDirs are every include/ folder of the guest tree, as the corpus
// build passes them.
func includeDirs(t testing.TB) []string {
	t.Helper()
	var dirs []string
	for _, pat := range []string{"plat/include", "lib/*/include", "third_party/*/include"} {
		m, err := filepath.Glob(filepath.Join(guestRoot, pat))
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, m...)
	}
	for i, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			t.Fatal(err)
		}
		dirs[i] = abs
	}
	return dirs
}

func run(t testing.TB, dir, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out, stderr bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), stderr.String())
	}
	return out.Bytes()
}

// sources lists a library folder's .c and .S files outside include/.
func sources(t testing.TB, dir string, withAsm bool) []string {
	t.Helper()
	var src []string
	root := filepath.Join(guestRoot, dir)
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "include" {
			return filepath.SkipDir
		}
		switch filepath.Ext(p) {
		case ".c":
			src = append(src, p)
		case ".S", ".s":
			if withAsm {
				src = append(src, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(src)
	return src
}

// compileFlags are the guest's compiler flags (the corpus build's), with
// the host's C library headers kept out: only the guest's and gcc's own
// freestanding headers may be found.
func compileFlags(t testing.TB, l libJSON, defines []string) []string {
	t.Helper()
	gccInc := strings.TrimSpace(string(run(t, ".", "gcc", "-print-file-name=include")))
	args := append([]string{}, corpus.BaseCflags...)
	args = append(args, "-Wall", "-Wextra", "-Werror", "-nostdinc", "-isystem", gccInc)
	args = append(args, l.Cflags...)
	for _, d := range defines {
		args = append(args, "-D"+d)
	}
	for _, inc := range includeDirs(t) {
		args = append(args, "-I"+inc)
	}
	return args
}

// objCache holds every object compiled in this test process, keyed by
// source and the variant defines that source can see: most files of a
// library do not mention a given variant's macros, and compiling them
// once instead of once per variant keeps the tests fast.
var objCache = struct {
	sync.Mutex
	m map[string]*objEntry
}{m: map[string]*objEntry{}}

type objEntry struct {
	once sync.Once
	path string
	err  error
}

// relevantDefines keeps the defines whose macro name occurs in src or in
// any header of the library's folder.
func relevantDefines(t testing.TB, dir, src string, defines []string) []string {
	t.Helper()
	texts := []string{src}
	err := filepath.WalkDir(filepath.Join(guestRoot, dir), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".h" {
			texts = append(texts, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, f := range texts {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(data)
	}
	var out []string
	for _, d := range defines {
		name, _, _ := strings.Cut(d, "=")
		if strings.Contains(all.String(), name) {
			out = append(out, d)
		}
	}
	return out
}

// compileObject compiles src (of the library in dir) for a variant,
// reusing an earlier compile with the same relevant defines.
func compileObject(t testing.TB, work, dir, src, variant string) string {
	t.Helper()
	l := readLib(t, dir)
	defs := relevantDefines(t, dir, src, l.defines(t, variant))
	flags := compileFlags(t, l, defs)
	abs, err := filepath.Abs(src)
	if err != nil {
		t.Fatal(err)
	}
	key := abs + "\x00" + strings.Join(flags, "\x00")
	objCache.Lock()
	e := objCache.m[key]
	if e == nil {
		e = &objEntry{path: filepath.Join(work, fmt.Sprintf("obj%04d-%s.o", len(objCache.m),
			strings.TrimSuffix(filepath.Base(src), filepath.Ext(src))))}
		objCache.m[key] = e
	}
	objCache.Unlock()
	e.once.Do(func() {
		args := append(append([]string{}, flags...), "-Wa,--noexecstack", "-c", abs, "-o", e.path)
		if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			e.err = fmt.Errorf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if e.err != nil {
		t.Fatal(e.err)
	}
	return e.path
}

// buildLib compiles one library variant into one relocatable object (ld
// -r), the way the corpus does. withAsm=false leaves out the assembly (for
// the platform's privileged instructions, which host builds replace).
func buildLib(t testing.TB, work, dir, variant string, withAsm bool) string {
	t.Helper()
	var objs []string
	for _, src := range sources(t, dir, withAsm) {
		objs = append(objs, compileObject(t, work, dir, src, variant))
	}
	asm := "asm"
	if !withAsm {
		asm = "noasm"
	}
	out := filepath.Join(work, fmt.Sprintf("lib%s-%s-%s.o", filepath.Base(dir), variant, asm))
	run(t, work, "ld", append([]string{"-r", "-o", out}, objs...)...)
	return out
}

// localize keeps only a library's exportsyms.uk global, as the corpus does.
func localize(t testing.TB, work, dir, obj string) string {
	t.Helper()
	list, err := filepath.Abs(filepath.Join(guestRoot, dir, "exportsyms.uk"))
	if err != nil {
		t.Fatal(err)
	}
	out := strings.TrimSuffix(obj, ".o") + "-local.o"
	run(t, work, "objcopy", "--keep-global-symbols="+list, obj, out)
	return out
}

// A runtimeSet is one combination of library variants linked together.
type runtimeSet struct {
	name                string
	libc, alloc, allocV string
	randV               string
}

// runtimeSets covers every variant of libc, both allocators and ukrand at
// least once, with one set per allocator variant.
func runtimeSets(t testing.TB) []runtimeSet {
	t.Helper()
	libc := readLib(t, "lib/libc")
	rnd := readLib(t, "lib/ukrand")
	var sets []runtimeSet
	for _, alloc := range []string{"ukallocbuddy", "ukalloctlsf"} {
		for _, v := range readLib(t, "lib/"+alloc).Variants {
			i := len(sets)
			s := runtimeSet{
				libc:   libc.Variants[i%len(libc.Variants)].ID,
				alloc:  alloc,
				allocV: v.ID,
				randV:  rnd.Variants[i%len(rnd.Variants)].ID,
			}
			s.name = fmt.Sprintf("libc=%s,%s=%s,ukrand=%s", s.libc, alloc, v.ID, s.randV)
			sets = append(sets, s)
		}
	}
	if len(sets) < len(libc.Variants) {
		t.Fatalf("%d sets cannot cover libc's %d variants", len(sets), len(libc.Variants))
	}
	return sets
}

var (
	driversMu sync.Mutex
	drivers   = map[string]*driverEntry{} // by set name

	workDir  string // every object and driver of this test process
	workErr  error
	workOnce sync.Once
)

type driverEntry struct {
	once sync.Once
	exe  string
	err  error
}

// work returns the folder all builds of this test process share.
func work(t testing.TB) string {
	t.Helper()
	workOnce.Do(func() { workDir, workErr = os.MkdirTemp("", "unipool-runtimetest-") })
	if workErr != nil {
		t.Fatal(workErr)
	}
	return workDir
}

// TestMain removes the build folder, unless RUNTIMETEST_KEEP is set (to
// debug a driver by hand).
func TestMain(m *testing.M) {
	code := m.Run()
	if workDir != "" && os.Getenv("RUNTIMETEST_KEEP") == "" {
		os.RemoveAll(workDir)
	} else if workDir != "" {
		fmt.Fprintf(os.Stderr, "runtimetest: builds kept in %s\n", workDir)
	}
	os.Exit(code)
}

// fatalRecorder turns the helpers' t.Fatal into an error, so that the
// drivers can be built once, in parallel goroutines, for all tests.
type fatalRecorder struct {
	testing.TB
	mu  sync.Mutex
	err error
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatal(args ...any) {
	f.record(fmt.Sprint(args...))
}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.record(fmt.Sprintf(format, args...))
}
func (f *fatalRecorder) record(msg string) {
	f.mu.Lock()
	if f.err == nil {
		f.err = fmt.Errorf("%s", msg)
	}
	f.mu.Unlock()
	runtime.Goexit()
}

// driverFor returns the host test driver linked with set's variants,
// building it on first use.
func driverFor(t testing.TB, set runtimeSet) string {
	t.Helper()
	driversMu.Lock()
	e := drivers[set.name]
	if e == nil {
		e = &driverEntry{}
		drivers[set.name] = e
	}
	driversMu.Unlock()
	e.once.Do(func() { e.exe, e.err = buildDriver(t, work(t), set) })
	if e.err != nil {
		t.Fatalf("building the test driver for %s: %v", set.name, e.err)
	}
	return e.exe
}

type unit struct{ dir, variant string }

func (s runtimeSet) units() []unit {
	return []unit{{"plat", "default"}, {"lib/ukboot", "default"}, {"lib/uktime", "default"},
		{"lib/libc", s.libc}, {"lib/" + s.alloc, s.allocV}, {"lib/ukrand", s.randV}}
}

// buildDriver compiles set's libraries (every source in parallel, each
// compiled once per process), joins them, renames their symbols and links
// the driver.
func buildDriver(t testing.TB, work string, set runtimeSet) (string, error) {
	rec := &fatalRecorder{TB: t}
	type job struct {
		u   unit
		src string
	}
	var jobs []job
	for _, u := range set.units() {
		for _, src := range sources(t, u.dir, u.dir != "plat") {
			jobs = append(jobs, job{u, src})
		}
	}
	parallel(rec, len(jobs), func(i int) { compileObject(rec, work, jobs[i].u.dir, jobs[i].src, jobs[i].u.variant) })
	if rec.err != nil {
		return "", rec.err
	}
	driverSrc, err := filepath.Abs("testdata/driver.c")
	if err != nil {
		return "", err
	}
	platInc, err := filepath.Abs(filepath.Join(guestRoot, "plat/include"))
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(work, "set-")
	if err != nil {
		return "", err
	}
	exe := filepath.Join(dir, "driver")
	parallel(rec, 1, func(int) {
		var objs []string
		for _, u := range set.units() {
			objs = append(objs, buildLib(rec, dir, u.dir, u.variant, u.dir != "plat"))
		}
		combined := filepath.Join(dir, "guest.o")
		run(rec, dir, "ld", append([]string{"-r", "-o", combined}, objs...)...)
		renamed := renameSymbols(rec, dir, combined)
		run(rec, dir, "gcc", "-O1", "-g", "-Wall", "-Wno-format-truncation", "-I"+platInc,
			driverSrc, renamed, "-o", exe, "-lm")
	})
	return exe, rec.err
}

// parallel runs f(0..n-1) on all CPUs; a Fatal in f ends that goroutine.
func parallel(rec *fatalRecorder, n int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU())
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			f(i)
		}(i)
	}
	wg.Wait()
}

// renameSymbols gives every global symbol of obj (defined or not) a g_
// prefix, so the guest's libc cannot clash with the host's.
// _GLOBAL_OFFSET_TABLE_ is the linker's own and keeps its name.
func renameSymbols(t testing.TB, dir, obj string) string {
	t.Helper()
	f, err := elf.Open(obj)
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	f.Close()
	if err != nil {
		t.Fatalf("%s: %v", obj, err)
	}
	seen := map[string]bool{}
	var b strings.Builder
	for _, s := range syms {
		bind := elf.ST_BIND(s.Info)
		if s.Name == "" || s.Name == "_GLOBAL_OFFSET_TABLE_" || seen[s.Name] ||
			(bind != elf.STB_GLOBAL && bind != elf.STB_WEAK) {
			continue
		}
		seen[s.Name] = true
		fmt.Fprintf(&b, "%s g_%s\n", s.Name, s.Name)
	}
	mapFile := filepath.Join(dir, "rename.map")
	if err := os.WriteFile(mapFile, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := strings.TrimSuffix(obj, ".o") + "-renamed.o"
	run(t, dir, "objcopy", "--redefine-syms="+mapFile, obj, out)
	return out
}

// runDriver runs a driver command; it fails the test on FAIL lines or a
// non-zero exit, and returns the output.
func runDriver(t *testing.T, exe string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, exe, args...).CombinedOutput()
	var fails []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "FAIL ") {
			fails = append(fails, strings.TrimPrefix(line, "FAIL "))
		}
	}
	if len(fails) > 0 {
		t.Fatalf("driver %s: %d failures:\n%s", strings.Join(args, " "), len(fails), strings.Join(fails, "\n"))
	}
	if err != nil {
		t.Fatalf("driver %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// forEachSet runs f as a parallel subtest per runtime set.
func forEachSet(t *testing.T, f func(t *testing.T, i int, exe string)) {
	for i, s := range runtimeSets(t) {
		i, s := i, s
		t.Run(s.name, func(t *testing.T) {
			exe := driverFor(t, s)
			t.Parallel()
			f(t, i, exe)
		})
	}
}
