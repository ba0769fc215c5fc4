// Package snapshot takes boot snapshots of pooled unikernels: it boots one
// under the process monitor up to its ready point (abi.PortReady), and
// stores what it finds there in the pool (pool.SetSnapshot): every
// non-zero page of its private memory as a content-addressed page blob,
// shared by content with every other snapshot, and its registers and
// console in the description. The loader starts instances from it
// (loader.Options.Snapshot), under either monitor.
package snapshot

import (
	"context"
	"fmt"
	"time"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/monitor/process"
	"github.com/unipool/unipool/internal/pool"
)

// Result says what one snapshot stored.
type Result struct {
	Name     string        `json:"name"`
	Manifest string        `json:"manifest"`
	Pages    int           `json:"pages"`        // non-zero pages (page blobs referenced)
	Distinct int           `json:"distinct"`     // distinct pages among them
	NewPages int           `json:"new_pages"`    // of those, not in the pool before
	NewBytes int64         `json:"new_bytes"`    // bytes written (pages, description, manifest)
	BootTime time.Duration `json:"boot_time_ns"` // cold boot to the ready point, and the capture
}

// Options are Take's choices.
type Options struct {
	MemSize uint64        // guest heap+stack; 0: the description's
	Timeout time.Duration // give up on a guest that does not reach its ready point
}

// BatchSize is how many snapshots TakeMany stores as one batch (one page
// pack for their new pages). A run of the batch's unikernels maps their
// pages from one file, not one per unikernel (a struct file each, and an
// inode and dentry when the pool is cold); a pull of one of them brings
// the whole pack (at 1000 unikernels, ~3.8 new pages a snapshot: ~1 MiB
// for 64).
const BatchSize = 64

// Take snapshots the pooled unikernel name in the pool at dir.
func Take(ctx context.Context, dir, name string, opt Options) (*Result, error) {
	res, err := TakeMany(ctx, dir, []string{name}, opt, nil)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// TakeMany snapshots the pooled unikernels names in the pool at dir, one
// after the other, and stores them BatchSize at a time
// (pool.SetSnapshots: one page pack a batch). done, if not nil, is told of
// each result as its batch is stored. On an error, the snapshots taken
// before it are stored, and their results returned with it.
func TakeMany(ctx context.Context, dir string, names []string, opt Options, done func(*Result)) ([]*Result, error) {
	p, err := pool.Open(dir)
	if err != nil {
		return nil, err
	}
	var out, pend []*Result
	var items []pool.SnapshotItem
	flush := func() error {
		if len(items) == 0 {
			return nil
		}
		res, err := p.SetSnapshots(items)
		if err != nil {
			return err
		}
		for i, r := range pend {
			r.Manifest, r.NewPages, r.NewBytes = string(res[i].Manifest), res[i].NewPages, res[i].NewBytes
			out = append(out, r)
			if done != nil {
				done(r)
			}
		}
		items, pend = nil, nil
		return nil
	}
	for _, name := range names {
		it, r, err := capture(ctx, dir, name, opt)
		if err != nil {
			if ferr := flush(); ferr != nil {
				return out, fmt.Errorf("%w (and storing the snapshots taken before: %v)", err, ferr)
			}
			return out, err
		}
		items, pend = append(items, it), append(pend, r)
		if len(items) == BatchSize {
			if err := flush(); err != nil {
				return out, err
			}
		}
	}
	return out, flush()
}

// capture boots the pooled unikernel name to its ready point and returns
// what SetSnapshots stores of it.
func capture(ctx context.Context, dir, name string, opt Options) (pool.SnapshotItem, *Result, error) {
	uks, err := launch.Resolve(dir, []string{name}, "")
	if err != nil {
		return pool.SnapshotItem{}, nil, err
	}
	start := time.Now()
	c, err := (&process.Monitor{Threads: 1}).Capture(ctx, uks[0], monitor.Options{MemSize: opt.MemSize, Timeout: opt.Timeout})
	if err != nil {
		return pool.SnapshotItem{}, nil, err
	}
	boot := time.Since(start)
	s := &desc.Snapshot{Monitor: process.Name, MemSize: c.MemSize, StackBootArea: c.StackBootArea, StackBootRoom: c.StackBootRoom, Regs: c.Regs, Console: c.Console,
		Zero: desc.SnapshotZeroDigest()}
	pages := make(map[uint64][]byte, len(c.Pages))
	distinct := map[string]bool{}
	for _, pg := range c.Pages {
		pages[pg.Addr] = pg.Data
		distinct[string(pg.Data)] = true
	}
	return pool.SnapshotItem{Name: name, Snapshot: s, Pages: pages},
		&Result{Name: name, Pages: len(pages), Distinct: len(distinct), BootTime: boot}, nil
}
