package runtimetest

import (
	"fmt"
	"testing"
)

// Every set runs its own cases (the seed is the set's index), so the
// variants between them see many more inputs than one set would.

func TestPrintfFormatsLikeGlibc(t *testing.T) {
	forEachSet(t, func(t *testing.T, i int, exe string) {
		runDriver(t, exe, "printf", fmt.Sprint(1000+i), "30000")
	})
}

func TestStrtodRoundsCorrectlyLikeGlibc(t *testing.T) {
	forEachSet(t, func(t *testing.T, i int, exe string) {
		runDriver(t, exe, "strtod", fmt.Sprint(2000+i), "20000")
	})
}

func TestStrtolFamilyMatchesGlibcIncludingOverflowAndEnd(t *testing.T) {
	forEachSet(t, func(t *testing.T, i int, exe string) {
		runDriver(t, exe, "strtol", fmt.Sprint(3000+i), "20000")
	})
}

func TestSscanfMatchesGlibc(t *testing.T) {
	forEachSet(t, func(t *testing.T, i int, exe string) {
		runDriver(t, exe, "sscanf")
	})
}

func TestMemoryStringCtypeAndTimeFunctionsMatchGlibc(t *testing.T) {
	forEachSet(t, func(t *testing.T, i int, exe string) {
		runDriver(t, exe, "string", fmt.Sprint(4000+i), "5000")
	})
}

func TestQsortSortsEveryInputPatternAndBsearchFinds(t *testing.T) {
	forEachSet(t, func(t *testing.T, i int, exe string) {
		runDriver(t, exe, "qsort", fmt.Sprint(5000+i), "300")
	})
}

func TestLongjmpReturnsToSetjmpWithItsValue(t *testing.T) {
	forEachSet(t, func(t *testing.T, i int, exe string) {
		runDriver(t, exe, "setjmp")
	})
}
