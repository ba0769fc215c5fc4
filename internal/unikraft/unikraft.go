// Package unikraft finds a Unikraft source tree the way a user would and
// builds Unikraft apps with it into per-library objects (build/libNAME.o),
// the input of `unipool link`.
//
// A tree is found, in this order: the path given (a --unikraft flag), else
// $UNIKRAFT_SRC, else a clone of the release tag (where github.com is
// reachable), else the release tarball in a "shared/unikraft" folder next
// to the repository or any folder above it (how machines without network
// get it: ../shared/unikraft/unikraft-0.17.0.tar.gz). Tarballs are
// unpacked into the user cache folder once.
package unikraft

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Release is the Unikraft release unipool is tried with.
const (
	Release    = "0.17.0"
	ReleaseTag = "RELEASE-" + Release
	RepoURL    = "https://github.com/unikraft/unikraft"
	// AppRepoURL is app-helloworld, the app the tests build.
	AppRepoURL = "https://github.com/unikraft/app-helloworld"
)

// Tree is a Unikraft source tree and the apps found with it.
type Tree struct {
	Dir string // the unikraft tree (has Makefile and lib/)
	// Apps maps app names ("helloworld") to their folders.
	Apps map[string]string
	// How says where it came from, for messages.
	How string
}

// ErrNotFound says no tree was found; tests skip on it.
var ErrNotFound = errors.New("no Unikraft source tree")

// Find returns a Unikraft tree: dir if set, else $UNIKRAFT_SRC, else a
// clone of the release tag, else the shared tarballs found from start
// (a folder inside the repository) upwards.
func Find(ctx context.Context, dir, start string) (*Tree, error) {
	if dir == "" {
		dir = os.Getenv("UNIKRAFT_SRC")
	}
	if dir != "" {
		t, err := treeAt(dir, "given")
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	cache, err := cacheDir()
	if err != nil {
		return nil, err
	}
	var tried []string
	if t, err := fromClone(ctx, cache); err == nil {
		return t, nil
	} else {
		tried = append(tried, err.Error())
	}
	if t, err := fromTarballs(ctx, start, cache); err == nil {
		return t, nil
	} else {
		tried = append(tried, err.Error())
	}
	return nil, fmt.Errorf("%w (give --unikraft DIR or $UNIKRAFT_SRC; tried: %s)", ErrNotFound, strings.Join(tried, "; "))
}

// treeAt checks that dir is a Unikraft tree.
func treeAt(dir, how string) (*Tree, error) {
	for _, f := range []string{"Makefile", "lib", "plat", "support/scripts/mkbootinfo.py"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("%s is not a Unikraft tree (no %s)", dir, f)
		}
	}
	t := &Tree{Dir: dir, Apps: map[string]string{}, How: how}
	// Apps next to the tree (app-NAME folders), as the tarballs unpack.
	if ents, err := os.ReadDir(filepath.Dir(dir)); err == nil {
		for _, e := range ents {
			if name, ok := strings.CutPrefix(e.Name(), "app-"); ok && e.IsDir() {
				t.Apps[name] = filepath.Join(filepath.Dir(dir), e.Name())
			}
		}
	}
	return t, nil
}

// cacheDir is where tarballs are unpacked and builds kept:
// $UNIPOOL_UNIKRAFT_CACHE, else the user cache folder.
func cacheDir() (string, error) {
	if d := os.Getenv("UNIPOOL_UNIKRAFT_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "unipool", "unikraft"), nil
}

// SharedDir looks for "shared/unikraft" holding the release tarball in
// start and every folder above it.
func SharedDir(start string) (string, bool) {
	abs, err := filepath.Abs(start)
	if err != nil {
		return "", false
	}
	for d := abs; ; d = filepath.Dir(d) {
		cand := filepath.Join(d, "shared", "unikraft")
		if _, err := os.Stat(filepath.Join(cand, "unikraft-"+Release+".tar.gz")); err == nil {
			return cand, true
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}

// fromTarballs unpacks the shared tarballs (once) and returns the tree.
func fromTarballs(ctx context.Context, start, cache string) (*Tree, error) {
	shared, ok := SharedDir(start)
	if !ok {
		return nil, fmt.Errorf("no shared/unikraft/unikraft-%s.tar.gz in %s or above", Release, start)
	}
	tars, _ := filepath.Glob(filepath.Join(shared, "*.tar.gz"))
	sort.Strings(tars)
	h := sha256.New()
	for _, t := range tars {
		fi, err := os.Stat(t)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(h, "%s %d %d\n", filepath.Base(t), fi.Size(), fi.ModTime().UnixNano())
	}
	dst := filepath.Join(cache, "src-"+hex.EncodeToString(h.Sum(nil))[:12])
	tree := filepath.Join(dst, "unikraft-"+Release)
	if _, err := os.Stat(filepath.Join(dst, ".complete")); err != nil {
		if err := os.MkdirAll(cache, 0o755); err != nil {
			return nil, err
		}
		tmp, err := os.MkdirTemp(cache, ".src-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		for _, t := range tars {
			if out, err := exec.CommandContext(ctx, "tar", "-xzf", t, "-C", tmp).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("unpacking %s: %v: %s", t, err, out)
			}
		}
		if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, dst); err != nil && !exists(filepath.Join(dst, ".complete")) {
			return nil, err
		}
	}
	return treeAt(tree, "the release tarball in "+shared)
}

// fromClone clones the release tag and app-helloworld (once), where the
// network allows.
func fromClone(ctx context.Context, cache string) (*Tree, error) {
	dst := filepath.Join(cache, "clone-"+Release)
	tree := filepath.Join(dst, "unikraft-"+Release)
	if !exists(filepath.Join(dst, ".complete")) {
		if _, err := exec.LookPath("git"); err != nil {
			return nil, errors.New("no git to clone " + RepoURL)
		}
		if err := os.MkdirAll(cache, 0o755); err != nil {
			return nil, err
		}
		tmp, err := os.MkdirTemp(cache, ".clone-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		for _, c := range [][]string{
			{"clone", "-q", "--depth", "1", "--branch", ReleaseTag, RepoURL, filepath.Join(tmp, "unikraft-"+Release)},
			{"clone", "-q", "--depth", "1", "--branch", "staging", AppRepoURL, filepath.Join(tmp, "app-helloworld")},
		} {
			cmd := exec.CommandContext(cctx, "git", c...)
			cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("git %s: %v: %s", strings.Join(c[:len(c)-1], " "), err, bytes.TrimSpace(out))
			}
		}
		if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, dst); err != nil && !exists(filepath.Join(dst, ".complete")) {
			return nil, err
		}
	}
	return treeAt(tree, "a clone of "+RepoURL+" "+ReleaseTag)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
