package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgressOnANonTerminalIsAFewPlainLines(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, 1000, "linking")
	for i := 0; i < 1000; i++ {
		b.Add(1)
	}
	b.Finish()
	b.Finish()
	out := buf.String()
	if strings.ContainsAny(out, "\r\x1b") {
		t.Fatalf("carriage returns or escapes in a log: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	// 0/1000, one line per tenth (100/1000 ... 1000/1000), the final line.
	if len(lines) != 12 {
		t.Fatalf("%d lines, want 12:\n%s", len(lines), out)
	}
	if lines[0] != "linking: 0/1000" || lines[1] != "linking: 100/1000" || lines[10] != "linking: 1000/1000" ||
		!strings.HasPrefix(lines[11], "linking: 1000/1000, finished in ") {
		t.Errorf("lines:\n%s", out)
	}
}

func TestProgressOfAnUnknownTotalPrintsPeriodically(t *testing.T) {
	defer func(e time.Duration) { Every = e }(Every)
	Every = time.Hour
	var buf bytes.Buffer
	b := New(&buf, -1, "compiling")
	b.Set(5)
	Every = 0
	b.Set(7)
	b.SetTotal(9)
	b.Set(9)
	b.Finish()
	want := "compiling: 0\ncompiling: 7\ncompiling: 9/9\n"
	if out := buf.String(); !strings.HasPrefix(out, want) || !strings.Contains(out, "compiling: 9/9, finished in") {
		t.Errorf("got %q, want it to start %q", out, want)
	}
}
