package tlbtrace

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseLine(t *testing.T) {
	comm, pid, reason, ok := ParseLine("   kworker/u4:1-37   [001] d..2.  1234.5678: tlb_flush: pages:1 reason:remote shootdown (1)")
	if !ok || comm != "kworker/u4:1" || pid != 37 || reason != "remote shootdown" {
		t.Fatalf("%q %d %q %v", comm, pid, reason, ok)
	}
	if _, _, _, ok := ParseLine("# tracer: nop"); ok {
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
}

func FuzzParseLine(f *testing.F) {
	f.Add("a-1 [0] x: tlb_flush: pages:1 reason:x (1)")
	f.Fuzz(func(t *testing.T, s string) { ParseLine(s) })
}
