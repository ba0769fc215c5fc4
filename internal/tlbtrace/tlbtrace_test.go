package tlbtrace

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseLine(t *testing.T) {
	comm, pid, tgid, reason, ok := ParseLine("   kworker/u4:1-37   [001] d..2.  1234.5678: tlb_flush: pages:1 reason:remote shootdown (1)")
	if !ok || comm != "kworker/u4:1" || pid != 37 || tgid != -1 || reason != "remote shootdown" {
		t.Fatalf("%q %d %d %q %v", comm, pid, tgid, reason, ok)
	}
	comm, pid, tgid, reason, ok = ParseLine("     unipool (x)-10602   (  10588) [001] d..1.   258.970088: tlb_flush: pages:-1 reason:remote IPI send (4)")
	if !ok || comm != "unipool (x)" || pid != 10602 || tgid != 10588 || Kind(reason) != "remote" {
		t.Fatalf("%q %d %d %q %v", comm, pid, tgid, reason, ok)
	}
	if _, _, _, _, ok := ParseLine("# tracer: nop"); ok {
		t.Fatal("comment parsed")
	}
}

func TestCountsFlushesOfThisMachine(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("tracefs needs root")
	}
	tr, err := Start()
	if err != nil {
		t.Skipf("no tracepoint here: %v", err)
	}
	// munmap of a touched page flushes the TLB of this process.
	for i := 0; i < 200; i++ {
		b, _ := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
		b[0] = 1
		unix.Munmap(b)
	}
	c := tr.Stop()
	if c.Total == 0 {
		t.Fatal("no flush counted")
	}
	// This process's flushes are charged to it by its TGID, whichever of
	// its threads ran the munmaps.
	var own uint64
	for _, n := range c.ByTGID[os.Getpid()] {
		own += n
	}
	if own == 0 {
		t.Fatalf("no flush charged to this process (%d); by tgid: %v", os.Getpid(), c.ByTGID)
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add("a-1 [0] x: tlb_flush: pages:1 reason:x (1)")
	f.Fuzz(func(t *testing.T, s string) { ParseLine(s) })
}
