package vmmproc

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// PollableInput returns f to read from, made so that a goroutine waiting
// on it holds no OS thread. A monitor process waits on its stdin for as
// long as it runs (a held fleet for the line that ends its hold, a jail
// for the daemon's stop requests); a pipe its parent made is in blocking
// mode, and a read blocked on it keeps an OS thread in read(2) all that
// time, with the 48 KiB of stacks the Go runtime gives each thread.
//
// For a pipe it opens the pipe again through /proc/self/fd (a new open
// file description, whose O_NONBLOCK is this process's alone: the
// parent's end and anyone else's stay as they are), which os puts in
// the runtime's poller. Anything else (a terminal, a file, a socket, no
// /proc) is read as it is.
func PollableInput(f *os.File) *os.File {
	fd := int(f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return f
	}
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	// writer, forever once the parent has closed its end.
	g, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", fd), os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return f
	}
	return g
}
