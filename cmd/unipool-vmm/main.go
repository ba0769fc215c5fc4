// Command unipool-vmm is the lean monitor binary: one fleet run held by a
// process of its own, as `bench memory` and `bench tlb` start it for each
// mode (internal/vmmproc). A monitor process pays for the pages of its
// binary it touches; this binary holds the monitors and what loading a
// pooled unikernel needs, not the CLI (cobra, plots, the corpus with its
// embedded guest sources, the daemon, the unikraft builder), so those
// pages are the monitor's own (README: "The monitor binary").
//
//	unipool-vmm --spec FILE [--hold D]
//
// runs the fleet of spec FILE (JSON, written by bench memory), writes
// JSON lines on stdout (vmmproc.Message) and holds the fleet until a line
// on stdin or its end, or, with --hold, for D. `unipool bench
// monitor-process` runs the same.
//
//	unipool-vmm jail-worker ROOT
//
// is a jail's process (`unipool serve --vms-per-process`, which starts it
// in the jail's namespaces: vmmproc.RunJailWorker).
//
// With $UNIPOOL_RUN_REQUEST_FD set it is `unipool run` without --host:
// the CLI checks its flags and execs this with its own command line and
// the request in that descriptor (vmmproc.ExecRun, RunLocal); its
// messages and exit status are unipool's.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/vmmproc"
)

func main() {
	// Started as the image checker (a monitor of this binary parses
	// plain images' ELF headers in a child: loader.CheckImages), it
	// checks and exits here.
	loader.ServeImageChecks()
	// As unipool's main: monitors hold every verified blob open, and the
	// KVM monitor two descriptors per VM.
	launch.RaiseFileLimit()
	if req, ok, err := vmmproc.TakeRunRequest(); ok {
		if err == nil {
			err = vmmproc.RunLocal(context.Background(), req, os.Stdout, os.Stderr)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "unipool:", err) // as unipool run says it
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 3 && os.Args[1] == vmmproc.JailWorkerCommand {
		if err := vmmproc.RunJailWorker(os.Args[2], vmmproc.PollableInput(os.Stdin), os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", vmmproc.Binary, err)
			os.Exit(1)
		}
		return
	}
	fs := flag.NewFlagSet(vmmproc.Binary, flag.ContinueOnError)
	spec := fs.String("spec", "", "the mode and its fleet (JSON, written by bench memory)")
	hold := fs.Duration("hold", 0, "hold the fleet this long (0: until a line or the end of stdin)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s --spec FILE [--hold D]\n\nRuns one bench mode's fleet held, as bench memory's monitor process (JSON lines on stdout; a line on stdin ends the hold).\n\n", vmmproc.Binary)
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *spec == "" || fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	if err := run(*spec, *hold); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", vmmproc.Binary, err)
		os.Exit(1)
	}
}

func run(path string, hold time.Duration) error {
	s, err := vmmproc.ReadSpec(path)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A process monitor's fleet starts on a fresh runtime once resolved:
	// this program is exec'ed again with it (the same process).
	vmmproc.ReexecAfterResolve = true
	return vmmproc.Run(ctx, s, hold, vmmproc.PollableInput(os.Stdin), os.Stdout)
}
