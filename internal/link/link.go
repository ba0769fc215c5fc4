// Package link links library objects into a unikernel image with GNU ld,
// in one of three layouts:
//
//   - packed: ld's stock layout at abi.PackedBase, the libraries one after
//     another (what every unikernel toolchain does);
//   - dce: packed with --gc-sections (the dead-code-eliminated baseline);
//   - aligned: every library at its region in the global library map
//     (internal/libmap), through a generated linker script, so identical
//     library objects become identical pages at identical addresses in
//     every image. ld keeps the relocations (--emit-relocs) for the
//     trampoline pass; the finished image drops them (dropRelocations) and
//     carries its description (desc.Config) in a ".unipool" section.
//
// All three use the same link mode (see linkMode), so they differ only by
// layout and their code is compared like for like.
package link

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/libmap"
)

// Layouts.
const (
	LayoutAligned = "aligned"
	LayoutPacked  = "packed"
	LayoutDCE     = "dce"
)

// Layouts lists the layouts Link knows.
var Layouts = []string{LayoutAligned, LayoutPacked, LayoutDCE}

// DefaultMemSize is the guest heap+stack an aligned image's description
// asks for unless told otherwise: the loader's default for plain images.
const DefaultMemSize = abi.DefaultMemSize

// Options say what to link.
type Options struct {
	Layout  string
	Objects []Object // link order
	Output  string
	// MapPath is the library map file (aligned only; created if missing).
	MapPath string
	// Policy, if set, replaces the map's slack policy for regions handed
	// out from now on (existing regions never change).
	Policy *libmap.Policy
	// SHA256 optionally gives each object's expected digest by path (from
	// corpus.json): a mismatch is an error naming the file.
	SHA256 map[string]string
	// Tramp is the trampoline pass; nil uses DefaultTrampoliner.
	Tramp Trampoliner
	// Entry is the entry symbol (default: the platform's; _start).
	Entry string
	// Platform is PlatformUnipool or PlatformUnikraft ("": from the
	// objects: Unikraft if they have its entry or tables).
	Platform string
	// Fragments are extra linker-script fragments (SECTIONS ... INSERT
	// AFTER X), e.g. Unikraft's lib/uklibid/infosec.ld: every layout
	// takes them; sections they gather are image-wide.
	Fragments []string
	MemSize   uint64 // default DefaultMemSize
	Cmdline   string
	// Groups are the library groups of an aligned unipool-platform link
	// (see DefaultGroups): nil means DefaultGroups, an empty slice none.
	Groups [][]string
	// MapAddresses keeps every library of an aligned unipool-platform
	// link at its map region. Otherwise the link moves the dense ones by
	// whole pages so that their private parts share fewer pages
	// (desc.Library.Shift, fitPrivateParts).
	MapAddresses bool
	// NoPacks gives every library of an aligned unipool-platform link
	// page-aligned code of its own. Otherwise the code of a small library
	// version new to the map goes into a pack (libmap.Pack): pages
	// shared with the other small libraries placed by the same link.
	NoPacks bool
	// NoPageDCE leaves out an aligned unipool-platform image's list of
	// dead pages (elfimage.DeadSectionName): a copying load then copies
	// every page of its libraries.
	NoPageDCE bool
	// KeepRelocations keeps in the finished image the relocations ld
	// kept for the link's own passes (--emit-relocs), for tools and
	// tests that read them; without it the image drops them
	// (dropRelocations).
	KeepRelocations bool
	// Turn, if set, is this link's place in a batch's Order: an aligned
	// link takes the map only after the links before it in the batch
	// are done, so the batch's map and images do not depend on how many
	// links run at once. Link finishes the turn (Turn.Done) when it
	// returns.
	Turn *Turn
	// Trace asks for Result.Inputs (ld's link map, parsed).
	Trace   bool
	LD      string // the ld binary (default "ld")
	Objcopy string // the objcopy binary (default "objcopy")
}

