package monitor

import (
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
)

// makeIdleThreads leaves at least n threads idle: n goroutines each
// locked to a thread of its own at once (idle threads reused, others
// made), then unlocked and gone (an unlocked thread is kept, idle).
func makeIdleThreads(t *testing.T, n int) {
	t.Helper()
	var locked, done sync.WaitGroup
	release := make(chan struct{})
	locked.Add(n)
	done.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			locked.Done()
			<-release
			runtime.UnlockOSThread()
		}()
	}
	locked.Wait()
	if got := LiveThreads(); got < n+1 {
		t.Fatalf("%d goroutines locked to threads at once: %d threads, want at least %d", n, got, n+1)
	}
	close(release)
	done.Wait()
}

func TestTrimIdleThreadsOnOnePEndsTheIdleThreads(t *testing.T) {
	const n = 8
	makeIdleThreads(t, n)
	before := LiveThreads()
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	ended := TrimIdleThreads()
	after := LiveThreads()
	t.Logf("threads %d -> %d (%d ended)", before, after, ended)
	// (The main thread may be among the idle ones: it is kept.)
	if ended < n-1 {
		t.Errorf("ended %d threads, want at least %d of the %d left idle", ended, n-1, n)
	}
	if after > before-n+1 {
		t.Errorf("%d threads after trimming %d, want at most %d", after, before, before-n+1)
	}
	// Nothing is in the way of more work afterwards: the runtime makes
	// threads again as it needs them.
	makeIdleThreads(t, 2)
}

func TestHoldIdleRunsAMonitorProcessOnOnePAndUndoesIt(t *testing.T) {
	t.Setenv("GOMAXPROCS", "3") // the value to come back to
	prev := runtime.GOMAXPROCS(3)
	defer runtime.GOMAXPROCS(prev)
	gc := debug.SetGCPercent(100)
	defer debug.SetGCPercent(gc)

	// Not a monitor process of its own (the daemon): only the heap.
	ownProcess.Store(false)
	restore := HoldIdle()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("the daemon's hold: GOMAXPROCS %d, want 3 (unchanged)", got)
	}
	restore()

	LeanGC()
	defer ownProcess.Store(false)
	makeIdleThreads(t, 4)
	before := LiveThreads()
	restore = HoldIdle()
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Errorf("a monitor process's hold: GOMAXPROCS %d, want 1", got)
	}
	if after := LiveThreads(); after > before-3 {
		t.Errorf("a monitor process's hold: %d threads, had %d with 4 idle, want at most %d", after, before, before-3)
	}
	restore()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("after the hold: GOMAXPROCS %d, want 3 again", got)
	}
}
