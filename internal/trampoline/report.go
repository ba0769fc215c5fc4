package trampoline

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Report says what a rewrite did, per library.
type Report struct {
	Image     string          `json:"image"`
	Libraries []LibraryReport `json:"libraries"`
}

// LibraryReport is one library's part of a Report.
type LibraryReport struct {
	Name      string         `json:"name"`
	TableSize uint64         `json:"table_size"` // bytes used in the trampoline area
	TableCap  uint64         `json:"table_cap"`  // Region.TrampSize, or the split table's reserved slot and stub areas
	Slots     int            `json:"slots"`
	Sites     map[string]int `json:"sites,omitempty"` // rewritten sites by kind
	Relocs    int            `json:"relocs"`          // absolute addresses in the private part
	Failed    int            `json:"failed"`          // relocations that could not be handled
	// Residual counts places in the shared part that still encode some
	// library's address (each pins that library). SharedIdentical is
	// Residual == 0: the shared pages are byte-identical wherever any
	// library is placed.
	Residual        int    `json:"residual"`
	SharedIdentical bool   `json:"shared_identical"`
	NoASLR          string `json:"no_aslr,omitempty"`
	// Pins are all the reasons the library cannot move.
	Pins []string `json:"pins,omitempty"`
}

func (rw *rewriter) report() *Report {
	rep := &Report{Image: rw.im.name}
	for i, lw := range rw.libs {
		l := rw.cfg.Libraries[i]
		lr := LibraryReport{Name: l.Name, TableCap: lw.capacity, Relocs: len(lw.relocs),
			Failed: lw.failed, Residual: lw.residual, SharedIdentical: lw.residual == 0,
			NoASLR: pinReason(lw.pins), Pins: lw.pins}
		if lw.tab != nil {
			lr.TableSize = lw.tab.size()
			for _, w := range lw.tab.slots {
				if !w.konst {
					lr.Slots++
				}
			}
		}
		for _, s := range lw.sites {
			if lr.Sites == nil {
				lr.Sites = map[string]int{}
			}
			lr.Sites[s.kind.String()]++
		}
		rep.Libraries = append(rep.Libraries, lr)
	}
	return rep
}

// Sites is the number of rewritten sites of kind k over all libraries.
func (r *Report) Sites(k Kind) int {
	n := 0
	for _, l := range r.Libraries {
		n += l.Sites[k.String()]
	}
	return n
}

// WriteText prints the report as a table, one library a line.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "library\ttable\tslots\tsites\trelocs\tfailed\tshared identical\taslr\n")
	for _, l := range r.Libraries {
		sites := ""
		for k := Kind(0); k < numKinds; k++ {
			if n := l.Sites[k.String()]; n > 0 {
				if sites != "" {
					sites += " "
				}
				sites += fmt.Sprintf("%s:%d", k, n)
			}
		}
		if sites == "" {
			sites = "-"
		}
		aslr := "yes"
		if l.NoASLR != "" {
			aslr = "no: " + l.NoASLR
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%d\t%s\t%d\t%d\t%v\t%s\n", l.Name, l.TableSize, l.TableCap, l.Slots, sites, l.Relocs, l.Failed, l.SharedIdentical, aslr)
	}
	return tw.Flush()
}
