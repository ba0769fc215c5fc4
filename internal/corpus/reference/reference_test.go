package reference

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestEveryGeneratorHasAReference(t *testing.T) {
	for app := range generators {
		if Apps[app] == nil {
			t.Errorf("%s: inputs drawn, no reference to compute their line", app)
		}
	}
}

func TestDrawnInputsAreDistinctAndSurviveACommandLineSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for app := range generators {
		seen := map[string]bool{}
		for i := 0; i < 50; i++ {
			in, expect, ok := Input(app, r)
			if !ok || expect == "" || strings.ContainsAny(expect, "\n\x00") {
				t.Fatalf("%s: %q -> %q", app, in, expect)
			}
			if strings.Join(strings.Fields(in), " ") != in || strings.ContainsAny(in, "'\"\\\t") {
				t.Fatalf("%s: input %q changes when the boot command line is split", app, in)
			}
			seen[in] = true
		}
		if len(seen) < 45 {
			t.Errorf("%s: %d distinct inputs in 50 draws", app, len(seen))
		}
	}
}
