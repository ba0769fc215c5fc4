package corpus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/unipool/unipool/guest"
)

// Options says what Build makes.
type Options struct {
	Count int    // unikernels, at least 1
	Seed  uint64 // everything chosen follows from it
	Out   string // the corpus folder
	// Inputs is InputsRepeated (the default) or InputsDistinct.
	Inputs string
	// Extras is ExtrasDrawn (the default) or ExtrasNone.
	Extras string
	Jobs   int // parallel builds; 0 means runtime.NumCPU()
	// CacheDir keeps built objects; "" means DefaultCacheDir().
	CacheDir string
	// Guest is the guest source tree; nil means the one embedded in the
	// binary (package guest).
	Guest fs.FS
	// Progress, if set, is called as objects are done (built or found
	// in the cache), from several goroutines, never concurrently.
	Progress func(done, total int)
	// Stats, if set, is filled in by Build.
	Stats *Stats
	// Flavor is FlavorUnipool (the default) or FlavorUnikraft.
	Flavor string
	// Configs is how many Unikraft configurations a FlavorUnikraft corpus
	// spreads over (0: one per as many unikernels as there are apps).
	Configs int
	// AppsPerConfig is how many different apps each configuration builds
	// (0: as many as it has unikernels, up to all apps); the
	// configuration's other unikernels repeat its apps with their own
	// requests. Each further app is one more incremental make.
	AppsPerConfig int
	// Unikraft is the Unikraft tree (FlavorUnikraft; "": found as
	// unikraft.Find does).
	Unikraft string
	// UnikraftLog receives Unikraft's make output (nil: discarded).
	UnikraftLog io.Writer
}

// Stats counts what a Build did.
type Stats struct {
	Unikernels int
	Objects    int // distinct objects the corpus uses: Built + Cached
	Built      int // of those, built by this build
	Cached     int // of those, found in the cache
	// Intermediates counts the other objects built: an app's own
	// sources, which each unikernel's app object links with its
	// generated code.
	Intermediates int
	// Configs and ConfigsBuilt count a FlavorUnikraft corpus's Unikraft
	// configurations, and those of them this build ran make for.
	Configs, ConfigsBuilt int
}

// Build makes a corpus: it plans Count unikernels from the seed, builds
// (or finds in the cache) every object they use, checks each one, links
// them into Out/<unikernel>/ and writes Out/corpus.json.
func Build(ctx context.Context, o Options) (*Corpus, error) {
	if o.Count < 1 {
		return nil, fmt.Errorf("corpus: count %d: need at least one unikernel", o.Count)
	}
	if o.Out == "" {
		return nil, errors.New("corpus: no output folder")
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	if o.CacheDir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		o.CacheDir = d
	}
	switch o.Flavor {
	case "", FlavorUnipool:
	case FlavorUnikraft:
		return buildUnikraft(ctx, o)
	default:
		return nil, fmt.Errorf("corpus: unknown flavor %q (want %s)", o.Flavor, strings.Join(Flavors, ", "))
	}
	if o.Guest == nil {
		o.Guest = guest.FS()
	}
	tree, err := LoadTree(o.Guest)
	if err != nil {
		return nil, err
	}
	plans, err := plan(tree, o.Count, o.Seed, o.Inputs, o.Extras)
	if err != nil {
		return nil, err
	}
	tc, err := findToolchain(ctx)
	if err != nil {
		return nil, err
	}
	c, err := openCache(o.CacheDir)
	if err != nil {
		return nil, err
	}
	b := &builder{tree: tree, tc: tc, cache: c, jobs: o.Jobs, progress: o.Progress}
	if err := b.readTree(); err != nil {
		return nil, err
	}
	corp, err := b.build(ctx, plans, o)
	if err != nil {
		return nil, err
	}
	if o.Stats != nil {
		*o.Stats = b.stats
		o.Stats.Unikernels = len(corp.Unikernels)
	}
	return corp, nil
}