// Result tells what Link did.
type Result struct {
	Layout string
	// Platform and Entry are the platform the image follows and its
	// entry symbol (given, or found from the objects).
	Platform string
	Entry    string
	// Mode is the link mode and why it was chosen.
	Mode string
	// Config is the aligned image's description (nil for packed and dce).
	Config *desc.Config
	// Script is the generated linker script (aligned only).
	Script string
	// NewRegions names the libraries that got a new region in the map.
	NewRegions []string
	// Warnings are ld's warnings, with object names restored.
	Warnings []string
	// Inputs is where ld put every input section (with Options.Trace).
	Inputs []InputSection `json:",omitempty"`
}

// Link links opt.Objects into opt.Output. The output appears only if the
// link succeeds (written to a temporary file, then renamed). For an
// aligned link the map is locked for the whole link and written only
// after the image is complete, so a failed link leaves the map untouched
// and concurrent links serialize on it (in opt.Turn's order, if set).
func Link(ctx context.Context, opt Options) (*Result, error) {
	if opt.Turn != nil {
		defer opt.Turn.Done()
	}
	if opt.Output == "" {
		return nil, errors.New("link: no output file")
	}
	if len(opt.Objects) == 0 {
		return nil, errors.New("link: no objects")
	}
	switch opt.Layout {
	case LayoutPacked, LayoutDCE:
	case LayoutAligned:
		if opt.MapPath == "" {
			return nil, errors.New("link: an aligned link needs a library map (--pool DIR or --map FILE)")
		}
	default:
		return nil, fmt.Errorf("link: unknown layout %q (want %s)", opt.Layout, strings.Join(Layouts, ", "))
	}
	if opt.MemSize == 0 {
		opt.MemSize = DefaultMemSize
	}
	if opt.LD == "" {
		opt.LD = "ld"
	}
	if opt.Objcopy == "" {
		opt.Objcopy = "objcopy"
	}
	if opt.Tramp == nil {
		opt.Tramp = DefaultTrampoliner
	}
	frags, err := readFragments(opt.Fragments)
	if err != nil {
		return nil, err
	}
	var tablePatterns []string
	for _, f := range frags {
		tablePatterns = append(tablePatterns, f.patterns...)
	}
	objs, err := readObjects(opt, tablePatterns)
	if err != nil {
		return nil, err
	}
	if err := choosePlatform(&opt, objs); err != nil {
		return nil, err
	}
	scriptDefined := platformSymbols(opt.Platform, frags)
	if err := checkSymbols(objs, scriptDefined); err != nil {
		return nil, fmt.Errorf("link %s: %w", opt.Output, err)
	}
	if !definesEntry(objs, opt.Entry) {
		return nil, fmt.Errorf("link %s: no object defines the entry symbol %q", opt.Output, opt.Entry)
	}
	work, err := os.MkdirTemp("", "unipool-link-")
	if err != nil {
		return nil, fmt.Errorf("link: %w", err)
	}
	defer os.RemoveAll(work)
	if objs, err = groupObjects(ctx, opt, objs, work, tablePatterns); err != nil {
		return nil, err
	}
	l := &linker{opt: opt, objs: objs, work: work, frags: frags, scriptDefined: scriptDefined}
	if err := l.stage(); err != nil {
		return nil, err
	}
	res := &Result{Layout: opt.Layout, Platform: opt.Platform, Entry: opt.Entry, Mode: l.mode.describe()}
	if opt.Layout == LayoutAligned {
		if opt.Turn != nil {
			if err := opt.Turn.wait(ctx); err != nil {
				return nil, fmt.Errorf("link %s: waiting for the links before it: %w", opt.Output, err)
			}
		}
		err = libmap.Update(opt.MapPath, func(m *libmap.Map) error {
			if opt.Policy != nil {
				m.Policy = *opt.Policy
			}
			return l.linkAligned(ctx, m, res)
		})
	} else {
		err = l.linkPacked(ctx, res)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

func readObjects(opt Options, tablePatterns []string) ([]*object, error) {
	var objs []*object
	names := map[string]string{}
	libNames := map[string]bool{}
	for _, in := range opt.Objects {
		if !in.App {
			libNames[cmp.Or(in.Name, NameFromPath(in.Path))] = true
		}
	}
	apps := 0
	for _, in := range opt.Objects {
		if in.Name == "" {
			in.Name = NameFromPath(in.Path)
		}
		// An app may be called like a library (corpus app "zlib" using
		// library zlib). Names must be unique in a description, and the
		// app's name is only a label (it has no map region), so the app
		// gives way.
		if in.App && libNames[in.Name] {
			in.Name = "app-" + in.Name
		}
		if !libmap.ValidName(in.Name) {
			return nil, fmt.Errorf("object %s: invalid library name %q", in.Path, in.Name)
		}
		if prev, dup := names[in.Name]; dup {
			return nil, fmt.Errorf("objects %s and %s are both library %q", prev, in.Path, in.Name)
		}
		names[in.Name] = in.Path
		if in.App {
			apps++
		}
		o, err := readObject(in, tablePatterns)
		if err != nil {
			return nil, err
		}
		if want := opt.SHA256[in.Path]; want != "" && want != o.sha256 {
			return nil, fmt.Errorf("object %s: sha256 %s, but the corpus says %s (stale corpus?)", in.Path, o.sha256, want)
		}
		if o.Version == "" {
			o.Version = o.sha256[:12]
		}
		objs = append(objs, o)
	}
	if apps > 1 {
		return nil, errors.New("link: more than one object is marked as the app")
	}
	return objs, nil
}

func definesEntry(objs []*object, entry string) bool {
	for _, o := range objs {
		if o.defined[entry] {
			return true
		}
	}
	return false
}

// linker is one link in progress.
type linker struct {
	opt  Options
	objs []*object
	work string   // temporary directory; ld runs there
	file []string // per object: its name in work
	// script is the generated linker script (aligned).
	script string
	mode   linkMode
	// frags are the extra linker-script fragments; scriptDefined the
	// symbols they and the platform's tables define.
	frags         []fragment
	scriptDefined map[string]bool
	// alignedArgs are the last aligned link's ld arguments (deadPages).
	alignedArgs []string
	// fills are the pack bytes of members this image does not link.
	fills []packFill
	m     *libmap.Map // the map of an aligned link, locked
}

// stage links each object into the work directory under a short,
// script-safe name (o0001.o): linker scripts select input files by name,
// and real paths may hold characters a script cannot quote.
func (l *linker) stage() error {
	for i, o := range l.objs {
		abs, err := filepath.Abs(o.Path)
		if err != nil {
			return fmt.Errorf("object %s: %w", o.Path, err)
		}
		name := fmt.Sprintf("o%04d.o", i+1)
		if err := os.Symlink(abs, filepath.Join(l.work, name)); err != nil {
			return fmt.Errorf("link: %w", err)
		}
		l.file = append(l.file, name)
	}
	l.mode = chooseMode(l.objs)
	return nil
}

// linkMode is how ld is asked to treat the code.
type linkMode struct {
	pie    bool
	reason string
}

// chooseMode prefers a position-independent link (-pie
// --no-dynamic-linker): ld then relaxes GOT loads of PIE objects
// (R_X86_64_REX_GOTPCRELX, as Debian's archives and our guest have) into
// RIP-relative lea and never into absolute immediates, so code holds no
// absolute addresses and stays valid when the loader moves a region. A
// position-dependent link (-no-pie) turns the same loads into `mov
// $addr, %reg` and `cmp $addr, ...`: absolute addresses in shared code.
// Since the script puts the image at a non-zero address, ld still makes
// an ET_EXEC. Objects with absolute 32-bit relocations (non-PIC code, e.g.
// Unikraft's default build) cannot be linked position-independently; then
// the whole link is -no-pie.
func chooseMode(objs []*object) linkMode {
	for _, o := range objs {
		if o.absolute != "" {
			return linkMode{pie: false, reason: fmt.Sprintf("%s has non-PIC code (%s)", o.Path, o.absolute)}
		}
	}
	return linkMode{pie: true, reason: "every object is position-independent"}
}

func (m linkMode) describe() string {
	if m.pie {
		return "pie (" + m.reason + ")"
	}
	return "no-pie (" + m.reason + ")"
}

func (m linkMode) args() []string {
	if m.pie {
		return []string{"-pie", "--no-dynamic-linker"}
	}
	return []string{"-no-pie"}
}

// commonArgs are ld's flags for every layout.
func (l *linker) commonArgs() []string {
	args := append([]string{}, l.mode.args()...)
	if l.opt.Trace {
		args = append(args, "-Map=ld.map")
	}
	for _, s := range weakZeros(l.objs, l.scriptDefined) {
		args = append(args, "--defsym="+s+"=0")
	}
	return append(args, "-static", "-z", "noexecstack", "-z", "nodynamic-undefined-weak", "-z", "max-page-size=4096", "-z", "common-page-size=4096",
		"--emit-relocs", "--build-id=none", "-e", l.opt.Entry)
}

// linkPacked links with ld's own script, only moving its base.
func (l *linker) linkPacked(ctx context.Context, res *Result) error {
	out := filepath.Join(l.work, "image")
	args := append(l.commonArgs(), "-z", "norelro", "-Ttext-segment="+fmt.Sprintf("%#x", abi.PackedBase))
	if l.opt.Layout == LayoutDCE {
		args = append(args, "--gc-sections")
	}
	frags, err := l.writeFragments("")
	if err != nil {
		return err
	}
	args = append(args, fragmentArgs(frags)...)
	args = append(args, "-o", out)
	args = append(args, l.file...)
	warn, err := l.ld(ctx, args)
	if err != nil {
		return err
	}
	if err := l.finishPlatform(out); err != nil {
		return err
	}
	res.Warnings = warn
	if err := l.readTrace(res); err != nil {
		return err
	}
	var drop []string
	if !l.opt.KeepRelocations {
		drop = append(drop, dropRelocations)
	}
	if l.mode.pie {
		drop = append(drop, "--remove-section=.rela.dyn")
	}
	if len(drop) > 0 {
		if err := l.objcopy(ctx, out, drop...); err != nil {
			return err
		}
	}
	if err := checkPacked(out); err != nil {
		return fmt.Errorf("link %s: %w", l.opt.Output, err)
	}
	return publish(out, l.opt.Output)
}

// dropRelocations is objcopy's flag that removes the relocation sections
// ld kept (--emit-relocs) from a finished image: the aligned link's
// trampoline pass reads them from its intermediate image, nothing reads
// them after the link (a loader, pool add, inspect, link bench), and a
// reader that parses the section headers (debug/elf in every monitor
// that checks a plain image) pays for each one. Packed and DCE images
// drop theirs too, so every layout's image carries the same kinds of
// sections.
const dropRelocations = "--remove-relocations=*"

// publish copies the finished image to dst through a temporary file in
// dst's directory and a rename, so dst is either absent, the old file, or
// the complete new image.
func publish(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("link: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return fmt.Errorf("link %s: %w", dst, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("link %s: %w", dst, err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return fmt.Errorf("link %s: %w", dst, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("link %s: %w", dst, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("link %s: %w", dst, err)
	}
	return nil
}

func marshalConfig(c *desc.Config) ([]byte, error) {
	return json.Marshal(c)
}

// readTrace fills res.Inputs from ld's map, if asked for.
func (l *linker) readTrace(res *Result) error {
	if !l.opt.Trace {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(l.work, "ld.map"))
	if err != nil {
		return fmt.Errorf("link %s: %w", l.opt.Output, err)
	}
	res.Inputs = l.parseLDMap(string(data))
	return nil
}
