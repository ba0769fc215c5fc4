package corpus

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
)

// OriginUnipool is the origin of the libraries written in this repository;
// OriginApp marks a unikernel's own app object. Third-party libraries carry
// the Debian package they came from.
const (
	OriginUnipool = "unipool"
	OriginApp     = "app"
)

// ProvidesAllocator marks the libraries that are alternatives to each other:
// every unikernel links exactly one of them.
const ProvidesAllocator = "allocator"

// DefaultVariant is the id of the one variant of a library whose lib.json
// lists none.
const DefaultVariant = "default"

// The libraries that open every link order, in this order; the allocator
// follows them (see linkOrder).
var leadingLibraries = []string{"ukplat", "ukboot", "libc"}

// Variant is one compile-time configuration of a library.
type Variant struct {
	ID      string   `json:"id"`
	Defines []string `json:"defines"`
}

// Library is one folder of the guest tree with a lib.json: a microlib, the
// platform layer, or a third-party library taken from a Debian archive.
type Library struct {
	Name       string
	Dir        string // slash path inside the guest tree, e.g. "lib/libc"
	Core       bool
	Popularity float64
	Provides   string
	Deps       []string
	Variants   []Variant // never empty; Variants[0] is the default
	Cflags     []string
	Exports    []string // exportsyms.uk (and, for third-party, symbols)
	Origin     string   // OriginUnipool or a Debian package
	Archive    string   // third-party only: the static archive
	Symbols    []string // third-party only: the entry points pulled from Archive
	Files      []string // every file of the folder (slash paths, sorted), keys the cache
	Sources    []string // the .c/.S/.s among Files
}

// ThirdParty tells whether the library comes from a Debian static archive.
func (l *Library) ThirdParty() bool { return l.Archive != "" }

// Case is one input of an app and the exact result line it prints.
type Case struct {
	Input  string `json:"input"`
	Expect string `json:"expect"`
}

// App is one folder of guest/apps with an app.json.
type App struct {
	Name    string
	Dir     string
	Deps    []string
	Cases   []Case
	Cflags  []string
	Exports []string // exportsyms.uk, or just "main" when the app has none
	Files   []string
	Sources []string
}

// Tree is a parsed guest source tree.
type Tree struct {
	FS        fs.FS
	Libraries map[string]*Library
	Apps      []*App   // sorted by name
	Includes  []string // every <unit>/include dir, sorted
	Headers   []string // every .h in the tree, sorted: any unit may include any of them
}

// Library folders live under these top-level folders, apps under apps/.
var libraryRoots = []string{"plat", "lib", "third_party"}

const appsRoot = "apps"

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_+.-]*$`)
	idRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	symbolRE  = regexp.MustCompile(`^[A-Za-z_.$][A-Za-z0-9_.$@]*$`)
	defineRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(=.*)?$`)
	packageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
)

type libJSON struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Core        bool      `json:"core"`
	Popularity  *float64  `json:"popularity"`
	Provides    string    `json:"provides"`
	Deps        []string  `json:"deps"`
	Variants    []Variant `json:"variants"`
	Cflags      []string  `json:"cflags"`
	Origin      string    `json:"origin"`
	Archive     string    `json:"archive"`
	Symbols     []string  `json:"symbols"`
}

type appJSON struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Deps        []string `json:"deps"`
	Cases       []Case   `json:"cases"`
	Cflags      []string `json:"cflags"`
}

