package corpus

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func needToolchain(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"gcc", "ld", "objcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian gcc/binutils; scripts/deps.sh installs them): %v", tool, err)
		}
	}
}

func needArchive(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s is missing (scripts/deps.sh installs its Debian package): %v", p, err)
	}
}

// sharedCache is one object cache for the package's tests, so that only
// the tests that need a cold cache pay for one.
var sharedCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "corpus-test-cache-")
	if err != nil {
		panic(err)
	}
	sharedCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fixture is the small guest tree in testdata: it builds and links like
// the real one, in a fraction of the time.
func fixture(t *testing.T) Options {
	t.Helper()
	needToolchain(t)
	needArchive(t, "/usr/lib/x86_64-linux-gnu/libz.a")
	return Options{
		Count:    12,
		Seed:     7,
		Out:      t.TempDir(),
		CacheDir: sharedCache,
		Guest:    os.DirFS("testdata/guest"),
	}
}

func build(t *testing.T, o Options) (*Corpus, Stats) {
	t.Helper()
	var st Stats
	o.Stats = &st
	c, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return c, st
}

func readCorpusJSON(t *testing.T, dir string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSameSeedBuildsIdenticalCorpusAndObjects(t *testing.T) {
	a := fixture(t)
	b := a
	a.CacheDir = t.TempDir()
	b.Out, b.CacheDir = t.TempDir(), t.TempDir() // cold both times: the compiler must be deterministic
	ca, _ := build(t, a)
	cb, _ := build(t, b)
	if !bytes.Equal(readCorpusJSON(t, a.Out), readCorpusJSON(t, b.Out)) {
		t.Fatal("corpus.json differs between two builds with the same seed")
	}
	for i, u := range ca.Unikernels {
		for j, l := range u.Libraries {
			da, err := os.ReadFile(ca.Path(l))
			if err != nil {
				t.Fatal(err)
			}
			db, err := os.ReadFile(cb.Path(cb.Unikernels[i].Libraries[j]))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(da, db) {
				t.Fatalf("%s: %s differs between the two builds", u.Name, l.Object)
			}
		}
	}
}

func TestEveryAppObjectIsDistinct(t *testing.T) {
	c, _ := build(t, fixture(t))
	seen := map[string]string{}
	for _, u := range c.Unikernels {
		app := u.Libraries[len(u.Libraries)-1]
		if prev, dup := seen[app.SHA256]; dup {
			t.Fatalf("%s and %s share app object %s", prev, u.Name, app.SHA256)
		}
		seen[app.SHA256] = u.Name
	}
}

func TestOtherSeedGivesOtherCorpus(t *testing.T) {
	a := fixture(t)
	b := a
	b.Seed, b.Out = a.Seed+1, t.TempDir()
	ca, _ := build(t, a)
	cb, _ := build(t, b)
	sameApps, sameLibs := 0, 0
	for i := range ca.Unikernels {
		ua, ub := ca.Unikernels[i], cb.Unikernels[i]
		if ua.Libraries[len(ua.Libraries)-1].SHA256 == ub.Libraries[len(ub.Libraries)-1].SHA256 {
			sameApps++
		}
		if libSet(ua) == libSet(ub) {
			sameLibs++
		}
	}
	if sameApps != 0 {
		t.Errorf("%d app objects are the same under another seed", sameApps)
	}
	if sameLibs == len(ca.Unikernels) {
		t.Error("every unikernel has the same libraries and versions under another seed")
	}
}

func libSet(u Unikernel) string {
	var parts []string
	for _, l := range u.Libraries[:len(u.Libraries)-1] {
		parts = append(parts, l.Name+"@"+l.Version)
	}
	return strings.Join(parts, ",")
}

func TestRebuildTakesEveryObjectFromCache(t *testing.T) {
	o := fixture(t)
	o.CacheDir = t.TempDir()
	_, cold := build(t, o)
	if cold.Built == 0 || cold.Cached != 0 {
		t.Fatalf("cold build: %+v, want everything built", cold)
	}
	o.Out = t.TempDir()
	_, warm := build(t, o)
	if warm.Built != 0 || warm.Cached != warm.Objects {
		t.Fatalf("warm build: %+v, want every object from the cache", warm)
	}
}

// sourceEdits counts TestChangedSourceRebuildsOnlyItsLibrary's runs in this
// test binary.
var sourceEdits int

func TestChangedSourceRebuildsOnlyItsLibrary(t *testing.T) {
	needToolchain(t)
	needArchive(t, "/usr/lib/x86_64-linux-gnu/libz.a")
	src := copyTree(t, "testdata/guest")
	o := fixture(t)
	o.Guest = os.DirFS(src)
	c1, _ := build(t, o)
	rand := filepath.Join(src, "lib", "ukrand", "rand.c")
	data, err := os.ReadFile(rand)
	if err != nil {
		t.Fatal(err)
	}
	// A symbol no earlier run of this test added: the objects cache is
	// one per test binary (sharedCache), so under -count=N a repeated
	// edit would find its object cached and build nothing.
	sourceEdits++
	extra := fmt.Sprintf("unsigned long uk_rand_extra_%d;\n", sourceEdits)
	if err := os.WriteFile(rand, append(data, []byte(extra)...), 0o644); err != nil {
		t.Fatal(err)
	}
	o.Out = t.TempDir()
	c2, st := build(t, o)
	if st.Built == 0 {
		t.Fatal("a changed source was not rebuilt")
	}
	for i, u := range c1.Unikernels {
		for j, l := range u.Libraries {
			l2 := c2.Unikernels[i].Libraries[j]
			if changed := l.SHA256 != l2.SHA256; changed != (l.Name == "ukrand") {
				t.Errorf("%s: %s changed=%v after editing ukrand only", u.Name, l.Name, changed)
			}
		}
	}
}

func TestEveryObjectIsELF64X8664Relocatable(t *testing.T) {
	c, _ := build(t, fixture(t))
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := loaded.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestLinkOrderIsPlatBootLibcAllocatorRestApp(t *testing.T) {
	c, _ := build(t, fixture(t))
	withRand, withoutRand := 0, 0
	for _, u := range c.Unikernels {
		var names []string
		for _, l := range u.Libraries {
			names = append(names, l.Name)
		}
		if names[0] != "ukplat" || names[1] != "ukboot" || names[2] != "libc" {
			t.Fatalf("%s: link order %v does not start ukplat, ukboot, libc", u.Name, names)
		}
		if !strings.HasPrefix(names[3], "ukalloc") {
			t.Fatalf("%s: fourth library %s is not the allocator", u.Name, names[3])
		}
		rest := names[4 : len(names)-1]
		for i := 1; i < len(rest); i++ {
			if rest[i-1] >= rest[i] {
				t.Fatalf("%s: libraries after the allocator are not sorted: %v", u.Name, rest)
			}
		}
		for _, n := range rest {
			if strings.HasPrefix(n, "ukalloc") {
				t.Fatalf("%s: two allocators: %v", u.Name, names)
			}
		}
		if last := u.Libraries[len(u.Libraries)-1]; last.Origin != OriginApp || last.Name != u.App {
			t.Fatalf("%s: last library %+v is not the app", u.Name, last)
		}
		if strings.Contains(strings.Join(names, ","), "ukrand") {
			withRand++
		} else {
			withoutRand++
		}
	}
	if withRand == 0 || withoutRand == 0 {
		t.Errorf("ukrand in %d unikernels, absent from %d: it must be optional", withRand, withoutRand)
	}
}

func TestThirdPartyLibraryKeepsItsDebianOrigin(t *testing.T) {
	c, _ := build(t, fixture(t))
	found := false
	for _, u := range c.Unikernels {
		for _, l := range u.Libraries {
			if l.Name == "zlib" {
				found = true
				if l.Origin != "zlib1g-dev" {
					t.Fatalf("%s: zlib origin %q", u.Name, l.Origin)
				}
				if err := checkExports(c.Path(l), []string{"crc32"}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if !found {
		t.Fatal("no unikernel uses zlib although the crc app depends on it")
	}
}

// TestCorpusUnikernelsLinkWithoutUndefinedSymbols does what a stock
// unikernel build's final link does, with plain GNU ld.
func TestCorpusUnikernelsLinkWithoutUndefinedSymbols(t *testing.T) {
	c, _ := build(t, fixture(t))
	for _, u := range c.Unikernels {
		out := filepath.Join(t.TempDir(), u.Name)
		args := append([]string{"-static", "-nostdlib", "-e", "_start", "-o", out}, c.Objects(&u)...)
		if msg, err := exec.Command("ld", args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: ld: %v\n%s", u.Name, err, msg)
		}
	}
}

func TestLoadedCorpusMatchesBuiltOne(t *testing.T) {
	c, _ := build(t, fixture(t))
	l, err := Load(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.Seed != c.Seed || l.Count != c.Count || len(l.Unikernels) != len(c.Unikernels) {
		t.Fatalf("loaded %d/%d/%d, built %d/%d/%d", l.Seed, l.Count, len(l.Unikernels), c.Seed, c.Count, len(c.Unikernels))
	}
	for i := range l.Unikernels {
		if libSet(l.Unikernels[i]) != libSet(c.Unikernels[i]) || l.Unikernels[i].Expect != c.Unikernels[i].Expect {
			t.Fatalf("unikernel %d differs after Load", i)
		}
	}
}

func TestSmallerBuildRemovesStaleUnikernelFolders(t *testing.T) {
	o := fixture(t)
	big, _ := build(t, o)
	o.Count = 3
	small, _ := build(t, o)
	for _, u := range big.Unikernels[3:] {
		if _, err := os.Stat(filepath.Join(o.Out, u.Name)); err == nil {
			t.Errorf("%s is left over from the larger corpus", u.Name)
		}
	}
	if err := small.Verify(); err != nil {
		t.Fatal(err)
	}
}

func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestBuildErrorsNameTheGuestFile(t *testing.T) {
	cases := []struct {
		name, file, data, want string
	}{
		{"missing archive", "third_party/zlib/lib.json",
			`{"name": "zlib", "origin": "zlib1g-dev", "archive": "/nonexistent/libz.a", "symbols": ["crc32"], "deps": ["libc"]}`,
			"third_party/zlib/lib.json: archive: open /nonexistent/libz.a"},
		{"symbol the archive lacks", "third_party/zlib/lib.json",
			`{"name": "zlib", "origin": "zlib1g-dev", "archive": "/usr/lib/x86_64-linux-gnu/libz.a", "symbols": ["crc32", "no_such_fn"], "deps": ["libc"]}`,
			"third_party/zlib/lib.json: variant default: symbols (or exportsyms.uk): exported but not defined: no_such_fn"},
		{"export not defined", "lib/ukrand/exportsyms.uk", "uk_rand\nuk_rand_bytes\n",
			"lib/ukrand/lib.json: variant default: exportsyms.uk: exported but not defined: uk_rand_bytes"},
		{"compile error", "lib/ukrand/rand.c", "int broken(void) { return }\n",
			"lib/ukrand/lib.json: gcc"},
		{"app compile error", "apps/hello/main.c", "int main(void) { syntax error }\n",
			"apps/hello/app.json: gcc"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := fixture(t)
			src := copyTree(t, "testdata/guest")
			if err := os.WriteFile(filepath.Join(src, filepath.FromSlash(c.file)), []byte(c.data), 0o644); err != nil {
				t.Fatal(err)
			}
			o.Guest = os.DirFS(src)
			o.Count = 2 // one of each app
			_, err := Build(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