// builder holds one Build's state.
type builder struct {
	tree     *Tree
	tc       *toolchain
	cache    *cache
	jobs     int
	progress func(done, total int)

	files    map[string][]byte // the guest tree's files, by slash path
	sums     map[string]string // their sha256
	headers  string            // key material of every header
	treeID   string
	srcOnce  sync.Once
	srcRoot  string
	srcErr   error
	archives map[string]string // archive path -> sha256

	mu     sync.Mutex
	stats  Stats
	done   int
	total  int
	progMu sync.Mutex
}

// object is one distinct object: a library in one variant, an app's
// compiled sources, or a unikernel's app object.
type object struct {
	key   string
	what  string // for messages: "libc@v1", "app sha256 of sha256-0007"
	build func(ctx context.Context, work string) (string, error)
	sum   string
}

func (b *builder) readTree() error {
	b.files = map[string][]byte{}
	b.sums = map[string]string{}
	var all []string
	for _, l := range b.tree.Libraries {
		all = append(all, l.Files...)
	}
	for _, a := range b.tree.Apps {
		all = append(all, a.Files...)
	}
	all = append(all, b.tree.Headers...)
	sort.Strings(all)
	var id strings.Builder
	for _, f := range all {
		if _, ok := b.files[f]; ok {
			continue
		}
		data, err := fs.ReadFile(b.tree.FS, f)
		if err != nil {
			return fmt.Errorf("guest tree: %w", err)
		}
		b.files[f] = data
		b.sums[f] = sha256Hex(data)
		fmt.Fprintf(&id, "%s %s\n", b.sums[f], f)
	}
	b.treeID = keyOf(id.String())
	var h strings.Builder
	for _, f := range b.tree.Headers {
		fmt.Fprintf(&h, "%s %s;", b.sums[f], f)
	}
	b.headers = h.String()
	b.archives = map[string]string{}
	return nil
}

// sourceRoot extracts the guest tree into the cache the first time a
// compile needs it; a fully cached build never writes it.
func (b *builder) sourceRoot() (string, error) {
	b.srcOnce.Do(func() {
		b.srcRoot, b.srcErr = b.cache.extract(b.treeID, b.files)
	})
	return b.srcRoot, b.srcErr
}

func (b *builder) includes(root string) []string {
	out := make([]string, len(b.tree.Includes))
	for i, inc := range b.tree.Includes {
		out[i] = filepath.Join(root, filepath.FromSlash(inc))
	}
	return out
}

// unitKey is the key material every compiled unit shares: tools, flags,
// include path, every header, and the unit's own files.
func (b *builder) unitKey(kind, name string, cflags, defines, files, exports []string) []string {
	// The command lines themselves, with placeholder paths, so that any
	// change to how gcc is called changes the key.
	spec := compileSpec{srcRoot: "<src>", includes: b.tree.Includes, cflags: cflags, defines: defines}
	lines := []string{
		"kind " + kind, "name " + name, b.tc.identity,
		"cc " + strings.Join(b.tc.compileArgs(spec, "<src>/x.c", "<out>"), " "),
		"as " + strings.Join(b.tc.compileArgs(spec, "<src>/x.S", "<out>"), " "),
		"headers " + b.headers,
		"exports " + strings.Join(exports, " "),
	}
	for _, f := range files {
		lines = append(lines, "file "+b.sums[f]+" "+f)
	}
	return lines
}

func (b *builder) archiveSum(p, libJSON string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.archives[p]; ok {
		return s, nil
	}
	s, err := sha256File(p)
	if err != nil {
		return "", fmt.Errorf("%s: archive: %w", libJSON, err)
	}
	b.archives[p] = s
	return s, nil
}

