package corpus

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// keyVersion changes when the way objects are built changes in a way the
// other key inputs do not show.
const keyVersion = "unipool-corpus-object-v3"

// DefaultCacheDir is where built objects are kept unless told otherwise:
// $XDG_CACHE_HOME/unipool/corpus (or ~/.cache/unipool/corpus).
func DefaultCacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no user cache directory (set XDG_CACHE_HOME or pass --cache): %w", err)
	}
	return filepath.Join(base, "unipool", "corpus"), nil
}

// cache is a content-keyed store of objects: objects/<k[:2]>/<k>.o, where
// the key is the sha256 of everything that went into the object (sources,
// headers, flags, defines, tool versions). Entries are written once,
// atomically (rename), and never changed, so concurrent builders can
// share one cache; they are read-only because outputs hard-link them.
type cache struct {
	dir string
}

func openCache(dir string) (*cache, error) {
	for _, sub := range []string{"objects", "src", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("cache %s: %w", dir, err)
		}
	}
	c := &cache{dir: dir}
	c.sweep()
	return c, nil
}

// staleAfter is how old a scratch folder must be before it counts as left
// behind by a killed build rather than in use by a running one.
const staleAfter = 6 * time.Hour

// sweep removes scratch folders that killed builds left behind.
func (c *cache) sweep() {
	tmp := filepath.Join(c.dir, "tmp")
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleAfter {
			os.RemoveAll(filepath.Join(tmp, e.Name()))
		}
	}
}

func (c *cache) object(key string) string {
	return filepath.Join(c.dir, "objects", key[:2], key+".o")
}

func (c *cache) has(key string) bool {
	fi, err := os.Stat(c.object(key))
	return err == nil && fi.Mode().IsRegular()
}

// put moves a built object into the cache under key.
func (c *cache) put(key, built string) error {
	dst := c.object(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if err := syncFile(built); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if err := os.Chmod(built, 0o444); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(built, dst); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

// workDir is a scratch folder on the cache's file system, so built objects
// move into the cache with a rename.
func (c *cache) workDir() (string, error) {
	return os.MkdirTemp(filepath.Join(c.dir, "tmp"), "build-")
}

// extract writes files (slash paths to contents) into src/<id> once and
// returns that folder. The tree appears whole or not at all.
func (c *cache) extract(id string, files map[string][]byte) (string, error) {
	dst := filepath.Join(c.dir, "src", id)
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		return dst, nil
	}
	tmp, err := os.MkdirTemp(filepath.Join(c.dir, "tmp"), "src-")
	if err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	for name, data := range files {
		p := filepath.Join(tmp, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			os.RemoveAll(tmp)
			return "", fmt.Errorf("cache: %w", err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			os.RemoveAll(tmp)
			return "", fmt.Errorf("cache: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.RemoveAll(tmp)
		// Another builder extracted the same tree first.
		if fi, serr := os.Stat(dst); serr == nil && fi.IsDir() {
			return dst, nil
		}
		return "", fmt.Errorf("cache: %w", err)
	}
	return dst, nil
}

// keyOf hashes key material: one line per input, in a fixed order.
func keyOf(lines ...string) string {
	h := sha256.New()
	io.WriteString(h, keyVersion+"\n")
	for _, l := range lines {
		io.WriteString(h, strings.ReplaceAll(l, "\n", "\\n"))
		io.WriteString(h, "\n")
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sha256Hex(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// linkOrCopy puts src at dst: a hard link when both are on one file
// system (outputs then cost no space), else a copy.
func linkOrCopy(src, dst string) error {
	if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
