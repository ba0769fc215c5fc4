package vmmproc

import (
	"bufio"
	"io"
	"os"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/monitor"
)

func TestPollableInputReadsAPipeOnADescriptionOfItsOwn(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// As a parent's pipe reaches a child: blocking.
	if err := unix.SetNonblock(int(r.Fd()), false); err != nil {
		t.Fatal(err)
	}
	in := PollableInput(r)
	if in == r {
		t.Fatal("a pipe was not opened again")
	}
	defer in.Close()
	flags := func(f *os.File) int {
		fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fl
	}
	// (Fd puts a pollable file back in blocking mode: read the flags of
	// the raw descriptors.)
	sc, err := in.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var inFlags int
	sc.Control(func(fd uintptr) { inFlags, _ = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	if inFlags&unix.O_NONBLOCK == 0 {
		t.Error("the reopened pipe is in blocking mode")
	}
	if flags(r)&unix.O_NONBLOCK != 0 {
		t.Error("the original descriptor was made non-blocking: its open file description is shared")
	}
	go func() {
		w.Write([]byte("release\n"))
		w.Close()
	}()
	br := bufio.NewReader(in)
	if line, err := br.ReadString('\n'); line != "release\n" || err != nil {
		t.Errorf("read %q, %v", line, err)
	}
	if _, err := br.ReadString('\n'); err != io.EOF {
		t.Errorf("after the writer closed: %v, want EOF", err)
	}

	// Anything but a pipe is read as it is.
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if PollableInput(f) != f {
		t.Error("/dev/null was opened again")
	}
}

// goroutinesIn reads how many goroutines are waiting in the runtime and
// how many are outside Go (in a system call).
func goroutinesIn() (waiting, notInGo uint64) {
	s := []metrics.Sample{{Name: "/sched/goroutines/waiting:goroutines"}, {Name: "/sched/goroutines/not-in-go:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

func TestReadersOfPollableInputsHoldNoThreads(t *testing.T) {
	const n = 16
	waiting0, notInGo0 := goroutinesIn()
	threads0 := monitor.LiveThreads()
	var ws []*os.File
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		unix.SetNonblock(int(r.Fd()), false)
		in := PollableInput(r)
		r.Close()
		ws = append(ws, w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer in.Close()
			bufio.NewReader(in).ReadString('\n')
		}()
	}
	// Until every reader waits in the runtime's poller (a reader of a
	// blocking descriptor is in read(2) instead, outside Go, on a thread
	// of its own).
	for i := 0; ; i++ {
		waiting, notInGo := goroutinesIn()
		if waiting >= waiting0+n {
			break
		}
		if i == 2000 {
			t.Fatalf("%d readers: %d more goroutines waiting, %d more outside Go; want every reader waiting in the poller", n, waiting-waiting0, notInGo-notInGo0)
		}
		time.Sleep(time.Millisecond)
	}
	if threads := monitor.LiveThreads(); threads >= threads0+n/2 {
		t.Errorf("%d threads with %d readers waiting, %d before: a thread each", threads, n, threads0)
	}
	for _, w := range ws {
		w.Write([]byte("\n"))
		w.Close()
	}
	wg.Wait()
}
