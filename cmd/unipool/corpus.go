package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipool/unipool/internal/corpus"
	"github.com/unipool/unipool/internal/progress"
)

func init() {
	group := &cobra.Command{
		Use:   "corpus",
		Short: "Build a fleet of FaaS unikernels as per-library objects (corpus.json)",
	}
	group.AddCommand(corpusBuildCmd(), corpusBenchCmd(), corpusVerifyCmd())
	commands = append(commands, group)
}

// corpusFlags are the options build and bench share.
type corpusFlags struct {
	count         int
	seed          uint64
	jobs          int
	cache         string
	guest         string
	inputs        string
	extras        string
	flavor        string
	configs       int
	appsPerConfig int
	unikraft      string
	ukLog         string
}

func (f *corpusFlags) register(cmd *cobra.Command, defaultCount int) {
	cmd.Flags().IntVar(&f.count, "count", defaultCount, "number of unikernels")
	cmd.Flags().Uint64Var(&f.seed, "seed", 1, "seed every choice follows from")
	cmd.Flags().IntVar(&f.jobs, "jobs", runtime.NumCPU(), "parallel builds")
	cmd.Flags().StringVar(&f.cache, "cache", "", "object cache (default $XDG_CACHE_HOME/unipool/corpus)")
	cmd.Flags().StringVar(&f.guest, "guest", "", "guest source tree to build from (default: the one built into unipool)")
	cmd.Flags().StringVar(&f.inputs, "inputs", corpus.InputsRepeated, "repeated: each unikernel one of its app's app.json cases; "+
		"distinct: its own request, the expected line from a Go reference (apps without one keep their cases)")
	cmd.Flags().StringVar(&f.extras, "extras", corpus.ExtrasDrawn, "drawn: optional libraries drawn by popularity whether the app calls them or not; "+
		"none: only the core libraries, the app's dependencies and one allocator")
	cmd.Flags().StringVar(&f.flavor, "flavor", corpus.FlavorUnipool, "unipool: from unipool's guest tree; unikraft: real Unikraft unikernels built by Unikraft's make "+
		"(the apps of guest/unikraft over configurations of the tree's libraries)")
	cmd.Flags().IntVar(&f.appsPerConfig, "apps-per-config", 0, "unikraft: different apps per configuration (default: all that fit; each is one more make; the other unikernels of a configuration repeat them with their own requests)")
	cmd.Flags().IntVar(&f.configs, "configs", 0, "unikraft: Unikraft configurations to spread the fleet over (default: count / apps, rounded up; each one is one Unikraft build)")
	cmd.Flags().StringVar(&f.unikraft, "unikraft", "", "unikraft: the Unikraft source tree (default: $UNIKRAFT_SRC, a clone, or the shared tarball)")
	cmd.Flags().StringVar(&f.ukLog, "unikraft-log", "", "unikraft: append Unikraft's make output to this file")
}

func (f *corpusFlags) options(stderr io.Writer) corpus.Options {
	o := corpus.Options{Count: f.count, Seed: f.seed, Jobs: f.jobs, CacheDir: f.cache, Inputs: f.inputs, Extras: f.extras,
		Flavor: f.flavor, Configs: f.configs, AppsPerConfig: f.appsPerConfig, Unikraft: f.unikraft}
	if f.guest != "" {
		o.Guest = os.DirFS(f.guest)
	}
	o.Progress = corpusProgress(stderr)
	return o
}

func corpusBuildCmd() *cobra.Command {
	var f corpusFlags
	var out string
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build N different unikernels from a seed into DIR/<name>/*.o and DIR/corpus.json",
		Long: `Build makes a fleet of N different FaaS unikernels, deterministically from the
seed. Each one gets an app (every app in turn), its dependencies, the core
libraries, one allocator, extra libraries drawn by their lib.json popularity,
a compile-time variant of each library (the default the most common), an input
case from its app.json, and generated code of its own in its app object, so
that no two app objects are the same.

Link order: ukplat, ukboot, libc, the allocator, the rest by name, the app.
Objects are compiled once per configuration into a content-keyed cache and
hard-linked (or copied) into DIR/<name>/lib<library>.o and app-<app>.o;
DIR/corpus.json lists each unikernel's libraries in link order with their
version, origin (unipool, the Debian package, or app) and sha256.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := f.options(cmd.ErrOrStderr())
			o.Out = out
			if f.ukLog != "" {
				lf, err := os.OpenFile(f.ukLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
				if err != nil {
					return err
				}
				defer lf.Close()
				o.UnikraftLog = lf
			}
			var st corpus.Stats
			o.Stats = &st
			start := time.Now()
			c, err := corpus.Build(cmd.Context(), o)
			if err != nil {
				return err
			}
			if o.Flavor == corpus.FlavorUnikraft {
				fmt.Fprintf(cmd.OutOrStdout(), "corpus: %d Unikraft unikernels in %s over %d configurations (%d built, %d from the cache), %d distinct objects, in %.1fs\n",
					len(c.Unikernels), out, st.Configs, st.ConfigsBuilt, st.Configs-st.ConfigsBuilt, st.Objects, time.Since(start).Seconds())
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "corpus: %d unikernels in %s (%d distinct objects: %d built, %d from the cache) in %.1fs\n",
				len(c.Unikernels), out, st.Objects, st.Built, st.Cached, time.Since(start).Seconds())
			return nil
		},
	}
	f.register(cmd, 100)
	cmd.Flags().StringVar(&out, "out", "corpus", "output folder")
	return cmd
}

func corpusBenchCmd() *cobra.Command {
	var f corpusFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Time a corpus build from a cold cache and again warm, and check the result",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := f.options(cmd.ErrOrStderr())
			r, err := corpus.Bench(cmd.Context(), o)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "corpus bench: --count %d --seed %d --jobs %d\n", f.count, f.seed, f.jobs)
			fmt.Fprintf(w, "cold: %8.1fs  (%d objects built)\n", r.Cold.Seconds(), r.ColdStats.Built)
			fmt.Fprintf(w, "warm: %8.1fs  (%d objects from the cache, %d built)\n", r.Warm.Seconds(), r.WarmStats.Cached, r.WarmStats.Built)
			fmt.Fprintf(w, "checked: %d unikernels, %d distinct app objects, %d distinct objects all ELF64 x86-64 ET_REL, cold and warm corpus.json identical\n",
				r.Unikernels, r.DistinctApps, r.Objects)
			return nil
		},
	}
	f.register(cmd, 1000)
	return cmd
}

func corpusVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify DIR",
		Short: "Check a corpus: corpus.json valid, every object present with its sha256 and ELF64 x86-64 relocatable",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := corpus.Load(args[0])
			if err != nil {
				return err
			}
			if err := c.Verify(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "corpus %s: %d unikernels, all objects verified\n", args[0], len(c.Unikernels))
			return nil
		},
	}
}

// corpusProgress reports the corpus objects built: a bar on a terminal, plain
// lines elsewhere (internal/progress).
func corpusProgress(w io.Writer) func(done, total int) {
	var (
		mu  sync.Mutex
		bar *progress.Bar
	)
	return func(done, total int) {
		mu.Lock()
		defer mu.Unlock()
		if bar == nil {
			bar = progress.New(w, total, "corpus objects")
		}
		bar.Set(done)
		if done == total {
			bar.Finish()
		}
	}
}
