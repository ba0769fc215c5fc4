package desc

import (
	"runtime/metrics"
	"testing"
)

func TestScratchTakesMidSizedBuffersOutOfTheSizeClasses(t *testing.T) {
	for _, n := range []int64{0, 100, 8 << 10, 8<<10 + 1, 20000, 32 << 10, 32<<10 + 1, 100000} {
		b := Scratch(n)
		if int64(len(b)) != n {
			t.Errorf("Scratch(%d): length %d", n, len(b))
		}
		mid := n > 8<<10 && n <= 32<<10
		if mid && cap(b) <= 32<<10 {
			t.Errorf("Scratch(%d): capacity %d, want past 32 KiB (a large object)", n, cap(b))
		}
		if !mid && int64(cap(b)) != n {
			t.Errorf("Scratch(%d): capacity %d, want %d", n, cap(b), n)
		}
	}
	// What the runtime did with them: every one a large object, counted
	// in the last bucket of the allocation histogram (sizes past the
	// largest size class), as it counts them.
	large := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/heap/allocs-by-size:bytes"}}
		metrics.Read(s)
		h := s[0].Value.Float64Histogram()
		return h.Counts[len(h.Counts)-1]
	}
	before := large()
	const n = 1000
	var keep [][]byte
	for i := range n {
		keep = append(keep, Scratch(8<<10+1+int64(i)*24))
	}
	if got := large() - before; got < n {
		t.Errorf("%d buffers of 8-32 KiB made %d large objects, want each one", n, got)
	}
	_ = keep
}