// LoadTree reads and checks every lib.json, app.json and exportsyms.uk of
// a guest tree (the layout of docs/formats.md, "Guest sources"). Errors
// name the file at fault.
func LoadTree(fsys fs.FS) (*Tree, error) {
	t := &Tree{FS: fsys, Libraries: map[string]*Library{}}
	units, err := findUnits(fsys)
	if err != nil {
		return nil, err
	}
	nested := map[string]bool{}
	for _, u := range units {
		nested[u.dir] = true
	}
	appNames := map[string]string{}
	for _, u := range units {
		files, err := unitFiles(fsys, u.dir, nested)
		if err != nil {
			return nil, err
		}
		if u.app {
			a, err := loadApp(fsys, u.dir, files)
			if err != nil {
				return nil, err
			}
			if prev, dup := appNames[a.Name]; dup {
				return nil, fmt.Errorf("%s: app %q is also defined in %s", path.Join(u.dir, "app.json"), a.Name, prev)
			}
			appNames[a.Name] = path.Join(u.dir, "app.json")
			t.Apps = append(t.Apps, a)
		} else {
			l, err := loadLibrary(fsys, u.dir, files)
			if err != nil {
				return nil, err
			}
			if prev, dup := t.Libraries[l.Name]; dup {
				return nil, fmt.Errorf("%s: library %q is also defined in %s", path.Join(u.dir, "lib.json"), l.Name, path.Join(prev.Dir, "lib.json"))
			}
			t.Libraries[l.Name] = l
		}
		if fi, err := fs.Stat(fsys, path.Join(u.dir, "include")); err == nil && fi.IsDir() {
			t.Includes = append(t.Includes, path.Join(u.dir, "include"))
		}
	}
	sort.Slice(t.Apps, func(i, j int) bool { return t.Apps[i].Name < t.Apps[j].Name })
	sort.Strings(t.Includes)
	// Any unit may include any header of another (every include folder
	// is on the path, and a private header can be reached by a relative
	// name), so every unit's key covers them all.
	for _, l := range t.Libraries {
		t.Headers = append(t.Headers, headersOf(l.Files)...)
	}
	for _, a := range t.Apps {
		t.Headers = append(t.Headers, headersOf(a.Files)...)
	}
	sort.Strings(t.Headers)
	if err := t.check(); err != nil {
		return nil, err
	}
	return t, nil
}

func headersOf(files []string) []string {
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, ".h") {
			out = append(out, f)
		}
	}
	return out
}

type unit struct {
	dir string
	app bool
}

// findUnits lists the library and app folders: any folder under the
// library roots holding a lib.json, any folder under apps/ holding an
// app.json.
func findUnits(fsys fs.FS) ([]unit, error) {
	var units []unit
	roots := append(append([]string{}, libraryRoots...), appsRoot)
	for _, root := range roots {
		if _, err := fs.Stat(fsys, root); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		marker := "lib.json"
		if root == appsRoot {
			marker = "app.json"
		}
		err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "include" || d.Name() == "testdata") {
				return fs.SkipDir
			}
			if !d.IsDir() && d.Name() == marker {
				units = append(units, unit{dir: path.Dir(p), app: root == appsRoot})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("guest tree: %w", err)
		}
	}
	sort.Slice(units, func(i, j int) bool { return units[i].dir < units[j].dir })
	return units, nil
}

// IsGuestFile tells whether the corpus build reads a file of the guest
// tree (p is a slash path relative to guest/): descriptions, export lists,
// C and assembly sources, headers, and anything under an include folder;
// never Go files (tests of the guest's logic live beside it), testdata
// folders, nor dot or underscore files. Package guest embeds exactly these.
func IsGuestFile(p string) bool {
	parts := strings.Split(p, "/")
	if len(parts) < 2 {
		return false
	}
	top := false
	for _, r := range append(append([]string{}, libraryRoots...), appsRoot, unikraftAppsRoot) {
		top = top || parts[0] == r
	}
	if !top {
		return false
	}
	for _, part := range parts {
		// testdata holds host-side test inputs, as everywhere in Go.
		if strings.HasPrefix(part, ".") || strings.HasPrefix(part, "_") || part == "testdata" {
			return false
		}
	}
	base := parts[len(parts)-1]
	switch {
	case strings.HasSuffix(base, ".go"):
		return false
	case base == "lib.json" || base == "app.json" || base == "exportsyms.uk":
		return true
	}
	switch path.Ext(base) {
	case ".c", ".h", ".S", ".s":
		return true
	}
	for _, part := range parts[1 : len(parts)-1] {
		if part == "include" {
			return true
		}
	}
	return false
}

// unitFiles lists the guest files of a unit's folder, recursively,
// leaving out folders that are units of their own.
func unitFiles(fsys fs.FS, dir string, units map[string]bool) ([]string, error) {
	var files []string
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && units[p] {
				return fs.SkipDir
			}
			return nil
		}
		if IsGuestFile(p) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("guest tree: %w", err)
	}
	sort.Strings(files)
	return files, nil
}

