package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/unipool/unipool/internal/libmap"
	"github.com/unipool/unipool/internal/link"
	"github.com/unipool/unipool/internal/pool"
)

func init() {
	linkCmd = newLinkCmd()
	commands = append(commands, linkCmd)
}

// linkFlags are link's options.
type linkFlags struct {
	opt                      link.Options
	poolDir, mapFile         string
	slack, minSlack, mem     string
	nameMap, libHints        []string
	app, corpusDir, uk       string
	noTramp, jsonOut, script bool
}

func newLinkCmd() *cobra.Command {
	var f linkFlags
	cmd := &cobra.Command{
		Use:   "link [--layout aligned|packed|dce] [--pool DIR | --map FILE] -o IMAGE OBJ...",
		Short: "Link library objects into a unikernel image (aligned to the library map, or packed)",
		Long: `Link library objects (one ELF relocatable object per library, e.g. Unikraft's
build/libNAME.o) into a static x86-64 image with GNU ld.

  packed   ld's stock layout at 0x400000 (the baseline)
  dce      packed with --gc-sections
  aligned  every library at its region in the global library map, so the same
           library object gives the same pages at the same address in every
           image; the app goes to the app region. The image keeps its
           relocations and carries its description in a .unipool section.

A library's name is its file name without "lib" and ".o" (libukboot.o is
ukboot) unless --name-map says otherwise; its version defaults to the first 12
hex digits of the object's sha256. With --corpus DIR --unikernel NAME the
objects, their order, names, versions and origins come from DIR/corpus.json.`,
		RunE: func(cmd *cobra.Command, args []string) error { return runLink(cmd, &f, args) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.opt.Layout, "layout", link.LayoutAligned, "aligned, packed or dce")
	fl.StringVarP(&f.opt.Output, "output", "o", "", "the image to write")
	fl.StringVar(&f.poolDir, "pool", "", "pool whose library map to use (default: the default pool)")
	fl.StringVar(&f.mapFile, "map", "", "library map file to use instead of a pool's")
	fl.StringVar(&f.slack, "slack", "50%", "growth room of new regions, as a share of each part")
	fl.StringVar(&f.minSlack, "min-slack", "16KiB", "least growth room of a new region's shared and private parts")
	fl.StringArrayVar(&f.nameMap, "name-map", nil, "OBJ=NAME: library name of an object (repeatable)")
	fl.StringArrayVar(&f.libHints, "lib", nil, "NAME=VERSION[:ORIGIN]: version and origin of a library (repeatable)")
	fl.StringVar(&f.app, "app", "", "the library that is the image's app (default: origin app, else a name starting with app)")
	fl.StringVar(&f.corpusDir, "corpus", "", "corpus folder (with --unikernel)")
	fl.StringVar(&f.uk, "unikernel", "", "unikernel of the corpus to link")
	fl.StringVar(&f.opt.Entry, "entry", "", "entry symbol (default: the platform's: _start, Unikraft's _lxboot_entry)")
	fl.StringVar(&f.opt.Platform, "platform", "", "unipool or unikraft (default: unikraft if the objects have Unikraft's entry or tables)")
	fl.StringArrayVar(&f.opt.Fragments, "ld-fragment", nil, "extra linker-script fragment (SECTIONS ... INSERT AFTER X), e.g. Unikraft's lib/uklibid/infosec.ld (repeatable)")
	fl.StringVar(&f.mem, "mem", "", "guest heap+stack the description asks for (default 8MiB, as for plain images)")
	fl.StringVar(&f.opt.Cmdline, "cmdline", "", "default guest command line")
	groupFlag(cmd, &f.opt.Groups)
	mapAddressesFlag(cmd, &f.opt.MapAddresses)
	noPacksFlag(cmd, &f.opt.NoPacks)
	fl.BoolVar(&f.noTramp, "no-trampolines", false, "aligned: reserve tramp areas but do not rewrite the code (libraries cannot move)")
	fl.BoolVar(&f.jsonOut, "json", false, "print the result (description, script, map changes) as JSON")
	fl.BoolVar(&f.script, "print-script", false, "aligned: print the generated linker script")
	return cmd
}

// runLink is `unipool link`.
func runLink(cmd *cobra.Command, f *linkFlags, args []string) error {
	opt := f.opt
	if opt.Output == "" {
		return errors.New("link: -o IMAGE is required")
	}
	var err error
	if opt.Objects, opt.SHA256, err = f.objects(args); err != nil {
		return err
	}
	if f.corpusDir != "" {
		// A Unikraft corpus's unikernels come with linker-script fragments.
		frags, err := link.FragmentsFromCorpus(f.corpusDir, f.uk)
		if err != nil {
			return err
		}
		opt.Fragments = append(frags, opt.Fragments...)
	}
	if opt.Layout == link.LayoutAligned {
		if opt.MapPath, err = linkMapPath(f.poolDir, f.mapFile); err != nil {
			return err
		}
		if cmd.Flags().Changed("slack") || cmd.Flags().Changed("min-slack") {
			p := libmap.Policy{SlackPercent: libmap.DefaultSlackPercent, MinSlack: libmap.DefaultMinSlack}
			if p.SlackPercent, err = linkParsePercent(f.slack); err != nil {
				return fmt.Errorf("--slack: %w", err)
			}
			if p.MinSlack, err = linkParseSize(f.minSlack); err != nil {
				return fmt.Errorf("--min-slack: %w", err)
			}
			opt.Policy = &p
		}
	} else if f.poolDir != "" || f.mapFile != "" {
		return fmt.Errorf("link: --pool and --map are for --layout aligned, not %s", opt.Layout)
	}
	if f.mem != "" {
		if opt.MemSize, err = linkParseSize(f.mem); err != nil {
			return fmt.Errorf("--mem: %w", err)
		}
	}
	if f.noTramp {
		opt.Tramp = link.NoRewrite{Trampoliner: link.DefaultTrampoliner}
	}
	res, err := link.Link(cmd.Context(), opt)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if f.script {
		fmt.Fprint(w, res.Script)
		return nil
	}
	if f.jsonOut {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	for _, warn := range res.Warnings {
		fmt.Fprintln(cmd.ErrOrStderr(), "ld:", warn)
	}
	fmt.Fprintf(w, "linked %s (%s, %s platform, entry %s, %s, %d objects)\n", opt.Output, opt.Layout, res.Platform, res.Entry, res.Mode, len(opt.Objects))
	if len(res.NewRegions) > 0 {
		fmt.Fprintf(w, "new regions in %s: %s\n", opt.MapPath, strings.Join(res.NewRegions, ", "))
	}
	return nil
}

// objects are the objects to link: from --corpus, or the arguments.
func (f *linkFlags) objects(args []string) ([]link.Object, map[string]string, error) {
	if f.corpusDir != "" || f.uk != "" {
		if f.corpusDir == "" || f.uk == "" {
			return nil, nil, errors.New("link: --corpus and --unikernel go together")
		}
		if len(args) > 0 || len(f.nameMap) > 0 || len(f.libHints) > 0 || f.app != "" {
			return nil, nil, errors.New("link: with --corpus, objects, names, versions and the app come from corpus.json (no OBJ, --name-map, --lib or --app)")
		}
		return link.ObjectsFromCorpus(f.corpusDir, f.uk)
	}
	if len(args) == 0 {
		return nil, nil, errors.New("link: no objects")
	}
	names := map[string]string{}
	for _, nm := range f.nameMap {
		obj, name, ok := strings.Cut(nm, "=")
		if !ok {
			return nil, nil, fmt.Errorf("--name-map %q: want OBJ=NAME", nm)
		}
		names[obj] = name
	}
	var hints []link.Hint
	for _, h := range f.libHints {
		hint, err := link.ParseHint(h)
		if err != nil {
			return nil, nil, err
		}
		hints = append(hints, hint)
	}
	objs, err := link.ObjectsFromPaths(args, names, hints, f.app)
	return objs, f.opt.SHA256, err
}

// mapAddressesFlag adds --map-addresses (link.Options.MapAddresses).
func mapAddressesFlag(cmd *cobra.Command, v *bool) {
	cmd.Flags().BoolVar(v, "map-addresses", false, "aligned: keep every library at its map region "+
		"(default: move dense libraries by whole pages so that their private parts share fewer pages; their pages stay the same)")
}

// noPacksFlag adds --no-packs (link.Options.NoPacks).
func noPacksFlag(cmd *cobra.Command, v *bool) {
	cmd.Flags().BoolVar(v, "no-packs", false, "aligned: give a small library version new to the map page-aligned code of its own "+
		"(default: its code goes into a pack, pages shared with the other small libraries the same link places)")
}

// groupFlag adds --group: the aligned link's library groups (link.Options.Groups).
func groupFlag(cmd *cobra.Command, groups *[][]string) {
	cmd.Flags().Var(&groupValue{groups}, "group", "aligned: libraries linked as one unit (one region, one code stream) in images that have them all, "+
		"as NAME+NAME+...; repeatable, tried in order; 'none' for no groups (default: "+defaultGroupsText()+")")
}

func defaultGroupsText() string {
	var s []string
	for _, g := range link.DefaultGroups {
		s = append(s, strings.Join(g, link.GroupSep))
	}
	return strings.Join(s, ", then ")
}

// groupValue is --group's value: nil until given (link.DefaultGroups).
type groupValue struct{ groups *[][]string }

func (v *groupValue) String() string {
	if v.groups == nil || *v.groups == nil {
		return ""
	}
	var s []string
	for _, g := range *v.groups {
		s = append(s, strings.Join(g, link.GroupSep))
	}
	return strings.Join(s, ",")
}

func (v *groupValue) Set(s string) error {
	if *v.groups == nil {
		*v.groups = [][]string{}
	}
	if s == "none" {
		return nil
	}
	g, err := link.ParseGroup(s)
	if err != nil {
		return err
	}
	*v.groups = append(*v.groups, g)
	return nil
}

func (v *groupValue) Type() string { return "NAME+NAME" }

// linkCmd is the link command; link subcommands (bench) attach to it.
var linkCmd *cobra.Command

// linkMapPath is the map file: --map, else the map of --pool (or of the
// default pool), which is created if missing.
func linkMapPath(poolDir, mapFile string) (string, error) {
	if mapFile != "" {
		if poolDir != "" {
			return "", errors.New("link: give --pool or --map, not both")
		}
		return mapFile, nil
	}
	if poolDir == "" {
		d, err := pool.DefaultDir()
		if err != nil {
			return "", err
		}
		poolDir = d
	}
	p, err := pool.Init(poolDir)
	if err != nil {
		return "", err
	}
	return p.MapPath(), nil
}

// linkParseSize reads a byte count: 4096, 16K, 16KiB, 2M, 1GiB.
func linkParseSize(s string) (uint64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "iB"), "B")
	mult := uint64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K', 'k':
			mult, t = 1<<10, t[:n-1]
		case 'M', 'm':
			mult, t = 1<<20, t[:n-1]
		case 'G', 'g':
			mult, t = 1<<30, t[:n-1]
		}
	}
	v, err := strconv.ParseUint(t, 10, 64)
	if err != nil || v > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (e.g. 16KiB)", s)
	}
	return v * mult, nil
}

// linkParsePercent reads "50%" or "50".
func linkParsePercent(s string) (uint64, error) {
	v, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(s), "%"), 10, 64)
	if err != nil || v > 10000 {
		return 0, fmt.Errorf("%q is not a percentage (e.g. 50%%)", s)
	}
	return v, nil
}
