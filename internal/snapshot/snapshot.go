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

// Take snapshots the pooled unikernel name in the pool at dir.
func Take(ctx context.Context, dir, name string, opt Options) (*Result, error) {
	uks, err := launch.Resolve(dir, []string{name}, "")
	if err != nil {
		return nil, err
	}
	p, err := pool.Open(dir)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	c, err := (&process.Monitor{Threads: 1}).Capture(ctx, uks[0], monitor.Options{MemSize: opt.MemSize, Timeout: opt.Timeout})
	if err != nil {
		return nil, err
	}
	boot := time.Since(start)
	s := &desc.Snapshot{Monitor: process.Name, MemSize: c.MemSize, BootArea: c.BootArea, Regs: c.Regs, Console: c.Console,
		Zero: desc.SnapshotZeroDigest()}
	pages := make(map[uint64][]byte, len(c.Pages))
	distinct := map[string]bool{}
	for _, pg := range c.Pages {
		pages[pg.Addr] = pg.Data
		distinct[string(pg.Data)] = true
	}
	res, err := p.SetSnapshot(name, s, pages)
	if err != nil {
		return nil, err
	}
	return &Result{Name: name, Manifest: string(res.Manifest), Pages: len(pages), Distinct: len(distinct),
		NewPages: res.NewPages, NewBytes: res.NewBytes, BootTime: boot}, nil
}
