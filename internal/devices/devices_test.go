package devices

import (
	"testing"
	"time"
)

func TestBytesWrittenWhileTheDivisorLatchIsOpenAreNotConsoleOutput(t *testing.T) {
	var out []byte
	p := Ports{Console: func(b []byte) { out = append(out, b...) }}
	p.Out(PortCOM1+uartLCR, 1, []byte{lcrDLAB})
	p.Out(PortCOM1+uartData, 1, []byte{0x01}) // divisor low byte
	p.Out(PortCOM1+uartIER, 1, []byte{0x00})  // divisor high byte
	p.Out(PortCOM1+uartLCR, 1, []byte{0x03})  // 8N1, latch closed
	p.Out(PortCOM1+uartData, 1, []byte{'h'})
	p.Out(PortCOM1+uartData, 1, []byte{'i'})
	if string(out) != "hi" {
		t.Fatalf("console got %q, want %q", out, "hi")
	}
	b := []byte{0}
	p.Out(PortCOM1+uartLCR, 1, []byte{lcrDLAB})
	p.In(PortCOM1+uartData, 1, b)
	if b[0] != 0x01 {
		t.Fatalf("divisor reads back %#x", b[0])
	}
}

func TestTheUARTIsAlwaysReadyToSend(t *testing.T) {
	var p Ports
	b := []byte{0}
	p.In(PortCOM1+uartLSR, 1, b)
	if b[0]&lsrTHRE == 0 {
		t.Fatalf("LSR %#x: transmitter not empty", b[0])
	}
}

func TestTheRTCNeverReportsAnUpdateInProgressAndShowsTheClockInBCD(t *testing.T) {
	p := Ports{Now: func() time.Time { return time.Date(2026, 12, 6, 10, 59, 42, 0, time.UTC) }}
	read := func(reg byte) byte {
		p.Out(PortRTCIndex, 1, []byte{reg | 0x80})
		b := []byte{0}
		p.In(PortRTCData, 1, b)
		return b[0]
	}
	if read(rtcStatusA)&0x80 != 0 {
		t.Fatal("UIP set: a guest waiting for it to clear would spin forever")
	}
	if s, m, h, y := read(rtcSeconds), read(rtcMinutes), read(rtcHours), read(rtcYear); s != 0x42 || m != 0x59 || h != 0x10 || y != 0x26 {
		t.Fatalf("time %#x:%#x:%#x year %#x", h, m, s, y)
	}
}

func TestAResetOrPowerOffEndsTheGuestAsAShutdownAndTheExitPortWithItsCode(t *testing.T) {
	var p Ports
	if e := p.Out(PortI8042, 1, []byte{0xfe}); e == nil || e.Shutdown == "" || e.Code != 0 {
		t.Fatalf("i8042 reset: %+v", e)
	}
	if e := p.Out(PortI8042, 1, []byte{0x01}); e != nil {
		t.Fatalf("other i8042 command ended the guest: %+v", e)
	}
	if e := p.Out(PortACPIPM1a, 2, []byte{0x00, 0x20}); e == nil || e.Shutdown == "" {
		t.Fatalf("ACPI power-off: %+v", e)
	}
	if e := p.Out(PortExit, 4, []byte{0xff, 0xff, 0xff, 0xff}); e == nil || e.Code != -1 || e.Shutdown != "" {
		t.Fatalf("exit port: %+v", e)
	}
}
