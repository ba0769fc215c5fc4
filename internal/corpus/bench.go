package corpus

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// BenchResult is what Bench measured.
type BenchResult struct {
	Cold, Warm           time.Duration
	ColdStats, WarmStats Stats
	Unikernels           int
	DistinctApps         int
	Objects              int // distinct objects, all checked ELF64 x86-64 ET_REL
}

// Bench builds the corpus o describes twice: from an empty cache (cold),
// then again into a new folder with that cache (warm). It checks that both
// builds wrote the same corpus.json, that every object is an ELF64 x86-64
// relocatable object with the digest corpus.json gives, and that no two
// app objects are the same. o.CacheDir is where the scratch cache and
// outputs go (a fresh folder inside it, removed after); the cache already
// there is not used, so cold is really cold.
func Bench(ctx context.Context, o Options) (*BenchResult, error) {
	root := o.CacheDir
	if root == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		root = d
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	// Scratch space beside the real cache, on the same file system, so
	// the measurement pays the same disk costs a user's build does.
	scratch, err := os.MkdirTemp(root, "bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(scratch)
	o.CacheDir = filepath.Join(scratch, "cache")

	r := &BenchResult{}
	o.Out = filepath.Join(scratch, "cold")
	o.Stats = &r.ColdStats
	start := time.Now()
	cold, err := Build(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("bench: cold build: %w", err)
	}
	r.Cold = time.Since(start)

	o.Out = filepath.Join(scratch, "warm")
	o.Stats = &r.WarmStats
	start = time.Now()
	warm, err := Build(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("bench: warm build: %w", err)
	}
	r.Warm = time.Since(start)

	a, err := os.ReadFile(filepath.Join(cold.Dir, FileName))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(warm.Dir, FileName))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if !bytes.Equal(a, b) {
		return nil, fmt.Errorf("bench: the warm build's corpus.json differs from the cold build's")
	}
	loaded, err := Load(warm.Dir)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := loaded.Verify(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	apps := map[string]bool{}
	objects := map[string]bool{}
	for _, u := range loaded.Unikernels {
		apps[u.Libraries[len(u.Libraries)-1].SHA256] = true
		for _, l := range u.Libraries {
			objects[l.SHA256] = true
		}
	}
	if len(apps) != len(loaded.Unikernels) {
		return nil, fmt.Errorf("bench: %d unikernels but %d distinct app objects", len(loaded.Unikernels), len(apps))
	}
	r.Unikernels = len(loaded.Unikernels)
	r.DistinctApps = len(apps)
	r.Objects = len(objects)
	return r, nil
}
