package process

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/measure"
	"github.com/unipool/unipool/internal/monitor"
)

// Pooled guests: a description with a library "libc" and an app, each
// shared part a blob file, run through Monitor.Run and the loader.

const libcAddr = abi.MapBase

// libcSrc is libc's one function at its region start: print 'L', return.
const libcSrc = `
	mov $0x3f8, %dx
	mov $'L', %al
	out %al, %dx
	ret
`

// callLibc calls libc's function at its fixed address.
const callLibc = `
	mov $0x40000000, %rax
	call *%rax
`

// pooled builds a unikernel from app (entry at its first byte) and libc
// sources, writing their blobs into dir.
func pooled(t *testing.T, dir, name, appSrc string) monitor.Unikernel {
	t.Helper()
	blobs := map[string]string{}
	blob := func(code []byte) string {
		page := make([]byte, abi.PageSize)
		copy(page, code)
		sum := sha256.Sum256(page)
		d := "sha256:" + hex.EncodeToString(sum[:])
		path := filepath.Join(dir, hex.EncodeToString(sum[:]))
		if err := os.WriteFile(path, page, 0o444); err != nil && !os.IsPermission(err) {
			t.Fatal(err)
		}
		blobs[d] = path
		return d
	}
	lib := func(name string, start uint64, app bool, code []byte) desc.Library {
		return desc.Library{
			Name: name, App: app,
			Region: desc.Region{Start: start, SharedSize: abi.PageSize, PrivateSize: abi.PageSize},
			Shared: desc.Shared{Size: abi.PageSize, Digest: blob(code),
				Segments: []desc.Segment{{Off: 0, Size: abi.PageSize, Prot: desc.ProtRX}}},
			Private: desc.Part{MemSize: abi.PageSize},
		}
	}
	cfg := &desc.Config{
		SchemaVersion: desc.SchemaVersion, Name: name, Layout: "aligned", MemSize: 2 << 20,
		Entry: desc.Addr{Lib: 1, Off: 0},
		Libraries: []desc.Library{
			lib("libc", libcAddr, false, assemble(t, libcSrc)),
			lib(name, abi.AppRegionBase, true, assemble(t, appSrc)),
		},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return monitor.Unikernel{Name: name, Config: cfg, BlobPath: func(d string) string { return blobs[d] }}
}

// guestTimeout stops a test's guest that runs on (none computes for more
// than a moment), so a hang fails its test instead of the suite.
const guestTimeout = 60 * time.Second

func runPooled(t *testing.T, uks []monitor.Unikernel, opt monitor.Options) []monitor.Result {
	t.Helper()
	if opt.Timeout == 0 {
		opt.Timeout = guestTimeout
	}
	rs, err := (&Monitor{}).Run(context.Background(), uks, opt)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestWriteToSharedLibraryCodeStopsOnlyThatInstance(t *testing.T) {
	dir := t.TempDir()
	bad := pooled(t, dir, "bad", callLibc+"movb $0x90, 0x40000010\n"+exitSeven)
	good := pooled(t, dir, "good", callLibc+exitSeven)
	rs := runPooled(t, []monitor.Unikernel{bad, good}, monitor.Options{N: 3})
	for _, r := range rs {
		switch r.Unikernel {
		case "bad":
			want := "write to read-only library code at 0x40000010 (library libc, shared part)"
			if !strings.Contains(r.Error, want) || r.Output != "L" || r.ExitCode != -1 {
				t.Errorf("bad %d: exit %d output %q error %q, want %q", r.Instance, r.ExitCode, r.Output, r.Error, want)
			}
		case "good":
			if r.Error != "" || r.Output != "L" || r.ExitCode != 7 {
				t.Errorf("good %d: exit %d output %q error %q", r.Instance, r.ExitCode, r.Output, r.Error)
			}
		}
	}
}

// mappingStat sums one smaps field over the mappings of pid that start at addr.
func mappingStat(t *testing.T, pid int, addr uint64, field string) (uint64, string) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	head := fmt.Sprintf("%x-", addr)
	in, line := false, ""
	var kb uint64
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") { // a mapping's header line: "lo-hi perms ..."
			in = strings.HasPrefix(l, head)
			if in {
				line = l
			}
			continue
		}
		if in && f[0] == field+":" && len(f) > 1 {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("smaps of %d: %q: %v", pid, l, err)
			}
			kb += v
		}
	}
	return kb, line
}

