package process

import (
	"bytes"
	"os"
	"sync"
	"time"
)

// The guest reads the TSC natively (rdtsc is not trapped) and learns its
// rate from the boot info. Linux does not export the rate it calibrated,
// so the monitor measures it once per process against the monotonic clock.

func rdtsc() uint64

var (
	tscOnce sync.Once
	tscKHz  uint64
)

// hostTSCKHz returns the host's TSC frequency in kHz, or 0 (unknown, as the
// boot info allows) when the TSC does not tick at a constant rate.
func hostTSCKHz() uint64 {
	tscOnce.Do(func() {
		info, err := os.ReadFile("/proc/cpuinfo")
		if err != nil || !bytes.Contains(info, []byte(" constant_tsc")) {
			return
		}
		// 20 ms gives the rate to about 0.1%, the precision a kHz figure
		// can carry anyway for timing in a guest that lives milliseconds.
		t0, c0 := time.Now(), rdtsc()
		time.Sleep(20 * time.Millisecond)
		c1, t1 := rdtsc(), time.Now()
		ns := t1.Sub(t0).Nanoseconds()
		if ns <= 0 || c1 <= c0 {
			return
		}
		tscKHz = (c1 - c0) * 1_000_000 / uint64(ns)
	})
	return tscKHz
}
