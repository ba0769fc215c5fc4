package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/unipool/unipool/internal/unikraft"
)

// unikraftBuildFlags are `unipool unikraft build`'s flags.
type unikraftBuildFlags struct {
	dir, app, defconfig, out string
	copyImage                string
	set                      []string
	linkArgs, asJSON         bool
}

func init() {
	var fl unikraftBuildFlags
	cmd := &cobra.Command{
		Use:   "build [--unikraft DIR] [--app NAME] [--defconfig NAME] [--set CONFIG_X=V]... [--link-args|--json]",
		Short: "Build a Unikraft app into per-library objects (build/libNAME.o) for `unipool link`",
		Long: `Build a Unikraft app with Unikraft's own build system (make; needs gcc, make,
flex, bison) into per-library objects. The Unikraft tree is --unikraft DIR, else
$UNIKRAFT_SRC, else a clone of the ` + unikraft.ReleaseTag + ` tag of ` + unikraft.RepoURL + `
(where the network allows), else the release tarball in a shared/unikraft folder
next to this repository or above it. Builds are cached by everything that makes
them. Under software emulation (no RDSEED) add --set CONFIG_LIBUKRANDOM=n.

--link-args prints the arguments for ` + "`unipool link`" + ` (fragments, then objects in
Unikraft's link order), one per line; --json prints the build.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runUnikraftBuild(cmd, fl) },
	}
	f := cmd.Flags()
	f.StringVar(&fl.dir, "unikraft", "", "the Unikraft source tree (default: $UNIKRAFT_SRC, a clone, or the shared tarball)")
	f.StringVar(&fl.app, "app", "helloworld", "the app (a folder app-NAME next to the tree)")
	f.StringVar(&fl.defconfig, "defconfig", "fc-x86_64", "the app's defconfig (defconfigs/NAME): fc-x86_64 boots under --monitor kvm")
	f.StringArrayVar(&fl.set, "set", nil, "CONFIG_NAME=VALUE over the defconfig (repeatable; n turns an option off)")
	f.StringVar(&fl.out, "out", "", "build folder (default: a cached one)")
	f.StringVar(&fl.copyImage, "copy-image", "", "also copy Unikraft's own (stock) image to this file")
	f.BoolVar(&fl.linkArgs, "link-args", false, "print `unipool link` arguments, one per line")
	f.BoolVar(&fl.asJSON, "json", false, "print the build as JSON")
	group := &cobra.Command{Use: "unikraft", Short: "Unikraft apps as unipool input"}
	group.AddCommand(cmd)
	commands = append(commands, group)
}

// runUnikraftBuild builds the app with Unikraft's build system and prints
// the build (or `unipool link` arguments).
func runUnikraftBuild(cmd *cobra.Command, fl unikraftBuildFlags) error {
	sets := map[string]string{}
	for _, s := range fl.set {
		k, v, ok := strings.Cut(s, "=")
		if !ok || !strings.HasPrefix(k, "CONFIG_") {
			return fmt.Errorf("--set %q: want CONFIG_NAME=VALUE", s)
		}
		sets[k] = v
	}
	wd, _ := os.Getwd()
	tree, err := unikraft.Find(cmd.Context(), fl.dir, wd)
	if err != nil {
		return err
	}
	b, err := tree.Build(cmd.Context(), unikraft.BuildOptions{App: fl.app, Defconfig: fl.defconfig, Set: sets, Out: fl.out})
	if err != nil {
		return err
	}
	if fl.copyImage != "" {
		data, err := os.ReadFile(b.Image)
		if err != nil {
			return err
		}
		if err := os.WriteFile(fl.copyImage, data, 0o755); err != nil {
			return fmt.Errorf("--copy-image: %w", err)
		}
	}
	w := cmd.OutOrStdout()
	switch {
	case fl.asJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(b)
	case fl.linkArgs:
		for _, f := range b.Fragments {
			fmt.Fprintf(w, "--ld-fragment\n%s\n", f)
		}
		for _, o := range b.Objects {
			fmt.Fprintln(w, o)
		}
	default:
		fmt.Fprintf(w, "built %s/%s from %s (%s)\nobjects: %d in %s\nstock image: %s\n", fl.app, fl.defconfig, tree.Dir, tree.How, len(b.Objects), b.Dir, b.Image)
	}
	return nil
}
