package process

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/abi"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/loader"
	"github.com/unipool/unipool/internal/monitor"
)

// Capture is a guest stopped at its ready point (abi.PortReady): its
// registers, its console output so far, and every page of its private
// memory that is not all zeros.
type Capture struct {
	MemSize uint64
	// StackBootArea is the boot area at the stack's top it was taken
	// with (desc.Snapshot.StackBootArea).
	StackBootArea uint64
	StackBootRoom uint64 // desc.Snapshot.StackBootRoom
	Regs          desc.Regs
	Console       string
	Pages         []CapturedPage // ascending by address
	err           error
	done          bool
}

// CapturedPage is one non-zero page.
type CapturedPage struct {
	Addr uint64
	Data []byte // abi.PageSize bytes
}

// Capture boots u cold, with the map's bases and a boot-info area a later
// command line fits (loader.SnapshotBootArea), stops it at its ready
// point and reads its state. The guest's private memory at that point
// holds what its boot wrote and nothing of an instance's own: it has not
// read its command line, and the canary derived from this boot's seed is
// replaced at every restore.
func (m *Monitor) Capture(ctx context.Context, u monitor.Unikernel, opt monitor.Options) (*Capture, error) {
	if u.Config == nil {
		return nil, fmt.Errorf("unikernel %q: only pooled unikernels have snapshots", u.Name)
	}
	if opt.ASLR {
		return nil, fmt.Errorf("unikernel %q: a snapshot is taken at the map's bases; --aslr does not apply", u.Name)
	}
	p, err := loader.Prepare(u, false)
	if err != nil {
		return nil, fmt.Errorf("process monitor: %w", err)
	}
	mem := opt.MemSize
	if mem == 0 {
		mem = u.Config.MemSize
	}
	if mem == 0 {
		mem = loader.DefaultMemSize
	}
	files := &runFiles{m: map[string]int{}}
	defer files.close()
	for _, l := range u.Config.Libraries {
		for _, d := range []string{l.Shared.Digest, initDigest(l)} {
			if d == "" || opened(files, u.BlobPath(d)) {
				continue
			}
			f, err := u.OpenBlobFd(d)
			if err != nil {
				return nil, fmt.Errorf("process monitor: unikernel %q: library %q: %w", u.Name, l.Name, err)
			}
			files.m[u.BlobPath(d)] = f
		}
	}
	if c := u.Config; len(c.Arena) > 0 && c.Private != nil && !opened(files, u.BlobPath(c.Private.Digest)) {
		// The data-arena pages are mapped from it (desc.Config.Arena).
		f, err := u.OpenBlobFd(c.Private.Digest)
		if err != nil {
			return nil, fmt.Errorf("process monitor: unikernel %q: private blob: %w", u.Name, err)
		}
		files.m[u.BlobPath(c.Private.Digest)] = f
	}
	capt := &Capture{MemSize: mem, StackBootArea: loader.SnapshotBootArea, StackBootRoom: loader.BootStackRoom}
	lo := loader.Options{
		MemSize: mem, Load: monitor.LoadShared, BootArea: capt.StackBootArea, BootRoom: capt.StackBootRoom,
		Monitor: abi.MonitorProcess, TSCKHz: hostTSCKHz(),
	}
	j := job{uk: u.Name, plan: func() (*loader.Layout, error) { return p.Plan(lo) }}
	o := opt
	o.N, o.Hold = 1, 0
	insts := m.runWith(ctx, []job{j}, files, o, func(in *instance) { in.capture = capt })
	res := insts[0].result()
	switch {
	case capt.err != nil:
		return nil, fmt.Errorf("unikernel %q: snapshot: %w", u.Name, capt.err)
	case capt.done:
		return capt, nil
	case res.Error != "":
		return nil, fmt.Errorf("unikernel %q: failed before its ready point: %s", u.Name, res.Error)
	default:
		return nil, fmt.Errorf("unikernel %q: exited with code %d without reaching its ready point (port %#x; an image linked before ukboot had one?)",
			u.Name, res.ExitCode, abi.PortReady)
	}
}

func initDigest(l desc.Library) string {
	if l.Init == nil {
		return ""
	}
	return l.Init.Digest
}

// takeCapture reads the stopped guest's state at the ready point: insn is
// the port write, which the registers resume after.
func (in *instance) takeCapture(regs *unix.PtraceRegs, insn trapInsn) {
	c := in.capture
	c.Regs = desc.Regs{
		RAX: regs.Rax, RBX: regs.Rbx, RCX: regs.Rcx, RDX: regs.Rdx, RSI: regs.Rsi, RDI: regs.Rdi,
		RSP: regs.Rsp, RBP: regs.Rbp, R8: regs.R8, R9: regs.R9, R10: regs.R10, R11: regs.R11,
		R12: regs.R12, R13: regs.R13, R14: regs.R14, R15: regs.R15,
		RIP: regs.Rip + uint64(insn.len), RFLAGS: regs.Eflags, FSBase: regs.Fs_base, GSBase: regs.Gs_base,
	}
	c.Console = string(in.output)
	var zero [abi.PageSize]byte
	for _, m := range in.lay.PrivateRanges() {
		buf := make([]byte, m.Size)
		n, err := readMem(in.pid, m.Addr, buf)
		if err != nil || uint64(n) != m.Size {
			c.err = fmt.Errorf("reading %s at %#x (%d of %d bytes): %v", in.lay.Describe(m.Addr), m.Addr, n, m.Size, err)
			return
		}
		// The boot area is the capture boot's own (its command line,
		// instance id, seed): not stored.
		in.lay.ScrubBootArea(m.Addr, buf)
		for off := uint64(0); off < m.Size; off += abi.PageSize {
			pg := buf[off : off+abi.PageSize]
			if [abi.PageSize]byte(pg) == zero {
				continue
			}
			c.Pages = append(c.Pages, CapturedPage{Addr: m.Addr + off, Data: append([]byte(nil), pg...)})
		}
	}
	c.done = true
}

// opened says whether files holds path.
func opened(files *runFiles, path string) bool {
	_, ok := files.m[path]
	return ok
}
