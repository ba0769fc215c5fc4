package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func init() {
	commands = append(commands, &cobra.Command{
		Use:   "version",
		Short: "Print unipool's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "unipool "+version)
		},
	})
}

// version is unipool's version (the daemon reports it too).
const version = "0.1.0"
