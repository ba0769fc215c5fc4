package monitor

import (
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// A monitor's OS threads are memory the host pays for as long as the
// monitor runs: the Go runtime gives each thread it makes (an M) a
// 16 KiB g0 stack and a 32 KiB signal stack from its heap, and never ends
// a thread it no longer needs; it keeps it idle for later. How many it
// made depends on timing: the process monitor's tracer threads are locked
// to their goroutines and block in wait4 and on channels, and each time
// one blocks the runtime hands its P to another thread, made if none is
// idle. A held fleet of 20 had 9-11 threads, 2-4 of them idle
// (docs/notes/monitor-memory.md, Session 15).

// LiveThreads is how many threads this process has now (num_threads of
// /proc/self/stat; 0 if it cannot be read). (Not runtime/metrics' count:
// linking that package adds ~40 KB to a monitor binary, all of whose
// pages a monitor process pays.)
func LiveThreads() int {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: num_threads is the 20th field, the
	// 18th after the command's closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 18 {
		return 0
	}
	n, err := strconv.Atoi(string(f[17]))
	if err != nil {
		return 0
	}
	return n
}

// maxTrim bounds the threads one TrimIdleThreads ends.
const maxTrim = 256

// TrimIdleThreads ends the OS threads the Go runtime keeps idle and
// returns how many it ended. Each round runs a goroutine that locks its
// thread and returns without unlocking it, which ends that thread (as
// runtime.LockOSThread documents); an idle thread runs it, and the
// rounds stop when one ends no thread (none idle was left: the thread
// that ran it was the caller's, and the caller's next one was made). The
// main thread is never ended (the runtime would only park it for good):
// a round that lands there keeps it until the others are done, then
// unlocks it. The runtime makes
// threads again when it needs them. Each ended thread gives its signal
// stack back at once, its g0 stack when the runtime next makes a thread.
// It ends idle threads only for as long as nothing wakes a goroutine
// with a P idle (the runtime then makes a spare thread for it): HoldIdle
// runs it on one P.
func TrimIdleThreads() int {
	ended := 0
	mainHeld := false
	mainRelease := make(chan struct{})
	defer close(mainRelease)
	for round := 0; round < maxTrim; round++ {
		before := LiveThreads()
		tid := make(chan int)
		go func() {
			runtime.LockOSThread()
			if unix.Gettid() == unix.Getpid() {
				// The main thread: keep it (locked, parked) until the
				// trimming is done, so that the next rounds run on
				// other threads.
				tid <- 0
				<-mainRelease
				runtime.UnlockOSThread()
				return
			}
			tid <- unix.Gettid()
			// Returning locked ends this thread.
		}()
		t := <-tid
		if t == 0 || before == 0 {
			if mainHeld {
				break // (cannot happen: the main thread is held)
			}
			mainHeld = true
			continue
		}
		waitThreadGone(t)
		if LiveThreads() >= before {
			break
		}
		ended++
	}
	return ended
}

// waitThreadGone waits (at most a second) until thread tid of this
// process has ended. (tgkill with signal 0 checks it without /proc,
// which a jail may not have.)
func waitThreadGone(tid int) {
	pid := unix.Getpid()
	for i := 0; i < 1000; i++ {
		if err := unix.Tgkill(pid, tid, 0); err == unix.ESRCH {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// HoldIdle is what a monitor does once its fleet is held, when all it has
// left to do is keep it: it returns the freed heap to the host at once
// rather than when the runtime's scavenger gets to it, and, in a process
// of its own (LeanGC), it runs on one P (GOMAXPROCS 1) and ends the
// threads the runtime keeps idle. With more than one P the runtime makes
// a spare thread again at the next goroutine it wakes, for the idle P
// (measured: the count came back within the hold); with one, the spare
// threads stay ended, and the P's caches (its mcache's spans, its stack
// cache) are flushed for the collection to free. The returned function
// undoes it when the hold ends (the GOMAXPROCS before, or the runtime's
// default and its updates if GOMAXPROCS was not set in the environment),
// so that the fleet's teardown runs as parallel as its start.
//
// A process that serves more than the held fleet (serve without jails:
// the daemon) only returns the heap.
func HoldIdle() (restore func()) {
	if !ownProcess.Load() {
		debug.FreeOSMemory()
		return func() {}
	}
	prev := runtime.GOMAXPROCS(1)
	TrimIdleThreads()
	debug.FreeOSMemory()
	return func() {
		if os.Getenv("GOMAXPROCS") == "" {
			runtime.SetDefaultGOMAXPROCS()
		} else {
			runtime.GOMAXPROCS(prev)
		}
	}
}
