package apps_test

// Differential tests: each microlib, in every variant, against Go's
// standard library on random inputs, through a small C driver per library
// (testdata/drivers) that reads one request per line.

import (
	"github.com/unipool/unipool/internal/corpus/reference"

	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math"
	"math/big"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func hexField(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	return hex.EncodeToString(b)
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// eachVariant runs f once per variant of lib (other libraries default).
func eachVariant(t *testing.T, lib string, f func(t *testing.T, cfg config)) {
	gt := loadTree(t)
	l, ok := gt.libs[lib]
	if !ok {
		t.Fatalf("no library %s", lib)
	}
	for _, v := range l.Variants {
		t.Run(lib+"="+v.ID, func(t *testing.T) {
			t.Parallel()
			f(t, config{lib: v})
		})
	}
}

func driver(t *testing.T, name string, cfg config, sanitize bool, libs ...string) string {
	t.Helper()
	bin, err := getBuilder(t).driverBinary(loadTree(t), name, cfg, sanitize, libs...)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestHashesAndCRCsMatchGoForRandomInputsAndChunkings(t *testing.T) {
	libs := []string{"uksha256", "uksha1", "ukmd5", "ukcrc32", "ukhex"}
	for _, lib := range []string{"uksha256", "ukcrc32"} {
		eachVariant(t, lib, func(t *testing.T, cfg config) {
			r := rand.New(rand.NewPCG(1, 2))
			var lines, want []string
			sizes := []int{0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000}
			for i := 0; i < 300; i++ {
				n := r.IntN(300)
				if i < len(sizes) {
					n = sizes[i]
				}
				data, key := randBytes(r, n), randBytes(r, r.IntN(100))
				chunk := 1 + r.IntN(70)
				lines = append(lines, fmt.Sprintf("%d %s %s", chunk, hexField(key), hexField(data)))
				s2, s1, m5 := sha256.Sum256(data), sha1.Sum(data), md5.Sum(data)
				mac := hmac.New(sha256.New, key)
				mac.Write(data)
				want = append(want, fmt.Sprintf("%x %x %x %08x %08x %x", s2, s1, m5,
					crc32.ChecksumIEEE(data), crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)), mac.Sum(nil)))
			}
			got := runDriver(t, driver(t, "hashes", cfg, false, libs...), lines)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("input %q:\n got %s\nwant %s", lines[i], got[i], want[i])
				}
			}
		})
	}
}

func TestBase64MatchesGoEncodingAndStrictDecoding(t *testing.T) {
	eachVariant(t, "ukbase64", func(t *testing.T, cfg config) {
		r := rand.New(rand.NewPCG(3, 4))
		var lines, want []string
		for i := 0; i < 300; i++ {
			data := randBytes(r, r.IntN(80))
			lines = append(lines, "E "+hexField(data))
			std, url := base64.StdEncoding.EncodeToString(data), base64.RawURLEncoding.EncodeToString(data)
			if std == "" {
				std, url = "-", "-"
			}
			want = append(want, fmt.Sprintf("%s %s %s %s", std, url, hexField(data), hexField(data)))
		}
		// decoding of arbitrary text, padded lengths only: unpadded input
		// is accepted here by design but not by Go's StdEncoding
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_!"
		for i := 0; i < 500; i++ {
			b := make([]byte, 4*(1+r.IntN(6)))
			for k := range b {
				b[k] = alphabet[r.IntN(len(alphabet))]
			}
			if r.IntN(2) == 0 { // mostly valid
				b = []byte(base64.StdEncoding.EncodeToString(randBytes(r, r.IntN(20)+1)))
				if r.IntN(3) == 0 {
					b[r.IntN(len(b))] = alphabet[r.IntN(len(alphabet))]
				}
			}
			lines = append(lines, "D "+string(b))
			if dec, err := base64.StdEncoding.Strict().DecodeString(string(b)); err != nil {
				want = append(want, "err")
			} else {
				want = append(want, hexField(dec))
			}
		}
		got := runDriver(t, driver(t, "base64", cfg, true, "ukbase64", "ukhex"), lines)
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%q: got %s want %s", lines[i], got[i], want[i])
			}
		}
	})
}

