// Package launch turns pooled unikernel names into what a monitor runs,
// checking every blob it will map against its digest first: a corrupt pool
// file is refused, never run. The run command, the demo and the benchmarks
// share it.
package launch

import (
	"errors"
	"fmt"

	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/pool"
)

// Resolve finds each name in the pool at dir. cmdline, when not empty,
// replaces every description's default command line.
func Resolve(dir string, names []string, cmdline string) ([]monitor.Unikernel, error) {
	return resolve(dir, names, cmdline, false)
}

// ResolveSnapshots is Resolve for instances started from snapshots: every
// name must have one, and its pages are verified too.
func ResolveSnapshots(dir string, names []string, cmdline string) ([]monitor.Unikernel, error) {
	uks, err := resolve(dir, names, cmdline, true)
	if err != nil {
		return nil, err
	}
	for _, u := range uks {
		if u.Config.Snapshot == nil {
			return nil, fmt.Errorf("unikernel %q has no snapshot (`unipool snapshot %s` takes one)", u.Name, u.Name)
		}
	}
	return uks, nil
}

func resolve(dir string, names []string, cmdline string, snapshots bool) ([]monitor.Unikernel, error) {
	p, err := pool.Open(dir)
	if err != nil {
		return nil, err
	}
	verified := map[string]bool{}
	verify := func(name, what, dgst string) error {
		if dgst == "" || verified[dgst] {
			return nil
		}
		if err := p.VerifyBlob(dgst); err != nil {
			return fmt.Errorf("unikernel %q: %s: %w; refusing to run it (`unipool pool verify` checks the whole pool)", name, what, err)
		}
		verified[dgst] = true
		return nil
	}
	var uks []monitor.Unikernel
	for _, name := range names {
		cfg, err := p.Resolve(name)
		if errors.Is(err, pool.ErrNotFound) {
			return nil, fmt.Errorf("no unikernel %q in pool %s (`unipool pool ls` lists what is there)", name, dir)
		}
		if err != nil {
			return nil, err
		}
		for _, l := range cfg.Libraries {
			if err := verify(name, "library "+l.Name, l.Shared.Digest); err != nil {
				return nil, err
			}
			if l.Init != nil {
				if err := verify(name, "library "+l.Name+" init blob", l.Init.Digest); err != nil {
					return nil, err
				}
			}
		}
		if cfg.Private != nil {
			if err := verify(name, "private blob", cfg.Private.Digest); err != nil {
				return nil, err
			}
		}
		if s := cfg.Snapshot; s != nil && snapshots {
			for _, pg := range s.Pages {
				if err := verify(name, fmt.Sprintf("snapshot page at %#x", pg.Addr), pg.Digest); err != nil {
					return nil, err
				}
			}
		}
		uks = append(uks, monitor.Unikernel{Name: name, Config: cfg, BlobPath: p.BlobPath, Cmdline: cmdline})
	}
	return uks, nil
}
