// Package devices is the port I/O a guest sees, the same under every
// monitor: the 16550 UART on COM1 (the console, with its divisor latch),
// the CMOS real-time clock, and the ways a guest ends: unipool's exit
// port, the ACPI power-off port of QEMU's PIIX4 (0x604) and the i8042
// keyboard controller's reset (outb(0x64, 0xfe), how Unikraft's
// Firecracker build powers off). Other ports read as a floating bus and
// ignore writes. A monitor decodes the instruction; Ports only says what
// the access means.
package devices

import (
	"encoding/binary"
	"time"

	"github.com/unipool/unipool/internal/abi"
)

// Ports of the devices.
const (
	PortCOM1      = abi.PortCOM1 // 0x3f8..0x3ff
	PortExit      = abi.PortExit
	PortRTCIndex  = 0x70
	PortRTCData   = 0x71
	PortI8042     = 0x64
	PortACPIPM1a  = 0x604
	i8042Reset    = 0xfe
	acpiSleepEn   = 1 << 13 // SLP_EN in PM1a_CNT
	com1Registers = 8
)

// UART registers (offsets from PortCOM1) and bits.
const (
	uartData = 0 // THR/RBR, or DLL when DLAB is set
	uartIER  = 1 // or DLM when DLAB is set
	uartIIR  = 2
	uartLCR  = 3
	uartMCR  = 4
	uartLSR  = 5
	uartMSR  = 6
	uartSCR  = 7

	lcrDLAB    = 0x80
	lsrTHRE    = 0x20 // transmit holding register empty
	lsrTEMT    = 0x40 // transmitter empty
	iirNoIntr  = 0x01
	msrDCDDSRC = 0xb0 // carrier, data set ready, clear to send
)

// End is how a guest ended.
type End struct {
	// Code is the exit code: what the guest wrote to PortExit, or 0 for
	// a power-off or reset.
	Code int
	// Shutdown, if set, says the guest powered off or reset instead of
	// reporting an exit code ("shut down (i8042 reset)").
	Shutdown string
}

// Ports is one guest's devices. Not safe for concurrent use: one vCPU or
// one tracer owns it.
type Ports struct {
	// Console receives the bytes the guest sends on COM1.
	Console func([]byte)
	// Now is the wall clock the RTC shows (time.Now if nil).
	Now func() time.Time

	lcr, ier, mcr, scr byte
	dll, dlm           byte
	rtcIndex           byte
}

// Out handles a guest write of count values of size bytes (data holds
// them back to back). A non-nil End means the guest is done. An access
// no x86 instruction makes (size not 1, 2 or 4, or data shorter than one
// value) is ignored, whatever the monitor's decoder handed over.
func (p *Ports) Out(port uint16, size int, data []byte) *End {
	if !validAccess(size, data) {
		return nil
	}
	switch {
	case port >= PortCOM1 && port < PortCOM1+com1Registers:
		p.uartOut(port-PortCOM1, size, data)
	case port == PortExit:
		return &End{Code: exitValue(data[:size])}
	case port == PortRTCIndex:
		p.rtcIndex = data[0] &^ 0x80 // bit 7 masks NMIs
	case port == PortI8042 && data[0] == i8042Reset:
		return &End{Shutdown: "shut down (i8042 reset, port 0x64)"}
	case port == PortACPIPM1a && size >= 2 && binary.LittleEndian.Uint16(data)&acpiSleepEn != 0:
		return &End{Shutdown: "shut down (ACPI power-off, port 0x604)"}
	}
	return nil
}

func (p *Ports) uartOut(reg uint16, size int, data []byte) {
	dlab := p.lcr&lcrDLAB != 0
	switch reg {
	case uartData:
		if dlab {
			p.dll = data[0]
			return
		}
		// Each access sends its low byte (outsb sends a string).
		out := make([]byte, 0, len(data)/size)
		for i := 0; i+size <= len(data); i += size {
			out = append(out, data[i])
		}
		if p.Console != nil {
			p.Console(out)
		}
	case uartIER:
		if dlab {
			p.dlm = data[0]
		} else {
			p.ier = data[0] & 0x0f
		}
	case uartLCR:
		p.lcr = data[0]
	case uartMCR:
		p.mcr = data[0]
	case uartSCR:
		p.scr = data[0]
	}
}