func TestSharedLoadMapsOnePoolFileIntoEveryInstanceAndNaiveCopies(t *testing.T) {
	dir := t.TempDir()
	uk := pooled(t, dir, "app", callLibc+exitSeven)
	libcBlob := uk.BlobPath(uk.Config.Libraries[0].Shared.Digest)
	for _, mode := range []string{monitor.LoadShared, monitor.LoadNaive} {
		var pssKB uint64
		var lines []string
		measured := false
		rs := runPooled(t, []monitor.Unikernel{uk}, monitor.Options{N: 2, Load: mode, Hold: time.Minute,
			Resident: func(pids []int) {
				measured = true
				for _, pid := range pids {
					kb, line := mappingStat(t, pid, libcAddr, "Pss")
					pssKB += kb
					lines = append(lines, line)
				}
			}})
		if !measured || len(lines) != 2 {
			t.Fatalf("%s: Resident saw %d instances, want 2", mode, len(lines))
		}
		for i, r := range rs {
			if r.Error != "" || r.ExitCode != 7 || r.Output != "L" {
				t.Fatalf("%s %d: exit %d output %q error %q", mode, i, r.ExitCode, r.Output, r.Error)
			}
		}
		for _, l := range lines {
			fromPool := strings.HasSuffix(l, libcBlob)
			if fromPool != (mode == monitor.LoadShared) {
				t.Errorf("%s: libc mapping %q; want the pool file %s only when shared", mode, l, libcBlob)
			}
			if mode == monitor.LoadShared && !strings.Contains(l, " r-xs ") {
				t.Errorf("shared: libc mapping %q is not read-only shared", l)
			}
		}
		// One 4 KiB page: split between the two instances when shared,
		// one copy each when naive.
		want := map[string]uint64{monitor.LoadShared: 4, monitor.LoadNaive: 8}[mode]
		t.Logf("%s: libc PSS over both instances %d KiB; mappings %q", mode, pssKB, lines)
		if pssKB != want {
			t.Errorf("%s: libc PSS over both instances %d KiB, want %d", mode, pssKB, want)
		}
	}
}

func TestHoldKeepsFinishedInstancesResident(t *testing.T) {
	// Touch 1 MiB of heap (BootInfo.HeapStart is at offset 32), then exit.
	uk := pooled(t, t.TempDir(), "toucher", `
	mov 32(%rdi), %rbx
	mov $256, %ecx
1:	movb $1, (%rbx)
	add $4096, %rbx
	loop 1b
`+exitSeven)
	var pss uint64
	var pids []int
	start := time.Now()
	rs := runPooled(t, []monitor.Unikernel{uk}, monitor.Options{N: 1, Hold: time.Minute, Resident: func(p []int) {
		pids = p
		r, err := measure.ReadRollup(p[0])
		if err != nil {
			t.Error(err)
		}
		pss = r.PSS
	}})
	if rs[0].Error != "" || rs[0].ExitCode != 7 {
		t.Fatalf("exit %d error %q", rs[0].ExitCode, rs[0].Error)
	}
	if pss < 1<<20 {
		t.Errorf("held instance PSS %d bytes, want at least the 1 MiB it touched", pss)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("hold did not end when Resident returned")
	}
	if err := syscall.Kill(pids[0], 0); err != syscall.ESRCH {
		t.Errorf("instance process %d still exists after Run (kill: %v)", pids[0], err)
	}
}

func TestKSMMarksPrivateMemoryMergeable(t *testing.T) {
	uk := pooled(t, t.TempDir(), "app", exitSeven)
	for _, ksm := range []bool{false, true} {
		line := heldVmFlags(t, uk, monitor.LoadNaive, ksm, libcAddr)
		if got := strings.Contains(line, " mg"); got != ksm {
			t.Errorf("ksm=%v: naive libc copy VmFlags %q", ksm, line)
		}
	}
}

