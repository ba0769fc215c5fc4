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

// FuzzPortsOnlyEverSendTheLowByteOfEachWriteToTheConsole drives the
// devices with whatever a hostile guest (or a monitor's decoder) could hand
// over: no access may panic, the console receives exactly the low byte of
// each whole value written to the data register with the latch closed, and
// only the exit port, an i8042 reset or an ACPI power-off ends the guest.
func FuzzPortsOnlyEverSendTheLowByteOfEachWriteToTheConsole(f *testing.F) {
	f.Add(uint16(PortCOM1), 1, []byte("hi"), false)
	f.Add(uint16(PortCOM1), 2, []byte{'a', 0, 'b', 0}, false)
	f.Add(uint16(PortExit), 4, []byte{1, 2, 3}, false)
	f.Add(uint16(PortExit), 3, []byte{1, 2, 3}, false)
	f.Add(uint16(PortI8042), 1, []byte{}, false)
	f.Add(uint16(PortACPIPM1a), 2, []byte{0}, false)
	f.Add(uint16(PortRTCData), 4, []byte{0, 0, 0, 0, 0}, true)
	f.Add(uint16(PortCOM1+uartLCR), 1, []byte{lcrDLAB}, false)
	f.Fuzz(func(t *testing.T, port uint16, size int, data []byte, in bool) {
		var out []byte
		p := Ports{Console: func(b []byte) { out = append(out, b...) },
			Now: func() time.Time { return time.Unix(0, 0) }}
		if in {
			before := len(data)
			p.In(port, size, data)
			if len(data) != before {
				t.Fatal("In changed the buffer's length")
			}
			return
		}
		e := p.Out(port, size, data)
		valid := (size == 1 || size == 2 || size == 4) && len(data) >= size
		if e != nil {
			ends := port == PortExit || port == PortI8042 || port == PortACPIPM1a
			if !valid || !ends {
				t.Fatalf("Out(%#x, %d, %x) ended the guest: %+v", port, size, data, e)
			}
		}
		if port == PortCOM1+uartData && valid {
			var want []byte
			for i := 0; i+size <= len(data); i += size {
				want = append(want, data[i])
			}
			if string(out) != string(want) {
				t.Fatalf("console got %q, want %q", out, want)
			}
		} else if len(out) != 0 {
			t.Fatalf("Out(%#x, %d, %x) wrote %q to the console", port, size, data, out)
		}
	})
}