// randomRegex builds a pattern from the syntax both Go and ukregex accept.
func randomRegex(r *rand.Rand, depth int) string {
	atoms := []string{"a", "b", "c", ".", "[ab]", "[^a]", "[a-c]", "x"}
	var sb strings.Builder
	n := 1 + r.IntN(3)
	for i := 0; i < n; i++ {
		if depth < 3 && r.IntN(4) == 0 {
			sb.WriteString("(" + randomRegex(r, depth+1) + ")")
		} else {
			sb.WriteString(atoms[r.IntN(len(atoms))])
		}
		switch r.IntN(10) {
		case 0:
			sb.WriteString("*")
		case 1:
			sb.WriteString("+")
		case 2:
			sb.WriteString("?")
		case 3:
			sb.WriteString("*?")
		case 4:
			sb.WriteString("{1,2}")
		case 5:
			sb.WriteString("+?")
		}
	}
	s := sb.String()
	if r.IntN(5) == 0 {
		s += "|" + randomRegex(r, depth+1)
	}
	if depth == 0 && r.IntN(8) == 0 {
		s = "^" + s
	}
	if depth == 0 && r.IntN(8) == 0 {
		s += "$"
	}
	return s
}

func TestRegexFindsTheSameLeftmostFirstMatchesAsGoRegexp(t *testing.T) {
	eachVariant(t, "ukregex", func(t *testing.T, cfg config) {
		r := rand.New(rand.NewPCG(5, 6))
		var lines, want []string
		fixed := [][2]string{{"x*", "axxb"}, {"(a|ab)(c|bcd)", "abcd"}, {"a*?", "aaa"}, {"", "abc"}, {"(a*)*", "aab"}, {"(a|b)*?c", "ababc"}}
		for i := 0; i < 1500; i++ {
			pat := randomRegex(r, 0)
			text := make([]byte, r.IntN(20))
			for k := range text {
				text[k] = "abcx"[r.IntN(4)]
			}
			if i < len(fixed) {
				pat, text = fixed[i][0], []byte(fixed[i][1])
			}
			re := regexp.MustCompile(pat)
			lines = append(lines, hexField([]byte(pat))+" "+hexField(text))
			all := re.FindAllIndex(text, -1)
			if m := re.FindIndex(text); m != nil {
				want = append(want, fmt.Sprintf("%d %d %d", m[0], m[1], len(all)))
			} else {
				want = append(want, fmt.Sprintf("-1 -1 %d", len(all)))
			}
		}
		got := runDriver(t, driver(t, "regex", cfg, true, "ukregex", "ukhex"), lines)
		for i := range got {
			if got[i] != want[i] {
				p, _ := hex.DecodeString(strings.Fields(lines[i])[0])
				x, _ := hex.DecodeString(strings.Fields(lines[i])[1])
				t.Errorf("pattern %q text %q: got %s want %s", p, x, got[i], want[i])
			}
		}
	})
}

func TestRegexRejectsWhatGoRejects(t *testing.T) {
	bad := []string{"(", ")", "a**", "[", "[b-a]", "a{2,1}", "*", "+a", "\\", "a{1001}"}
	var lines []string
	for _, p := range bad {
		if _, err := regexp.Compile(p); err == nil {
			t.Fatalf("Go accepts %q; not a rejection test", p)
		}
		lines = append(lines, hexField([]byte(p))+" -")
	}
	got := runDriver(t, driver(t, "regex", config{}, true, "ukregex", "ukhex"), lines)
	for i, g := range got {
		if g != "err" {
			t.Errorf("pattern %q compiled (%s), want a syntax error", bad[i], g)
		}
	}
}

