package monitor

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// SealedFile is a memfd named name holding data, sealed: nothing, this
// process included, can write it, map it writable and shared, or change
// its size. Both monitors hand such files to their guests (the process
// monitor's stub, the KVM monitor's system page and identity tables): a
// page every instance maps that no one can change.
func SealedFile(name string, data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("%s: memfd_create: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: sealing its memfd: %w", name, err)
	}
	return f, nil
}
