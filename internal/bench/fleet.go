package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/unipool/unipool/internal/corpus"
	"github.com/unipool/unipool/internal/link"
	"github.com/unipool/unipool/internal/pool"
	"github.com/unipool/unipool/internal/progress"
)

// Fleet is a built corpus, linked in some layouts, its aligned images pooled.
type Fleet struct {
	Corpus  *corpus.Corpus
	Images  map[string][]string // layout -> image path per unikernel (corpus order)
	PoolDir string
	Names   []string // pool names, corpus order
	// NoPacksPoolDir, if not "", is a second pool of the same unikernels
	// (same names): their aligned images linked without packs against its
	// own map (Images[LayoutAlignedNoPacks]), for the mode shared-no-packs.
	NoPacksPoolDir string
}

// poolFor is the pool mode m runs from.
func (f *Fleet) poolFor(m Mode) string {
	if m.NoPacks {
		return f.NoPacksPoolDir
	}
	return f.PoolDir
}

// FleetOptions say what to build.
type FleetOptions struct {
	Count   int
	Seed    uint64
	Inputs  string   // corpus.InputsDistinct (the default) or corpus.InputsRepeated
	Work    string   // working folder: corpus/, images/, pool/
	Layouts []string // layouts to link; aligned is always linked (the pool needs it)
	Jobs    int
	Log     io.Writer // progress and steps (stderr)
	// Flavor is corpus.FlavorUnipool (default) or corpus.FlavorUnikraft;
	// Configs the Unikraft configurations (0: the corpus's default).
	Flavor        string
	Configs       int
	AppsPerConfig int // corpus.Options.AppsPerConfig
	// NoPacks also links the aligned images without packs against a map
	// of their own and pools them apart (Fleet.NoPacksPoolDir).
	NoPacks bool
}

// BuildFleet builds the corpus, links every unikernel in every layout
// (in parallel) and adds the aligned images to a fresh pool.
func BuildFleet(ctx context.Context, o FleetOptions) (*Fleet, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Jobs <= 0 {
		o.Jobs = 2
	}
	if o.Inputs == "" {
		o.Inputs = corpus.InputsDistinct
	}
	fmt.Fprintf(o.Log, "building a corpus of %d unikernels (seed %d, %s inputs, flavor %s)\n", o.Count, o.Seed, o.Inputs, cmp.Or(o.Flavor, corpus.FlavorUnipool))
	bar := newBar(o.Log, -1, "compiling objects")
	c, err := corpus.Build(ctx, corpus.Options{Count: o.Count, Seed: o.Seed, Inputs: o.Inputs, Out: filepath.Join(o.Work, "corpus"), Jobs: o.Jobs,
		Flavor: o.Flavor, Configs: o.Configs, AppsPerConfig: o.AppsPerConfig,
		Progress: func(done, total int) { bar.SetTotal(total); bar.Set(done) }})
	bar.Finish()
	if err != nil {
		return nil, err
	}
	f := &Fleet{Corpus: c, Images: map[string][]string{}, PoolDir: filepath.Join(o.Work, "pool")}
	// A fresh pool and map each time: the measurement must not depend on
	// what an earlier run left.
	os.RemoveAll(f.PoolDir)
	p, err := pool.Init(f.PoolDir)
	if err != nil {
		return nil, err
	}
	layouts := []string{link.LayoutAligned}
	for _, l := range o.Layouts {
		if !slices.Contains(layouts, l) {
			layouts = append(layouts, l)
		}
	}
	for _, layout := range layouts {
		paths, err := linkAll(ctx, c, o, layout, layout, p.MapPath(), false)
		if err != nil {
			return nil, err
		}
		f.Images[layout] = paths
	}
	bar = newBar(o.Log, len(c.Unikernels), "pooling")
	for i, u := range c.Unikernels {
		if _, err := pool.Add(f.PoolDir, f.Images[link.LayoutAligned][i], pool.AddOptions{Name: u.Name, Cmdline: u.Input, InitBlobs: true}); err != nil {
			return nil, fmt.Errorf("bench: pool add %s: %w", u.Name, err)
		}
		f.Names = append(f.Names, u.Name)
		bar.Add(1)
	}
	bar.Finish()
	if o.NoPacks {
		f.NoPacksPoolDir = filepath.Join(o.Work, "pool-no-packs")
		os.RemoveAll(f.NoPacksPoolDir)
		np, err := pool.Init(f.NoPacksPoolDir)
		if err != nil {
			return nil, err
		}
		paths, err := linkAll(ctx, c, o, LayoutAlignedNoPacks, link.LayoutAligned, np.MapPath(), true)
		if err != nil {
			return nil, err
		}
		f.Images[LayoutAlignedNoPacks] = paths
		bar = newBar(o.Log, len(c.Unikernels), "pooling "+LayoutAlignedNoPacks)
		for i, u := range c.Unikernels {
			if _, err := pool.Add(f.NoPacksPoolDir, paths[i], pool.AddOptions{Name: u.Name, Cmdline: u.Input, InitBlobs: true}); err != nil {
				return nil, fmt.Errorf("bench: pool add %s (%s): %w", u.Name, LayoutAlignedNoPacks, err)
			}
			bar.Add(1)
		}
		bar.Finish()
	}
	return f, nil
}

