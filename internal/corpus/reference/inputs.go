package reference

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// words is the vocabulary drawn inputs are made of: plain ASCII, no
// character a shell-style command-line split would change.
var words = strings.Fields(`alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike
november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu request payload
invoice order user session token cart image render queue event metric sensor record batch stream
running singing ringing color colour colr abcd cdab call now 42 7 365 2048 99 1234`)

func text(r *rand.Rand, lo, hi int) string {
	n := lo + r.IntN(hi-lo+1)
	w := make([]string, n)
	for i := range w {
		w[i] = words[r.IntN(len(words))]
	}
	return strings.Join(w, " ")
}

// generators draw one request for an app; every app here has a reference.
var generators = map[string]func(r *rand.Rand) string{
	"hello":  func(r *rand.Rand) string { return fmt.Sprintf("%s-%d", words[r.IntN(len(words))], r.IntN(1e6)) },
	"sha256": func(r *rand.Rand) string { return text(r, 2, 12) + fmt.Sprintf(" %d", r.IntN(1e9)) },
	"digest": func(r *rand.Rand) string {
		algo := []string{"md5", "sha1", "sha256", "crc32c", "hmac-" + words[r.IntN(len(words))]}[r.IntN(5)]
		return algo + " " + text(r, 1, 10) + fmt.Sprintf(" %d", r.IntN(1e9))
	},
	"crc32":     func(r *rand.Rand) string { return text(r, 1, 10) + fmt.Sprintf(" %d", r.IntN(1e9)) },
	"base64":    func(r *rand.Rand) string { return text(r, 1, 10) + fmt.Sprintf(" %d", r.IntN(1e9)) },
	"primes":    func(r *rand.Rand) string { return fmt.Sprint(100 + r.IntN(300000)) },
	"wordcount": func(r *rand.Rand) string { return text(r, 5, 40) },
	"regex": func(r *rand.Rand) string {
		pat := []string{"[a-z]+ing", "[0-9]{2,3}", "colou?r", "(ab|cd)+"}[r.IntN(4)]
		return pat + " " + text(r, 3, 15)
	},
	"bignum": func(r *rand.Rand) string {
		digits := func() string {
			d := []byte{byte('1' + r.IntN(9))}
			for n := 5 + r.IntN(35); len(d) < n; {
				d = append(d, byte('0'+r.IntN(10)))
			}
			return string(d)
		}
		switch r.IntN(4) {
		case 0:
			return fmt.Sprintf("fact %d", 20+r.IntN(980))
		case 1:
			return fmt.Sprintf("fib %d", 50+r.IntN(2950))
		case 2:
			return fmt.Sprintf("pow %d %d", 2+r.IntN(98), 10+r.IntN(790))
		}
		return "mul " + digits() + " " + digits()
	},
	"utf8": func(r *rand.Rand) string { return text(r, 1, 12) },
	"sort": func(r *rand.Rand) string {
		algo := []string{"merge", "heap", "quick", "radix", "insertion"}[r.IntN(5)]
		n := 1000 + r.IntN(99000)
		if algo == "insertion" {
			n = 100 + r.IntN(2900)
		}
		return fmt.Sprintf("%s %d %d", algo, n, 1+r.IntN(1e9))
	},
	"matmul": func(r *rand.Rand) string { return fmt.Sprintf("%d %d", 3+r.IntN(62), 1+r.IntN(1e6)) },
}

// Input draws a request for app and computes the line the app prints for
// it. ok is false for an app without a reference (its app.json cases are
// all there is to run it with).
func Input(app string, r *rand.Rand) (input, expect string, ok bool) {
	gen, ok := generators[app]
	ref := Apps[app]
	if !ok || ref == nil {
		return "", "", false
	}
	input = gen(r)
	return input, ref(input), true
}

// Has tells whether app has a reference and a generator.
func Has(app string) bool { return generators[app] != nil && Apps[app] != nil }
