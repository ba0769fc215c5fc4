package microvm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/launch"
	"github.com/unipool/unipool/internal/link"
	"github.com/unipool/unipool/internal/monitor"
)

// TestUnikraftHelloworldRunsAsTwentyPooledVMsInOneProcessAndStock boots
// real Unikraft (app-helloworld, Firecracker flavour, nolibc) through the
// CLI: linked aligned and pooled, 20 VMs in one process with the library
// parts mapped copy-on-write from their blobs; once naive; and Unikraft's
// own stock image through --image. The guests write pages of their shared
// platform library (the page walks through its boot page tables, which
// are in kvmplat's code, copy the table pages on a host that checks them
// as writes): every pool blob still holds the bytes its name is the
// digest of afterwards. scripts/test.sh builds and pools it outside the
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

// bootTablePages lists the pages of the image's boot page tables that a
// walk from link.UnikraftBootPML4 reaches, with their bytes in the image.
func bootTablePages(t *testing.T, path string) map[uint64][]byte {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	var root uint64
	for _, s := range syms {
		if s.Name == link.UnikraftBootPML4 {
			root = s.Value
		}
	}
	read := func(addr uint64) []byte {
		for _, p := range f.Progs {
			if p.Type == elf.PT_LOAD && addr >= p.Vaddr && addr+pageSize <= p.Vaddr+p.Filesz {
				b := make([]byte, pageSize)
				if _, err := p.ReadAt(b, int64(addr-p.Vaddr)); err != nil {
					t.Fatal(err)
				}
				return b
			}
		}
		return nil
	}
	pages := map[uint64][]byte{}
	var walk func(addr uint64, level int)
	walk = func(addr uint64, level int) {
		b := read(addr)
		if b == nil || pages[addr] != nil {
			return
		}
		pages[addr] = b
		for i := 0; i < 512; i++ {
			e := binary.LittleEndian.Uint64(b[8*i:])
			if e&ptePresent != 0 && level > 1 && !(level < 4 && e&pteHuge != 0) {
				walk(e&pteAddrMask, level-1)
			}
		}
	}
	if root == 0 {
		t.Fatalf("%s: no %s", path, link.UnikraftBootPML4)
	}
	walk(root, 4)
	return pages
}

// TestUnikraftBootTablePagesOfPooledVMsAreTheBlobsBytes: 20 pooled
// Unikraft helloworld VMs held in one process; in each, every page of
// Unikraft's boot page tables (kvmplat's code: PML4, PDPT, PDs, the first
// 2 MiB's page table) is either still the blob's page (shared) or a copy
// holding exactly the blob's bytes: the link preset the accessed and
// dirty bits, so the CPU's page walker writes nothing into them. (A host
// whose nested paging checks guest page-table accesses as writes, as the
// emulated host does, still copies each page a VM walks through; the
// test logs how many.) Without the preset every walked page would hold
// the bits the walker set.
func TestUnikraftBootTablePagesOfPooledVMsAreTheBlobsBytes(t *testing.T) {
	dir := os.Getenv("UNIPOOL_KVM_UNIKRAFT")
	if dir == "" {
		t.Skip("UNIPOOL_KVM_UNIKRAFT not set (scripts/test.sh sets it)")
	}
	needKVM(t)
	tables := bootTablePages(t, filepath.Join(dir, "helloworld.elf"))
	if len(tables) < 4 {
		t.Fatalf("%d boot page-table pages in the image, want the PML4, a PDPT and PDs", len(tables))
	}
	uks, err := launch.Resolve(filepath.Join(dir, "pool"), []string{"helloworld"}, "")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var vms, walked, copies, differ int
	var report []string
	copied := map[uint64]int{} // table page -> VMs holding their own copy
	opt := monitor.Options{N: n, Load: monitor.LoadShared, Hold: time.Minute, Timeout: 4 * time.Minute,
		Guests: func(g monitor.HeldGuests) {
			for _, in := range g.(heldVMs) {
				if in.m == nil || in.m.priv == nil {
					continue
				}
				vms++
				mem := in.m.priv.mem
				for addr, want := range tables {
					if addr+pageSize > uint64(len(mem)) {
						t.Errorf("table page %#x outside VM %d's memory", addr, in.m.instance)
						continue
					}
					page := mem[addr : addr+pageSize]
					e := pagemap(page)[0]
					if e&pagemapPresent == 0 {
						continue
					}
					walked++
					if e&pagemapFile != 0 {
						continue // the blob's page, shared
					}
					copies++
					copied[addr]++
					if !bytes.Equal(page, want) {
						differ++
						for i := 0; i < pageSize; i += 8 {
							if a, b := binary.LittleEndian.Uint64(page[i:]), binary.LittleEndian.Uint64(want[i:]); a != b && len(report) < 5 {
								report = append(report, fmt.Sprintf("VM %d: table %#x entry %d: %#x, the blob's %#x", in.m.instance, addr, i/8, a, b))
							}
						}
					}
				}
			}
		},
		Resident: func([]int) {}}
	rs, err := Monitor{}.Run(context.Background(), uks, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Error != "" || r.ExitCode != 0 || !strings.Contains(r.Output, "Hello world!") {
			t.Fatalf("%s/%d: exit %d, error %q, output %q", r.Unikernel, r.Instance, r.ExitCode, r.Error, r.Output)
		}
	}
	var by []string
	for addr, k := range copied {
		by = append(by, fmt.Sprintf("%#x: %d", addr, k))
	}
	sort.Strings(by)
	t.Logf("%d VMs, %d boot page-table pages in the image: %d present in the VMs, %d of them the VM's own copy (%.2f per VM; VMs with a copy, by table page: %s)",
		vms, len(tables), walked, copies, float64(copies)/float64(max(vms, 1)), strings.Join(by, ", "))
	if vms != n || walked < n {
		t.Fatalf("%d VMs read, %d table pages present; want %d VMs, each on its tables", vms, walked, n)
	}
	if differ > 0 {
		t.Errorf("%d table-page copies differ from the blob (the walker wrote them: A/D not preset?): %s", differ, strings.Join(report, "; "))
	}
}
