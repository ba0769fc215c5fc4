package launch

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// RaiseFileLimit lifts this process's open-file limit as far as the
// kernel lets it. A monitor holds every mapped blob open from its
// verification to its last mapping (no check-then-reopen: ~6 descriptors
// per unikernel, ~6,000 for a fleet of 1000) and the KVM monitor two per
// VM, so the usual 1024 soft (Go raises it to the hard limit, often 4096)
// runs out long before the memory does. With CAP_SYS_RESOURCE the hard
// limit rises to the kernel's per-process ceiling (fs.nr_open); without
// it the soft limit rises to the hard one. It returns the soft limit now
// in force; a failure leaves the limit as it was.
func RaiseFileLimit() uint64 {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if ceiling := nrOpen(); ceiling > lim.Max {
		up := unix.Rlimit{Cur: ceiling, Max: ceiling}
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &up) == nil {
			return ceiling
		}
	}
	if lim.Cur < lim.Max {
		up := unix.Rlimit{Cur: lim.Max, Max: lim.Max}
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &up) == nil {
			return lim.Max
		}
	}
	return lim.Cur
}

// nrOpen is fs.nr_open, the most descriptors a process may have (0 if
// unknown).
func nrOpen() uint64 {
	b, err := os.ReadFile("/proc/sys/fs/nr_open")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}
