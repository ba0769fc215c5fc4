package process

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// pageFiles holds a run's snapshot page blobs open, one descriptor per
// blob for every instance that maps it. An instance maps a snapshot's
// library pages (the data arena) copy-on-write from their blobs; had each
// instance opened its own, each mapping would hold a file object (struct
// file) of its own, kernel memory the instance's cgroup pays for every
// page it maps. Shared, the instances of one unikernel, and of any
// unikernels whose snapshots hold the same page, hold one between them, as
// they do for every other blob of the run. Up to max are held (a bound on
// the monitor's descriptors); beyond it an instance opens its own.
//
// The descriptors are raw (unix.Open), not *os.File: each os.File of a
// thousand-unikernel snapshot fleet's ~4,000 page blobs held a cleanup
// special and the runtime's per-file state, memory the Go runtime keeps
// (and the host pays for) after the files are closed: ~0.6 MiB.
type pageFiles struct {
	mu   sync.Mutex
	open map[string]int
	max  int
}

// newPageFiles bounds the held descriptors by a quarter of the process's
// descriptor limit: the run's other blobs are held open too.
func newPageFiles() *pageFiles {
	max := 1024
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil && lim.Cur != unix.RLIM_INFINITY {
		max = int(min(lim.Cur/4, 1<<16))
	}
	return &pageFiles{open: map[string]int{}, max: max}
}

// fd returns the held descriptor of path, opening it if there is room; ok
// false: none held (the bound is reached), the caller opens its own.
func (p *pageFiles) fd(path string) (fd uintptr, ok bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n, ok := p.open[path]; ok {
		return uintptr(n), true, nil
	}
	if p.open == nil || len(p.open) >= p.max { // closed, or the bound reached
		return 0, false, nil
	}
	n, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false, &os.PathError{Op: "open", Path: path, Err: err}
	}
	p.open[path] = n
	return uintptr(n), true, nil
}

// held reports how many descriptors are held.
func (p *pageFiles) held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.open)
}

// close closes what is held, and holds none from then on (an instance
// built later opens its own); the instances' mappings keep their files.
// The map goes too: its table, at its largest, is ~100 KiB for the
// snapshot pages of 1000 unikernels.
func (p *pageFiles) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, fd := range p.open {
		unix.Close(fd)
	}
	p.open = nil
}
