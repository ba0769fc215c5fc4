package launch

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/monitor"
)

// A fleet's raw blob descriptors (ResolveLater's) are closed once each,
// shared ones too, and nothing else; holding them costs Closer a few
// allocations, not a map and a list grown through the fleet.
func TestCloserClosesEachRawDescriptorOnceInAFewAllocations(t *testing.T) {
	open := func() int {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	isOpen := func(fd int) bool {
		_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		return err == nil
	}
	shared := open()
	other := open() // not the fleet's: stays open
	defer unix.Close(other)
	var fds []int
	uks := make([]monitor.Unikernel, 40)
	for i := range uks {
		own := open()
		fds = append(fds, own)
		uks[i].BlobFds = map[string]int{"sha256:shared": shared, "sha256:own": own}
	}
	closeBlobs := Closer(uks)
	for _, fd := range append(fds, shared, other) {
		if !isOpen(fd) {
			t.Fatalf("fd %d closed before the closer ran", fd)
		}
	}
	closeBlobs()
	for _, fd := range append(fds, shared) {
		if isOpen(fd) {
			t.Errorf("fd %d still open", fd)
		}
	}
	if !isOpen(other) {
		t.Errorf("fd %d, not the fleet's, was closed", other)
	}

	// 1000 unikernels, three descriptors each, one shared by all.
	big := make([]monitor.Unikernel, 1000)
	for i := range big {
		big[i].BlobFds = map[string]int{"a": 3, "b": 10 + 2*i, "c": 11 + 2*i}
	}
	if allocs := testing.AllocsPerRun(5, func() { Closer(big) }); allocs > 4 {
		t.Errorf("Closer of 1000 unikernels: %.0f allocations, want at most 4", allocs)
	}
}
