package bench

import (
	"context"
	"fmt"
	"io"

	"github.com/unipool/unipool/internal/pool"
	"github.com/unipool/unipool/internal/snapshot"
)

// snapshotFleet takes the boot snapshot of every pooled unikernel of the
// fleet that has none yet, snapshot.BatchSize to a page pack.
func snapshotFleet(ctx context.Context, f *Fleet, log io.Writer) error {
	p, err := pool.Open(f.PoolDir)
	if err != nil {
		return err
	}
	var todo []string
	for _, name := range f.Names {
		c, err := p.Resolve(name)
		if err != nil {
			return err
		}
		if c.Snapshot == nil {
			todo = append(todo, name)
		}
	}
	bar := newBar(log, len(f.Names), "snapshotting")
	defer bar.Finish()
	bar.Add(len(f.Names) - len(todo))
	// Taken one by one, stored snapshot.BatchSize at a time: one page pack
	// a batch.
	if _, err := snapshot.TakeMany(ctx, f.PoolDir, todo, snapshot.Options{}, func(*snapshot.Result) { bar.Add(1) }); err != nil {
		return fmt.Errorf("bench: snapshots: %w", err)
	}
	return nil
}
