package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/unipool/unipool/internal/elfimage"
	"github.com/unipool/unipool/internal/link"
)

func init() {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show how an image is laid out: each library's region, part sizes against capacity, padding",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := link.Inspect(args[0])
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(in)
			}
			inspectText(cmd.OutOrStdout(), in)
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print as JSON")
	commands = append(commands, cmd)
}

func inspectText(out io.Writer, in *link.Inspection) {
	entry := fmt.Sprintf("%#x", in.Entry)
	if c := in.Config; c != nil {
		// A group unit's name joins its members with "+": the
		// offset is set apart from it.
		entry += fmt.Sprintf(" (%s + %#x)", c.Libraries[c.Entry.Lib].Name, c.Entry.Off)
	}
	fmt.Fprintf(out, "%s: %s image (%s), entry %s\n", in.Path, in.Layout, in.Type, entry)
	fmt.Fprintf(out, "file %s, loaded %s in %d segments (%s of it page padding)\n",
		linkSize(uint64(in.FileSize)), linkSize(in.LoadedSize), len(in.Segments), linkSize(in.Padding))
	if in.DeadListed > 0 || in.Layout == "aligned" {
		fmt.Fprintf(out, "copying load: %d of %d non-zero pages (%d dead: no byte its unikernel can reach, %s)\n",
			in.NonZeroPages-in.DeadPages, in.NonZeroPages, in.DeadPages, elfimage.DeadSectionName)
	}
	if len(in.Libraries) == 0 {
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SEGMENT\tPROT\tFILE\tMEMORY")
		for _, s := range in.Segments {
			fmt.Fprintf(tw, "%#x\t%s\t%#x\t%#x\n", s.Vaddr, s.Prot, s.FileSize, s.MemSize)
		}
		tw.Flush()
		return
	}
	if in.ASLR != "" {
		fmt.Fprintf(out, "ASLR: %s\n", in.ASLR)
	}
	if in.DensePrivatePages > 0 {
		fmt.Fprintf(out, "dense private parts: %s in all for %d bytes", linkSize(in.DensePrivatePages), in.DensePrivateBytes)
		if in.Moved > 0 {
			fmt.Fprintf(out, "; %d libraries moved by whole pages from their map regions (their pages unchanged): %s at the map's addresses",
				in.Moved, linkSize(in.MapPrivatePages))
		}
		fmt.Fprintln(out)
	}
	if in.Packed > 0 {
		fmt.Fprintf(out, "packs: %d libraries' code (%d bytes) in %s of pack pages, shared with other small libraries (each alone: whole pages of its own)\n",
			in.Packed, in.PackBytes, linkSize(in.PackPages))
	}
	if in.TLS != nil {
		fmt.Fprintf(out, "TLS template: %d bytes (%d with tbss), align %d\n", in.TLS.FileSize, in.TLS.MemSize, in.TLS.Align)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "LIBRARY\tVERSION\tREGION\tTRAMP used/cap or stubs+slots\tCODE\tRODATA\tSHARED pages/cap\tPRIVATE data/mem/cap\tPADDING\t")
	for _, l := range in.Libraries {
		name := l.Name
		if l.App {
			name += " (app)"
		}
		r := l.Region
		// A split table has no area of its own: stubs + slots, in the
		// library's shared and private pages.
		tramp := linkSize(l.Tramp) + "/" + linkSize(r.TrampSize)
		if l.Stubs+l.Slots > 0 || (l.Tramp == 0 && r.TrampSize == 0) {
			tramp = linkSize(l.Stubs) + "+" + linkSize(l.Slots)
		}
		region := fmt.Sprintf("%#x", r.Start)
		if l.Shift != 0 {
			// Moved from its map region by whole pages (desc.Library.Shift).
			region = fmt.Sprintf("%#x (moved %+d pages)", r.Start, l.Shift/4096)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s/%s\t%s/%s/%s\t%s\t\n", name, l.Version, region,
			tramp, linkSize(l.Code), linkSize(l.Rodata), linkSize(l.SharedPages), linkSize(r.SharedSize),
			linkSize(l.Data), linkSize(l.Private), linkSize(r.PrivateSize), linkSize(l.Padding))
	}
	tw.Flush()
	for _, l := range in.Libraries {
		if len(l.Members) == 0 {
			continue
		}
		var ms []string
		for _, m := range l.Members {
			ms = append(ms, m.Name+" "+m.Version)
		}
		fmt.Fprintf(out, "group unit %s: one region, one code stream: %s\n", l.Name, strings.Join(ms, ", "))
	}
}

// linkSize formats a byte count compactly.
func linkSize(n uint64) string {
	switch {
	case n < 10<<10:
		return fmt.Sprintf("%dB", n)
	case n < 10<<20:
		return fmt.Sprintf("%.1fK", float64(n)/1024)
	default:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	}
}