// In fills data (count values of size bytes) with what the guest reads;
// an access no x86 instruction makes reads as a floating bus.
func (p *Ports) In(port uint16, size int, data []byte) {
	for i := range data {
		data[i] = 0xff
	}
	if !validAccess(size, data) {
		return
	}
	var v byte
	switch {
	case port >= PortCOM1 && port < PortCOM1+com1Registers:
		v = p.uartIn(port - PortCOM1)
	case port == PortRTCData:
		v = p.rtcRead()
	case port == PortRTCIndex:
		v = p.rtcIndex
	default:
		return
	}
	for i := 0; i+size <= len(data) && size > 0; i += size {
		for j := 0; j < size; j++ {
			data[i+j] = 0
		}
		data[i] = v
	}
}

func (p *Ports) uartIn(reg uint16) byte {
	dlab := p.lcr&lcrDLAB != 0
	switch reg {
	case uartData:
		if dlab {
			return p.dll
		}
		return 0 // no input
	case uartIER:
		if dlab {
			return p.dlm
		}
		return p.ier
	case uartIIR:
		return iirNoIntr
	case uartLCR:
		return p.lcr
	case uartMCR:
		return p.mcr
	case uartLSR:
		return lsrTHRE | lsrTEMT // always ready to send, nothing received
	case uartMSR:
		return msrDCDDSRC
	case uartSCR:
		return p.scr
	}
	return 0xff
}

// RTC registers (MC146818).
const (
	rtcSeconds = 0x00
	rtcMinutes = 0x02
	rtcHours   = 0x04
	rtcWeekday = 0x06
	rtcDay     = 0x07
	rtcMonth   = 0x08
	rtcYear    = 0x09
	rtcStatusA = 0x0a
	rtcStatusB = 0x0b
	rtcStatusC = 0x0c
	rtcStatusD = 0x0d
	rtcCentury = 0x32

	statusA = 0x26 // 32.768 kHz time base, 1024 Hz rate; UIP clear: never updating
	statusB = 0x02 // 24-hour, BCD
	statusD = 0x80 // valid RAM and time
)

// rtcRead reads the selected CMOS register: the time in BCD, and status
// registers that never report an update in progress (a guest waiting for
// UIP to clear must not spin).
func (p *Ports) rtcRead() byte {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	t := now().UTC()
	switch p.rtcIndex {
	case rtcSeconds:
		return bcd(t.Second())
	case rtcMinutes:
		return bcd(t.Minute())
	case rtcHours:
		return bcd(t.Hour())
	case rtcWeekday:
		return bcd(int(t.Weekday()) + 1)
	case rtcDay:
		return bcd(t.Day())
	case rtcMonth:
		return bcd(int(t.Month()))
	case rtcYear:
		return bcd(t.Year() % 100)
	case rtcCentury:
		return bcd(t.Year() / 100)
	case rtcStatusA:
		return statusA
	case rtcStatusB:
		return statusB
	case rtcStatusC:
		return 0
	case rtcStatusD:
		return statusD
	}
	return 0
}

// validAccess says whether size and data describe port accesses an x86
// instruction makes: values of 1, 2 or 4 bytes, at least one of them.
func validAccess(size int, data []byte) bool {
	return (size == 1 || size == 2 || size == 4) && len(data) >= size
}

func bcd(v int) byte { return byte(v/10<<4 | v%10) }

// exitValue decodes the exit code written with outb, outw or outl; a
// 32-bit write is a C int (so -1 stays -1).
func exitValue(b []byte) int {
	switch len(b) {
	case 1:
		return int(b[0])
	case 2:
		return int(binary.LittleEndian.Uint16(b))
	default:
		return int(int32(binary.LittleEndian.Uint32(b)))
	}
}
