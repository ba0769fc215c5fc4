package microvm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/monitor"
)

// TestUnikraftHelloworldRunsAsTwentyPooledVMsInOneProcessAndStock boots
// real Unikraft (app-helloworld, Firecracker flavour, nolibc) through the
// CLI: linked aligned and pooled, 20 VMs in one process with the library
// parts mapped copy-on-write from their blobs; once naive; and Unikraft's
// own stock image through --image. The guests write pages of their shared
// platform library (the CPU sets accessed bits in its boot page tables,
// which are in kvmplat's code): every pool blob still holds the bytes its
// name is the digest of afterwards. scripts/test.sh builds and pools it outside the
// emulated KVM host (UNIPOOL_KVM_UNIKRAFT=DIR holding DIR/pool with
// "helloworld" and DIR/stock.elf).
func TestUnikraftHelloworldRunsAsTwentyPooledVMsInOneProcessAndStock(t *testing.T) {
	dir := os.Getenv("UNIPOOL_KVM_UNIKRAFT")
	if dir == "" {
		t.Skip("UNIPOOL_KVM_UNIKRAFT not set (scripts/test.sh sets it)")
	}
	needKVM(t)
	bin := cliBinary(t)
	pool := filepath.Join(dir, "pool")
	for _, c := range []struct {
		name string
		args []string
		n    int
	}{
		{"pooled shared", []string{"--pool", pool, "-n", "20", "helloworld"}, 20},
		{"pooled naive", []string{"--pool", pool, "--load", "naive", "helloworld"}, 1},
		{"stock", []string{"--image", filepath.Join(dir, "stock.elf")}, 1},
	} {
		stdout, stderr, code := cli(t, bin, append([]string{"run", "--json", "--monitor", "kvm", "--timeout", "240s"}, c.args...)...)
		if code != 0 {
			t.Errorf("%s: status %d, stderr %q", c.name, code, stderr)
			continue
		}
		var rs []monitor.Result
		if err := json.Unmarshal([]byte(stdout), &rs); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(rs) != c.n {
			t.Fatalf("%s: %d results, want %d", c.name, len(rs), c.n)
		}
		for _, r := range rs {
			if !strings.Contains(r.Output, "Hello world!") || r.Error != "" || r.ExitCode != 0 || r.Shutdown == "" || r.PID != rs[0].PID {
				t.Errorf("%s instance %d: exit %d, error %q, shutdown %q, pid %d (first %d), output %q; want Hello world!, a clean shutdown, one process",
					c.name, r.Instance, r.ExitCode, r.Error, r.Shutdown, r.PID, rs[0].PID, r.Output)
			}
		}
	}
	blobs, err := filepath.Glob(filepath.Join(pool, "blobs", "sha256", "*"))
	if err != nil || len(blobs) == 0 {
		t.Fatalf("no blobs in %s: %v", pool, err)
	}
	for _, b := range blobs {
		data, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != filepath.Base(b) {
			t.Errorf("blob %s changed while the VMs ran", b)
		}
	}
}
