package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/unipool/unipool/internal/bench"
	"github.com/unipool/unipool/internal/monitor/process"
	"github.com/unipool/unipool/internal/pool"
)

// benchStartCommand is `bench start`.
func benchStartCommand() *cobra.Command {
	var (
		o      bench.StartOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "start [flags] NAME...",
		Short: "Start latency per instance: cold boots against starts from boot snapshots",
		Long: `Start runs -n instances of each named pooled unikernel (each with a snapshot,
` + "`unipool snapshot`" + `) cold, then from their snapshots, alternating --rounds times,
and reports per instance the time from its start to its ready point (when it
reads its own request), to entering the guest, and to its exit. Outputs of
the two ways are compared.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, names []string) error {
			if o.Pool == "" {
				d, err := pool.DefaultDir()
				if err != nil {
					return err
				}
				o.Pool = d
			}
			o.Names, o.Log = names, cmd.ErrOrStderr()
			res, err := bench.Start(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', tabwriter.AlignRight)
			if len(res.Loads) > 0 {
				return printLoadStarts(cmd.OutOrStdout(), w, res)
			}
			fmt.Fprintf(w, "%s monitor\tinstances\tfailed\tready mean µs\tready p50\tready p95\tload mean\texit mean\texit p50\t\n", res.Monitor)
			for _, row := range []struct {
				name string
				s    bench.StartStats
			}{{"cold boot", res.Cold}, {"from snapshot", res.Snapshot}} {
				s := row.s
				fmt.Fprintf(w, "%s\t%d\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", row.name, s.Instances, s.Failed,
					s.ReadyMean, s.ReadyP50, s.ReadyP95, s.LoadMean, s.TotalMean, s.TotalP50)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "instances from snapshots whose output or exit code differ from the cold boot's: %d\n", res.Mismatches)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Pool, "pool", "", "pool directory")
	f.IntVarP(&o.N, "instances", "n", 20, "instances of each unikernel per run")
	f.IntVar(&o.Rounds, "rounds", 3, "cold and snapshot runs alternate this many times")
	f.StringVar(&o.Monitor, "monitor", process.Name, "monitor: process or kvm")
	f.StringSliceVar(&o.Loads, "loads", nil, "compare cold boots by these load modes (e.g. shared,naive), alternating, instead of cold boots with snapshots (no snapshot needed)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printLoadStarts prints `bench start --loads`: one row per load mode.
func printLoadStarts(out io.Writer, w *tabwriter.Writer, res *bench.StartResult) error {
	fmt.Fprintf(w, "%s monitor, load\tinstances\tfailed\tload mean µs\tload p50\tload p99\tready mean\texit mean\t\n", res.Monitor)
	for _, l := range res.Loads {
		s := l.StartStats
		fmt.Fprintf(w, "%s\t%d\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", l.Load, s.Instances, s.Failed,
			s.LoadMean, s.LoadP50, s.LoadP99, s.ReadyMean, s.TotalMean)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "instances whose output differs from the first of their unikernel: %d\n", res.Mismatches)
	return err
}
