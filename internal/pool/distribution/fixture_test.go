package distribution

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// fixtureDir holds what tests build once per test binary: images and the
// CLI. TestMain removes it.
var fixtureDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "unipool-distribution-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtureDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

type fixture struct {
	hello, world, solo, big string // image paths
	bigLib                  testLib
}

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  string
)

// images builds the test images once: hello (app, libA, libB), world (app,
// libA, libB, libC), solo (an app alone, needing no map) and big (an app
// and libBig with a 6 MiB shared part, slow enough to kill mid-add).
func images(t testing.TB) fixture {
	t.Helper()
	for _, tool := range []string{"gcc", "ld", "objcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/deps.sh installs binutils and gcc): %v", tool, err)
		}
	}
	fixOnce.Do(func() {
		ft := &fatalRecorder{TB: t}
		func() {
			defer func() {
				if r := recover(); r != nil && r != errFatal {
					panic(r)
				}
			}()
			dir := filepath.Join(fixtureDir, "images")
			fix.hello = buildImage(ft, dir, "hello", []testLib{testApp("hello", "a_len(); b_sum(3);"), testLibA, testLibB})
			fix.world = buildImage(ft, dir, "world", []testLib{testApp("world", "a_len(); c_next();"), testLibA, testLibB, testLibC})
			fix.solo = buildImage(ft, dir, "solo", []testLib{testApp("solo", "")})
			fix.bigLib = testLib{name: "libBig", region: region(0x4010_0000, 0x1000, 0x800000, 0x1000),
				src: "int big_first(void) { return 1; }\n", incbin: randomFile(ft, dir, 6<<20)}
			fix.big = buildImage(ft, dir, "big", []testLib{testApp("big", "a_len();"), testLibA, fix.bigLib})
		}()
		fixErr = ft.msg
	})
	if fixErr != "" {
		t.Fatalf("building test images: %s", fixErr)
	}
	return fix
}

// newPool makes an empty pool directory whose map has every test library.
func newPool(t testing.TB) string {
	t.Helper()
	f := images(t)
	dir := filepath.Join(t.TempDir(), "pool")
	writeMap(t, dir, testLibA, testLibB, testLibC, f.bigLib)
	return dir
}

// fatalRecorder lets the once-only fixture builder fail without calling
// FailNow on whichever test happened to trigger it first, so every later
// test reports the same cause.
type fatalRecorder struct {
	testing.TB
	msg string
}

var errFatal = fmt.Errorf("fixture failed")

func (f *fatalRecorder) Fatal(args ...any) { f.msg = fmt.Sprint(args...); panic(errFatal) }
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(errFatal)
}
func (f *fatalRecorder) Helper() {}

var (
	cliOnce sync.Once
	cliPath string
	cliErr  string
)

// cli builds cmd/unipool once into the fixture directory.
func cli(t testing.TB) string {
	t.Helper()
	cliOnce.Do(func() {
		p := filepath.Join(fixtureDir, "unipool")
		out, err := exec.Command("go", "build", "-o", p, "github.com/unipool/unipool/cmd/unipool").CombinedOutput()
		if err != nil {
			cliErr = fmt.Sprintf("go build cmd/unipool: %v\n%s", err, out)
			return
		}
		cliPath = p
	})
	if cliErr != "" {
		t.Fatal(cliErr)
	}
	return cliPath
}
