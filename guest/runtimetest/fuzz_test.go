package runtimetest

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// splitArgs is the command-line splitting ukboot documents (guest/README.md),
// written independently in Go: the fuzz test holds the C to it.
func splitArgs(line string) []string {
	blank := func(c byte) bool {
		return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
	}
	var args []string
	i := 0
	for {
		for i < len(line) && blank(line[i]) {
			i++
		}
		if i == len(line) {
			return args
		}
		var a []byte
		for i < len(line) && !blank(line[i]) {
			c := line[i]
			i++
			switch {
			case c == '\'':
				for i < len(line) && line[i] != '\'' {
					a = append(a, line[i])
					i++
				}
				if i < len(line) {
					i++
				}
			case c == '"':
				for i < len(line) && line[i] != '"' {
					if line[i] == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\') {
						i++
					}
					a = append(a, line[i])
					i++
				}
				if i < len(line) {
					i++
				}
			case c == '\\' && i < len(line):
				a = append(a, line[i])
				i++
			default:
				a = append(a, c)
			}
		}
		args = append(args, string(a))
	}
}

func FuzzCommandLineSplitsAsDocumented(f *testing.F) {
	for _, s := range []string{"", "a b", ` "x y" 'z "w"' a\ b`, `"\"\\\n"`, `'unterminated`, "tab\there",
		`a"b c"d`, `""`, `\`, `"\`, `x\'`, "\x01\xff"} {
		f.Add(s)
	}
	// Built before fuzzing: a fuzz input may take seconds, not a build.
	exe := driverFor(f, runtimeSets(f)[0])
	f.Fuzz(func(t *testing.T, line string) {
		if strings.IndexByte(line, 0) >= 0 {
			t.Skip("the command line is NUL-terminated")
		}
		out := runDriver(t, exe, "split1", line)
		want := splitArgs(line)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		var got []string
		for _, h := range lines[1:] {
			b, err := hex.DecodeString(h)
			if err != nil {
				t.Fatalf("driver output %q", out)
			}
			got = append(got, string(b))
		}
		if lines[0] != fmt.Sprint(len(want)) || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Fatalf("split %q: guest %s %q, want %d %q", line, lines[0], got, len(want), want)
		}
	})
}

func FuzzNumberParsingMatchesGlibc(f *testing.F) {
	for _, s := range []string{"0", "-12.5e-3", "0x1p-1074", "1e400", "  +0x1f", "nan(abc)", "inf",
		"18446744073709551616", "2.2250738585072011e-308", "12 3.5 word", "-0 -0.0 z", "077 0x 5"} {
		f.Add(s)
	}
	exe := driverFor(f, runtimeSets(f)[0])
	f.Fuzz(func(t *testing.T, s string) {
		if strings.IndexByte(s, 0) >= 0 {
			t.Skip("C strings end at NUL")
		}
		runDriver(t, exe, "parse1", s)
	})
}