func (b *builder) libObject(l *Library, v Variant) (*object, error) {
	libJSON := path.Join(l.Dir, "lib.json")
	lines := b.unitKey("library", l.Name, l.Cflags, v.Defines, l.Files, l.Exports)
	if l.ThirdParty() {
		sum, err := b.archiveSum(l.Archive, libJSON)
		if err != nil {
			return nil, fmt.Errorf("%w (install the Debian package %s)", err, l.Origin)
		}
		lines = append(lines, "archive "+sum+" "+l.Archive, "symbols "+strings.Join(l.Symbols, " "))
	}
	o := &object{key: keyOf(lines...), what: l.Name + "@" + v.ID}
	o.build = func(ctx context.Context, work string) (string, error) {
		root, err := b.sourceRoot()
		if err != nil {
			return "", err
		}
		spec := compileSpec{srcRoot: root, includes: b.includes(root), cflags: l.Cflags, defines: v.Defines}
		objs, err := b.tc.compile(ctx, spec, b.abs(root, l.Sources), work)
		if err != nil {
			return "", fmt.Errorf("%s: %w", libJSON, err)
		}
		combined := filepath.Join(work, "combined.o")
		if err := b.tc.partialLink(ctx, work, combined, objs, l.Symbols, l.Archive); err != nil {
			return "", fmt.Errorf("%s: %w", libJSON, err)
		}
		out := filepath.Join(work, "lib"+l.Name+".o")
		if err := b.tc.localize(ctx, work, combined, out, l.Exports); err != nil {
			return "", fmt.Errorf("%s: %w", libJSON, err)
		}
		if err := checkExports(out, l.Exports); err != nil {
			what := "exportsyms.uk"
			if l.ThirdParty() {
				what = "symbols (or exportsyms.uk)"
			}
			return "", fmt.Errorf("%s: variant %s: %s: %w", libJSON, v.ID, what, err)
		}
		return out, nil
	}
	return o, nil
}

// appBase is an app's own sources compiled, partially linked and
// localised to its exports: each unikernel's app object is this plus its
// generated file, whose symbols are all static, so that step needs only
// gcc and ld -r (it runs once per unikernel: its cost is the cold build's).
func (b *builder) appBase(a *App) *object {
	appJSON := path.Join(a.Dir, "app.json")
	o := &object{key: keyOf(b.unitKey("app-base", a.Name, a.Cflags, nil, a.Files, a.Exports)...), what: "app " + a.Name}
	o.build = func(ctx context.Context, work string) (string, error) {
		root, err := b.sourceRoot()
		if err != nil {
			return "", err
		}
		spec := compileSpec{srcRoot: root, includes: b.includes(root), cflags: a.Cflags}
		objs, err := b.tc.compile(ctx, spec, b.abs(root, a.Sources), work)
		if err != nil {
			return "", fmt.Errorf("%s: %w", appJSON, err)
		}
		combined := filepath.Join(work, "combined.o")
		if err := b.tc.partialLink(ctx, work, combined, objs, nil, ""); err != nil {
			return "", fmt.Errorf("%s: %w", appJSON, err)
		}
		out := filepath.Join(work, "base.o")
		if err := b.tc.localize(ctx, work, combined, out, a.Exports); err != nil {
			return "", fmt.Errorf("%s: %w", appJSON, err)
		}
		if err := checkExports(out, a.Exports); err != nil {
			return "", fmt.Errorf("%s: exportsyms.uk: %w", appJSON, err)
		}
		return out, nil
	}
	return o
}

// genFileName is the generated source's name inside the app object (its
// STT_FILE symbol); the same for every unikernel.
const genFileName = "unipool_gen.c"

// genSpec compiles a generated file: the app's flags, no include path
// (the file includes nothing).
func genSpec(a *App) compileSpec {
	return compileSpec{genDir: "<gen>", cflags: a.Cflags}
}

