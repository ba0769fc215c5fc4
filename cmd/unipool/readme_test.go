package main

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestReadmeCommandTableNamesEveryCommand keeps README.md's "Commands in
// brief" true: every command the CLI has is in it.
func TestReadmeCommandTableNamesEveryCommand(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "## Commands in brief")
	if !ok {
		t.Fatal("README.md has no \"## Commands in brief\"")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	// Each synopsis in the table's first column: `pool init\|add NAME`
	// names pool init and pool add.
	listed := map[string]bool{}
	for _, row := range strings.Split(table, "\n") {
		row = strings.ReplaceAll(row, `\|`, "¦")
		cells := strings.Split(row, "|")
		if len(cells) < 3 {
			continue
		}
		for i, code := range strings.Split(cells[1], "`") {
			if i%2 == 0 {
				continue
			}
			words := strings.Fields(code)
			if len(words) == 0 {
				continue
			}
			listed[words[0]] = true
			if len(words) > 1 {
				for _, sub := range strings.Split(words[1], "¦") {
					listed[words[0]+" "+sub] = true
				}
			}
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			path := strings.TrimPrefix(sub.CommandPath(), "unipool ")
			if !listed[path] {
				t.Errorf("README.md's command table leaves out `%s`", path)
			}
			walk(sub)
		}
	}
	walk(newRoot())
}
