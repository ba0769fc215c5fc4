package vmmproc

import (
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/monitor"
	"github.com/unipool/unipool/internal/pool"
)

// ReexecAfterResolve, set by unipool-vmm's main, makes Run, once it has
// resolved a process monitor's pooled unikernels (every description and
// blob checked, the blobs held open: launch.ResolveLaterRefs), exec this
// program again on the same command line with what it resolved (the
// descriptions' refs and the blobs' descriptors, in a memfd): the same
// pid, stdin, stdout and cgroup, and the fleet starts on a fresh Go
// runtime.
//
// Why: resolving a fleet (a manifest and a description parsed and checked
// per unikernel, every blob hashed) runs through many of the runtime's size
// classes, and the runtime keeps, for good, the span-set metadata of every
// set it ever used (a 2 KiB spine each) and the blocks of the most sets it
// had in use at once (4.6 KiB each); the resolve's long-lived objects are
// interleaved in the heap with the run's. Measured on a held shared-snapshot
// monitor of 1000 (docs/notes/monitor-memory.md, Session 17 (snapmon17)):
// started afresh, the run alone makes ~30 fewer span sets and ~13 fewer
// blocks than the resolve and the run together (runtime metadata -143 KiB),
// its heap -80 KiB, Pss_Anon ~200 KiB less; halving the start's garbage
// instead had not lowered it.
var ReexecAfterResolve bool

// resolvedEnv names the descriptor of the resolved fleet (JSON) an exec
// after the resolve hands the new program.
const resolvedEnv = "UNIPOOL_VMM_RESOLVED_FD"

// resolvedFleet is what Run resolved, handed across the exec.
type resolvedFleet struct {
	Pool     string          `json:"pool"`
	Names    []string        `json:"names"`
	Snapshot bool            `json:"snapshot,omitempty"`
	Refs     []pool.RefState `json:"refs"`
	Fds      map[string]int  `json:"fds"`
}

// execResolved execs this program (/proc/self/exe) on its own command
// line with r (resolvedEnv): the blob descriptors stay open across the
// exec. It returns only if the exec failed, the descriptors as they were.
func execResolved(r resolvedFleet) error {
	setCloexec(r.Fds, false)
	err := execWithJSON("/proc/self/exe", "unipool-vmm-resolved", resolvedEnv, r)
	setCloexec(r.Fds, true)
	return err
}

// takeResolved is the resolved fleet an exec handed this program, if any
// (ok): read from its descriptor, which it closes, resolvedEnv unset, the
// blob descriptors close-on-exec again.
func takeResolved() (r resolvedFleet, ok bool, err error) {
	ok, err = takeJSON(resolvedEnv, "resolved fleet", &r)
	if ok && err == nil {
		setCloexec(r.Fds, true)
	}
	return r, ok, err
}

func setCloexec(fds map[string]int, on bool) {
	flag := 0
	if on {
		flag = unix.FD_CLOEXEC
	}
	for _, fd := range fds {
		unix.FcntlInt(uintptr(fd), unix.F_SETFD, flag)
	}
}

// resolveNamed resolves names for spec's process monitor (launch.ResolveLater),
// or takes what an exec after the resolve handed this program; with
// ReexecAfterResolve it execs after resolving (continuing here if the
// exec fails).
func resolveNamed(spec Spec, names []string) ([]monitor.Unikernel, error) {
	r, ok, err := takeResolved()
	if ok {
		if err != nil {
			return nil, err
		}
		if r.Pool != spec.Pool || r.Snapshot != spec.Mode.Snapshot || !slices.Equal(r.Names, names) || len(r.Refs) != len(names) {
			setCloexec(r.Fds, true)
			return nil, fmt.Errorf("the resolved fleet handed over (%s) is not the spec's", resolvedEnv)
		}
		refs := make([]pool.Ref, len(r.Refs))
		for i, s := range r.Refs {
			refs[i] = s.Ref()
		}
		return launch.Later(spec.Pool, names, refs, r.Fds, "")
	}
	if !ReexecAfterResolve {
		return launch.ResolveLater(spec.Pool, names, "", spec.Mode.Snapshot)
	}
	uks, refs, err := launch.ResolveLaterRefs(spec.Pool, names, "", spec.Mode.Snapshot)
	if err != nil {
		return nil, err
	}
	state := resolvedFleet{Pool: spec.Pool, Names: names, Snapshot: spec.Mode.Snapshot, Fds: map[string]int{}}
	for i, ref := range refs {
		state.Refs = append(state.Refs, ref.State())
		if uks[i].BlobFds != nil {
			state.Fds = uks[i].BlobFds
		}
	}
	if err := execResolved(state); err != nil {
		fmt.Fprintf(os.Stderr, "%s: not started afresh after resolving its fleet (exec: %v); going on\n", Binary, err)
	}
	return uks, nil
}
