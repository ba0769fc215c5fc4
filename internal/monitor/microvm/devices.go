package microvm

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unipool/unipool/internal/abi"
)

// outcome ends a VM: its exit code, or why it was stopped.
type outcome struct {
	exitCode int
	err      string
	shutdown string // the guest powered off instead of reporting a code
}

// console is COM1 as the guest ABI has it: a byte sink at abi.PortCOM1.
type console struct {
	buf       []byte
	max       int // bytes kept; the rest is dropped
	truncated bool
}

func (c *console) write(b []byte) {
	room := c.max - len(c.buf)
	if len(b) > room {
		b = b[:max(room, 0)]
		c.truncated = true
	}
	c.buf = append(c.buf, b...)
}

// out handles a guest write of data (count accesses of size bytes) to
// port: the monitor's own fault port, else the devices every monitor
// shares (internal/devices).
func (m *machine) out(port uint16, size int, data []byte) *outcome {
	switch port {
	case abi.PortReady:
		if m.readyAt.IsZero() {
			m.readyAt = time.Now()
		}
		return nil
	case abi.PortDiscard:
		m.discard()
		return nil
	case portFault:
		return &outcome{exitCode: -1, err: m.faultReport()}
	}
	if end := m.ports.Out(port, size, data); end != nil {
		return &outcome{exitCode: end.Code, shutdown: end.Shutdown}
	}
	return nil
}

// discard gives back the pages of the guest's free-page report
// (abi.PortDiscard: the range in %rdi/%rsi) that its layout allows
// (loader.Layout.Discardable: heap and stack only), with madvise
// (MADV_DONTNEED) on the private slot's memory: each page then reads as
// zero, or as its snapshot page where a copy-on-write piece maps one (the
// guest ABI allows both). KVM's MMU notifier drops the guest's mappings of
// them. A report the monitor cannot read is ignored, as the ABI allows.
func (m *machine) discard() {
	if m.ignoreReports || m.layout == nil || m.priv == nil || len(m.placed) != len(m.layout.Mappings) {
		return
	}
	regs, err := m.cpu.Regs()
	if err != nil {
		return
	}
	for _, r := range m.layout.Discardable(regs.RDI, regs.RSI) {
		for _, p := range m.placed {
			a, b := max(r[0], p.addr), min(r[1], p.addr+p.size)
			if p.blob || a >= b {
				continue
			}
			off := p.gpa + (a - p.addr)
			if off+(b-a) > uint64(len(m.priv.mem)) {
				continue
			}
			unix.Madvise(m.priv.mem[off:off+(b-a)], unix.MADV_DONTNEED)
		}
	}
}

// in answers a guest read from the shared devices.
func (m *machine) in(port uint16, size int, data []byte) {
	m.ports.In(port, size, data)
}

// Exception names (Intel SDM vol. 3, table 6-1).
var vectorNames = map[uint64]string{
	0: "divide error (#DE)", 1: "debug exception (#DB)", 2: "NMI", 3: "breakpoint (#BP)",
	4: "overflow (#OF)", 5: "bound range exceeded (#BR)", 6: "invalid opcode (#UD)",
	7: "device not available (#NM)", 8: "double fault (#DF)", 10: "invalid TSS (#TS)",
	11: "segment not present (#NP)", 12: "stack-segment fault (#SS)",
	13: "general protection fault (#GP)", 14: "page fault (#PF)", 16: "x87 FPU error (#MF)",
	17: "alignment check (#AC)", 18: "machine check (#MC)", 19: "SIMD floating-point exception (#XM)",
	20: "virtualization exception (#VE)", 21: "control protection exception (#CP)",
}

// Page-fault error code bits (SDM 4.7).
const (
	pfPresent = 1 << 0
	pfWrite   = 1 << 1
	pfFetch   = 1 << 4
)

// faultReport describes the exception whose frame the stub left on IST1.
func (m *machine) faultReport() string {
	f := readFaultFrame(m.priv.mem)
	name, ok := vectorNames[f.Vector]
	if !ok {
		name = fmt.Sprintf("exception %d", f.Vector)
	}
	at := fmt.Sprintf("rip %#x (%s)", f.RIP, m.layout.Describe(f.RIP))
	if f.Vector != 14 {
		if errorCodeVectors[int(f.Vector)] {
			return fmt.Sprintf("guest fault: %s, error code %#x, at %s", name, f.ErrorCode, at)
		}
		return fmt.Sprintf("guest fault: %s at %s", name, at)
	}
	s, err := m.cpu.Sregs()
	if err != nil {
		return fmt.Sprintf("guest fault: page fault at %s (address unknown: %v)", at, err)
	}
	access := "read of"
	switch {
	case f.ErrorCode&pfFetch != 0:
		access = "instruction fetch from"
	case f.ErrorCode&pfWrite != 0:
		access = "write to"
	}
	kind := "unmapped"
	if f.ErrorCode&pfPresent != 0 {
		kind = "protected"
		if f.ErrorCode&pfWrite != 0 {
			kind = "read-only"
		}
	}
	return fmt.Sprintf("guest fault: page fault: %s %s address %#x (%s) at %s",
		access, kind, s.CR2, m.layout.Describe(s.CR2), at)
}

// readOnlyWrite describes a guest write that KVM refused because it hit a
// read-only slot: a pool blob.
func (m *machine) readOnlyWrite(gpa uint64) string {
	rip := "rip unknown"
	if r, err := m.cpu.Regs(); err == nil {
		rip = fmt.Sprintf("rip %#x (%s)", r.RIP, m.layout.Describe(r.RIP))
	}
	if gva, p, ok := m.gvaOfBlobGPA(gpa); ok {
		return fmt.Sprintf("write to read-only library %s at GVA %#x (GPA %#x, blob %s) by %s",
			p.library, gva, gpa, p.digest, rip)
	}
	if _, part, ok := m.blobs.find(gpa); ok {
		return fmt.Sprintf("write to read-only blob %s at GPA %#x by %s", part.path, gpa, rip)
	}
	return fmt.Sprintf("write to unbacked guest-physical address %#x by %s", gpa, rip)
}
