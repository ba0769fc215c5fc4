// Package reference computes, in Go alone, the line a FaaS app of the
// corpus prints for an input, and draws inputs for the apps it can check:
// the expected line of a unikernel that gets its own request comes from
// here, not from the guest.
package reference

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"math/big"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Apps maps an app to its reference: the line the app prints for an input,
// computed with Go's standard library alone.
var Apps = map[string]func(input string) string{
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
		a, b := LCGMatrix(n, uint32(seed))
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
		return fmt.Sprintf("matmul n=%d checksum=%016x trace=%d trace5=%d det6=%d", n, sum, int64(trace), int64(trace5), int64(Det(corner)))
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

// LCGMatrix is the pair of matrices ukmatrix's generator makes from seed.
func LCGMatrix(n int, seed uint32) (a, b [][]float64) {
	s := seed
	next := func() float64 {
		s = s*1664525 + 1013904223
		return float64(int((s>>16)%19) - 9)
	}
	a, b = make([][]float64, n), make([][]float64, n)
	for i := 0; i < n; i++ {
		a[i], b[i] = make([]float64, n), make([]float64, n)
		for j := 0; j < n; j++ {
			a[i][j] = next()
			b[i][j] = next()
		}
	}
	return a, b
}

// Det is an exact-rational determinant for small integer matrices.
func Det(a [][]float64) float64 {
	n := len(a)
	m := make([][]*big.Rat, n)
	for i := range a {
		m[i] = make([]*big.Rat, n)
		for j := range a[i] {
			m[i][j] = new(big.Rat).SetFloat64(a[i][j])
		}
	}
	det := big.NewRat(1, 1)
	for k := 0; k < n; k++ {
		p := -1
		for i := k; i < n; i++ {
			if m[i][k].Sign() != 0 {
				p = i
				break
			}
		}
		if p < 0 {
			return 0
		}
		if p != k {
			m[p], m[k] = m[k], m[p]
			det.Neg(det)
		}
		det.Mul(det, m[k][k])
		for i := k + 1; i < n; i++ {
			f := new(big.Rat).Quo(m[i][k], m[k][k])
			for j := k; j < n; j++ {
				m[i][j].Sub(m[i][j], new(big.Rat).Mul(f, m[k][j]))
			}
		}
	}
	f, _ := det.Float64()
	return f
}

func sortedKeys[V any](m map[string]V) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
