package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"text/tabwriter"
)

// ModeResult is one mode's outcome in results.json.
type ModeResult struct {
	census     *censusResult // shared mode only: its page census
	Mode       string        `json:"mode"`
	Instances  int           `json:"instances"`
	Failed     int           `json:"failed"` // instances that did not print their expect line
	FinalBytes uint64        `json:"final_bytes"`
	PeakBytes  uint64        `json:"peak_bytes"`
	FirstBytes uint64        `json:"first_bytes"`
	AvailDelta int64         `json:"avail_delta_bytes"`
	// PoolBytes: over the instances, resident bytes of pool blobs mapped
	// shared (the library code and rodata load-time sharing shares).
	PoolBytes    uint64            `json:"pool_mapped_resident_bytes"`
	SharedBytes  uint64            `json:"shared_resident_bytes"` // over the instances: resident bytes shared with another process
	TimeToStable float64           `json:"time_to_stable_s"`
	KsmdCPU      float64           `json:"ksmd_cpu_s"`
	TLBFlushes   map[string]uint64 `json:"tlb_flushes"` // issuer -> count
	LoadMeanMs   float64           `json:"load_time_mean_ms"`
	LoadP95Ms    float64           `json:"load_time_p95_ms"`
	Samples      []Sample          `json:"samples"`
	FinalKSM     any               `json:"final_ksm,omitempty"`
}

// Results is results.json.
type Results struct {
	Count      int    `json:"count"`
	Apps       int    `json:"apps"`
	Seed       uint64 `json:"seed"`
	Monitor    string `json:"monitor"`
	IdealBytes uint64 `json:"ideal_bytes"`
	IdealNote  string `json:"ideal_note"`
	// IdealLoadBytes is the ideal of load-time sharing: every image page
	// content once, every page written at run time counted in full.
	IdealLoadBytes uint64        `json:"ideal_load_time_bytes"`
	Modes          []ModeResult  `json:"modes"`
	Layouts        []LayoutPages `json:"layouts,omitempty"`
}

// LayoutPages is, for one layout over the corpus, how many loaded pages
// are unique to one image and how many have a twin in another image.
type LayoutPages struct {
	Layout     string `json:"layout"`
	Unique     uint64 `json:"unique_pages"`
	Shareable  uint64 `json:"shareable_pages"`
	SameAddr   uint64 `json:"shareable_same_address_pages"`
	TotalBytes uint64 `json:"total_bytes"`
}

// ReadResults reads a results.json that Write stored.
func ReadResults(path string) (*Results, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", path, err)
	}
	return &r, nil
}

// Write stores results.json and one CSV time series per mode in dir.
func (r *Results) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "memory.csv"))
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	w := csv.NewWriter(f)
	w.Write([]string{"mode", "t_s", "pss_bytes", "avail_delta_bytes", "ksm_pages_sharing"})
	for _, m := range r.Modes {
		for _, s := range m.Samples {
			sharing := ""
			if s.KSM != nil {
				sharing = strconv.FormatUint(s.KSM.PagesSharing, 10)
			}
			w.Write([]string{m.Mode, strconv.FormatFloat(s.T, 'f', 2, 64), strconv.FormatUint(s.PSS, 10),
				strconv.FormatInt(s.AvailDelta, 10), sharing})
		}
	}
	w.Flush()
	return w.Error()
}

// Table prints the short terminal summary.
func (r *Results) Table(out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "mode\tfinal MiB\tfirst MiB\tpeak MiB\tvs ideal\tstable s\tksmd CPU s\tTLB shootdowns\tload ms\tshared RSS MiB\tfailed\t\n")
	for _, m := range r.Modes {
		var tlb uint64
		for k, v := range m.TLBFlushes {
			if k != "task-switch" {
				tlb += v
			}
		}
		ratio := "-"
		if r.IdealBytes > 0 {
			ratio = fmt.Sprintf("%.2fx", float64(m.FinalBytes)/float64(r.IdealBytes))
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%s\t%.0f\t%.2f\t%d\t%.2f\t%.1f\t%d\t\n", m.Mode, mib(m.FinalBytes), mib(m.FirstBytes),
			mib(m.PeakBytes), ratio, m.TimeToStable, m.KsmdCPU, tlb, m.LoadMeanMs, mib(m.SharedBytes), m.Failed)
	}
	if r.IdealLoadBytes > 0 {
		fmt.Fprintf(tw, "ideal (load time)\t%.1f\t\t\t%.2fx\t\t\t\t\t\t\t\n", mib(r.IdealLoadBytes), float64(r.IdealLoadBytes)/float64(max(r.IdealBytes, 1)))
	}
	if r.IdealBytes > 0 {
		fmt.Fprintf(tw, "ideal\t%.1f\t\t\t1.00x\t\t\t\t\t\t\t\n", mib(r.IdealBytes))
	}
	tw.Flush()
	if len(r.Modes) > 0 {
		by := map[string]uint64{}
		for _, m := range r.Modes {
			by[m.Mode] = m.FinalBytes
		}
		var sh, sa *ModeResult
		for i := range r.Modes {
			switch r.Modes[i].Mode {
			case "shared":
				sh = &r.Modes[i]
			case "shared-aslr":
				sa = &r.Modes[i]
			}
		}
		if sh != nil && sa != nil && sh.PoolBytes > 0 && sh.SharedBytes > 0 {
			fmt.Fprintf(out, "with --aslr: %.1f%% of the pool pages and %.1f%% of all shared pages stay shared (%.1f / %.1f MiB pool, %.1f / %.1f MiB shared)\n",
				100*float64(sa.PoolBytes)/float64(sh.PoolBytes), 100*float64(sa.SharedBytes)/float64(sh.SharedBytes),
				mib(sa.PoolBytes), mib(sh.PoolBytes), mib(sa.SharedBytes), mib(sh.SharedBytes))
		}
		if s, ok := by["shared"]; ok && s > 0 {
			var names []string
			for k := range by {
				names = append(names, k)
			}
			sort.Strings(names)
			for _, k := range names {
				if k != "shared" {
					fmt.Fprintf(out, "%s / shared = %.2f\n", k, float64(by[k])/float64(s))
				}
			}
		}
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
