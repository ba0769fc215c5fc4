// Package corpus builds a fleet of FaaS unikernels from the guest tree,
// the way Unikraft builds them: one ELF relocatable object per library
// (gcc, `ld -r`, exports kept by exportsyms.uk), chosen per unikernel
// deterministically from a seed, with objects kept in a content-keyed
// cache. It writes DIR/<unikernel>/*.o and DIR/corpus.json, which Load
// reads back for the stages that follow (link, pool, bench).
package corpus

import (
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// FileName is the corpus description inside a corpus folder.
const FileName = "corpus.json"

// maxCorpusFile bounds what Load reads: a 1000-unikernel corpus is about
// 2 MiB.
const maxCorpusFile = 256 << 20

// Corpus is a built fleet: DIR/corpus.json.
type Corpus struct {
	// Dir is the corpus folder; object paths are relative to it.
	Dir    string `json:"-"`
	Seed   uint64 `json:"seed"`
	Count  int    `json:"count"`
	Inputs string `json:"inputs,omitempty"` // InputsRepeated or InputsDistinct
	// Flavor is FlavorUnikraft for a Unikraft corpus ("": unipool's own),
	// whose Configs are its Unikraft configurations.
	Flavor     string           `json:"flavor,omitempty"`
	Configs    []UnikraftConfig `json:"configs,omitempty"`
	Unikernels []Unikernel      `json:"unikernels"`
}

// Unikernel is one member of the fleet. Libraries is its link order; the
// last one is its app (Origin OriginApp).
type Unikernel struct {
	Name      string       `json:"name"`
	App       string       `json:"app"`
	Input     string       `json:"input"`
	Expect    string       `json:"expect"`
	Libraries []LibraryRef `json:"libraries"`
	// Config names the unikernel's Unikraft configuration (Configs);
	// LDFragments are the extra linker-script fragments its link takes
	// (Unikraft's bootinfo.lds, infosec.ld, ...) and StockImage the image
	// Unikraft's own build linked; paths relative to the corpus folder.
	Config      string   `json:"config,omitempty"`
	LDFragments []string `json:"ld_fragments,omitempty"`
	StockImage  string   `json:"stock_image,omitempty"`
}

// LibraryRef is one library object of a unikernel.
type LibraryRef struct {
	Name string `json:"name"`
	// Version is the compile-time variant id (lib.json "variants").
	Version string `json:"version"`
	// Origin is "unipool", the Debian package of a third-party library,
	// or "app".
	Origin string `json:"origin"`
	// Object is the object's path, slash-separated, relative to the
	// corpus folder.
	Object string `json:"object"`
	SHA256 string `json:"sha256"`
}

// Load reads and validates DIR/corpus.json. It does not read the objects;
// Verify does.
func Load(dir string) (*Corpus, error) {
	file := filepath.Join(dir, FileName)
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	defer f.Close()
	data, err := readLimited(f, maxCorpusFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	c.Dir = dir
	return c, nil
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

var (
	unikernelNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_+.-]*$`)
	sha256RE        = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Parse decodes and validates the contents of a corpus.json. Unknown
// fields are errors: the file is a contract between stages.
func Parse(data []byte) (*Corpus, error) {
	var c Corpus
	if err := decodeStrict(data, &c); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Corpus) validate() error {
	if len(c.Unikernels) == 0 {
		return errors.New("no unikernels")
	}
	if c.Count != len(c.Unikernels) {
		return fmt.Errorf("count is %d but %d unikernels are listed", c.Count, len(c.Unikernels))
	}
	switch c.Flavor {
	case "", FlavorUnipool, FlavorUnikraft:
	default:
		return fmt.Errorf("unknown flavor %q", c.Flavor)
	}
	configs := map[string]bool{}
	for _, cfg := range c.Configs {
		configs[cfg.Name] = true
	}
	names := map[string]bool{}
	objects := map[string]string{}
	for i := range c.Unikernels {
		u := &c.Unikernels[i]
		if err := u.validate(); err != nil {
			return fmt.Errorf("unikernel %d (%q): %w", i, u.Name, err)
		}
		if names[u.Name] {
			return fmt.Errorf("unikernel %d: name %q is used twice", i, u.Name)
		}
		names[u.Name] = true
		if u.Config != "" && !configs[u.Config] {
			return fmt.Errorf("unikernel %q: configuration %q is not in configs", u.Name, u.Config)
		}
		for _, l := range u.Libraries {
			// One path, one content: two entries naming the same file
			// with different digests cannot both be right.
			if prev, ok := objects[l.Object]; ok && prev != l.SHA256 {
				return fmt.Errorf("unikernel %q: object %s is listed with two different sha256", u.Name, l.Object)
			}
			objects[l.Object] = l.SHA256
		}
	}
	return nil
}

func (u *Unikernel) validate() error {
	if !unikernelNameRE.MatchString(u.Name) || len(u.Name) > 200 {
		return fmt.Errorf("invalid name %q", u.Name)
	}
	if !nameRE.MatchString(u.App) {
		return fmt.Errorf("invalid app %q", u.App)
	}
	if strings.ContainsRune(u.Input, 0) {
		return errors.New("input holds a NUL byte")
	}
	if strings.ContainsAny(u.Expect, "\n\x00") {
		return errors.New("expect is not one line")
	}
	if len(u.Libraries) == 0 {
		return errors.New("no libraries")
	}
	for _, f := range u.LDFragments {
		if err := checkRelPath(f); err != nil {
			return fmt.Errorf("linker-script fragment: %w", err)
		}
	}
	if u.StockImage != "" {
		if err := checkRelPath(u.StockImage); err != nil {
			return fmt.Errorf("stock image: %w", err)
		}
	}
	seen := map[string]bool{}
	for i, l := range u.Libraries {
		if err := l.validate(); err != nil {
			return fmt.Errorf("library %d (%q): %w", i, l.Name, err)
		}
		isApp := l.Origin == OriginApp
		last := i == len(u.Libraries)-1
		switch {
		case isApp && !last:
			return fmt.Errorf("library %d: the app must come last in the link order", i)
		case last && !isApp:
			return fmt.Errorf("the last library must be the app (origin %q), not %q", OriginApp, l.Name)
		case isApp && l.Name != u.App:
			return fmt.Errorf("app library %q is not the unikernel's app %q", l.Name, u.App)
		}
		if !isApp {
			if seen[l.Name] {
				return fmt.Errorf("library %q is listed twice", l.Name)
			}
			seen[l.Name] = true
		}
	}
	return nil
}

func (l *LibraryRef) validate() error {
	if !nameRE.MatchString(l.Name) {
		return fmt.Errorf("invalid name %q", l.Name)
	}
	if !idRE.MatchString(l.Version) {
		return fmt.Errorf("invalid version %q", l.Version)
	}
	if l.Origin != OriginUnipool && l.Origin != OriginApp && l.Origin != OriginUnikraft && !packageRE.MatchString(l.Origin) {
		return fmt.Errorf("invalid origin %q (want %q, %q or a Debian package)", l.Origin, OriginUnipool, OriginApp)
	}
	if err := checkObjectPath(l.Object); err != nil {
		return err
	}
	if !sha256RE.MatchString(l.SHA256) {
		return fmt.Errorf("sha256 %q is not 64 lower-case hex digits", l.SHA256)
	}
	return nil
}

// checkObjectPath keeps object paths inside the corpus folder: corpus.json
// is input from elsewhere, and a path must not lead a later stage to read
// (or overwrite) files outside it.
func checkObjectPath(p string) error {
	if err := checkRelPath(p); err != nil {
		return fmt.Errorf("object %w", err)
	}
	if !strings.HasSuffix(p, ".o") {
		return fmt.Errorf("object path %q does not name a .o file", p)
	}
	return nil
}

// checkRelPath keeps a path inside the corpus folder.
func checkRelPath(p string) error {
	switch {
	case p == "" || path.IsAbs(p) || strings.Contains(p, "\\") || strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q is not a relative slash path", p)
	case path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("path %q leaves the corpus folder or is not clean", p)
	}
	return nil
}

// Path is the file of a library object.
func (c *Corpus) Path(l LibraryRef) string {
	return filepath.Join(c.Dir, filepath.FromSlash(l.Object))
}

// Objects lists a unikernel's object files in link order.
func (c *Corpus) Objects(u *Unikernel) []string {
	out := make([]string, len(u.Libraries))
	for i, l := range u.Libraries {
		out[i] = c.Path(l)
	}
	return out
}

// Lookup finds a unikernel by name.
func (c *Corpus) Lookup(name string) (*Unikernel, bool) {
	for i := range c.Unikernels {
		if c.Unikernels[i].Name == name {
			return &c.Unikernels[i], true
		}
	}
	return nil, false
}

// Verify reads every object once: its sha256 must match corpus.json and it
// must be an ELF64 x86-64 relocatable object.
func (c *Corpus) Verify() error {
	done := map[string]bool{}
	for _, u := range c.Unikernels {
		for _, l := range u.Libraries {
			if done[l.Object] {
				continue
			}
			done[l.Object] = true
			p := c.Path(l)
			sum, err := sha256File(p)
			if err != nil {
				return fmt.Errorf("corpus %s: %w", c.Dir, err)
			}
			if sum != l.SHA256 {
				return fmt.Errorf("%s: sha256 is %s, corpus.json says %s", p, sum, l.SHA256)
			}
			if err := CheckObject(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckObject tells whether file is an ELF64 x86-64 relocatable object,
// the only kind of library object the link stage takes.
func CheckObject(file string) error {
	f, err := elf.Open(file)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	defer f.Close()
	switch {
	case f.Class != elf.ELFCLASS64:
		return fmt.Errorf("%s: %v, want ELFCLASS64", file, f.Class)
	case f.Data != elf.ELFDATA2LSB:
		return fmt.Errorf("%s: %v, want ELFDATA2LSB", file, f.Data)
	case f.Machine != elf.EM_X86_64:
		return fmt.Errorf("%s: machine %v, want EM_X86_64", file, f.Machine)
	case f.Type != elf.ET_REL:
		return fmt.Errorf("%s: type %v, want ET_REL", file, f.Type)
	}
	return nil
}

// write stores corpus.json atomically: a reader sees the old file or the
// new one, never a part.
func (c *Corpus) write() error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	file := filepath.Join(c.Dir, FileName)
	tmp, err := os.CreateTemp(c.Dir, ".corpus-*.json")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if d, err := os.Open(c.Dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
