package libmap

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// maxMapFile bounds what Load reads: a map of thousands of libraries and
// versions is a few MiB.
const maxMapFile = 256 << 20

// LockSuffix names the lock file beside the map ("map.json.lock").
const LockSuffix = ".lock"

// Load reads and validates the map at path. A missing file is an empty
// map (the first link creates it); anything unreadable or invalid is an
// error naming the file.
func Load(path string) (*Map, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return New(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("library map %s: %w", path, err)
	}
	if len(data) > maxMapFile {
		return nil, fmt.Errorf("library map %s: %d bytes, too large", path, len(data))
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Update runs fn on the current map under an exclusive lock and, if fn
// returns nil and changed the map, replaces the file atomically. If fn
// fails, the file is left as it was. The lock is held while fn runs, so a
// caller may do slow work (a link) and commit its placements only if that
// work succeeds.
func Update(path string, fn func(*Map) error) error {
	unlock, err := lock(path + LockSuffix)
	if err != nil {
		return err
	}
	defer unlock()
	m, err := Load(path)
	if err != nil {
		return err
	}
	before, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("library map %s: %w", path, err)
	}
	if err := fn(m); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%s: refusing to write: %w", path, err)
	}
	after, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("library map %s: %w", path, err)
	}
	if string(before) == string(after) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
	}
	return writeAtomic(path, after)
}

// lock takes an exclusive flock on file, creating it.
func lock(file string) (func(), error) {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("library map lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("library map lock %s: %w", file, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// writeAtomic replaces path with data so that readers (and a crash at any
// point) see either the old file or the new one, never a mixture.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("library map %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("library map %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("library map %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("library map %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("library map %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("library map %s: %w", path, err)
	}
	done = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("library map %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("library map %s: sync directory: %w", path, err)
	}
	return nil
}
