package libmap

import (
	"bytes"
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

// UsesSuffix names the file beside the map that keeps its pack regions'
// use counts (Region.Uses; "map.json.uses"). The counts are a placement
// hint of this host's links, no part of the map's layout: the map file
// holds the layout alone (MarshalLayout), so a link that places nothing
// new leaves it byte for byte as it was (and a registry gets no new map
// tag for it) while the counts still grow.
const UsesSuffix = ".uses"

// Load reads and validates the map at path, with the use counts of the
// file beside it (UsesSuffix) if there is one. A missing map is an empty
// map (the first link creates it); anything unreadable or invalid is an
// error naming the file.
func Load(path string) (*Map, error) {
	m, _, _, err := load(path)
	return m, err
}

// load is Load, also returning the bytes of the map file and of the count
// file beside it (nil for a file that does not exist).
func load(path string) (m *Map, data, uses []byte, err error) {
	data, err = os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return New(), nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("library map %s: %w", path, err)
	}
	if len(data) > maxMapFile {
		return nil, nil, nil, fmt.Errorf("library map %s: %d bytes, too large", path, len(data))
	}
	if m, err = Parse(data); err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	uses, err = os.ReadFile(path + UsesSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return m, data, nil, nil
	}
	if err == nil && len(uses) > maxMapFile {
		err = fmt.Errorf("%d bytes, too large", len(uses))
	}
	if err == nil {
		err = m.applyUses(uses)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("library map use counts %s: %w", path+UsesSuffix, err)
	}
	return m, data, uses, nil
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
	m, file, uses, err := load(path)
	if err != nil {
		return err
	}
	if err := fn(m); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%s: refusing to write: %w", path, err)
	}
	// The layout to the map file, the counts beside it, each only if it
	// differs from the file (a map file written with the counts inside,
	// before they moved out, is written once more, without them).
	layout, err := m.MarshalLayout()
	if err != nil {
		return fmt.Errorf("library map %s: %w", path, err)
	}
	if file == nil || !bytes.Equal(file, layout) {
		if err := writeAtomic(path, layout); err != nil {
			return err
		}
	}
	switch after := m.marshalUses(); {
	case bytes.Equal(after, uses):
	case after == nil:
		// No counts (a map that replaced the one they were for).
		if err := os.Remove(path + UsesSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("library map use counts %s: %w", path+UsesSuffix, err)
		}
	default:
		return writeAtomic(path+UsesSuffix, after)
	}
	return nil
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