func TestASLRGivesEachInstanceItsOwnBasesAndSeedRepeatsThem(t *testing.T) {
	uk := pooled(t, t.TempDir(), "app", exitSeven)
	run := func() []monitor.Result {
		return runPooled(t, []monitor.Unikernel{uk}, monitor.Options{N: 3, ASLR: true, Seed: 42})
	}
	a, b := run(), run()
	seen := map[uint64]bool{}
	for i, r := range a {
		if r.Error != "" || r.ExitCode != 7 {
			t.Fatalf("instance %d: exit %d error %q", i, r.ExitCode, r.Error)
		}
		base := r.Bases["libc"]
		if base < abi.ASLRBase || seen[base] {
			t.Errorf("instance %d: libc at %#x: want a fresh base in the ASLR window", i, base)
		}
		seen[base] = true
		if b[i].Bases["libc"] != base {
			t.Errorf("instance %d: seed 42 gave libc %#x then %#x", i, base, b[i].Bases["libc"])
		}
	}
}

func TestBootInfoCarriesInstanceIDSeedAndMonitor(t *testing.T) {
	// Exit code = instance id; a zero seed or another monitor exits 99.
	uk := pooled(t, t.TempDir(), "app", `
	cmpq $0, 72(%rdi)       # Seed
	je 1f
	cmpq $2, 88(%rdi)       # Monitor: abi.MonitorProcess
	jne 1f
	mov 64(%rdi), %eax      # InstanceID
	mov $0x501, %dx
	out %eax, %dx
1:	mov $99, %eax
	mov $0x501, %dx
	out %eax, %dx
`)
	rs := runPooled(t, []monitor.Unikernel{uk}, monitor.Options{N: 3})
	for i, r := range rs {
		if r.Error != "" || r.ExitCode != i {
			t.Errorf("instance %d: exit %d error %q", i, r.ExitCode, r.Error)
		}
	}
}

// withInitBlob is a pooled unikernel whose libc has initialised data
// in an init blob (mapped copy-on-write), and that blob's path.
func withInitBlob(t *testing.T) (monitor.Unikernel, string) {
	dir := t.TempDir()
	uk := pooled(t, dir, "app", callLibc+exitSeven)
	init := make([]byte, abi.PageSize)
	copy(init, "initialised data")
	initPath := filepath.Join(dir, "init")
	if err := os.WriteFile(initPath, init, 0o444); err != nil && !os.IsPermission(err) {
		t.Fatal(err)
	}
	libc := &uk.Config.Libraries[0]
	libc.Private.FileSize = 16
	libc.Init = &desc.BlobRef{Digest: "sha256:init", Size: abi.PageSize}
	// The image-level private blob holds the same bytes (the loader reads
	// an instance's copy from it).
	privPath := filepath.Join(dir, "private")
	os.WriteFile(privPath, init, 0o444)
	uk.Config.Private = &desc.BlobRef{Digest: "sha256:private", Size: abi.PageSize}
	blobs := uk.BlobPath
	uk.BlobPath = func(d string) string {
		switch d {
		case "sha256:init":
			return initPath
		case "sha256:private":
			return privPath
		}
		return blobs(d)
	}
	return uk, initPath
}

// Under KSM the copy-on-write mappings are mergeable too: the pages an
// instance writes there (the data arena's, a library's data) are
// anonymous copies KSM can merge.
func TestKSMMarksCopyOnWriteMappingsMergeable(t *testing.T) {
	uk, _ := withInitBlob(t)
	dataAddr := uint64(libcAddr + abi.PageSize)
	for _, ksm := range []bool{false, true} {
		line := heldVmFlags(t, uk, monitor.LoadShared, ksm, dataAddr)
		if got := strings.Contains(line, " mg"); got != ksm {
			t.Errorf("ksm=%v: copy-on-write libc data VmFlags %q", ksm, line)
		}
	}
}

// TestInitBlobDataStaysSharedUntilWritten: a library's initialised data
// comes from its init blob copy-on-write, so two instances that never
// write it hold one physical page between them.
func TestInitBlobDataStaysSharedUntilWritten(t *testing.T) {
	uk, initPath := withInitBlob(t)
	dataAddr := uint64(libcAddr + abi.PageSize)
	var pssKB uint64
	var lines []string
	rs := runPooled(t, []monitor.Unikernel{uk}, monitor.Options{N: 2, Load: monitor.LoadShared, Hold: time.Minute,
		Resident: func(pids []int) {
			for _, pid := range pids {
				kb, line := mappingStat(t, pid, dataAddr, "Pss")
				pssKB += kb
				lines = append(lines, line)
			}
		}})
	for i, r := range rs {
		if r.Error != "" || r.ExitCode != 7 {
			t.Fatalf("instance %d: exit %d error %q", i, r.ExitCode, r.Error)
		}
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, initPath) || !strings.Contains(l, " rw-p ") {
			t.Errorf("libc data mapping %q: want the init blob %s mapped private (copy-on-write)", l, initPath)
		}
	}
	if pssKB > 4 {
		t.Errorf("libc data PSS over both instances %d KiB, want at most one page", pssKB)
	}
}

