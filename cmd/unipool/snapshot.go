package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipool/unipool/internal/pool"
	"github.com/unipool/unipool/internal/snapshot"
)

func init() {
	var (
		dir, mem string
		timeout  time.Duration
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "snapshot [flags] NAME...",
		Short: "Boot pooled unikernels to their ready point and store their memory in the pool",
		Long: `Snapshot boots each named unikernel under the process monitor up to its
ready point (the guest writes port 0x502 once boot is done, before it reads
its command line), stops it there, and stores its private memory in the pool
by content (all-zero pages are not stored; a page any other snapshot has is
stored once), with its registers and console output in its description. The
new pages of up to 64 snapshots taken by one command are stored as one page
pack (one pool file). ` + "`run --snapshot`" + ` then starts instances from it: the pages
mapped copy-on-write, the instance's own command line and seed delivered, the
guest resumed at its ready point.

A snapshot fixes the layout it was taken with (the map's region bases, the
boot info, stack and heap where a cold boot without --aslr has them, the
memory size): instances from it cannot use --aslr, since their memory holds
absolute addresses nothing records, so every instance of one snapshot has
the same, public, layout. The secrets that are not addresses stay the
instance's own: its stack canary and random seed are fresh draws from the
host CSPRNG, delivered in its boot info and taken by the guest after the
ready point (the canary into its TCB, the seed by ukrand on first use).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, names []string) error {
			d := dir
			if d == "" {
				var err error
				if d, err = pool.DefaultDir(); err != nil {
					return err
				}
			}
			var opt snapshot.Options
			if mem != "" {
				n, err := poolParseSize(mem)
				if err != nil {
					return fmt.Errorf("--mem: %w", err)
				}
				opt.MemSize = n
			}
			opt.Timeout = timeout
			results, err := snapshot.TakeMany(cmd.Context(), d, names, opt, func(res *snapshot.Result) {
				if !asJSON {
					printSnapshot(cmd.OutOrStdout(), res)
				}
			})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(results)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "pool", "", "pool directory")
	cmd.Flags().StringVar(&mem, "mem", "", "guest memory, e.g. 16M (default: the description's); instances from the snapshot get the same")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up on a guest that has not reached its ready point by then")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	commands = append(commands, cmd)
}

func printSnapshot(w io.Writer, r *snapshot.Result) {
	fmt.Fprintf(w, "snapshot %s: %s, %d pages (%d distinct, %d new, %s new), boot %v\n",
		r.Name, r.Manifest, r.Pages, r.Distinct, r.NewPages, poolBytes(r.NewBytes), r.BootTime.Round(time.Millisecond))
}

// sharedByLine renders "k unikernels: n pages" pairs, most shared last.
func sharedByLine(m map[int]int) string {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%d pages used by %d", m[k], k))
	}
	return strings.Join(parts, ", ")
}
