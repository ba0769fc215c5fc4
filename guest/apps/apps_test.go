package apps_test

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expect lines in guest/apps/*/app.json from native runs")

// stdC is the part of the C library the microlibs and apps may call: ISO C
// functions (string.h, stdio.h, stdlib.h; no ctype.h: its glibc macros
// differ from the guest's) plus what gcc itself
// emits (stack protector, GOT-indirect calls). guest/third_party/README.md lists what the
// Debian archives need on top of this.
var stdC = set(
	"memcpy", "memmove", "memset", "memcmp", "memchr", "strlen", "strcmp",
	"strncmp", "strchr", "strtol", "malloc", "calloc", "realloc", "free",
	"qsort", "printf", "snprintf", "puts", "putchar",
	"__stack_chk_fail",
	// defined by the final ld link; -fno-plt calls go through the GOT
	"_GLOBAL_OFFSET_TABLE_",
)

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// runCase runs bin with input split the way ukboot splits a command line
// (inputs are checked to need no quoting) and returns stdout.
func runCase(bin, input string) (string, error) {
	cmd := exec.Command(bin, strings.Fields(input)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%v (stderr %q)", err, stderr.String())
	}
	return string(out), nil
}

func checkCases(t *testing.T, bin string, a *app) {
	t.Helper()
	for i, c := range a.Cases {
		out, err := runCase(bin, c.Input)
		if err != nil {
			t.Errorf("%s case %d (%q): %v", a.Name, i, c.Input, err)
			continue
		}
		if out != c.Expect+"\n" {
			t.Errorf("%s case %d (%q):\n got %q\nwant %q", a.Name, i, c.Input, out, c.Expect+"\n")
		}
	}
}

func TestEveryAppPrintsItsExpectedLineForEveryCase(t *testing.T) {
	gt := loadTree(t)
	b := getBuilder(t)
	for _, name := range sortedKeys(gt.apps) {
		a := gt.apps[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bin, err := b.appBinary(gt, a, config{})
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				updateExpects(t, bin, a)
				return
			}
			checkCases(t, bin, a)
		})
	}
}

var updateMu sync.Mutex

func updateExpects(t *testing.T, bin string, a *app) {
	for i, c := range a.Cases {
		out, err := runCase(bin, c.Input)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
			t.Fatalf("case %d: output is not one line: %q", i, out)
		}
		a.Cases[i].Expect = strings.TrimSuffix(out, "\n")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(a); err != nil {
		t.Fatal(err)
	}
	updateMu.Lock()
	defer updateMu.Unlock()
	if err := os.WriteFile(filepath.Join(a.dir, "app.json"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Every variant of every library must build and leave every app that uses
// it printing the same lines: variants change code, not results.
func TestEveryLibraryVariantKeepsTheAppsOutput(t *testing.T) {
	gt := loadTree(t)
	b := getBuilder(t)
	for _, ln := range sortedKeys(gt.libs) {
		l := gt.libs[ln]
		for _, v := range l.Variants[min(1, len(l.Variants)):] {
			for _, an := range sortedKeys(gt.apps) {
				a := gt.apps[an]
				closure, err := gt.closure(a.Deps)
				if err != nil {
					t.Fatal(err)
				}
				if !contains(closure, ln) {
					continue
				}
				t.Run(ln+"="+v.ID+"/"+an, func(t *testing.T) {
					t.Parallel()
					bin, err := b.appBinary(gt, a, config{ln: v})
					if err != nil {
						t.Fatal(err)
					}
					checkCases(t, bin, a)
				})
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ukboot splits the command line shell-style (quotes, backslashes); inputs
// that need none of that reach argv[1..] the same under any splitter, and
// the apps join those words with single spaces.
func TestCaseInputsSurviveTheBootCommandLineSplit(t *testing.T) {
	gt := loadTree(t)
	for _, name := range sortedKeys(gt.apps) {
		a := gt.apps[name]
		if len(a.Cases) < 4 {
			t.Errorf("%s: %d cases, want at least 4", name, len(a.Cases))
		}
		seen := map[string]bool{}
		for i, c := range a.Cases {
			if seen[c.Input] {
				t.Errorf("%s case %d: duplicate input %q", name, i, c.Input)
			}
			seen[c.Input] = true
			if strings.ContainsAny(c.Input, "\"'\\\t\n\r\v\f") {
				t.Errorf("%s case %d: input %q has quotes, backslashes or blanks other than spaces", name, i, c.Input)
			}
			if strings.Join(strings.Fields(c.Input), " ") != c.Input {
				t.Errorf("%s case %d: input %q has leading, trailing or repeated spaces", name, i, c.Input)
			}
			if c.Expect == "" || strings.Contains(c.Expect, "\n") {
				t.Errorf("%s case %d: expect %q is not one non-empty line", name, i, c.Expect)
			}
		}
	}
}

func TestLibraryDescriptionsAreComplete(t *testing.T) {
	gt := loadTree(t)
	ours, withVariants := 0, 0
	for _, name := range sortedKeys(gt.libs) {
		l := gt.libs[name]
		if l.thirdParty {
			if l.Origin == "" || len(l.Symbols) == 0 {
				t.Errorf("%s: third-party lib.json needs origin and symbols", l.dir)
			}
			if _, err := os.Stat(l.Archive); err != nil {
				t.Errorf("%s: archive: %v", l.dir, err)
			}
			continue
		}
		ours++
		if l.Popularity == nil || *l.Popularity < 0 || *l.Popularity > 1 {
			t.Errorf("%s: popularity must be in [0, 1]", l.dir)
		}
		if len(l.Variants) == 0 {
			t.Errorf("%s: no variants (give at least the default one)", l.dir)
		}
		ids := map[string]bool{}
		for _, v := range l.Variants {
			if v.ID == "" || ids[v.ID] {
				t.Errorf("%s: variant id %q empty or repeated", l.dir, v.ID)
			}
			ids[v.ID] = true
		}
		if len(l.Variants) > 1 {
			withVariants++
		}
		if _, err := gt.closure(l.Deps); err != nil {
			t.Errorf("%s: %v", l.dir, err)
		}
		for _, f := range []string{"exportsyms.uk", filepath.Join("include", name+".h")} {
			if _, err := os.Stat(filepath.Join(l.dir, f)); err != nil {
				t.Errorf("%s: %v", l.dir, err)
			}
		}
	}
	if ours < 14 {
		t.Errorf("%d microlibs, want at least 14", ours)
	}
	if withVariants < 4 {
		t.Errorf("%d libraries with variants, want at least 4", withVariants)
	}
	for _, name := range sortedKeys(gt.apps) {
		if _, err := gt.closure(gt.apps[name].Deps); err != nil {
			t.Errorf("%s: %v", gt.apps[name].dir, err)
		}
		// an app is linked as a library object of its own name
		if _, clash := gt.libs[name]; clash || platformLibs[name] {
			t.Errorf("%s: app name %q is also a library name", gt.apps[name].dir, name)
		}
	}
}

// The corpus builder localises everything not in exportsyms.uk, so a
// global missing from it would silently vanish, and a name listed but not
// defined is a typo: the two must be equal, in every variant.
func TestExportsymsListsExactlyTheDefinedGlobals(t *testing.T) {
	gt := loadTree(t)
	b := getBuilder(t)
	for _, name := range sortedKeys(gt.libs) {
		l := gt.libs[name]
		if l.thirdParty {
			continue
		}
		for _, v := range l.Variants {
			t.Run(name+"="+v.ID, func(t *testing.T) {
				t.Parallel()
				obj, err := b.libObject(gt, name, v)
				if err != nil {
					t.Fatal(err)
				}
				defined, _, err := nmSymbols(obj)
				if err != nil {
					t.Fatal(err)
				}
				exports, err := readLines(filepath.Join(l.dir, "exportsyms.uk"))
				if err != nil {
					t.Fatal(err)
				}
				got, want := set(defined...), set(exports...)
				for _, s := range sortedKeys(got) {
					if !want[s] {
						t.Errorf("%s defines global %s, not in exportsyms.uk (make it static or export it)", name, s)
					}
				}
				for _, s := range sortedKeys(want) {
					if !got[s] {
						t.Errorf("%s exportsyms.uk lists %s, which it does not define", name, s)
					}
				}
			})
		}
	}
}

// Libraries are linked together, so every exported name must be unique,
// also against the globals the Debian archive pulls define.
func TestExportedNamesAreUniqueAcrossLibraries(t *testing.T) {
	gt := loadTree(t)
	b := getBuilder(t)
	owner := map[string]string{}
	for _, name := range sortedKeys(gt.libs) {
		l := gt.libs[name]
		var names []string
		if l.thirdParty {
			obj, err := b.libObject(gt, name, defaultVariant(l))
			if err != nil {
				t.Fatal(err)
			}
			if names, _, err = nmSymbols(obj); err != nil {
				t.Fatal(err)
			}
		} else {
			var err error
			if names, err = readLines(filepath.Join(l.dir, "exportsyms.uk")); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range names {
			if o, ok := owner[s]; ok && o != name {
				t.Errorf("symbol %s exported by both %s and %s", s, o, name)
			}
			owner[s] = name
		}
	}
	// and the platform's exports (libc, boot, allocators...), where present
	platform, _ := filepath.Glob(filepath.Join(gt.root, "lib", "*", "exportsyms.uk"))
	platform = append(platform, filepath.Join(gt.root, "plat", "exportsyms.uk"))
	for _, p := range platform {
		lib := filepath.Base(filepath.Dir(p))
		if _, ours := gt.libs[lib]; ours {
			continue
		}
		syms, err := readLines(p)
		if err != nil {
			continue
		}
		for _, s := range syms {
			if o, ok := owner[s]; ok {
				t.Errorf("symbol %s exported by both %s and %s", s, lib, o)
			}
		}
	}
}

func exportsOf(gt *guestTree, names []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, n := range names {
		l := gt.libs[n]
		if l.thirdParty {
			for _, s := range l.Symbols {
				out[s] = true
			}
			continue
		}
		syms, err := readLines(filepath.Join(l.dir, "exportsyms.uk"))
		if err != nil {
			return nil, err
		}
		for _, s := range syms {
			out[s] = true
		}
	}
	return out, nil
}

// A library may call only standard C and what its declared dependencies
// export: anything else would be an undefined symbol in some unikernel.
func TestLibrariesAndAppsNeedOnlyTheirDepsAndStandardC(t *testing.T) {
	gt := loadTree(t)
	b := getBuilder(t)
	check := func(t *testing.T, what, obj string, deps []string) {
		closure, err := gt.closure(deps)
		if err != nil {
			t.Fatal(err)
		}
		allowed, err := exportsOf(gt, closure)
		if err != nil {
			t.Fatal(err)
		}
		_, undef, err := nmSymbols(obj)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range undef {
			if !allowed[s] && !stdC[s] {
				t.Errorf("%s needs %s, which neither its deps %v nor standard C provide", what, s, deps)
			}
		}
	}
	for _, name := range sortedKeys(gt.libs) {
		l := gt.libs[name]
		if l.thirdParty {
			continue
		}
		for _, v := range l.Variants {
			t.Run(name+"="+v.ID, func(t *testing.T) {
				t.Parallel()
				obj, err := b.libObject(gt, name, v)
				if err != nil {
					t.Fatal(err)
				}
				check(t, name, obj, l.Deps)
			})
		}
	}
	for _, name := range sortedKeys(gt.apps) {
		a := gt.apps[name]
		t.Run("app/"+name, func(t *testing.T) {
			t.Parallel()
			obj, err := b.once("appobj:"+a.Name, func(out string) error {
				return b.compileDir(gt, a.dir, nil, nil, out)
			})
			if err != nil {
				t.Fatal(err)
			}
			check(t, "app "+name, obj, a.Deps)
		})
	}
}

// What the third-party pulls need from the C library is a contract with
// the guest libc: guest/third_party/README.md lists it, one line per
// library ("- `name`: sym sym ..."), and it must match the archives.
func TestThirdPartyReadmeListsExactlyWhatEachArchiveNeeds(t *testing.T) {
	gt := loadTree(t)
	b := getBuilder(t)
	readme, err := os.ReadFile(filepath.Join(gt.root, "third_party", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string][]string{}
	for _, line := range strings.Split(string(readme), "\n") {
		if !strings.HasPrefix(line, "- `") {
			continue
		}
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "- `"), "`:")
		if ok {
			listed[name] = strings.Fields(rest)
		}
	}
	for _, name := range sortedKeys(gt.libs) {
		l := gt.libs[name]
		if !l.thirdParty {
			continue
		}
		obj, err := b.libObject(gt, name, defaultVariant(l))
		if err != nil {
			t.Fatal(err)
		}
		_, undef, err := nmSymbols(obj)
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(undef)
		want := strings.Join(undef, " ")
		if got := strings.Join(listed[name], " "); got != want {
			t.Errorf("third_party/README.md for %s lists\n  %s\nbut the pull needs\n  %s", name, got, want)
		}
	}
}

// The guest libc must provide the standard C subset these libraries use
// (checked once libc's exportsyms.uk exists).
func TestGuestLibcExportsTheStandardCSubsetUsedHere(t *testing.T) {
	gt := loadTree(t)
	libc, err := readLines(filepath.Join(gt.root, "lib", "libc", "exportsyms.uk"))
	if err != nil {
		t.Skipf("guest libc not there yet: %v", err)
	}
	have := set(libc...)
	for _, s := range sortedKeys(stdC) {
		if !have[s] && s != "_GLOBAL_OFFSET_TABLE_" {
			t.Errorf("guest libc does not export %s, which the microlibs call", s)
		}
	}
}

// A variant must really change the code: its .text differs from the
// default variant's.
func TestVariantsChangeTheCode(t *testing.T) {
	gt := loadTree(t)
	b := getBuilder(t)
	for _, name := range sortedKeys(gt.libs) {
		l := gt.libs[name]
		if len(l.Variants) < 2 {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			seen := map[[32]byte]string{}
			for _, v := range l.Variants {
				obj, err := b.libObject(gt, name, v)
				if err != nil {
					t.Fatal(err)
				}
				sum, err := codeHash(obj)
				if err != nil {
					t.Fatal(err)
				}
				if other, dup := seen[sum]; dup {
					t.Errorf("%s variants %s and %s have identical code", name, other, v.ID)
				}
				seen[sum] = v.ID
			}
		})
	}
}

// codeHash hashes the contents of an object's text and rodata sections.
func codeHash(obj string) ([32]byte, error) {
	f, err := elf.Open(obj)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	for _, s := range f.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return [32]byte{}, fmt.Errorf("%s: %s: %w", obj, s.Name, err)
		}
		h.Write([]byte(s.Name))
		h.Write(data)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