func randomJSONValue(r *rand.Rand, depth int, floats bool) any {
	k := r.IntN(8)
	if depth > 5 {
		k = r.IntN(5)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return json.Number(strconv.FormatInt(r.Int64N(1<<62)-(1<<61), 10))
	case 3:
		if floats {
			f := (r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(40)-20))
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
		}
		return json.Number(strconv.Itoa(r.IntN(1000)))
	case 4:
		runes := []rune{'a', 'Z', ' ', '"', '\\', '/', '\n', '\t', 0x1, 'é', '€', '😀', '<'}
		var sb strings.Builder
		for i := r.IntN(8); i > 0; i-- {
			sb.WriteRune(runes[r.IntN(len(runes))])
		}
		return sb.String()
	case 5, 6:
		a := []any{}
		for i := r.IntN(4); i > 0; i-- {
			a = append(a, randomJSONValue(r, depth+1, floats))
		}
		return a
	default:
		m := map[string]any{}
		for i := r.IntN(4); i > 0; i-- {
			m[fmt.Sprintf("k%d\"é", r.IntN(10))] = randomJSONValue(r, depth+1, floats)
		}
		return m
	}
}

// sameJSON compares decoded documents; floats to 14 significant digits
// (ukjson prints 15).
func sameJSON(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		fx, e1 := x.Float64()
		fy, e2 := y.Float64()
		return e1 == nil && e2 == nil && math.Abs(fx-fy) <= 1e-14*math.Max(math.Abs(fx), math.Abs(fy))
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !sameJSON(v, w) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func decodeNumbers(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

func TestJSONRoundTripsGoDocumentsAndAgreesOnValidity(t *testing.T) {
	eachVariant(t, "ukjson", func(t *testing.T, cfg config) {
		gt := loadTree(t)
		floats := !slices.Contains(cfg["ukjson"].Defines, "JSON_FLOAT=0")
		r := rand.New(rand.NewPCG(7, 8))
		var lines []string
		var docs []any
		for i := 0; i < 400; i++ {
			v := randomJSONValue(r, 0, floats)
			data, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if r.IntN(3) == 0 {
				var buf bytes.Buffer
				json.Indent(&buf, data, " ", "\t")
				data = buf.Bytes()
			}
			lines = append(lines, hexField(data))
			docs = append(docs, v)
		}
		// validity: mutate valid documents by a byte
		var mutated [][]byte
		for i := 0; i < 600; i++ {
			data, _ := json.Marshal(randomJSONValue(r, 0, floats))
			if len(data) > 0 {
				p := r.IntN(len(data))
				switch r.IntN(3) {
				case 0:
					data = append(data[:p:p], data[p+1:]...)
				case 1:
					data[p] = "{}[],:\"0-e.tfn \\x"[r.IntN(17)]
				default:
					data = append(data[:p:p], append([]byte{"{}[],:\"01-e. "[r.IntN(13)]}, data[p:]...)...)
				}
			}
			mutated = append(mutated, data)
			lines = append(lines, hexField(data))
		}
		got := runDriver(t, driver(t, "json", cfg, true, "ukjson", "ukhex"), lines)
		_ = gt
		for i, v := range docs {
			ok, hexOut, _ := strings.Cut(got[i], " ")
			if ok != "ok" {
				t.Errorf("document %s rejected", lines[i])
				continue
			}
			out, _ := hex.DecodeString(hexOut)
			back, err := decodeNumbers(out)
			if err != nil {
				t.Errorf("serialized %q is not JSON: %v", out, err)
				continue
			}
			orig, _ := json.Marshal(v)
			want, _ := decodeNumbers(orig)
			if !sameJSON(want, back) {
				t.Errorf("round trip of %s gave %s", orig, out)
			}
		}
		for i, data := range mutated {
			g := got[len(docs)+i]
			valid := json.Valid(data)
			if !floats && valid {
				// integer-only builds reject fractions and exponents
				if v, err := decodeNumbers(data); err == nil && hasFraction(v) {
					valid = false
				}
			}
			if (g != "err") != valid {
				t.Errorf("%q: ukjson says %s, Go's json.Valid says %v", data, g, valid)
			}
		}
	})
}

func hasFraction(v any) bool {
	switch x := v.(type) {
	case json.Number:
		_, err := strconv.ParseInt(string(x), 10, 64)
		return err != nil
	case []any:
		for _, e := range x {
			if hasFraction(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if hasFraction(e) {
				return true
			}
		}
	}
	return false
}

func TestLZRoundTripsWithinItsBoundAndSurvivesCorruptStreams(t *testing.T) {
	eachVariant(t, "uklz", func(t *testing.T, cfg config) {
		r := rand.New(rand.NewPCG(9, 10))
		var lines []string
		var kinds []string
		for i := 0; i < 120; i++ {
			n := r.IntN(6000)
			data := randBytes(r, n)
			switch i % 3 {
			case 1: // few symbols: long matches
				for k := range data {
					data[k] = "ab"[r.IntN(2)]
				}
			case 2: // repeated text with far and near copies
				for k := range data {
					data[k] = "unipool shares pages "[(k*7/3)%21]
				}
			}
			lines = append(lines, fmt.Sprintf("C %d %s", 1+r.IntN(9), hexField(data)))
			kinds = append(kinds, "roundtrip")
		}
		for i := 0; i < 400; i++ {
			g := randBytes(r, r.IntN(64))
			if i%2 == 0 && len(g) > 0 {
				g[0] = byte(r.IntN(100)) // plausible header
			}
			lines = append(lines, "D "+hexField(g))
			kinds = append(kinds, "garbage")
		}
		got := runDriver(t, driver(t, "lz", cfg, true, "uklz", "ukhex"), lines)
		for i, g := range got {
			if kinds[i] == "roundtrip" && !strings.HasSuffix(g, " ok") {
				t.Errorf("%.60s...: %s", lines[i], g)
			}
			if kinds[i] == "garbage" && g != "err" {
				if n, err := strconv.Atoi(g); err != nil || n > 4096 {
					t.Errorf("garbage %s: %s", lines[i], g)
				}
			}
		}
	})
}

func f64bits(x float64) string { return fmt.Sprintf("%016x", math.Float64bits(x)) }

func ulpDiff(a, b float64) float64 {
	if a == b || (math.IsNaN(a) && math.IsNaN(b)) {
		return 0
	}
	if math.IsNaN(a) || math.IsNaN(b) || math.IsInf(a, 0) || math.IsInf(b, 0) {
		return math.Inf(1)
	}
	ulp := math.Abs(math.Nextafter(b, math.Inf(1)) - b)
	if ulp == 0 {
		ulp = math.SmallestNonzeroFloat64
	}
	return math.Abs(a-b) / ulp
}

func TestMathAgreesWithGoWithinAFewULP(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	type fn struct {
		name    string
		ref     func(x, y float64) float64
		domain  func() (float64, float64)
		maxULPs float64
	}
	wide := func() (float64, float64) { return (r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(12)-4)), 0 }
	pos := func() (float64, float64) { return r.Float64() * math.Pow(10, float64(r.IntN(30)-15)), 0 }
	unit := func() (float64, float64) { return r.Float64()*2 - 1, 0 }
	trig := func() (float64, float64) { return (r.Float64() - 0.5) * 2000, 0 }
	fns := []fn{
		{"sqrt", func(x, _ float64) float64 { return math.Sqrt(x) }, pos, 0},
		{"cbrt", func(x, _ float64) float64 { return math.Cbrt(x) }, wide, 2},
		{"exp", func(x, _ float64) float64 { return math.Exp(x) }, func() (float64, float64) { return (r.Float64() - 0.5) * 1400, 0 }, 2},
		{"exp2", func(x, _ float64) float64 { return math.Exp2(x) }, func() (float64, float64) { return (r.Float64() - 0.5) * 2000, 0 }, 2},
		{"expm1", func(x, _ float64) float64 { return math.Expm1(x) }, func() (float64, float64) { return (r.Float64() - 0.5) * 2, 0 }, 3},
		{"log", func(x, _ float64) float64 { return math.Log(x) }, pos, 2},
		{"log2", func(x, _ float64) float64 { return math.Log2(x) }, pos, 2},
		{"log10", func(x, _ float64) float64 { return math.Log10(x) }, pos, 2},
		{"log1p", func(x, _ float64) float64 { return math.Log1p(x) }, func() (float64, float64) { return r.Float64()*3 - 0.9, 0 }, 3},
		{"sin", func(x, _ float64) float64 { return math.Sin(x) }, trig, 2},
		{"cos", func(x, _ float64) float64 { return math.Cos(x) }, trig, 2},
		{"tan", func(x, _ float64) float64 { return math.Tan(x) }, trig, 4},
		{"asin", func(x, _ float64) float64 { return math.Asin(x) }, unit, 3},
		{"acos", func(x, _ float64) float64 { return math.Acos(x) }, unit, 3},
		{"atan", func(x, _ float64) float64 { return math.Atan(x) }, wide, 2},
		{"sinh", func(x, _ float64) float64 { return math.Sinh(x) }, func() (float64, float64) { return (r.Float64() - 0.5) * 60, 0 }, 4},
		{"cosh", func(x, _ float64) float64 { return math.Cosh(x) }, func() (float64, float64) { return (r.Float64() - 0.5) * 60, 0 }, 4},
		{"tanh", func(x, _ float64) float64 { return math.Tanh(x) }, func() (float64, float64) { return (r.Float64() - 0.5) * 10, 0 }, 4},
		{"floor", func(x, _ float64) float64 { return math.Floor(x) }, wide, 0},
		{"ceil", func(x, _ float64) float64 { return math.Ceil(x) }, wide, 0},
		{"trunc", func(x, _ float64) float64 { return math.Trunc(x) }, wide, 0},
		{"round", func(x, _ float64) float64 { return math.Round(x) }, func() (float64, float64) { return float64(r.IntN(200)-100) / 2, 0 }, 0},
		{"atan2", math.Atan2, func() (float64, float64) { return r.Float64()*20 - 10, r.Float64()*20 - 10 }, 3},
		{"pow", math.Pow, func() (float64, float64) { return r.Float64() * 50, (r.Float64() - 0.5) * 40 }, 64},
		{"fmod", math.Mod, func() (float64, float64) { return (r.Float64() - 0.5) * 1e6, r.Float64()*50 + 0.001 }, 0},
		{"hypot", math.Hypot, func() (float64, float64) { return (r.Float64() - 0.5) * 1e3, (r.Float64() - 0.5) * 1e3 }, 2},
		{"ldexp", func(x, y float64) float64 { return math.Ldexp(x, int(y)) }, func() (float64, float64) { return r.Float64(), float64(r.IntN(2100) - 1050) }, 0},
	}
	var lines []string
	var want []float64
	var which []int
	for k, f := range fns {
		for i := 0; i < 200; i++ {
			x, y := f.domain()
			lines = append(lines, f.name+" "+f64bits(x)+" "+f64bits(y))
			want = append(want, f.ref(x, y))
			which = append(which, k)
		}
	}
	specials := []struct {
		name string
		x, y float64
		want float64
	}{
		{"log2", 8, 0, 3}, {"floor", math.Copysign(0, -1), 0, math.Copysign(0, -1)},
		{"pow", 2, 10, 1024}, {"pow", -2, 3, -8}, {"pow", -8, 1.0 / 3, math.NaN()},
		{"pow", 0, -1, math.Inf(1)}, {"exp", 1000, 0, math.Inf(1)}, {"log", 0, 0, math.Inf(-1)},
		{"log", -1, 0, math.NaN()}, {"sqrt", 2, 0, math.Sqrt2}, {"atan2", 0, -1, math.Pi},
		{"round", 2.5, 0, 3}, {"round", -2.5, 0, -3}, {"round", 0.49999999999999994, 0, 0},
		{"fmod", 5.5, 2, 1.5}, {"fmod", -5.5, 2, -1.5},
	}
	for _, s := range specials {
		lines = append(lines, s.name+" "+f64bits(s.x)+" "+f64bits(s.y))
		want = append(want, s.want)
		which = append(which, -1)
	}
	got := runDriver(t, driver(t, "math", config{}, false, "ukmath", "ukhex"), lines)
	worst := map[string]float64{}
	for i, g := range got {
		u, err := strconv.ParseUint(g, 16, 64)
		if err != nil {
			t.Fatalf("%s: %q", lines[i], g)
		}
		v := math.Float64frombits(u)
		limit := 0.0
		if which[i] >= 0 {
			limit = fns[which[i]].maxULPs
		}
		d := ulpDiff(v, want[i])
		name := strings.Fields(lines[i])[0]
		worst[name] = math.Max(worst[name], d)
		if d > limit {
			f := strings.Fields(lines[i])
			x, _ := strconv.ParseUint(f[1], 16, 64)
			y, _ := strconv.ParseUint(f[2], 16, 64)
			t.Errorf("%s(%v, %v) = %v, Go says %v (%.0f ulp > %.0f)", name,
				math.Float64frombits(x), math.Float64frombits(y), v, want[i], d, limit)
		}
	}
	t.Logf("largest error in ulp: %v", worst)
}

func TestSortAlgorithmsMatchGoSort(t *testing.T) {
	eachVariant(t, "uksort", func(t *testing.T, cfg config) {
		r := rand.New(rand.NewPCG(13, 14))
		var lines, want []string
		for _, algo := range []string{"merge", "heap", "insertion", "quick", "radix64", "radix32"} {
			for i := 0; i < 40; i++ {
				n := r.IntN(300)
				if i == 0 {
					n = 5000
				}
				spread := []int64{3, 1000, 1 << 62}[r.IntN(3)]
				v := make([]int64, n)
				for k := range v {
					v[k] = r.Int64N(spread) - spread/2
					if algo == "radix32" {
						v[k] = int64(uint32(v[k]))
					}
				}
				if i == 1 { // sorted and reversed inputs
					slices.Sort(v)
				} else if i == 2 {
					slices.Sort(v)
					slices.Reverse(v)
				}
				var in, out []string
				if algo == "radix64" {
					u := make([]uint64, n)
					for k := range v {
						u[k] = uint64(v[k])
						in = append(in, strconv.FormatUint(u[k], 10))
					}
					slices.Sort(u)
					for _, x := range u {
						out = append(out, strconv.FormatUint(x, 10))
					}
				} else {
					for _, x := range v {
						in = append(in, strconv.FormatInt(x, 10))
					}
					slices.Sort(v)
					for _, x := range v {
						out = append(out, strconv.FormatInt(x, 10))
					}
				}
				lines = append(lines, strings.TrimSpace(algo+" "+strings.Join(in, " ")))
				want = append(want, strings.Join(out, " "))
			}
		}
		got := runDriver(t, driver(t, "sort", cfg, false, "uksort", "ukhex"), lines)
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%.80s: sorted wrong", lines[i])
			}
		}
	})
}

