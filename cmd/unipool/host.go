package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipool/unipool/internal/api"
	"github.com/unipool/unipool/internal/serve"
	"github.com/unipool/unipool/internal/vmmproc"
)

// The daemon's clients: run --host (in run.go), ps, stop, logs, metrics.

func init() {
	commands = append(commands, psCommand(), stopCommand(), logsCommand(), metricsCommand())
}

// psCommand is `unipool ps`: the daemon's instances.
func psCommand() *cobra.Command {
	var host string
	var asJSON bool
	var batch uint64
	ps := &cobra.Command{
		Use:   "ps",
		Short: "List the daemon's instances with their state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			is, err := api.NewClient(host).List(cmd.Context(), api.ListOptions{Batch: batch})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), is)
			}
			return printInstances(cmd.OutOrStdout(), is)
		},
	}
	hostFlag(ps, &host)
	ps.Flags().BoolVar(&asJSON, "json", false, "print the instances as JSON")
	ps.Flags().Uint64Var(&batch, "batch", 0, "only this batch")
	return ps
}

// stopCommand is `unipool stop`.
func stopCommand() *cobra.Command {
	var host string
	var batch uint64
	stop := &cobra.Command{
		Use:   "stop ID...",
		Short: "Stop instances of the daemon (a resident one: release it, with those held with it)",
		Args: func(cmd *cobra.Command, args []string) error {
			if batch == 0 && len(args) == 0 {
				return fmt.Errorf("name an instance ID or give --batch N")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c := api.NewClient(host)
			var ids []uint64
			for _, a := range args {
				id, err := api.ParseID(a)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			if batch != 0 {
				is, err := c.List(cmd.Context(), api.ListOptions{Batch: batch})
				if err != nil {
					return err
				}
				for _, in := range is {
					if !in.Finished() || in.Resident {
						ids = append(ids, in.ID)
					}
				}
			}
			for k, id := range ids {
				if err := c.Stop(cmd.Context(), id); err != nil {
					// Of the batch, one that ended meanwhile (or was
					// released with another of its group) is done.
					if in, gerr := c.Get(cmd.Context(), id); k < len(args) || gerr != nil || !in.Finished() || in.Resident {
						return err
					}
				}
			}
			return nil
		},
	}
	hostFlag(stop, &host)
	stop.Flags().Uint64Var(&batch, "batch", 0, "every pending, running or resident instance of this batch")
	return stop
}

// logsCommand is `unipool logs`: an instance's console output.
func logsCommand() *cobra.Command {
	var host string
	var logsJSON bool
	logs := &cobra.Command{
		Use:   "logs ID",
		Short: "Print an instance's console output; its state and exit status go to stderr",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := api.ParseID(args[0])
			if err != nil {
				return err
			}
			in, err := api.NewClient(host).Get(cmd.Context(), id)
			if err != nil {
				return err
			}
			if logsJSON {
				return printJSON(cmd.OutOrStdout(), in)
			}
			io.WriteString(cmd.OutOrStdout(), in.Output)
			fmt.Fprintf(cmd.ErrOrStderr(), "unipool: instance %d (%s/%d): %s\n", in.ID, in.Unikernel, in.Result.Instance, describeInstance(in))
			return nil
		},
	}
	hostFlag(logs, &host)
	logs.Flags().BoolVar(&logsJSON, "json", false, "print the instance (output, exit code, state) as JSON")
	return logs
}

// metricsCommand is `unipool metrics`: the daemon's host metrics.
func metricsCommand() *cobra.Command {
	var host string
	metrics := &cobra.Command{
		Use:   "metrics",
		Short: "Print the daemon's host metrics as JSON (instances, memory, load times, console budget)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := api.NewClient(host).Metrics(cmd.Context())
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), m)
		},
	}
	hostFlag(metrics, &host)
	return metrics
}

func hostFlag(cmd *cobra.Command, host *string) {
	cmd.Flags().StringVar(host, "host", serve.DefaultSocket(), "the daemon's socket (`unipool serve --socket`)")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func describeInstance(in api.Instance) string {
	switch in.State {
	case api.StateExited:
		return fmt.Sprintf("exited with code %d", in.ExitCode)
	case api.StateFailed, api.StateStopped:
		return fmt.Sprintf("%s: %s", in.State, in.Error)
	}
	return in.State
}

func printInstances(w io.Writer, is []api.Instance) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tBATCH\tUNIKERNEL\tINSTANCE\tSTATE\tPID\tEXIT\tLOAD\tRUN\tERROR")
	for _, in := range is {
		exit := ""
		if in.State == api.StateExited {
			exit = fmt.Sprint(in.ExitCode)
		}
		state := in.State
		if in.Resident {
			state += " (resident)"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%s\t%d\t%s\t%v\t%v\t%s\n", in.ID, in.Batch, in.Unikernel, in.Result.Instance,
			state, in.PID, exit, in.LoadTime.Round(time.Microsecond), in.RunTime.Round(time.Microsecond), in.Error)
	}
	return tw.Flush()
}

// runOnHost is `run --host`: the daemon starts the instances; the output
// and exit status are those of run.
func runOnHost(ctx context.Context, stdout, stderr io.Writer, host string, req api.StartRequest, asJSON bool) error {
	c := api.NewClient(host)
	resp, err := c.Start(ctx, req)
	if err != nil {
		return err
	}
	is, err := c.WaitBatch(ctx, resp.Batch)
	if err != nil {
		// Interrupted: stop what this run started.
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, id := range resp.Instances {
			c.Stop(stopCtx, id)
		}
		return err
	}
	p := vmmproc.NewPrinter(stdout, stderr, asJSON, len(is))
	for _, in := range is {
		p.Result(in.Result)
	}
	return p.Close()
}
