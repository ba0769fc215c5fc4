// Package ksm drives Linux's Kernel Samepage Merging for the baselines
// unipool is measured against: it saves the settings, turns ksmd on, reads
// its counters, and puts the settings back — also when the caller fails or
// is interrupted (the caller defers Restore and routes signals to it).
package ksm

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Dir is where the kernel exposes KSM.
var Dir = "/sys/kernel/mm/ksm"

// tunables are the settings a session may change and must restore.
var tunables = []string{"run", "pages_to_scan", "sleep_millisecs", "merge_across_nodes", "use_zero_pages", "max_page_sharing"}

// Counters is a snapshot of ksmd's progress.
type Counters struct {
	PagesShared   uint64 `json:"pages_shared"`   // distinct merged pages
	PagesSharing  uint64 `json:"pages_sharing"`  // mappings of them (pages saved)
	PagesUnshared uint64 `json:"pages_unshared"` // scanned, no twin yet
	PagesVolatile uint64 `json:"pages_volatile"`
	FullScans     uint64 `json:"full_scans"`
	ZeroPages     uint64 `json:"ksm_zero_pages"`
}

// Session holds the settings found before changing them.
type Session struct {
	mu    sync.Mutex
	saved map[string]string
	done  bool
}

// Available says whether KSM exists and can be changed (root).
func Available() error {
	if _, err := os.Stat(filepath.Join(Dir, "run")); err != nil {
		return fmt.Errorf("ksm: this kernel has no KSM (%s missing)", Dir)
	}
	f, err := os.OpenFile(filepath.Join(Dir, "run"), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("ksm: cannot change KSM settings (%v); run as root", err)
	}
	f.Close()
	return nil
}

// Start saves the current settings and starts ksmd with the given scan
// rate (0 keeps the kernel's current value).
func Start(pagesToScan, sleepMillisecs int) (*Session, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	s := &Session{saved: map[string]string{}}
	for _, name := range tunables {
		v, err := read(name)
		if err == nil {
			s.saved[name] = v
		}
	}
	set := func(name string, v int) error {
		if v <= 0 {
			return nil
		}
		return write(name, strconv.Itoa(v))
	}
	if err := set("pages_to_scan", pagesToScan); err != nil {
		s.Restore()
		return nil, err
	}
	if err := set("sleep_millisecs", sleepMillisecs); err != nil {
		s.Restore()
		return nil, err
	}
	if err := write("run", "1"); err != nil {
		s.Restore()
		return nil, err
	}
	return s, nil
}

// Unmerge asks ksmd to unmerge everything (run=2) so that the next mode
// starts from a clean slate, then leaves it running.
func (s *Session) Unmerge() error {
	if err := write("run", "2"); err != nil {
		return err
	}
	return write("run", "1")
}

// Restore puts back the saved settings; it is safe to call more than once
// and from a signal-handling goroutine.
func (s *Session) Restore() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	s.done = true
	var first error
	// run last: stopping ksmd with run=0 keeps merged pages; the previous
	// value is what the operator chose.
	for _, name := range tunables {
		v, ok := s.saved[name]
		if !ok || name == "run" {
			continue
		}
		if cur, _ := read(name); cur == v {
			continue
		}
		if err := write(name, v); err != nil && first == nil {
			first = err
		}
	}
	if v, ok := s.saved["run"]; ok {
		if err := write("run", v); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Read returns the current counters.
func Read() (Counters, error) {
	var c Counters
	for name, p := range map[string]*uint64{
		"pages_shared": &c.PagesShared, "pages_sharing": &c.PagesSharing,
		"pages_unshared": &c.PagesUnshared, "pages_volatile": &c.PagesVolatile,
		"full_scans": &c.FullScans, "ksm_zero_pages": &c.ZeroPages,
	} {
		v, err := read(name)
		if err != nil {
			if name == "ksm_zero_pages" {
				continue // older kernels
			}
			return c, err
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return c, fmt.Errorf("ksm: %s: %q: %w", name, v, err)
		}
		*p = n
	}
	return c, nil
}

func read(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(Dir, name))
	if err != nil {
		return "", fmt.Errorf("ksm: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func write(name, v string) error {
	if err := os.WriteFile(filepath.Join(Dir, name), []byte(v), 0); err != nil {
		return fmt.Errorf("ksm: set %s=%s: %w", name, v, err)
	}
	return nil
}

// ProcDir is where the kernel lists processes.
var ProcDir = "/proc"

// Process is a process with memory KSM scans (madvise MADV_MERGEABLE,
// prctl PR_SET_MEMORY_MERGE, or QEMU's guest RAM with mem-merge on).
type Process struct {
	Pid       int    `json:"pid"`
	Command   string `json:"command"`
	RmapItems uint64 `json:"rmap_items"` // pages ksmd tracks for it (Linux 6.1+)
}

// Mergeable lists the processes, other than those in skip, whose memory
// ksmd scans: a full scan walks all of them, so gigabytes of another
// process (an emulated host's RAM) make every full scan take minutes, and
// a measured fleet's pages can merge with theirs. It reads
// /proc/PID/ksm_stat (Linux 6.1+); on kernels without it, it finds none.
func Mergeable(skip map[int]bool) ([]Process, error) {
	ents, err := os.ReadDir(ProcDir)
	if err != nil {
		return nil, fmt.Errorf("ksm: %w", err)
	}
	var out []Process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || skip[pid] {
			continue
		}
		b, err := os.ReadFile(filepath.Join(ProcDir, e.Name(), "ksm_stat"))
		if err != nil {
			continue // gone, or no ksm_stat on this kernel
		}
		p, ok := parseStat(string(b))
		if !ok {
			continue
		}
		p.Pid = pid
		comm, _ := os.ReadFile(filepath.Join(ProcDir, e.Name(), "comm"))
		p.Command = strings.TrimSpace(string(comm))
		out = append(out, p)
	}
	return out, nil
}

// parseStat reads one ksm_stat: whether the process has mergeable memory
// (ksm_mergeable: yes, or rmap items where the kernel has no such line).
func parseStat(s string) (Process, bool) {
	var p Process
	mergeable := false
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(strings.Replace(line, ":", " ", 1))
		if len(f) != 2 {
			continue
		}
		switch f[0] {
		case "ksm_rmap_items":
			p.RmapItems, _ = strconv.ParseUint(f[1], 10, 64)
		case "ksm_mergeable":
			mergeable = f[1] == "yes"
		}
	}
	return p, mergeable || p.RmapItems > 0
}
