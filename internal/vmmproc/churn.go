package vmmproc

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/unipool/unipool/internal/monitor"
)

// ChurnEvents are what ChurnArrivals tells of each arrival (id: its
// place in the arrivals): Resident once its instance runs and is held
// (the processes that hold it; for a monitor that holds its guests in its
// own memory, that process and the guests), Ended when its hold ends
// (before its memory goes; possibly twice), Finished with its results.
// They may run concurrently.
type ChurnEvents struct {
	Resident func(id int, pids []int, guests monitor.HeldGuests)
	Ended    func(id int)
	Finished func(id int, rs []monitor.Result, err error)
}

// ChurnArrivals runs the arrivals of c on mon until the last instance has
// ended: unikernel i%len(uks) arrives i-th, at Poisson times, and stays
// resident for the lifetime after its request.
func ChurnArrivals(ctx context.Context, mon monitor.Monitor, uks []monitor.Unikernel, m Mode, c Churn, timeout time.Duration, ignoreReports bool, ev ChurnEvents) {
	var wg sync.WaitGroup
	arrive := func(id int, u monitor.Unikernel) {
		defer wg.Done()
		var guests monitor.HeldGuests
		opt := monitor.Options{N: 1, Load: m.Load, KSM: m.KSM, ASLR: m.ASLR, ASLRPerLibrary: m.ASLRPerLibrary, Snapshot: m.Snapshot, Timeout: timeout,
			IgnoreFreePageReports: ignoreReports,
			// The callback ends the hold after the lifetime; Hold is only
			// an upper bound. Were it the lifetime too, the monitor's
			// timer could end the hold (and Run return) before the
			// callback ran, and the callback would then mark an ended
			// instance live for good.
			Hold:   time.Duration(c.Lifetime*float64(time.Second)) + time.Minute,
			Guests: func(g monitor.HeldGuests) { guests = g },
			Resident: func(p []int) {
				ev.Resident(id, p, guests)
				select { // warm for the lifetime, then the hold ends
				case <-time.After(time.Duration(c.Lifetime * float64(time.Second))):
				case <-ctx.Done():
				}
				// Ended before the monitor unmaps it: a measurer must
				// not read its guest's ranges once their addresses may
				// hold something else.
				ev.Ended(id)
			}}
		rs, err := mon.Run(ctx, []monitor.Unikernel{u}, opt)
		ev.Ended(id) // (again, if it was never resident)
		ev.Finished(id, rs, err)
	}
	start := time.Now()
	rng := rand.New(rand.NewPCG(1, uint64(len(uks))))
	next := time.Duration(0)
	for i := 0; ; i++ {
		next += time.Duration(rng.ExpFloat64() / c.Rate * float64(time.Second))
		if next.Seconds() > c.Duration || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Until(start.Add(next)))
		wg.Add(1)
		go arrive(i, uks[i%len(uks)])
	}
	wg.Wait()
}
