package jail

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Cgroup is one jail's control group, with a memory limit: cgroup v2's
// memory.max where the memory controller is on the unified hierarchy,
// else cgroup v1's memory.limit_in_bytes. Everything the jail's processes
// allocate (guest memory, page tables, the worker's own heap) is charged
// to it and counted by Memory.
type Cgroup struct {
	Dir string // the group's directory
	v2  bool
}

// cgroupParent is the directory under the memory hierarchy's root that
// holds every jail's group.
const cgroupParent = "unipool"

// memoryHierarchy finds where the memory controller is mounted: a cgroup2
// mount whose root lists it in cgroup.controllers, else a v1 mount with
// the memory option.
func memoryHierarchy() (dir string, v2 bool, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	var v1 string
	s := bufio.NewScanner(f)
	for s.Scan() {
		// id parent maj:min root mountpoint options ... - fstype source superopts
		pre, post, ok := strings.Cut(s.Text(), " - ")
		if !ok {
			continue
		}
		fields, postf := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(postf) < 3 {
			continue
		}
		mnt := fields[4]
		switch postf[0] {
		case "cgroup2":
			b, err := os.ReadFile(filepath.Join(mnt, "cgroup.controllers"))
			if err == nil && hasWord(string(b), "memory") {
				return mnt, true, nil
			}
		case "cgroup":
			if v1 == "" && hasWord(strings.ReplaceAll(postf[2], ",", " "), "memory") {
				v1 = mnt
			}
		}
	}
	if v1 != "" {
		return v1, false, nil
	}
	return "", false, errors.New("no cgroup memory controller is mounted (neither cgroup2 with memory in cgroup.controllers nor a cgroup v1 memory hierarchy)")
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// NewCgroup makes the group name under unipool's parent group, limited to
// memMax bytes (0: no limit, only accounting).
func NewCgroup(name string, memMax int64) (*Cgroup, error) {
	root, v2, err := memoryHierarchy()
	if err != nil {
		return nil, err
	}
	parent := filepath.Join(root, cgroupParent)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", parent, err)
	}
	if v2 {
		// Children get the memory controller only if every ancestor
		// hands it down.
		for _, d := range []string{root, parent} {
			ctl := filepath.Join(d, "cgroup.subtree_control")
			b, _ := os.ReadFile(ctl)
			if !hasWord(string(b), "memory") {
				if err := os.WriteFile(ctl, []byte("+memory"), 0); err != nil {
					return nil, fmt.Errorf("enable the memory controller in %s: %w", ctl, err)
				}
			}
		}
	}
	c := &Cgroup{Dir: filepath.Join(parent, name), v2: v2}
	if err := os.Mkdir(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", c.Dir, err)
	}
	if memMax > 0 {
		file, val := "memory.limit_in_bytes", strconv.FormatInt(memMax, 10)
		if v2 {
			file = "memory.max"
		}
		if err := os.WriteFile(filepath.Join(c.Dir, file), []byte(val), 0); err != nil {
			c.Remove()
			return nil, fmt.Errorf("cgroup %s: set %s: %w", c.Dir, file, err)
		}
	}
	return c, nil
}

// Add moves process pid (all its threads) into the group.
func (c *Cgroup) Add(pid int) error {
	if err := os.WriteFile(filepath.Join(c.Dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		return fmt.Errorf("cgroup %s: add process %d: %w", c.Dir, pid, err)
	}
	return nil
}

// Procs lists the processes in the group (host pids).
func (c *Cgroup) Procs() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(c.Dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

// Memory is what the group's processes are charged now: memory.current
// (v2) or memory.usage_in_bytes (v1).
func (c *Cgroup) Memory() (uint64, error) {
	file := "memory.usage_in_bytes"
	if c.v2 {
		file = "memory.current"
	}
	b, err := os.ReadFile(filepath.Join(c.Dir, file))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// Remove deletes the group once its processes are gone (it waits a
// little for exiting ones: a group with members cannot be removed).
func (c *Cgroup) Remove() error {
	var err error
	for range 100 {
		if err = os.Remove(c.Dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("cgroup %s: %w", c.Dir, err)
}