// An instance of an image with its app at abi.AppRegionBase touches only
// the map's GiB: its app, boot info, stack and first heap pages share one
// page-table page, so its page tables are a PUD, one PMD and a PTE page
// for them and one for libc: 16 KiB (with the app and the per-instance
// memory in GiB 0, at their legacy addresses, 24).
func TestAnInstanceTouchesOneGiBAndItsAppSharesAPageTablePageWithItsStack(t *testing.T) {
	uk := pooled(t, t.TempDir(), "app", callLibc+exitSeven)
	maps, status, res := heldMapsAndStatus(t, uk)
	ranges, err := parseMaps([]byte(maps), "maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		if r[0] < abi.MapBase || r[1] > abi.DataArenaLimit {
			t.Errorf("a mapping outside the map's GiB: %#x-%#x\n%s", r[0], r[1], maps)
		}
	}
	const twoMiB = 2 << 20
	if a, s := res.Areas[loader.PartStack], res.Areas[loader.PartBootInfo]; a/twoMiB != abi.AppRegionBase/twoMiB || s/twoMiB != abi.AppRegionBase/twoMiB {
		t.Errorf("boot info at %#x, stack at %#x: not in the app's 2 MiB at %#x", s, a, uint64(abi.AppRegionBase))
	}
	var pte int
	for _, line := range strings.Split(status, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmPTE:" {
			pte, _ = strconv.Atoi(f[1])
		}
	}
	if pte == 0 || pte > 16 {
		t.Errorf("VmPTE %d kB, want at most 16 (a PUD, a PMD, two PTE pages)\n%s", pte, maps)
	}
}

// heldMapsAndStatus runs one instance of uk (which must print "L" and exit
// 7) and returns its /proc maps and status, read while it is held, and its
// result.
func heldMapsAndStatus(t *testing.T, uk monitor.Unikernel) (maps, status string, res monitor.Result) {
	t.Helper()
	rs := runPooled(t, []monitor.Unikernel{uk}, monitor.Options{N: 1, Hold: time.Minute, Resident: func(p []int) {
		m, err1 := os.ReadFile(fmt.Sprintf("/proc/%d/maps", p[0]))
		s, err2 := os.ReadFile(fmt.Sprintf("/proc/%d/status", p[0]))
		if err1 != nil || err2 != nil {
			t.Error(err1, err2)
		}
		maps, status = string(m), string(s)
	}})
	if rs[0].Error != "" || rs[0].ExitCode != 7 || rs[0].Output != "L" {
		t.Fatalf("exit %d output %q error %q", rs[0].ExitCode, rs[0].Output, rs[0].Error)
	}
	return maps, status, rs[0]
}

// heldVmFlags runs one instance of uk (which must exit 7) loaded as load,
// with or without KSM, and returns the VmFlags of its mapping at addr,
// read while it is held.
func heldVmFlags(t *testing.T, uk monitor.Unikernel, load string, ksm bool, addr uint64) string {
	t.Helper()
	var line string
	rs := runPooled(t, []monitor.Unikernel{uk}, monitor.Options{Load: load, KSM: ksm, Hold: time.Minute,
		Resident: func(pids []int) {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pids[0]))
			if err != nil {
				t.Error(err)
				return
			}
			_, rest, _ := strings.Cut(string(data), fmt.Sprintf("%x-", addr))
			_, rest, _ = strings.Cut(rest, "VmFlags:")
			line, _, _ = strings.Cut(rest, "\n")
		}})
	if rs[0].Error != "" || rs[0].ExitCode != 7 {
		t.Fatalf("ksm=%v: exit %d error %q", ksm, rs[0].ExitCode, rs[0].Error)
	}
	return line
}
