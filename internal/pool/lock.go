package pool

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lock is a held flock on the pool's lock file. Writers (add, rm, gc) hold
// it exclusively for their whole run, so they never interleave; readers hold
// it shared so gc cannot remove a blob between their reading index.json and
// their reading the blob.
type lock struct{ f *os.File }

func (p *Pool) lock(exclusive bool) (*lock, error) {
	path := p.lockPath()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil && !exclusive && (errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS)) {
		// A reader of a pool it may not write still locks, through a
		// read-only descriptor (flock does not care about the open mode).
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("pool %s: lock: %w", p.dir, err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := flock(f, how); err != nil {
		f.Close()
		return nil, fmt.Errorf("pool %s: lock %s: %w", p.dir, path, err)
	}
	return &lock{f: f}, nil
}

// flock takes a flock on f (how: LOCK_SH or LOCK_EX), waiting for it and
// going on waiting when a signal interrupts the wait.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}

func (l *lock) unlock() {
	// Closing the descriptor releases the flock.
	l.f.Close()
}
