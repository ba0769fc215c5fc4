// Package cgroup makes and reads memory control groups: cgroup v2's
// unified hierarchy where the memory controller is on it, else cgroup v1's
// memory hierarchy. serve's jails use one per jail (with a memory limit);
// internal/measure uses one per measured fleet, so that what the kernel
// charges the fleet (anonymous and file pages, page tables, kernel
// stacks, slab, percpu, socket buffers) is read apart from whatever else
// runs on the host.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Group is one control group with the memory controller.
type Group struct {
	Dir string // the group's directory
	V2  bool   // on the unified hierarchy (else cgroup v1)
}

// Hierarchy is where the memory controller is mounted.
type Hierarchy struct {
	Mount string // the mount point
	Root  string // the part of the hierarchy mounted there ("/" unless namespaced)
	V2    bool
}

// ErrNoMemoryController says the host has no memory cgroup at all.
var ErrNoMemoryController = errors.New("no cgroup memory controller is mounted (neither cgroup2 with memory in cgroup.controllers nor a cgroup v1 memory hierarchy)")

// FindHierarchy finds where the memory controller is mounted: a cgroup2
// mount whose root lists it in cgroup.controllers, else a v1 mount with
// the memory option.
func FindHierarchy() (Hierarchy, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return Hierarchy{}, fmt.Errorf("cgroup: %w", err)
	}
	var v1 *Hierarchy
	s := bufio.NewScanner(bytes.NewReader(data))
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
		root, mnt := fields[3], fields[4]
		switch postf[0] {
		case "cgroup2":
			b, err := os.ReadFile(filepath.Join(mnt, "cgroup.controllers"))
			if err == nil && hasWord(string(b), "memory") {
				return Hierarchy{Mount: mnt, Root: root, V2: true}, nil
			}
		case "cgroup":
			if v1 == nil && hasWord(strings.ReplaceAll(postf[2], ",", " "), "memory") {
				v1 = &Hierarchy{Mount: mnt, Root: root}
			}
		}
	}
	if v1 != nil {
		return *v1, nil
	}
	return Hierarchy{}, ErrNoMemoryController
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// Own returns the directory of the group process pid is in on h (0: this
// process), from /proc/PID/cgroup.
func (h Hierarchy) Own(pid int) (string, error) {
	path := "/proc/self/cgroup"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/cgroup", pid)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cgroup: %w", err)
	}
	rel, err := parseProcCgroup(data, h.V2)
	if err != nil {
		return "", fmt.Errorf("cgroup: %s: %w", path, err)
	}
	// Under a cgroup namespace or a bind mount of part of the hierarchy,
	// the mount shows the hierarchy from Root down.
	if h.Root != "/" {
		r, ok := strings.CutPrefix(rel, h.Root)
		if !ok {
			return "", fmt.Errorf("cgroup: %s: group %s is outside the mounted part %s of the hierarchy", path, rel, h.Root)
		}
		rel = r
	}
	return filepath.Join(h.Mount, rel), nil
}

// parseProcCgroup finds, in /proc/PID/cgroup ("id:controllers:path" per
// line), the path on the unified hierarchy ("0::path") or on v1's memory
// hierarchy.
func parseProcCgroup(data []byte, v2 bool) (string, error) {
	for _, line := range strings.Split(string(data), "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctls, path, ok := strings.Cut(rest, ":")
		if !ok || !strings.HasPrefix(path, "/") {
			continue
		}
		if v2 && id == "0" && ctls == "" {
			return path, nil
		}
		if !v2 && hasWord(strings.ReplaceAll(ctls, ",", " "), "memory") {
			return path, nil
		}
	}
	if v2 {
		return "", errors.New("no line for the unified hierarchy (0::path)")
	}
	return "", errors.New("no line for the memory controller")
}

// enableMemory hands the memory controller down from dir to its children
// (cgroup v2; a no-op where it already is).
func enableMemory(dir string) error {
	ctl := filepath.Join(dir, "cgroup.subtree_control")
	b, _ := os.ReadFile(ctl)
	if hasWord(string(b), "memory") {
		return nil
	}
	if err := os.WriteFile(ctl, []byte("+memory"), 0); err != nil {
		return fmt.Errorf("cgroup: enable the memory controller in %s: %w", ctl, err)
	}
	return nil
}

