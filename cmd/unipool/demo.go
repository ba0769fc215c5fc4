package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/unipool/unipool/internal/demo"
)

func init() {
	var o demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Build ~100 FaaS unikernels, pool them, run them shared and naive, print the memory each way",
		Long: `The main job: builds a corpus of FaaS unikernels (gcc, binutils), links them aligned to
the library map, adds them to a fresh pool, runs every one of them at once with the
process monitor twice — pool blobs mapped shared, then copied (naive) — and prints how
many printed their expected line, the memory of each way against the ideal, and where
the plot is. With a usable /dev/kvm it repeats the runs under the KVM monitor.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return demo.Run(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().IntVar(&o.Count, "count", 100, "unikernels in the fleet")
	cmd.Flags().Uint64Var(&o.Seed, "seed", 1, "corpus seed")
	cmd.Flags().StringVar(&o.Out, "out", "demo-out", "output folder (corpus, images, pool, results, plot)")
	cmd.Flags().IntVar(&o.Jobs, "jobs", 2, "parallel builds and links")
	cmd.Flags().StringVar(&o.KVM, "kvm", "auto", "also run under the KVM monitor: auto (when /dev/kvm works), on, off")
	commands = append(commands, cmd)
}
