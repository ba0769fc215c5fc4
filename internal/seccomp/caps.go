package seccomp

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DropThreadCapabilities empties the calling thread's capability sets
// (effective, permitted, inheritable, ambient) and its bounding set, so
// neither it nor any process it forks holds or can regain a capability.
// Capabilities are per thread in Linux: like InstallThread, it belongs on
// a thread locked to its goroutine for good.
func DropThreadCapabilities() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("capabilities: clear ambient: %w", err)
	}
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL && err != unix.EPERM {
			return fmt.Errorf("capabilities: drop %d from the bounding set: %w", c, err)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if _, _, e := unix.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capabilities: capset: %w", e)
	}
	return nil
}

// ConfineThread is what a monitor thread does before it serves a guest:
// drop every capability, then install the filter.
func ConfineThread(rules []Rule) error {
	if err := DropThreadCapabilities(); err != nil {
		return err
	}
	return InstallThread(rules)
}
