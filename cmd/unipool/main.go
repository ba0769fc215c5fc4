// Command unipool builds, pools and runs unikernels whose libraries share
// memory at load time. This file only assembles the CLI; each command group
// lives in its own file and calls into internal/.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/loader"
)

// commands is filled by the init functions of the command files.
var commands []*cobra.Command

func main() {
	// Started as the image checker (a monitor of this binary parses
	// plain images' ELF headers in a child: loader.CheckImages), it
	// checks and exits here.
	loader.ServeImageChecks()
	// Monitors hold every verified blob open, and the KVM monitor two
	// descriptors per VM: a fleet needs more than the default limit.
	launch.RaiseFileLimit()
	stop := profile()
	err := newRoot().Execute()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "unipool:", err)
		os.Exit(1)
	}
}

// profile writes a CPU profile of the whole command to $UNIPOOL_CPUPROFILE
// when it is set (for `go tool pprof`: where a start's time goes).
func profile() (stop func()) {
	path := os.Getenv("UNIPOOL_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "unipool: UNIPOOL_CPUPROFILE:", err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// newRoot assembles the CLI from the command files' commands.
func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "unipool",
		Short:         "Run many unikernels that share their libraries' pages at load time",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(commands...)
	return root
}