func (b *builder) appObject(p *planned, base *object) *object {
	src := genSource(p.Name, p.GenSeed)
	a := p.App
	o := &object{
		key: keyOf("kind app", "base "+base.key, "gen "+sha256Hex([]byte(src)), "exports "+strings.Join(a.Exports, " "),
			"cc "+strings.Join(b.tc.compileArgs(genSpec(a), "<gen>/"+genFileName, "<out>"), " ")),
		what: "app " + a.Name + " of " + p.Name,
	}
	o.build = func(ctx context.Context, work string) (string, error) {
		gen := filepath.Join(work, genFileName)
		if err := os.WriteFile(gen, []byte(src), 0o644); err != nil {
			return "", err
		}
		spec := genSpec(a)
		spec.genDir = work
		objs, err := b.tc.compile(ctx, spec, []string{gen}, work)
		if err != nil {
			return "", fmt.Errorf("%s: generated code: %w", p.Name, err)
		}
		out := filepath.Join(work, "app.o")
		if err := b.tc.partialLink(ctx, work, out, append([]string{b.cache.object(base.key)}, objs...), nil, ""); err != nil {
			return "", fmt.Errorf("%s: %w", path.Join(a.Dir, "app.json"), err)
		}
		// The generated file must add no global symbol: the app's
		// boundary stays its export list.
		if err := checkOnlyExports(out, a.Exports); err != nil {
			return "", fmt.Errorf("%s: generated code: %w", p.Name, err)
		}
		return out, nil
	}
	return o
}

func (b *builder) abs(root string, files []string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = filepath.Join(root, filepath.FromSlash(f))
	}
	return out
}

func (b *builder) build(ctx context.Context, plans []planned, o Options) (*Corpus, error) {
	// Distinct objects, each built at most once.
	libs := map[string]*object{}
	var libOrder []*object
	bases := map[string]*object{}
	apps := make([]*object, len(plans))
	refs := make([][]*object, len(plans))
	for i := range plans {
		p := &plans[i]
		for _, pl := range p.Libs {
			id := pl.Lib.Name + "@" + pl.Variant.ID
			ob, ok := libs[id]
			if !ok {
				var err error
				if ob, err = b.libObject(pl.Lib, pl.Variant); err != nil {
					return nil, err
				}
				libs[id] = ob
				libOrder = append(libOrder, ob)
			}
			refs[i] = append(refs[i], ob)
		}
		base, ok := bases[p.App.Name]
		if !ok {
			base = b.appBase(p.App)
			bases[p.App.Name] = base
		}
		apps[i] = b.appObject(p, base)
		refs[i] = append(refs[i], apps[i])
	}

	// What the cache lacks: app bases only matter for missing app objects.
	var phase1, phase2 []*object
	for _, ob := range libOrder {
		if !b.cache.has(ob.key) {
			phase1 = append(phase1, ob)
		}
	}
	needBase := map[*object]bool{}
	for _, ob := range apps {
		if !b.cache.has(ob.key) {
			phase2 = append(phase2, ob)
		}
	}
	for i, ob := range apps {
		if base := bases[plans[i].App.Name]; !b.cache.has(ob.key) && !needBase[base] && !b.cache.has(base.key) {
			needBase[base] = true
			phase1 = append(phase1, base)
		}
	}
	distinct := len(libOrder) + len(apps)
	b.total = distinct + len(needBase)
	b.stats.Objects = distinct
	b.stats.Intermediates = len(needBase)
	b.stats.Built = len(phase1) + len(phase2) - len(needBase)
	b.stats.Cached = distinct - b.stats.Built
	b.tick(b.stats.Cached)

	if err := b.runAll(ctx, phase1); err != nil {
		return nil, err
	}
	if err := b.runAll(ctx, dedup(phase2)); err != nil {
		return nil, err
	}

	// Check every object the corpus uses, cached or new: a damaged cache
	// entry must not pass into a corpus.
	all := append(append([]*object{}, libOrder...), apps...)
	err := parallel(ctx, b.jobs, len(all), func(i int) error {
		ob := all[i]
		p := b.cache.object(ob.key)
		if err := CheckObject(p); err != nil {
			return fmt.Errorf("%s (%s): %w; delete it to rebuild", p, ob.what, err)
		}
		sum, err := sha256File(p)
		if err != nil {
			return fmt.Errorf("%s: %w", ob.what, err)
		}
		ob.sum = sum
		return nil
	})
	if err != nil {
		return nil, err
	}
	seen := map[string]string{}
	for i, ob := range apps {
		if prev, dup := seen[ob.sum]; dup {
			return nil, fmt.Errorf("corpus: unikernels %s and %s have byte-identical app objects", prev, plans[i].Name)
		}
		seen[ob.sum] = plans[i].Name
	}
	return b.writeOut(ctx, plans, refs, o)
}