func TestHashmapBehavesLikeAGoMap(t *testing.T) {
	eachVariant(t, "ukhashmap", func(t *testing.T, cfg config) {
		r := rand.New(rand.NewPCG(15, 16))
		model := map[string]int64{}
		var lines, want []string
		keys := make([]string, 300)
		for i := range keys {
			keys[i] = string(randBytes(r, r.IntN(20)))
		}
		for i := 0; i < 5000; i++ {
			k := keys[r.IntN(len(keys))]
			switch op := r.IntN(10); {
			case op < 4:
				v := r.Int64N(1000)
				lines = append(lines, fmt.Sprintf("p %s %d", hexField([]byte(k)), v))
				model[k] = v
				want = append(want, "0")
			case op < 5:
				d := r.Int64N(10)
				lines = append(lines, fmt.Sprintf("a %s %d", hexField([]byte(k)), d))
				model[k] += d
				want = append(want, strconv.FormatInt(model[k], 10))
			case op < 7:
				lines = append(lines, "g "+hexField([]byte(k)))
				if v, ok := model[k]; ok {
					want = append(want, strconv.FormatInt(v, 10))
				} else {
					want = append(want, "absent")
				}
			case op < 9:
				lines = append(lines, "d "+hexField([]byte(k)))
				if _, ok := model[k]; ok {
					want = append(want, "1")
				} else {
					want = append(want, "0")
				}
				delete(model, k)
			default:
				lines = append(lines, "i")
				var total, sum int64
				for k, v := range model {
					total += int64(len(k))
					sum += v
				}
				want = append(want, fmt.Sprintf("%d %d %d", len(model), total, sum))
			}
		}
		got := runDriver(t, driver(t, "hashmap", cfg, true, "ukhashmap", "ukhex"), lines)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("op %d %q: got %s want %s", i, lines[i], got[i], want[i])
			}
		}
	})
}