// New makes group name in the unipool group under the hierarchy's root,
// limited to memMax bytes (0: no limit, only accounting).
func New(name string, memMax int64) (*Group, error) {
	h, err := FindHierarchy()
	if err != nil {
		return nil, err
	}
	parent := filepath.Join(h.Mount, "unipool")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", parent, err)
	}
	if h.V2 {
		// Children get the memory controller only if every ancestor
		// hands it down.
		for _, d := range []string{h.Mount, parent} {
			if err := enableMemory(d); err != nil {
				return nil, err
			}
		}
	}
	return create(filepath.Join(parent, name), h.V2, memMax)
}

// NewNested makes group name as close as it can below the group this
// process is in, so that whatever limits and accounts that group keeps
// also covers what is moved into the new one: a child of it (cgroup v1;
// v2 where it is the root or hands the memory controller down), else a
// sibling of it (v2: a group holding processes cannot hand controllers
// down, but its parent can), else the unipool group under the root (as
// New). It returns the group and the one this process is in.
func NewNested(name string) (g *Group, own string, err error) {
	h, err := FindHierarchy()
	if err != nil {
		return nil, "", err
	}
	own, err = h.Own(0)
	if err != nil {
		return nil, "", err
	}
	if !h.V2 {
		g, err = create(filepath.Join(own, name), false, 0)
		return g, own, err
	}
	switch b, _ := os.ReadFile(filepath.Join(own, "cgroup.subtree_control")); {
	case own == h.Mount:
		if err := enableMemory(own); err != nil {
			return nil, "", err
		}
		g, err = create(filepath.Join(own, name), true, 0)
		return g, own, err
	case hasWord(string(b), "memory"):
		g, err = create(filepath.Join(own, name), true, 0)
		return g, own, err
	}
	if _, err := os.Stat(filepath.Join(own, "memory.current")); err == nil {
		// own's parent hands the memory controller down: so it does to
		// a sibling.
		g, err = create(filepath.Join(filepath.Dir(own), name), true, 0)
		return g, own, err
	}
	g, err = New(name, 0)
	return g, own, err
}

func create(dir string, v2 bool, memMax int64) (*Group, error) {
	c := &Group{Dir: dir, V2: v2}
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

// Move moves process pid (all its threads) into the group at dir.
func Move(dir string, pid int) error {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		return fmt.Errorf("cgroup %s: add process %d: %w", dir, pid, err)
	}
	return nil
}

// Add moves process pid (all its threads) into the group.
func (c *Group) Add(pid int) error { return Move(c.Dir, pid) }

// Procs lists the processes in the group (host pids).
func (c *Group) Procs() ([]int, error) {
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
func (c *Group) Memory() (uint64, error) {
	file := "memory.usage_in_bytes"
	if c.V2 {
		file = "memory.current"
	}
	return c.readUint(file)
}

func (c *Group) readUint(file string) (uint64, error) {
	path := filepath.Join(c.Dir, file)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("cgroup: %w", err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroup: %s: %w", path, err)
	}
	return v, nil
}

// Stat reads the group's memory.stat (every "name value" line).
func (c *Group) Stat() (map[string]uint64, error) {
	path := filepath.Join(c.Dir, "memory.stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	return ParseStat(b, path)
}

// Kmem is cgroup v1's kernel memory charge (memory.kmem.usage_in_bytes)
// and its TCP buffers (memory.kmem.tcp.usage_in_bytes; 0 if absent).
func (c *Group) Kmem() (kmem, tcp uint64, err error) {
	if kmem, err = c.readUint("memory.kmem.usage_in_bytes"); err != nil {
		return 0, 0, err
	}
	tcp, _ = c.readUint("memory.kmem.tcp.usage_in_bytes")
	return kmem, tcp, nil
}

// ParseStat parses a memory.stat file: one "name value" pair per line,
// the value a decimal count of bytes (or of events, for the counters).
// path names the file in errors.
func ParseStat(data []byte, path string) (map[string]uint64, error) {
	out := map[string]uint64{}
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("cgroup: %s line %d: %q is not \"name value\"", path, i+1, line)
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("cgroup: %s line %d: %s: %w", path, i+1, f[0], err)
		}
		if _, dup := out[f[0]]; dup {
			return nil, fmt.Errorf("cgroup: %s line %d: %s twice", path, i+1, f[0])
		}
		out[f[0]] = v
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cgroup: %s: empty", path)
	}
	return out, nil
}

// Remove deletes the group once its processes are gone (it waits a
// little for exiting ones: a group with members cannot be removed).
func (c *Group) Remove() error {
	var err error
	for range 100 {
		if err = os.Remove(c.Dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("cgroup %s: %w", c.Dir, err)
}
