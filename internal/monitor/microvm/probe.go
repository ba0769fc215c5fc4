package microvm

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/loader"
)

// probeCode is a guest that uses SSE and the exit port: pxor %xmm0,%xmm0;
// xor %eax,%eax; mov $0x501,%dx; out %eax,(%dx); hlt.
var probeCode = []byte{0x66, 0x0f, 0xef, 0xc0, 0x31, 0xc0, 0x66, 0xba, 0x01, 0x05, 0xef, 0xf4}

var usable struct {
	once sync.Once
	err  error
}

// Usable reports whether this host's KVM runs the guest ABI: /dev/kvm
// opens and a tiny long-mode guest using SSE and port I/O exits cleanly.
// Some /dev/kvm providers (kvm_pvm, a paravirtual backend that runs
// non-PVM guests through KVM's instruction emulator) pass the first test
// and fail the second. The answer is computed once per process.
func Usable() error {
	usable.once.Do(func() { usable.err = probe() })
	return usable.err
}

func probe() error {
	h, err := openHost(false)
	if err != nil {
		return err
	}
	defer h.close()
	lay := &loader.Layout{
		Mappings: []loader.Mapping{
			{Addr: abi.AppRegionBase, Size: pageSize, Prot: loader.ProtRead | loader.ProtExec, Data: probeCode, Part: "probe code"},
			{Addr: abi.PrivateBase, Size: pageSize, Prot: loader.ProtRead | loader.ProtWrite, Part: loader.PartStack},
		},
		Entry: abi.AppRegionBase, StackTop: abi.PrivateBase + pageSize, BootInfo: abi.PrivateBase,
	}
	type result struct {
		o   outcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		m, err := h.newMachine(nil, "probe", 0, "", func(uint64) (*loader.Layout, error) { return lay, nil })
		if err != nil {
			done <- result{err: err}
			return
		}
		defer m.close()
		t := time.AfterFunc(5*time.Second, func() { m.stop("no exit within 5s") })
		defer t.Stop()
		done <- result{o: m.run()}
	}()
	r := <-done
	if r.err != nil {
		return fmt.Errorf("kvm monitor: probe VM: %w", r.err)
	}
	if r.o.err != "" || r.o.exitCode != 0 {
		hint := ""
		if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
			hint = " (this /dev/kvm is kvm_pvm, which runs guests that are not PVM-aware in KVM's instruction emulator)"
		}
		return fmt.Errorf("kvm monitor: this host's KVM cannot run the guest ABI%s: a long-mode probe guest using SSE failed: %s (exit %d)",
			hint, r.o.err, r.o.exitCode)
	}
	return nil
}
