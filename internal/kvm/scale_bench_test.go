package kvm

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Why does building a VM slow down with the VMs already in the process?
// These benchmarks separate the two things that grow with them: the VMs
// (KVM's per-VM state, its lists) and the process's mappings (one or two
// per VM). Each is a sweep, not a b.N loop: it logs, for every step of
// the count, the mean time of KVM_CREATE_VM and of the rest of a minimal
// build, beside the process's VMAs, and reports the growth as metrics.
//
//	go test -c -o /tmp/kvm.test ./internal/kvm
//	scripts/kvmhost --timeout 1200 -- /tmp/kvm.test -test.run '^$' -test.bench 'CreateVM' -test.benchtime 1x -test.v
//
// UNIPOOL_SWEEP_MAX (default 2000) is the largest count of each sweep,
// UNIPOOL_SWEEP_STEP (default MAX/8) its step.

func sweepSizes(b *testing.B) (top, step int) {
	top = 2000
	if s := os.Getenv("UNIPOOL_SWEEP_MAX"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("UNIPOOL_SWEEP_MAX=%q: want a positive count", s)
		}
		top = v
	}
	step = top / 8
	if s := os.Getenv("UNIPOOL_SWEEP_STEP"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("UNIPOOL_SWEEP_STEP=%q: want a positive count", s)
		}
		step = v
	}
	return top, max(step, 1)
}

func openForBench(b *testing.B, vms int) *System {
	b.Helper()
	sys, err := Open()
	if err != nil {
		b.Skipf("no usable KVM: %v", err)
	}
	b.Cleanup(func() { sys.Close() })
	need := uint64(2*vms + 1024)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur < need {
		lim.Cur, lim.Max = need, max(lim.Max, need)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			b.Fatalf("RLIMIT_NOFILE %d: %v", need, err)
		}
	}
	return sys
}

// vmaCount is the number of this process's mappings.
func vmaCount(b *testing.B) int {
	m, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		b.Fatal(err)
	}
	return bytes.Count(m, []byte("\n"))
}

// benchVM is what a minimal build leaves in the process: the VM, its
// vCPU and kvm_run mapping, and 64 KiB of touched anonymous guest memory
// in one slot (unipool's VM has the same kinds of mappings).
type benchVM struct {
	vm  *VM
	cpu *VCPU
	mem []byte
}

func (v *benchVM) close() {
	if v.cpu != nil {
		v.cpu.Close()
	}
	if v.mem != nil {
		unix.Munmap(v.mem)
	}
	v.vm.Close()
}

// buildTimes are one minimal build's phases.
type buildTimes struct{ create, vcpu, mem time.Duration }

