package launch

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestRaiseFileLimitLiftsTheSoftLimitAtLeastToTheHardOne(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &orig) })
	low := unix.Rlimit{Cur: 256, Max: orig.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	got := RaiseFileLimit()
	var now unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if got != now.Cur || now.Cur < orig.Max {
		t.Fatalf("RaiseFileLimit = %d, limit now %+v: want the soft limit at least the hard one (%d) and reported", got, now, orig.Max)
	}
}