func TestBignumMatchesMathBig(t *testing.T) {
	eachVariant(t, "ukbignum", func(t *testing.T, cfg config) {
		r := rand.New(rand.NewPCG(17, 18))
		randDec := func(digits int) *big.Int {
			var sb strings.Builder
			sb.WriteByte(byte('1' + r.IntN(9)))
			for i := 1; i < digits; i++ {
				sb.WriteByte(byte('0' + r.IntN(10)))
			}
			if r.IntN(10) == 0 {
				return big.NewInt(0)
			}
			n, _ := new(big.Int).SetString(sb.String(), 10)
			return n
		}
		var lines, want []string
		for i := 0; i < 300; i++ {
			a, b := randDec(1+r.IntN(800)), randDec(1+r.IntN(800))
			switch i % 5 {
			case 0:
				lines = append(lines, fmt.Sprintf("add %s %s", a, b))
				want = append(want, new(big.Int).Add(a, b).String())
			case 1:
				lines = append(lines, fmt.Sprintf("sub %s %s", a, b))
				if a.Cmp(b) < 0 {
					want = append(want, "err")
				} else {
					want = append(want, new(big.Int).Sub(a, b).String())
				}
			case 2:
				lines = append(lines, fmt.Sprintf("mul %s %s", a, b))
				want = append(want, new(big.Int).Mul(a, b).String())
			case 3:
				e := int64(r.IntN(300))
				a = randDec(1 + r.IntN(30))
				lines = append(lines, fmt.Sprintf("pow %s %d", a, e))
				want = append(want, new(big.Int).Exp(a, big.NewInt(e), nil).String())
			default:
				m := int64(1 + r.IntN(1<<31))
				q, rem := new(big.Int).QuoRem(a, big.NewInt(m), new(big.Int))
				lines = append(lines, fmt.Sprintf("div %s %d", a, m))
				want = append(want, q.String()+" "+rem.String())
			}
		}
		got := runDriver(t, driver(t, "bignum", cfg, false, "ukbignum", "ukhex"), lines)
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%.60s...: got %.40s... want %.40s...", lines[i], got[i], want[i])
			}
		}
	})
}