func buildBenchVM(b *testing.B, sys *System, runSize int) (*benchVM, buildTimes) {
	var t buildTimes
	t0 := time.Now()
	vm, err := sys.CreateVM()
	if err != nil {
		b.Fatalf("after %v: %v", time.Since(t0), err)
	}
	t.create = time.Since(t0)
	v := &benchVM{vm: vm}
	t1 := time.Now()
	if v.cpu, err = vm.CreateVCPU(0); err != nil {
		b.Fatal(err)
	}
	if err := v.cpu.MapRun(runSize); err != nil {
		b.Fatal(err)
	}
	t.vcpu = time.Since(t1)
	t2 := time.Now()
	if v.mem, err = unix.Mmap(-1, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < len(v.mem); i += 4096 {
		v.mem[i] = 1
	}
	r := UserspaceMemoryRegion{MemorySize: uint64(len(v.mem)), UserspaceAddr: uint64(uintptrOf(v.mem))}
	if err := vm.SetUserMemoryRegion(r); err != nil {
		b.Fatal(err)
	}
	t.mem = time.Since(t2)
	return v, t
}

func uintptrOf(b []byte) uintptr { return ptr(&b[0]) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median of ds (ds is sorted in place).
func median(ds []time.Duration) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// unmapTime is the median time of 20 munmaps of a touched anonymous
// page: each is an MMU-notifier invalidation, which the kernel hands to
// every notifier registered on the process (every KVM VM in it).
func unmapTime(b *testing.B) time.Duration {
	d := make([]time.Duration, 20)
	for i := range d {
		p, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			b.Fatal(err)
		}
		p[0] = 1
		t0 := time.Now()
		if err := unix.Munmap(p); err != nil {
			b.Fatal(err)
		}
		d[i] = time.Since(t0)
	}
	return median(d)
}

// BenchmarkCreateVMWithVMsHeld builds VMs one after the other in this
// process, up to UNIPOOL_SWEEP_MAX, keeping every one, and logs per step
// the median KVM_CREATE_VM, vCPU (create + mmap kvm_run) and memory
// (mmap, touch, slot) times of that step's builds, the process's VMAs
// after it, and the median munmap of a touched page then (an MMU-notifier
// invalidation, which walks every VM's notifier).
func BenchmarkCreateVMWithVMsHeld(b *testing.B) {
	maxN, step := sweepSizes(b)
	sys := openForBench(b, maxN)
	runSize, err := sys.VCPUMmapSize()
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		var held []*benchVM
		var first, last float64
		b.Logf("%8s %8s %12s %12s %12s %12s %10s", "vms", "vmas", "create ms", "vcpu ms", "mem ms", "munmap ms", "step s")
		for len(held) < maxN {
			n := min(step, maxN-len(held))
			c, v, m := make([]time.Duration, n), make([]time.Duration, n), make([]time.Duration, n)
			t0 := time.Now()
			for i := range n {
				vm, t := buildBenchVM(b, sys, runSize)
				held = append(held, vm)
				c[i], v[i], m[i] = t.create, t.vcpu, t.mem
			}
			el := time.Since(t0)
			mc := ms(median(c))
			if first == 0 {
				first = mc
			}
			last = mc
			b.Logf("%8d %8d %12.3f %12.3f %12.3f %12.3f %10.1f", len(held), vmaCount(b), mc, ms(median(v)), ms(median(m)), ms(unmapTime(b)), el.Seconds())
		}
		b.ReportMetric(first, "create-ms-first-step")
		b.ReportMetric(last, "create-ms-last-step")
		b.ReportMetric(ms(unmapTime(b)), "munmap-ms-last-step")
		b.StopTimer()
		for _, v := range held {
			v.close()
		}
		b.StartTimer()
	}
}

// BenchmarkCreateVMWithMappingsHeld holds no VM: it grows the process's
// mappings (touched anonymous pages, every other one read-only so none
// merge, as a VM's guest memory and kvm_run mapping do not), up to
// 2×UNIPOOL_SWEEP_MAX, and at each step times 20 KVM_CREATE_VM (each VM
// closed after its timing).
func BenchmarkCreateVMWithMappingsHeld(b *testing.B) {
	maxN, step := sweepSizes(b)
	maxN, step = 2*maxN, 2*step
	sys := openForBench(b, 64)
	for range b.N {
		var regions [][]byte
		added := 0
		var first, last float64
		b.Logf("%8s %8s %12s", "added", "vmas", "create ms")
		for {
			c := make([]time.Duration, 20)
			for i := range c {
				t0 := time.Now()
				vm, err := sys.CreateVM()
				if err != nil {
					b.Fatal(err)
				}
				c[i] = time.Since(t0)
				b.StopTimer()
				vm.Close()
				b.StartTimer()
			}
			mc := ms(median(c))
			if first == 0 {
				first = mc
			}
			last = mc
			b.Logf("%8d %8d %12.3f", added, vmaCount(b), mc)
			if added >= maxN {
				break
			}
			// step more mappings: 2×step pages, every other one read-only.
			r, err := unix.Mmap(-1, 0, 2*step*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < len(r); i += 4096 {
				r[i] = 1
			}
			for i := 0; i < 2*step; i += 2 {
				if err := unix.Mprotect(r[i*4096:(i+1)*4096], unix.PROT_READ); err != nil {
					b.Fatal(fmt.Errorf("mprotect: %w", err))
				}
			}
			regions = append(regions, r)
			added += 2 * step
		}
		b.ReportMetric(first, "create-ms-first-step")
		b.ReportMetric(last, "create-ms-last-step")
		for _, r := range regions {
			unix.Munmap(r)
		}
	}
}
