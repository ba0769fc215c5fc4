package main

import (
	"cmp"
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/unipool/unipool/internal/bench"
)

func benchDistributeCommand() *cobra.Command {
	var do bench.DistributeOptions
	var dout, work string
	distribute := &cobra.Command{
		Use:   "distribute --count N [--add M] [--out DIR]",
		Short: "Bytes and time to bring an empty host up to N unikernels, then to add M, through a real registry: pool against whole images",
		Long: `Builds a corpus of N+M unikernels, links it aligned (pooled) and packed (the stock
images), starts Debian's docker-registry on loopback (TLS with its own CA, htpasswd), and
brings a second, empty host up to the first N, then adds the M new ones, two ways side by
side: pool push/pull (only the blobs the host lacks) and whole images as kraftkit ships
them (one OCI image per unikernel, the kernel as an uncompressed tar layer). Counts HTTP
requests and body bytes received and the wall time of each pull; checks the second host's
pool verifies and matches the source. With --kills K, then pulls the N into a third empty
pool with this CLI, SIGKILLed at random points K times, reruns it and checks the pool is
complete and verified (each kill drawn within the download still to do, so it lands
mid-pull). With --reuse, takes the fleet an earlier run built in --work (corpus/,
images/aligned, images/packed, pool/, e.g. bench memory's) and only reads it: the first
N of its unikernels, then the next M. Writes DIR/distribute.json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o := do
			o.Exe, o.Log, o.Scratch = exe, cmd.ErrOrStderr(), filepath.Join(dout, "work")
			o.Work = cmp.Or(work, o.Scratch)
			res, err := bench.Distribute(ctx, o)
			if res != nil {
				res.Table(cmd.OutOrStdout())
				if werr := writeJSON(filepath.Join(dout, "distribute.json"), res); werr != nil && err == nil {
					err = werr
				}
			}
			return err
		},
	}
	distribute.Flags().IntVar(&do.Count, "count", 100, "unikernels the second host pulls first")
	distribute.Flags().IntVar(&do.Add, "add", 10, "new unikernels it pulls next")
	distribute.Flags().Uint64Var(&do.Seed, "seed", 1, "corpus seed")
	distribute.Flags().IntVar(&do.Jobs, "jobs", 2, "parallel builds and links")
	distribute.Flags().IntVar(&do.Transfers, "transfers", 4, "blobs (pool) or images (whole) in flight at once")
	distribute.Flags().IntVar(&do.Kills, "kills", 0, "then pull the first N into a third pool, killed this many times, each at a random point of the download left, and rerun")
	distribute.Flags().BoolVar(&do.ComparePlain, "compare-plain", false, "also ship the pool with plain descriptions (blobs of their own, as before the wire form), side by side")
	distribute.Flags().StringVar(&work, "work", "", "the fleet's folder (default DIR/work)")
	distribute.Flags().BoolVar(&do.Reuse, "reuse", false, "take the fleet built in --work as it is, read only (no build, no link)")
	distribute.Flags().StringVar(&dout, "out", "bench-distribute", "output folder (work/ and distribute.json)")
	return distribute
}