// sourcesOf picks the files gcc compiles: .c, .S and .s outside include/.
func sourcesOf(dir string, files []string) []string {
	var src []string
	for _, f := range files {
		rel := strings.TrimPrefix(f, dir+"/")
		if rel == "include" || strings.HasPrefix(rel, "include/") {
			continue
		}
		switch path.Ext(f) {
		case ".c", ".S", ".s":
			src = append(src, f)
		}
	}
	return src
}

// decodeStrict decodes one JSON object, refusing unknown fields (a
// misspelt "deps" would otherwise silently drop dependencies) and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

func loadLibrary(fsys fs.FS, dir string, files []string) (*Library, error) {
	file := path.Join(dir, "lib.json")
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, err // a *fs.PathError, naming the file
	}
	var j libJSON
	if err := decodeStrict(data, &j); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", file, fmt.Sprintf(format, args...))
	}
	if !nameRE.MatchString(j.Name) {
		return nil, bad("invalid or missing name %q", j.Name)
	}
	l := &Library{
		Name: j.Name, Dir: dir, Core: j.Core, Provides: j.Provides,
		Deps: j.Deps, Cflags: j.Cflags, Origin: OriginUnipool,
		Archive: j.Archive, Symbols: j.Symbols, Files: files,
		Sources: sourcesOf(dir, files),
	}
	if j.Popularity != nil {
		p := *j.Popularity
		if !(p >= 0 && p <= 1) {
			return nil, bad("popularity %v is not in [0, 1]", p)
		}
		l.Popularity = p
	}
	switch j.Provides {
	case "", ProvidesAllocator:
	default:
		return nil, bad("unknown \"provides\" %q (known: %q)", j.Provides, ProvidesAllocator)
	}
	if j.Core && j.Provides == ProvidesAllocator {
		return nil, bad("an allocator cannot be core: exactly one allocator is chosen per unikernel")
	}
	if err := checkNames(j.Deps); err != nil {
		return nil, bad("deps: %v", err)
	}
	if err := checkFlags(j.Cflags); err != nil {
		return nil, bad("cflags: %v", err)
	}
	if len(j.Variants) == 0 {
		l.Variants = []Variant{{ID: DefaultVariant}}
	} else {
		seen := map[string]bool{}
		for _, v := range j.Variants {
			if !idRE.MatchString(v.ID) {
				return nil, bad("variant id %q is invalid", v.ID)
			}
			if seen[v.ID] {
				return nil, bad("variant %q is listed twice", v.ID)
			}
			seen[v.ID] = true
			for _, d := range v.Defines {
				if !defineRE.MatchString(d) {
					return nil, bad("variant %q: define %q is not NAME or NAME=VALUE", v.ID, d)
				}
			}
			l.Variants = append(l.Variants, v)
		}
	}
	third := j.Archive != "" || j.Origin != "" || len(j.Symbols) > 0
	if third {
		if j.Archive == "" || j.Origin == "" || len(j.Symbols) == 0 {
			return nil, bad("a third-party library needs \"origin\" (its Debian package), \"archive\" and \"symbols\"")
		}
		if !packageRE.MatchString(j.Origin) || j.Origin == OriginUnipool || j.Origin == OriginApp {
			return nil, bad("origin %q is not a Debian package name", j.Origin)
		}
		if !path.IsAbs(j.Archive) || !strings.HasSuffix(j.Archive, ".a") {
			return nil, bad("archive %q is not an absolute path to a static archive (.a)", j.Archive)
		}
		if len(l.Variants) > 1 || len(l.Variants[0].Defines) > 0 {
			return nil, bad("a third-party library is used as Debian ships it and has no variants")
		}
		for _, s := range j.Symbols {
			if !symbolRE.MatchString(s) {
				return nil, bad("symbol %q is not a symbol name", s)
			}
		}
		l.Origin = j.Origin
	}
	exports, err := readExports(fsys, dir, !third)
	if err != nil {
		return nil, err
	}
	if third {
		exports = mergeSorted(exports, j.Symbols)
	}
	l.Exports = exports
	return l, nil
}