// linkAll links every unikernel of c in layout against the map at mapPath
// (noPacks: link.Options.NoPacks) into Work/images/name, o.Jobs at a time;
// the aligned links update the map in the corpus's order.
func linkAll(ctx context.Context, c *corpus.Corpus, o FleetOptions, name, layout, mapPath string, noPacks bool) ([]string, error) {
	dir := filepath.Join(o.Work, "images", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	paths := make([]string, len(c.Unikernels))
	bar := newBar(o.Log, len(c.Unikernels), "linking "+name)
	// The aligned links take the map in the corpus's order (link.Order),
	// so the map and the images are the same whatever o.Jobs.
	var order *link.Order
	if layout == link.LayoutAligned {
		order = link.NewOrder(len(c.Unikernels))
	}
	work := make(chan int)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < o.Jobs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				u := c.Unikernels[i]
				var turn *link.Turn
				if order != nil {
					turn = order.Turn(i)
				}
				objs, sums, err := link.ObjectsFromCorpus(c.Dir, u.Name)
				out := filepath.Join(dir, u.Name+".img")
				if err == nil {
					_, err = link.Link(ctx, link.Options{Layout: layout, Objects: objs, SHA256: sums, Output: out,
						MapPath: mapPath, Cmdline: u.Input, Fragments: c.Fragments(&u), NoPacks: noPacks, Turn: turn})
				} else if turn != nil {
					turn.Done()
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("bench: link %s (%s): %w", u.Name, name, err)
				}
				paths[i] = out
				bar.Add(1)
				mu.Unlock()
			}
		}()
	}
	for i := range c.Unikernels {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	bar.Finish()
	if firstErr != nil {
		return nil, firstErr
	}
	return paths, ctx.Err()
}

// LoadFleet takes the fleet BuildFleet left in work as it is (no build, no
// link, no pool add): for a host where building is slow (the emulated KVM
// host), with the fleet built elsewhere. Every image and the pool must be
// there.
//
// With inputs other than the built corpus's, each unikernel gets the
// request and expected line of the other kind (corpus.PlanCases): the
// images are the same, the request is the instance's command line.
func LoadFleet(work string, layouts []string, inputs string) (*Fleet, error) {
	c, err := corpus.Load(filepath.Join(work, "corpus"))
	if err != nil {
		return nil, fmt.Errorf("bench: the fleet in %s: %w", work, err)
	}
	if inputs != "" && inputs != c.Inputs && c.Flavor == corpus.FlavorUnikraft {
		return nil, fmt.Errorf("bench: the fleet in %s is a Unikraft corpus built with %s inputs; build it again for %s", work, c.Inputs, inputs)
	}
	if inputs != "" && inputs != c.Inputs {
		cases, err := corpus.PlanCases(len(c.Unikernels), c.Seed, inputs)
		if err != nil {
			return nil, err
		}
		for i := range c.Unikernels {
			if cases[i].Name != c.Unikernels[i].Name {
				return nil, fmt.Errorf("bench: the fleet in %s: unikernel %d is %s, the plan says %s", work, i, c.Unikernels[i].Name, cases[i].Name)
			}
			c.Unikernels[i].Input, c.Unikernels[i].Expect = cases[i].Input, cases[i].Expect
		}
		c.Inputs = inputs
	}
	f := &Fleet{Corpus: c, Images: map[string][]string{}, PoolDir: filepath.Join(work, "pool")}
	if _, err := pool.Open(f.PoolDir); err != nil {
		return nil, fmt.Errorf("bench: the fleet in %s: %w", work, err)
	}
	for _, l := range append([]string{link.LayoutAligned}, layouts...) {
		var paths []string
		for _, u := range c.Unikernels {
			p := filepath.Join(work, "images", l, u.Name+".img")
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("bench: the fleet in %s has no %s image of %s: %w", work, l, u.Name, err)
			}
			paths = append(paths, p)
		}
		f.Images[l] = paths
	}
	for _, u := range c.Unikernels {
		f.Names = append(f.Names, u.Name)
	}
	// The no-packs pool, if the fleet was built with it: both its pool
	// and its images, else neither.
	if np := filepath.Join(work, "pool-no-packs"); exists(np) {
		if _, err := pool.Open(np); err != nil {
			return nil, fmt.Errorf("bench: the fleet in %s: %w", work, err)
		}
		var paths []string
		for _, u := range c.Unikernels {
			p := filepath.Join(work, "images", LayoutAlignedNoPacks, u.Name+".img")
			if !exists(p) {
				return nil, fmt.Errorf("bench: the fleet in %s has a no-packs pool but no %s image of %s", work, LayoutAlignedNoPacks, u.Name)
			}
			paths = append(paths, p)
		}
		f.NoPacksPoolDir, f.Images[LayoutAlignedNoPacks] = np, paths
	}
	return f, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// truncate keeps the first n unikernels (all when n is 0 or more than
// there are): a corpus of n is the first n of a larger one.
func (f *Fleet) truncate(n int) {
	if n <= 0 || n >= len(f.Names) {
		return
	}
	f.Corpus.Unikernels, f.Names = f.Corpus.Unikernels[:n], f.Names[:n]
	for l, paths := range f.Images {
		f.Images[l] = paths[:n]
	}
}

func newBar(w io.Writer, max int, what string) *progress.Bar { return progress.New(w, max, what) }
