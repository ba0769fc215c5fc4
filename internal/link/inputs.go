package link

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/unipool/unipool/internal/corpus"
	"github.com/unipool/unipool/internal/libmap"
)

// OriginApp marks the image's own code (corpus.json's origin "app").
const OriginApp = "app"

// Object is one library object to link and what is known about it.
type Object struct {
	Path string
	// Name is the library name; default NameFromPath(Path).
	Name string
	// Version labels the build; default: the first 12 hex digits of the
	// object's sha256, so identical objects get the same version.
	Version string
	// Origin is "unipool", a Debian package, or OriginApp.
	Origin string
	// App marks the image's own code: it goes to abi.AppRegionBase, not
	// to the map.
	App bool
}

// NameFromPath names a library after its object file the way Unikraft
// does (build/libNAME.o): the base name without ".o" and without a "lib"
// prefix.
func NameFromPath(path string) string {
	n := strings.TrimSuffix(filepath.Base(path), ".o")
	if t := strings.TrimPrefix(n, "lib"); t != "" && t != n {
		n = t
	}
	return n
}

// Hint is what a --lib flag says about one library.
type Hint struct {
	Name, Version, Origin string
}

// ParseHint reads "NAME=VERSION[:ORIGIN]" (VERSION may be empty: NAME=:app).
func ParseHint(s string) (Hint, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || !libmap.ValidName(name) {
		return Hint{}, fmt.Errorf("--lib %q: want NAME=VERSION[:ORIGIN]", s)
	}
	ver, origin, _ := strings.Cut(rest, ":")
	return Hint{Name: name, Version: ver, Origin: origin}, nil
}

// ObjectsFromPaths makes Objects of command-line paths: names from the
// file names, or from names (path or base name → library name); then the
// hints; the app is the library named app (if any), else the one hinted
// with origin "app", else the one whose name starts with "app"
// (Unikraft's libappNAME.o).
func ObjectsFromPaths(paths []string, names map[string]string, hints []Hint, app string) ([]Object, error) {
	var objs []Object
	byName := map[string]int{}
	for _, p := range paths {
		n := NameFromPath(p)
		if v, ok := names[p]; ok {
			n = v
		} else if v, ok := names[filepath.Base(p)]; ok {
			n = v
		}
		if !libmap.ValidName(n) {
			return nil, fmt.Errorf("object %s: library name %q is not valid (letters, digits, _+-); name it with --name-map", p, n)
		}
		if prev, dup := byName[n]; dup {
			return nil, fmt.Errorf("objects %s and %s are both library %q; name one with --name-map", objs[prev].Path, p, n)
		}
		byName[n] = len(objs)
		objs = append(objs, Object{Path: p, Name: n})
	}
	for _, h := range hints {
		i, ok := byName[h.Name]
		if !ok {
			return nil, fmt.Errorf("--lib %s: no object is library %q", h.Name, h.Name)
		}
		objs[i].Version, objs[i].Origin = h.Version, h.Origin
	}
	switch {
	case app != "":
		i, ok := byName[app]
		if !ok {
			return nil, fmt.Errorf("--app %s: no object is library %q", app, app)
		}
		objs[i].App = true
	default:
		var hinted, prefixed []int
		for i, o := range objs {
			if o.Origin == OriginApp {
				hinted = append(hinted, i)
			}
			if strings.HasPrefix(o.Name, "app") {
				prefixed = append(prefixed, i)
			}
		}
		pick := hinted
		if len(pick) == 0 {
			pick = prefixed
		}
		if len(pick) > 1 {
			return nil, fmt.Errorf("several objects could be the app (%s, %s); say which with --app", objs[pick[0]].Path, objs[pick[1]].Path)
		}
		if len(pick) == 1 {
			objs[pick[0]].App = true
		}
	}
	for i := range objs {
		if objs[i].App && objs[i].Origin == "" {
			objs[i].Origin = OriginApp
		}
	}
	return objs, nil
}

// ObjectsFromCorpus returns the link order of one corpus unikernel, with
// names, versions and origins from corpus.json. The objects' sha256 are
// checked when they are read.
func ObjectsFromCorpus(dir, unikernel string) ([]Object, map[string]string, error) {
	c, err := corpus.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range c.Unikernels {
		if u.Name != unikernel {
			continue
		}
		var objs []Object
		sums := map[string]string{}
		for _, l := range u.Libraries {
			p := filepath.Join(c.Dir, filepath.FromSlash(l.Object))
			objs = append(objs, Object{Path: p, Name: l.Name, Version: l.Version, Origin: l.Origin, App: l.Origin == corpus.OriginApp})
			sums[p] = l.SHA256
		}
		return objs, sums, nil
	}
	return nil, nil, fmt.Errorf("corpus %s: no unikernel %q", filepath.Join(dir, corpus.FileName), unikernel)
}

// FragmentsFromCorpus returns the extra linker-script fragments a corpus
// unikernel's link takes (a Unikraft corpus's bootinfo.lds, infosec.ld,
// ...; none for unipool's own).
func FragmentsFromCorpus(dir, unikernel string) ([]string, error) {
	c, err := corpus.Load(dir)
	if err != nil {
		return nil, err
	}
	u, ok := c.Lookup(unikernel)
	if !ok {
		return nil, fmt.Errorf("corpus %s: no unikernel %q", filepath.Join(dir, corpus.FileName), unikernel)
	}
	return c.Fragments(u), nil
}
