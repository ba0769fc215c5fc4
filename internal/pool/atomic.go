package pool

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// tmpPrefix starts the name of every temporary file the pool writes. A
// temporary file lives in the directory of the file it will become (so the
// rename is atomic); verify ignores such files and gc removes them.
const tmpPrefix = ".tmp-"

func isTemp(name string) bool { return strings.HasPrefix(name, tmpPrefix) }

// writeAtomic makes path hold data or leaves it as it was: the bytes go to
// a temporary file beside it, are fsynced, renamed over path, and the
// directory is fsynced so the rename itself survives a crash.
func writeAtomic(path string, data []byte) error {
	if err := writeRenamed(path, data, 0o644); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// writeRenamed is writeAtomic without the directory fsync, for a writer
// that puts many files in one directory and fsyncs it once before anything
// refers to them (add: every blob, then one fsync, then index.json).
// perm is the file's mode (blobs are stored read-only: 0444).
func writeRenamed(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := filepath.Join(dir, tmpPrefix+filepath.Base(path)+"-"+hex.EncodeToString(suffix[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// syncDir makes the directory entries of dir (renames, removals) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
