package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/link"
)

// link.go's init (which sets linkCmd) runs first: files initialise in
// name order.
func init() { linkCmd.AddCommand(linkBenchCmd()) }

func linkBenchCmd() *cobra.Command {
	var opt link.BenchOptions
	var jsonOut string
	cmd := &cobra.Command{
		Use:   "bench --corpus DIR",
		Short: "Link every corpus unikernel in every layout; report page identity across images and size overhead",
		Long: `Links each unikernel of a corpus packed, dce, aligned without trampolines
(alignment alone) and aligned, against a fresh library map, then reports:

  - of the code and read-only pages of libraries whose object (byte-identical)
    is in more than one image, the share that another image holding that
    object has identically at the same address (what page sharing can find);
  - file size and loaded size (distinct pages) per layout, in total and the
    median per image, and aligned's overhead over packed and dce.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runLinkBench(cmd, opt, jsonOut) },
	}
	f := cmd.Flags()
	f.StringVar(&opt.Corpus, "corpus", "", "corpus folder (from `unipool corpus build`)")
	f.StringVar(&opt.Out, "out", "", "keep the images and the map here (default: a temporary folder)")
	f.IntVar(&opt.Limit, "limit", 0, "link only the first N unikernels")
	f.IntVar(&opt.Jobs, "jobs", 2, "parallel links")
	groupFlag(cmd, &opt.Groups)
	mapAddressesFlag(cmd, &opt.MapAddresses)
	noPacksFlag(cmd, &opt.NoPacks)
	f.StringVar(&jsonOut, "json", "", "also write the full report (per image sizes) to this JSON file")
	return cmd
}

// runLinkBench runs the bench, writes the JSON report if asked and prints
// the summary.
func runLinkBench(cmd *cobra.Command, opt link.BenchOptions, jsonOut string) error {
	if opt.Corpus == "" {
		return fmt.Errorf("link bench: --corpus DIR is required")
	}
	opt.Progress = func(done, total int) {
		if done%50 == 0 || done == total {
			fmt.Fprintf(cmd.ErrOrStderr(), "link bench: %d/%d links\n", done, total)
		}
	}
	rep, err := link.Bench(cmd.Context(), opt)
	if err != nil {
		return err
	}
	if jsonOut != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonOut, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("link bench: %w", err)
		}
	}
	printLinkBench(cmd.OutOrStdout(), rep)
	return nil
}

// printLinkBench prints a link bench report: a table per layout, the pages
// per image by part, and aligned's overheads.
func printLinkBench(w io.Writer, rep *link.BenchReport) {
	fmt.Fprintf(w, "%d unikernels of %s\n", rep.Unikernels, rep.Corpus)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "LAYOUT\tIDENTICAL PAGES\tSHARE\tFILE total\tmedian\tLOADED total\tmedian\tavg/packed\tmax/packed\tREAD-ONLY\tdistinct\tLINK TIME\t")
	for _, l := range rep.Layouts {
		fmt.Fprintf(tw, "%s\t%d/%d\t%.2f%%\t%s\t%s\t%s\t%s\t%.2fx\t%.2fx\t%s\t%s\t%.1fs\t\n", l.Layout, l.IdenticalPages, l.SharablePages, 100*l.Share,
			linkSize(l.FileBytes), linkSize(l.MedianFileBytes), linkSize(l.LoadedBytes), linkSize(l.MedianLoaded), l.AvgLoadedOverPkd, l.MaxLoadedOverPkd,
			linkSize(l.ReadOnlyBytes), linkSize(l.DistinctReadOnlyBytes), l.LinkTime.Seconds())
	}
	tw.Flush()
	for _, l := range rep.Layouts {
		if n := l.TrampPages + l.SharedPages + l.PrivatePages; n > 0 && rep.Unikernels > 0 {
			per := float64(rep.Unikernels)
			fmt.Fprintf(w, "%s: pages per image by part: tramp %.1f, shared %.1f (%.1f of bytes), private %.1f (%.1f of bytes) (of %.1f loaded)\n", l.Layout,
				float64(l.TrampPages)/per, float64(l.SharedPages)/per, float64(l.SharedBytes)/abi.PageSize/per,
				float64(l.PrivatePages)/per, float64(l.PrivateBytes)/abi.PageSize/per, float64(l.LoadedBytes)/abi.PageSize/per)
			if l.Moved > 0 {
				fmt.Fprintf(w, "%s: %.1f libraries per image moved by whole pages from their map regions: private %.1f pages per image, %.1f at the map's addresses\n",
					l.Layout, float64(l.Moved)/per, float64(l.PrivatePages)/per, float64(l.MapPrivatePages)/per)
			}
			if l.DeadPages > 0 {
				fmt.Fprintf(w, "%s: a copying load copies %.1f of %.1f non-zero pages per image (%.1f dead: no byte its unikernel can reach)\n",
					l.Layout, float64(l.NonZeroPages-l.DeadPages)/per, float64(l.NonZeroPages)/per, float64(l.DeadPages)/per)
			}
			if l.Packed > 0 {
				fmt.Fprintf(w, "%s: %.1f libraries per image have their code in packs: %.1f pack pages per image for %.1f of their bytes\n",
					l.Layout, float64(l.Packed)/per, float64(l.PackPages)/per, float64(l.PackBytes)/abi.PageSize/per)
			}
		}
	}
	for _, l := range rep.Layouts {
		if len(l.Misses) > 0 && l.Share > 0.5 {
			fmt.Fprintf(w, "%s: pages found in no other image, by library: %v\n", l.Layout, l.Misses)
		}
	}
	fmt.Fprintf(w, "aligned over packed: file %.2fx, loaded %.2fx (average of per-image ratios %.2fx); over dce: file %.2fx, loaded %.2fx\n",
		rep.FileOverPacked, rep.LoadedOverPacked, rep.LoadedOverPackedAvg, rep.FileOverDCE, rep.LoadedOverDCE)
}