func TestUTF8MatchesGoDecodingAndCaseMapping(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	// the letters ukutf8 maps, minus the ones with special rules
	var letters []rune
	for c := rune('A'); c <= 'z'; c++ {
		letters = append(letters, c)
	}
	for _, rg := range [][2]rune{{0xc0, 0xff}, {0x100, 0x17f}, {0x386, 0x38f}, {0x391, 0x3ce}, {0x400, 0x45f}} {
		for c := rg[0]; c <= rg[1]; c++ {
			switch c {
			case 0xd7, 0xdf, 0xf7, 0x130, 0x131, 0x138, 0x149, 0x17f, 0x387, 0x38b, 0x38d, 0x390, 0x3a2, 0x3b0:
				continue
			}
			letters = append(letters, c)
		}
	}
	var lines []string
	var inputs [][]byte
	for i := 0; i < 400; i++ {
		var b []byte
		if i%2 == 0 {
			for k := r.IntN(12); k > 0; k-- {
				b = utf8.AppendRune(b, letters[r.IntN(len(letters))])
			}
		} else {
			b = randBytes(r, r.IntN(12))
			if i%4 == 1 {
				for k := range b {
					b[k] = []byte{0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0xed, 0xa0, 0x80, 'a', 0xc0, 0xf5}[r.IntN(15)]
				}
			}
		}
		inputs = append(inputs, b)
		lines = append(lines, hexField(b))
	}
	got := runDriver(t, driver(t, "utf8", config{}, true, "ukutf8", "ukhex"), lines)
	for i, b := range inputs {
		f := strings.Fields(got[i])
		valid := "0"
		if utf8.Valid(b) {
			valid = "1"
		}
		if f[0] != strconv.Itoa(utf8.RuneCount(b)) || f[1] != valid {
			t.Errorf("%x: count/valid %s %s, Go %d %s", b, f[0], f[1], utf8.RuneCount(b), valid)
		}
		cp, size := utf8.DecodeRune(b)
		wantLen := strconv.Itoa(size)
		if len(b) == 0 {
			wantLen, cp = "0", 0
		} else if cp == utf8.RuneError && size <= 1 {
			wantLen = "-1"
		}
		if f[5] != wantLen || f[6] != strconv.Itoa(int(cp)) {
			t.Errorf("%x: first decode %s %s, Go %s %d", b, f[5], f[6], wantLen, cp)
		}
		valid8 := []byte(strings.ToValidUTF8(string(b), "\uFFFD"))
		var rev []rune
		for _, c := range string(b) {
			rev = append([]rune{c}, rev...)
		}
		if f[4] != hexField([]byte(string(rev))) {
			t.Errorf("%x: reversed %s, want %x", b, f[4], string(rev))
		}
		if i%2 == 0 {
			if up := strings.Map(unicode.ToUpper, string(valid8)); f[2] != hexField([]byte(up)) {
				t.Errorf("%q: upper %s, Go %q", b, f[2], up)
			}
			if lo := strings.Map(unicode.ToLower, string(valid8)); f[3] != hexField([]byte(lo)) {
				t.Errorf("%q: lower %s, Go %q", b, f[3], lo)
			}
		}
	}
}