func loadApp(fsys fs.FS, dir string, files []string) (*App, error) {
	file := path.Join(dir, "app.json")
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, err // a *fs.PathError, naming the file
	}
	var j appJSON
	if err := decodeStrict(data, &j); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", file, fmt.Sprintf(format, args...))
	}
	if !nameRE.MatchString(j.Name) {
		return nil, bad("invalid or missing name %q", j.Name)
	}
	if err := checkNames(j.Deps); err != nil {
		return nil, bad("deps: %v", err)
	}
	if err := checkFlags(j.Cflags); err != nil {
		return nil, bad("cflags: %v", err)
	}
	if len(j.Cases) == 0 {
		return nil, bad("no cases: an app needs at least one input and its expected line")
	}
	for i, c := range j.Cases {
		if strings.ContainsAny(c.Expect, "\n\x00") || strings.ContainsRune(c.Input, 0) {
			return nil, bad("case %d: expect must be one line and input must hold no NUL", i)
		}
	}
	a := &App{Name: j.Name, Dir: dir, Deps: j.Deps, Cases: j.Cases, Cflags: j.Cflags,
		Files: files, Sources: sourcesOf(dir, files)}
	if len(a.Sources) == 0 {
		return nil, bad("the app folder has no .c, .S or .s source")
	}
	exports, err := readExports(fsys, dir, false)
	if err != nil {
		return nil, err
	}
	if exports == nil {
		// An app's one entry point is main, called by ukboot.
		exports = []string{"main"}
	}
	a.Exports = exports
	return a, nil
}

// readExports parses exportsyms.uk: one symbol per line, '#' comments.
func readExports(fsys fs.FS, dir string, required bool) ([]string, error) {
	file := path.Join(dir, "exportsyms.uk")
	data, err := fs.ReadFile(fsys, file)
	if errors.Is(err, fs.ErrNotExist) {
		if !required {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: missing: a library lists the symbols it exports, one a line", file)
	}
	if err != nil {
		return nil, err // a *fs.PathError, naming the file
	}
	return parseExports(file, data)
}

func parseExports(file string, data []byte) ([]string, error) {
	var syms []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		if !symbolRE.MatchString(line) {
			return nil, fmt.Errorf("%s:%d: %q is not a symbol name", file, n, line)
		}
		if !seen[line] {
			seen[line] = true
			syms = append(syms, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	sort.Strings(syms)
	return syms, nil
}

func mergeSorted(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string{}, a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func checkNames(names []string) error {
	for _, n := range names {
		if !nameRE.MatchString(n) {
			return fmt.Errorf("%q is not a library name", n)
		}
	}
	return nil
}

// checkFlags keeps lib.json from steering gcc's outputs or loading code
// into it; everything else is the library's business.
func checkFlags(flags []string) error {
	for _, f := range flags {
		switch {
		case !strings.HasPrefix(f, "-"):
			return fmt.Errorf("%q is not an option", f)
		case f == "-o" || strings.HasPrefix(f, "-fplugin") || strings.HasPrefix(f, "-specs") ||
			strings.HasPrefix(f, "-B") || f == "-c" || f == "-S" || f == "-E" || strings.HasPrefix(f, "-save-temps"):
			return fmt.Errorf("%q is not allowed", f)
		}
	}
	return nil
}

// check resolves the names the tree refers to.
func (t *Tree) check() error {
	for _, name := range sortedKeys(t.Libraries) {
		l := t.Libraries[name]
		for _, d := range l.Deps {
			if _, ok := t.Libraries[d]; !ok {
				return fmt.Errorf("%s: deps: no library %q in the guest tree", path.Join(l.Dir, "lib.json"), d)
			}
		}
	}
	for _, a := range t.Apps {
		for _, d := range a.Deps {
			if _, ok := t.Libraries[d]; !ok {
				return fmt.Errorf("%s: deps: no library %q in the guest tree", path.Join(a.Dir, "app.json"), d)
			}
		}
	}
	if len(t.Apps) == 0 {
		return errors.New("guest tree: no app (no apps/*/app.json)")
	}
	if len(t.allocators()) == 0 {
		return fmt.Errorf("guest tree: no library with \"provides\": %q", ProvidesAllocator)
	}
	return nil
}

func (t *Tree) allocators() []*Library {
	var out []*Library
	for _, name := range sortedKeys(t.Libraries) {
		if l := t.Libraries[name]; l.Provides == ProvidesAllocator {
			out = append(out, l)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
