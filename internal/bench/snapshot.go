package bench

import (
	"context"
	"fmt"
	"io"

	"github.com/unipool/unipool/internal/pool"
	"github.com/unipool/unipool/internal/snapshot"
)

// snapshotFleet takes the boot snapshot of every pooled unikernel of the
// fleet that has none yet.
func snapshotFleet(ctx context.Context, f *Fleet, log io.Writer) error {
	p, err := pool.Open(f.PoolDir)
	if err != nil {
		return err
	}
	bar := newBar(log, len(f.Names), "snapshotting")
	defer bar.Finish()
	for _, name := range f.Names {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := p.Resolve(name)
		if err != nil {
			return err
		}
		if c.Snapshot == nil {
			if _, err := snapshot.Take(ctx, f.PoolDir, name, snapshot.Options{}); err != nil {
				return fmt.Errorf("bench: snapshot %s: %w", name, err)
			}
		}
		bar.Add(1)
	}
	return nil
}
