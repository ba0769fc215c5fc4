package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/unipool/unipool/internal/libmap"
	"github.com/unipool/unipool/internal/pool"
)

// mapShowFlags are `unipool map show`'s flags.
type mapShowFlags struct {
	poolDir, mapFile string
	asJSON           bool
}

func init() {
	mapCmd := &cobra.Command{
		Use:   "map",
		Short: "The global library map: where every library lives in aligned images",
	}
	var fl mapShowFlags
	show := &cobra.Command{
		Use:   "show [--pool DIR | --map FILE]",
		Short: "Show each library's regions, their part capacities and the versions placed in them",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runMapShow(cmd, fl) },
	}
	show.Flags().StringVar(&fl.poolDir, "pool", "", "pool whose map to show (default: the default pool)")
	show.Flags().StringVar(&fl.mapFile, "map", "", "map file to show")
	show.Flags().BoolVar(&fl.asJSON, "json", false, "print the map as JSON")
	mapCmd.AddCommand(show)
	commands = append(commands, mapCmd)
}

// runMapShow prints the library map: each library's regions, their part
// capacities and the versions placed in them.
func runMapShow(cmd *cobra.Command, fl mapShowFlags) error {
	path, err := mapShowPath(fl.poolDir, fl.mapFile)
	if err != nil {
		return err
	}
	m, err := libmap.Load(path)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if fl.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	fmt.Fprintf(out, "%s: %d libraries, %d regions, map end %#x; new regions get %d%% slack, at least %s\n",
		path, len(m.Libraries), mapRegions(m), m.End(), m.Policy.SlackPercent, linkSize(m.Policy.MinSlack))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LIBRARY\tREGION\tTRAMP\tSHARED\tPRIVATE\tVERSIONS (need: tramp/shared/private)")
	for _, l := range m.Libraries {
		for _, r := range l.Regions {
			var vs []string
			for _, v := range r.Versions {
				label := v.Version
				if v.ObjectSHA256 != "" && !strings.HasPrefix(v.ObjectSHA256, v.Version) {
					label += "@" + v.ObjectSHA256[:min(12, len(v.ObjectSHA256))]
				}
				vs = append(vs, fmt.Sprintf("%s (%s/%s/%s)", label, linkSize(v.Need.Tramp), linkSize(v.Need.Shared), linkSize(v.Need.Private)))
			}
			name := l.Name
			if r.Pack != 0 {
				name += fmt.Sprintf(" (in the pack at %#x)", r.Pack)
			}
			fmt.Fprintf(tw, "%s\t[%#x,%#x)\t%s\t%s\t%s\t%s\n", name, r.Start, r.End(),
				linkSize(r.TrampSize), linkSize(r.SharedSize), linkSize(r.PrivateSize), strings.Join(vs, ", "))
		}
	}
	for _, p := range m.Packs {
		fmt.Fprintf(tw, "pack\t[%#x,%#x)\t\t%s sealed\t\t\n", p.Start, p.Start+p.Size, linkSize(uint64(len(p.Content))))
	}
	return tw.Flush()
}

func mapRegions(m *libmap.Map) int {
	n := 0
	for _, l := range m.Libraries {
		n += len(l.Regions)
	}
	return n
}

// mapShowPath is the map file --pool/--map name, like linkMapPath but
// without creating a pool.
func mapShowPath(poolDir, mapFile string) (string, error) {
	if mapFile != "" && poolDir != "" {
		return "", fmt.Errorf("map: give --pool or --map, not both")
	}
	if mapFile != "" {
		if _, err := os.Stat(mapFile); err != nil {
			return "", fmt.Errorf("map show: --map %s: %w", mapFile, err)
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
	return filepath.Join(poolDir, pool.MapFile), nil
}
