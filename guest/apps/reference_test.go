package apps_test

// Independent references: for the apps whose result Go's standard library
// can compute on its own, the expected lines in app.json must equal what
// this Go code computes from the same input. So an expect is not only
// what the C code printed once.

import (
	"compress/zlib"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash/adler32"
	"hash/crc32"
	"io"
	"math/big"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

var references = map[string]func(input string) string{
	"hello": func(in string) string { return "Hello, " + in + "!" },
	"sha256": func(in string) string {
		return fmt.Sprintf("%x", sha256.Sum256([]byte(in)))
	},
	"digest": func(in string) string {
		algo, text, _ := strings.Cut(in, " ")
		switch {
		case algo == "md5":
			return fmt.Sprintf("md5 %x", md5.Sum([]byte(text)))
		case algo == "sha1":
			return fmt.Sprintf("sha1 %x", sha1.Sum([]byte(text)))
		case algo == "sha256":
			return fmt.Sprintf("sha256 %x", sha256.Sum256([]byte(text)))
		case algo == "crc32c":
			return fmt.Sprintf("crc32c %08x", crc32.Checksum([]byte(text), crc32.MakeTable(crc32.Castagnoli)))
		case strings.HasPrefix(algo, "hmac-"):
			m := hmac.New(sha256.New, []byte(algo[5:]))
			m.Write([]byte(text))
			return fmt.Sprintf("%s %x", algo, m.Sum(nil))
		}
		return "unknown"
	},
	"crc32": func(in string) string {
		rep := strings.Repeat(in, 1000)
		return fmt.Sprintf("len=%d crc32=%08x crc32c=%08x x1000=%08x", len(in), crc32.ChecksumIEEE([]byte(in)),
			crc32.Checksum([]byte(in), crc32.MakeTable(crc32.Castagnoli)), crc32.ChecksumIEEE([]byte(rep)))
	},
	"base64": func(in string) string {
		return base64.StdEncoding.EncodeToString([]byte(in)) + " " +
			base64.RawURLEncoding.EncodeToString([]byte(in)) + " roundtrip-ok"
	},
	"primes": func(in string) string {
		n, _ := strconv.Atoi(in)
		composite := make([]bool, n+1)
		var count, sum, last int
		for i := 2; i <= n; i++ {
			if composite[i] {
				continue
			}
			count, sum, last = count+1, sum+i, i
			for j := i * i; j <= n; j += i {
				composite[j] = true
			}
		}
		return fmt.Sprintf("primes<=%d count=%d last=%d sum=%d", n, count, last, sum)
	},
	"wordcount": func(in string) string {
		words := regexp.MustCompile(`[A-Za-z0-9']+`).FindAllString(strings.ToLower(in), -1)
		counts := map[string]int{}
		letters := 0
		for _, w := range words {
			counts[w]++
			for _, c := range w {
				if c >= 'a' && c <= 'z' {
					letters++
				}
			}
		}
		keys := sortedKeys(counts)
		sort.SliceStable(keys, func(i, j int) bool { return counts[keys[i]] > counts[keys[j]] })
		var top []string
		for i := 0; i < len(keys) && i < 5; i++ {
			top = append(top, fmt.Sprintf("%s:%d", keys[i], counts[keys[i]]))
		}
		return fmt.Sprintf("words=%d distinct=%d letters=%d top=%s", len(words), len(counts), letters, strings.Join(top, ","))
	},
	"regex": func(in string) string {
		pat, text, _ := strings.Cut(in, " ")
		re := regexp.MustCompile(pat)
		all := re.FindAllStringIndex(text, -1)
		repl := re.ReplaceAllLiteralString(text, "<>")
		if len(all) == 0 {
			return "matches=0 replaced=" + repl
		}
		m := re.FindStringIndex(text)
		return fmt.Sprintf("matches=%d first=%d-%d:%s replaced=%s", len(all), m[0], m[1], text[m[0]:m[1]], repl)
	},
	"bignum": func(in string) string {
		f := strings.Fields(in)
		r := new(big.Int)
		x, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "fact":
			r.MulRange(1, x)
		case "fib":
			a, b := big.NewInt(0), big.NewInt(1)
			for i := int64(0); i < x; i++ {
				a.Add(a, b)
				a, b = b, a
			}
			r = a
		case "pow":
			y, _ := strconv.ParseInt(f[2], 10, 64)
			r.Exp(big.NewInt(x), big.NewInt(y), nil)
		case "mul":
			a, _ := new(big.Int).SetString(f[1], 10)
			b, _ := new(big.Int).SetString(f[2], 10)
			r.Mul(a, b)
		}
		s := r.String()
		sum := 0
		for _, c := range s {
			sum += int(c - '0')
		}
		if len(s) <= 40 {
			return fmt.Sprintf("%s %s digits=%d sum=%d value=%s", f[0], f[1], len(s), sum, s)
		}
		return fmt.Sprintf("%s %s digits=%d sum=%d head=%s tail=%s", f[0], f[1], len(s), sum, s[:20], s[len(s)-20:])
	},
	"utf8": func(in string) string {
		rs := []rune(in)
		slices.Reverse(rs)
		return fmt.Sprintf("chars=%d bytes=%d valid=yes upper=%s reversed=%s",
			utf8.RuneCountInString(in), len(in), strings.ToUpper(in), string(rs))
	},
	"sort": func(in string) string {
		f := strings.Fields(in)
		n, _ := strconv.Atoi(f[1])
		seed, _ := strconv.ParseUint(f[2], 10, 64)
		s := seed
		a := make([]int64, n)
		for i := range a {
			s += 0x9e3779b97f4a7c15
			z := s
			z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
			z = (z ^ (z >> 27)) * 0x94d049bb133111eb
			z ^= z >> 31
			a[i] = int64(z>>23) - 1<<40
		}
		slices.Sort(a)
		var sum uint64
		for _, v := range a {
			sum = sum*31 + uint64(v)
		}
		return fmt.Sprintf("n=%d min=%d median=%d max=%d checksum=%016x distinct=%d",
			n, a[0], a[n/2], a[n-1], sum, len(slices.Compact(a)))
	},
	"matmul": func(in string) string {
		f := strings.Fields(in)
		n, _ := strconv.Atoi(f[0])
		seed, _ := strconv.ParseUint(f[1], 10, 32)
		a, b := lcgMatrix(n, uint32(seed))
		var sum uint64
		trace := 0.0
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				c := 0.0
				for k := 0; k < n; k++ {
					c += a[i][k] * b[k][j]
				}
				sum = sum*1000003 + uint64(int64(c))
				if i == j {
					trace += c
				}
			}
		}
		p := a
		for e := 1; e < 5; e++ {
			p = matMul(p, a)
		}
		trace5 := 0.0
		for i := range p {
			trace5 += p[i][i]
		}
		k := min(n, 6)
		corner := make([][]float64, k)
		for i := range corner {
			corner[i] = a[i][:k]
		}
		return fmt.Sprintf("matmul n=%d checksum=%016x trace=%d trace5=%d det6=%d", n, sum, int64(trace), int64(trace5), int64(goDet(corner)))
	},
}

func matMul(a, b [][]float64) [][]float64 {
	n := len(a)
	c := make([][]float64, n)
	for i := range c {
		c[i] = make([]float64, n)
		for j := 0; j < n; j++ {
			for k := 0; k < n; k++ {
				c[i][j] += a[i][k] * b[k][j]
			}
		}
	}
	return c
}

func TestExpectedLinesMatchAnIndependentGoReference(t *testing.T) {
	gt := loadTree(t)
	for name, ref := range references {
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
