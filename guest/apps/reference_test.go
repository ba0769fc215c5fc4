package apps_test

// Independent references: for the apps whose result Go's standard library
// can compute on its own, the expected lines in app.json must equal what
// this Go code computes from the same input. So an expect is not only
// what the C code printed once.

import (
	"github.com/unipool/unipool/internal/corpus/reference"

	"compress/zlib"
	"fmt"
	"hash/adler32"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"testing"
)

func TestExpectedLinesMatchAnIndependentGoReference(t *testing.T) {
	gt := loadTree(t)
	for name, ref := range reference.Apps {
		a, ok := gt.apps[name]
		if !ok {
			t.Errorf("reference for missing app %s", name)
			continue
		}
		for i, c := range a.Cases {
			if got := ref(c.Input); got != c.Expect {
				t.Errorf("%s case %d (%q):\n app.json %q\nreference %q", name, i, c.Input, c.Expect, got)
			}
		}
	}
}

// The compression apps print what only the library itself can (compressed
// sizes), but the checksums of their input buffers and the round trip can
// be checked: zlib's output must inflate with Go's compress/zlib.
func TestZlibAppChecksumsMatchGo(t *testing.T) {
	gt := loadTree(t)
	for i, c := range gt.apps["gzip"].Cases {
		buf := fillLikeZlibApp(c.Input)
		want := fmt.Sprintf("in=%d ", len(buf))
		sums := fmt.Sprintf("crc=%08x adler=%08x roundtrip-ok", crc32.ChecksumIEEE(buf), adler32.Checksum(buf))
		if !strings.Contains(c.Expect, want) || !strings.HasSuffix(c.Expect, sums) {
			t.Errorf("gzip case %d: %q lacks %q ... %q", i, c.Expect, want, sums)
		}
	}
	// and the archive's deflate output is real zlib: Go inflates it
	bin, err := getBuilder(t).driverBinary(gt, "zlib_compress", config{}, false, "zlib", "ukhex")
	if err != nil {
		t.Fatal(err)
	}
	data := fillLikeZlibApp("interoperability check")
	out := runDriver(t, bin, []string{hexField(data)})
	z, err := hexDecode(out[0])
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zlib.NewReader(strings.NewReader(string(z)))
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(zr)
	if err != nil || string(back) != string(data) {
		t.Fatalf("Go cannot inflate libz.a's output: %v", err)
	}
}

func hexDecode(s string) ([]byte, error) {
	if s == "-" {
		return nil, nil
	}
	out := make([]byte, len(s)/2)
	_, err := fmt.Sscanf(s, "%x", &out)
	return out, err
}

// fillLikeZlibApp mirrors fill() in apps/gzip/main.c.
func fillLikeZlibApp(text string) []byte {
	const size = 8192
	var buf []byte
	for counter := 0; len(buf) < size; counter++ {
		buf = append(buf, strconv.Itoa(counter)+":"...)
		if len(buf)+len(text)+1 > size {
			break
		}
		buf = append(buf, text+" "...)
	}
	if len(buf) > size {
		buf = buf[:size]
	}
	return buf
}
