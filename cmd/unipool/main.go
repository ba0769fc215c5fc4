// Command unipool builds, pools and runs unikernels whose libraries share
// memory at load time. This file only assembles the CLI; each command group
// lives in its own file and calls into internal/.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// commands is filled by the init functions of the command files.
var commands []*cobra.Command

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "unipool:", err)
		os.Exit(1)
	}
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
