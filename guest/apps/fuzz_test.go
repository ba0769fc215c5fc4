package apps_test

// Fuzz targets for the microlibs that parse untrusted input. Each keeps
// one sanitized driver process (ASan/UBSan: an out-of-bounds access kills
// it) and talks to it a line at a time, so a fuzz iteration costs a pipe
// round trip, not a process. Where Go's standard library parses the same
// language, the results must agree.

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

type pipeDriver struct {
	mu   sync.Mutex
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	name string
}

var (
	pipesMu sync.Mutex
	pipes   = map[string]*pipeDriver{}
)

// pipe returns the running driver for name, starting it on first use.
func pipe(t testing.TB, name string, libs ...string) *pipeDriver {
	t.Helper()
	pipesMu.Lock()
	defer pipesMu.Unlock()
	if p, ok := pipes[name]; ok {
		return p
	}
	bin, err := getBuilder(t).driverBinary(loadTree(t), name, config{}, true, libs...)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &pipeDriver{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20), name: name}
	pipes[name] = p
	return p
}

// query sends one request line and returns the reply line; a driver that
// died (a sanitizer report, a crash) fails the test with the input.
func (p *pipeDriver) query(t testing.TB, line string) string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		t.Fatalf("%s driver died before %q: %v", p.name, line, err)
	}
	reply, err := p.out.ReadString('\n')
	if err != nil {
		t.Fatalf("%s driver died on %q: %v", p.name, line, err)
	}
	return strings.TrimSuffix(reply, "\n")
}

func FuzzJSONParserAgreesWithGoOnValidity(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}]}`, `[1e400]`, `"\ud83d\ude00"`, `{"a":1,}`, `01`, `-`, `[` + strings.Repeat("[", 70), `"\u00"`, "\"\x01\"", ` true `, `1.5e-3`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		got := pipe(t, "json", "ukjson", "ukhex").query(t, hexField(data))
		valid := json.Valid(data)
		if depth(data) > 64 { // the default build's nesting limit
			valid = false
		}
		if (got != "err") != valid {
			t.Fatalf("%q: ukjson %s, Go valid=%v", data, got, valid)
		}
		if valid {
			out, _ := hex.DecodeString(strings.TrimPrefix(got, "ok "))
			if strings.TrimPrefix(got, "ok ") == "-" || !json.Valid(out) {
				t.Fatalf("%q serialized to invalid JSON %q", data, out)
			}
		}
	})
}

// depth is the bracket nesting of a JSON text, outside strings.
func depth(data []byte) int {
	d, max, inStr, esc := 0, 0, false, false
	for _, c := range data {
		switch {
		case inStr && esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '[' || c == '{'):
			d++
			if d > max {
				max = d
			}
		case !inStr && (c == ']' || c == '}'):
			d--
		}
	}
	return max
}

func FuzzRegexAgreesWithGoOnASCII(f *testing.F) {
	f.Add("(a|ab)(c|bcd)", "abcd")
	f.Add("x*", "axxb")
	f.Add("[^a-c]+?d{1,3}$", "zzdd")
	f.Add("(a*)*b", "aaab")
	f.Add("^[]a]*", "]a]b")
	f.Fuzz(func(t *testing.T, pat, text string) {
		if len(pat) > 64 || len(text) > 256 || !isPrintableASCII(pat) || !isPrintableASCII(text) {
			return
		}
		re, err := regexp.Compile(pat)
		got := pipe(t, "regex", "ukregex", "ukhex").query(t, hexField([]byte(pat))+" "+hexField([]byte(text)))
		if got == "err" || err != nil {
			return // syntax outside the common subset (\b, (?i), [[:alpha:]]...)
		}
		want := "-1 -1"
		if m := re.FindStringIndex(text); m != nil {
			want = fmt.Sprintf("%d %d", m[0], m[1])
		}
		want += " " + strconv.Itoa(len(re.FindAllStringIndex(text, -1)))
		if got != want {
			t.Fatalf("pattern %q text %q: ukregex %s, Go %s", pat, text, got, want)
		}
	})
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func FuzzLZDecompressorStaysInBounds(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{10, 3, 'a', 'b', 'c', 3, 2})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		got := pipe(t, "lz", "uklz", "ukhex").query(t, "D "+hexField(data))
		if got == "err" {
			return
		}
		if n, err := strconv.Atoi(got); err != nil || n < 0 || n > 4096 {
			t.Fatalf("%x: decompressed length %q outside [0, 4096]", data, got)
		}
	})
}

func FuzzBase64DecoderAgreesWithGoStrict(f *testing.F) {
	f.Add("aGVsbG8=")
	f.Add("aGVsbG9=")
	f.Add("====")
	f.Add("A")
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 1024 || strings.ContainsAny(s, "\r\n") || !isPrintableASCII(s) || len(s)%4 != 0 {
			return // unpadded input is accepted here by design, not by Go
		}
		got := pipe(t, "base64", "ukbase64", "ukhex").query(t, "D "+s)
		want := "err"
		if dec, err := base64.StdEncoding.Strict().DecodeString(s); err == nil {
			want = hexField(dec)
		}
		if got != want {
			t.Fatalf("%q: ukbase64 %s, Go %s", s, got, want)
		}
	})
}

func FuzzUTF8AgreesWithGo(f *testing.F) {
	f.Add([]byte("héllo"))
	f.Add([]byte{0xed, 0xa0, 0x80})
	f.Add([]byte{0xf4, 0x90, 0x80, 0x80})
	f.Add([]byte{0xc0, 0xaf})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1024 {
			return
		}
		fields := strings.Fields(pipe(t, "utf8", "ukutf8", "ukhex").query(t, hexField(b)))
		valid := "0"
		if utf8.Valid(b) {
			valid = "1"
		}
		if fields[0] != strconv.Itoa(utf8.RuneCount(b)) || fields[1] != valid {
			t.Fatalf("%x: count %s valid %s; Go %d %s", b, fields[0], fields[1], utf8.RuneCount(b), valid)
		}
	})
}
