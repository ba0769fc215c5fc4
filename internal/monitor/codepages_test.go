package monitor

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// written is in the executable's writable data (initialised), written by
// the test: a page of it that the process wrote is its own, not the
// file's, and must stay resident.
var written = [3 << 12]byte{1}

// exeResident sums the Rss and Anonymous of this process's mappings of
// its own executable (KiB).
func exeResident(t *testing.T) (rss, anon int) {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if strings.Contains(fs[0], "-") && len(fs) >= 5 {
			in = len(fs) >= 6 && strings.Join(fs[5:], " ") == exe
			continue
		}
		if !in || len(fs) < 2 {
			continue
		}
		n, _ := strconv.Atoi(fs[1])
		switch fs[0] {
		case "Rss:":
			rss += n
		case "Anonymous:":
			anon += n
		}
	}
	return rss, anon
}

// Once a fleet is held, the monitor gives back the pages of its binary
// that are still the file's (code, read-only data, data it never wrote):
// a held thousand-unikernel fleet's monitor process kept ~13 MiB of them
// resident, two thirds of its PSS, for code only the start had run. What
// the process wrote stays its own.
func TestReturnCodePagesGivesBackTheBinarysFilePagesNotWhatItWrote(t *testing.T) {
	for i := range written {
		written[i] = byte(i)
	}
	rss, anon := exeResident(t)
	if rss-anon < 512 {
		t.Skipf("only %d KiB of the test binary's file pages are resident: nothing to measure", rss-anon)
	}
	if n := ReturnCodePages(); n == 0 {
		t.Fatal("ReturnCodePages paged out nothing")
	}
	rss2, anon2 := exeResident(t)
	t.Logf("the test binary's mappings: %d KiB resident (%d anonymous) before, %d (%d) after", rss, anon, rss2, anon2)
	if file, file2 := rss-anon, rss2-anon2; file2 > file/2 {
		t.Errorf("the binary's resident file pages: %d KiB before, %d KiB after ReturnCodePages, want at most half", file, file2)
	}
	if anon2 < anon {
		t.Errorf("the binary's written (anonymous) pages: %d KiB before, %d KiB after, want them kept", anon, anon2)
	}
	for i := range written {
		if written[i] != byte(i) {
			t.Fatalf("written[%d] = %d after ReturnCodePages, want %d", i, written[i], byte(i))
		}
	}
}
