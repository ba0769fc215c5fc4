package jail

import "github.com/unipool/unipool/internal/cgroup"

// Cgroup is one jail's control group, with a memory limit: cgroup v2's
// memory.max where the memory controller is on the unified hierarchy,
// else cgroup v1's memory.limit_in_bytes. Everything the jail's processes
// allocate (guest memory, page tables, the worker's own heap) is charged
// to it and counted by Memory.
type Cgroup = cgroup.Group

// NewCgroup makes the group name under unipool's parent group (under the
// hierarchy's root), limited to memMax bytes (0: no limit, only
// accounting).
func NewCgroup(name string, memMax int64) (*Cgroup, error) { return cgroup.New(name, memMax) }