// dedup drops repeated objects: two unikernels never share an app object
// (their generated code differs), but a key collision must not build twice.
func dedup(obs []*object) []*object {
	seen := map[string]bool{}
	var out []*object
	for _, ob := range obs {
		if !seen[ob.key] {
			seen[ob.key] = true
			out = append(out, ob)
		}
	}
	return out
}

func (b *builder) runAll(ctx context.Context, obs []*object) error {
	return parallel(ctx, b.jobs, len(obs), func(i int) error {
		ob := obs[i]
		work, err := b.cache.workDir()
		if err != nil {
			return fmt.Errorf("cache: %w", err)
		}
		defer os.RemoveAll(work)
		built, err := ob.build(ctx, work)
		if err != nil {
			return err
		}
		if err := CheckObject(built); err != nil {
			return fmt.Errorf("%s: %w", ob.what, err)
		}
		if err := b.cache.put(ob.key, built); err != nil {
			return err
		}
		b.tick(1)
		return nil
	})
}

func (b *builder) tick(n int) {
	if b.progress == nil {
		return
	}
	b.progMu.Lock()
	defer b.progMu.Unlock()
	b.done += n
	b.progress(b.done, b.total)
}

// parallel runs fn(0..n-1) on at most jobs goroutines and returns the
// first error; after one, no new work starts.
func parallel(ctx context.Context, jobs, n int, fn func(i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	for w := 0; w < jobs && w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// writeOut links every unikernel's objects into Out/<name>/ and writes
// corpus.json last, so a corpus.json always describes objects that exist.
func (b *builder) writeOut(ctx context.Context, plans []planned, refs [][]*object, o Options) (*Corpus, error) {
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	corp := &Corpus{Dir: o.Out, Seed: o.Seed, Count: len(plans), Inputs: o.Inputs, Unikernels: make([]Unikernel, len(plans))}
	if corp.Inputs == "" {
		corp.Inputs = InputsRepeated
	}
	keep := map[string]bool{}
	for i := range plans {
		keep[plans[i].Name] = true
	}
	// A corpus.json already there names folders this build may no longer
	// make; remove those, and only those.
	if old, err := Load(o.Out); err == nil {
		for _, u := range old.Unikernels {
			if !keep[u.Name] {
				if err := os.RemoveAll(filepath.Join(o.Out, u.Name)); err != nil {
					return nil, fmt.Errorf("corpus: %w", err)
				}
			}
		}
	}
	err := parallel(ctx, b.jobs, len(plans), func(i int) error {
		p := &plans[i]
		dir := filepath.Join(o.Out, p.Name)
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("corpus: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("corpus: %w", err)
		}
		u := Unikernel{Name: p.Name, App: p.App.Name, Input: p.Case.Input, Expect: p.Case.Expect}
		for j, ob := range refs[i] {
			var ref LibraryRef
			if j < len(p.Libs) {
				l := p.Libs[j]
				ref = LibraryRef{Name: l.Lib.Name, Version: l.Variant.ID, Origin: l.Lib.Origin,
					Object: p.Name + "/lib" + l.Lib.Name + ".o"}
			} else {
				ref = LibraryRef{Name: p.App.Name, Version: DefaultVariant, Origin: OriginApp,
					Object: p.Name + "/app-" + p.App.Name + ".o"}
			}
			ref.SHA256 = ob.sum
			if err := linkOrCopy(b.cache.object(ob.key), filepath.Join(o.Out, filepath.FromSlash(ref.Object))); err != nil {
				return fmt.Errorf("corpus: %w", err)
			}
			u.Libraries = append(u.Libraries, ref)
		}
		corp.Unikernels[i] = u
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := corp.validate(); err != nil {
		return nil, fmt.Errorf("corpus: built an invalid corpus: %w", err)
	}
	if err := corp.write(); err != nil {
		return nil, err
	}
	return corp, nil
}
