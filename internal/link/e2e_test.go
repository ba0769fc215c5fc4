package link

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/testcli"
)

// buildCLI builds cmd/unipool into a temporary directory.
func buildCLI(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain to build the CLI")
	}
	return testcli.Build(t)
}

type runResult struct {
	ExitCode int    `json:"exit_code"`
	Output   string `json:"output"`
	Error    string `json:"error"`
}

// cli runs the CLI and returns stdout; a non-zero exit fails the test
// unless allowFail.
func cli(t *testing.T, bin string, allowFail bool, args ...string) string {
	t.Helper()
	out, errb, code := testcli.Run(t, testcli.Limit, nil, bin, args...)
	if code != 0 && !allowFail {
		t.Fatalf("unipool %s: exit status %d\n%s%s", strings.Join(args, " "), code, out, errb)
	}
	return out
}

func runJSON(t *testing.T, bin string, args ...string) runResult {
	t.Helper()
	out := cli(t, bin, true, append([]string{"run", "--json", "--timeout", "20s"}, args...)...)
	var rs []runResult
	if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) != 1 {
		t.Fatalf("unipool run %v: output %q: %v", args, out, err)
	}
	return rs[0]
}

// Aligned images behave exactly like packed and dce ones: the same
// objects, run by the process monitor, print the same and exit the same,
// also with every library at a random base (--aslr). The objects include
// Debian's zlib (ld -r of libz.a members, PIE code).
func TestAlignedImagesRunLikePackedOnes(t *testing.T) {
	needToolchain(t)
	const libz = "/usr/lib/x86_64-linux-gnu/libz.a"
	if _, err := os.Stat(libz); err != nil {
		t.Skipf("%s missing (zlib1g-dev): %v", libz, err)
	}
	bin := buildCLI(t)
	dir := t.TempDir()
	g := buildGuest(t, dir)
	zlib := filepath.Join(dir, "libzlib.o")
	run(t, dir, "ld", "-r", "-u", "crc32", "-o", zlib, libz)
	app := buildLib(t, filepath.Join(dir), "appcrc", `
extern void put_hex(unsigned long);
extern int puts(const char *);
extern unsigned long crc32(unsigned long, const unsigned char *, unsigned);
extern const char *libc_names[];
int main(void) {
	puts(libc_names[1]);
	put_hex(crc32(0, (const unsigned char *)"unipool", 7));
	return 3;
}
`)
	// A library nothing calls: its pages are the aligned image's dead
	// pages, which a copying load leaves out.
	dead := buildLib(t, dir, "ukdead", srcDead)
	objs := []string{g.plat, g.boot, g.libc, g.rand, g.alloc, zlib, dead, app}
	pool := filepath.Join(dir, "pool")

	var want runResult
	for i, layout := range []string{"packed", "dce"} {
		img := filepath.Join(dir, "crc."+layout)
		cli(t, bin, false, append([]string{"link", "--layout", layout, "-o", img, "--lib", "zlib=1.2.13:zlib1g-dev"}, objs...)...)
		carriesNoRelocations(t, img)
		got := runJSON(t, bin, "--image", img)
		if got.Error != "" && strings.Contains(got.Error, "ptrace") {
			t.Skipf("the process monitor cannot run here: %s", got.Error)
		}
		if i == 0 {
			want = got
			// crc32("unipool"), computed by Debian's zlib in the guest.
			if want.ExitCode != 3 || want.Output != "one\n"+fmt.Sprintf("%x\n", crc32.ChecksumIEEE([]byte("unipool"))) {
				t.Fatalf("packed image: %+v", want)
			}
		} else if got != want {
			t.Errorf("%s image: %+v, packed: %+v", layout, got, want)
		}
	}
	img := filepath.Join(dir, "crc")
	cli(t, bin, false, append([]string{"link", "--layout", "aligned", "--pool", pool, "-o", img, "--lib", "zlib=1.2.13:zlib1g-dev"}, objs...)...)
	carriesNoRelocations(t, img)
	insp := cli(t, bin, false, "inspect", img)
	if !strings.Contains(insp, "zlib") || !strings.Contains(insp, "appcrc (app)") {
		t.Errorf("inspect output:\n%s", insp)
	}
	if m := regexp.MustCompile(`copying load: (\d+) of (\d+) non-zero pages \((\d+) dead`).FindStringSubmatch(insp); m == nil || m[3] == "0" {
		t.Errorf("inspect does not report dead pages of the aligned image:\n%s", insp)
	}
	// Run as a plain image by a copying load (the KSM baselines' load),
	// its dead pages left out.
	for _, extra := range [][]string{nil, {"--load", "naive"}} {
		if got := runJSON(t, bin, append([]string{"--image", img}, extra...)...); got != want {
			t.Errorf("aligned image copied %v: %+v, packed: %+v", extra, got, want)
		}
	}
	if out := cli(t, bin, false, "map", "show", "--pool", pool); !strings.Contains(out, "1.2.13") {
		t.Errorf("map show does not list zlib 1.2.13:\n%s", out)
	}
	cli(t, bin, false, "pool", "add", "--pool", pool, img)
	for _, extra := range [][]string{nil, {"--aslr"}} {
		got := runJSON(t, bin, append([]string{"--pool", pool, "crc"}, extra...)...)
		if got != want {
			t.Errorf("aligned image %v: %+v, packed: %+v", extra, got, want)
		}
	}
}

// carriesNoRelocations fails t if the finished image at path still has a
// relocation section (dropRelocations): nothing reads them after the
// link, and every section header costs whoever parses the image.
func carriesNoRelocations(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, s := range f.Sections {
		if s.Type == elf.SHT_RELA || s.Type == elf.SHT_REL {
			t.Errorf("%s: relocation section %s left in the finished image", path, s.Name)
		}
	}
}