// lcgMatrix mirrors the drivers' and matmul's generator.
func TestMatrixProductsDeterminantsAndInversesHold(t *testing.T) {
	eachVariant(t, "ukmatrix", func(t *testing.T, cfg config) {
		var lines []string
		type req struct {
			op   string
			n    int
			seed uint32
		}
		var reqs []req
		for i, n := range []int{1, 2, 3, 7, 8, 9, 31, 33, 50} {
			for _, op := range []string{"mul", "det", "inv"} {
				reqs = append(reqs, req{op, n, uint32(100 + i)})
				lines = append(lines, fmt.Sprintf("%s %d %d", op, n, 100+i))
			}
		}
		got := runDriver(t, driver(t, "matrix", cfg, false, "ukmatrix", "ukhex"), lines)
		for i, q := range reqs {
			a, b := reference.LCGMatrix(q.n, q.seed)
			switch q.op {
			case "mul":
				var want []string
				for r := 0; r < q.n; r++ {
					for c := 0; c < q.n; c++ {
						s := 0.0
						for k := 0; k < q.n; k++ {
							s += a[r][k] * b[k][c]
						}
						want = append(want, strconv.FormatInt(int64(s), 10))
					}
				}
				if got[i] != strings.Join(want, " ") {
					t.Errorf("mul %d: product differs", q.n)
				}
			case "det":
				u, _ := strconv.ParseUint(got[i], 16, 64)
				d := math.Float64frombits(u)
				want := reference.Det(a)
				if math.Abs(d-want) > 1e-9*math.Max(1, math.Abs(want)) {
					t.Errorf("det %d: %v, want %v", q.n, d, want)
				}
			case "inv":
				if got[i] == "singular" {
					if reference.Det(a) != 0 {
						t.Errorf("inv %d: called singular, det %v", q.n, reference.Det(a))
					}
					continue
				}
				u, _ := strconv.ParseUint(got[i], 16, 64)
				if e := math.Float64frombits(u); e > 1e-9 {
					t.Errorf("inv %d: |A inv(A) - I| = %v", q.n, e)
				}
			}
		}
	})
}
