package pooltest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/unipool/unipool/internal/testcli"
)

// dir holds what tests build once per test binary: images and the CLI.
// Main makes it and removes it; each test binary has its own.
var dir string

// mapFile is the name of a pool's library map in its directory
// (pool.MapFile), given to Main: this package cannot import pool.
var mapFile string

// Main runs a test binary's tests (call it from TestMain) with a fixture
// directory of its own, named from prefix, removed when they are done.
// poolMapFile is pool.MapFile, where WriteMap and NewPool put a pool's map.
func Main(m *testing.M, prefix, poolMapFile string) {
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, mapFile = d, poolMapFile
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// Fixture is the test images Images builds.
type Fixture struct {
	Hello, World, Solo, Big string // image paths
	BigLib                  Lib
}

var (
	fixOnce sync.Once
	fix     Fixture
	fixErr  string
)

// Images builds the test images once: hello (app, libA, libB), world (app,
// libA, libB, libC), solo (an app alone, needing no map) and big (an app
// and libBig with a 6 MiB shared part, slow enough to kill mid-add). It
// skips t when gcc, ld or objcopy is missing.
func Images(t testing.TB) Fixture {
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
			imgs := filepath.Join(dir, "images")
			fix.Hello = BuildImage(ft, imgs, "hello", []Lib{App("hello", "a_len(); b_sum(3);"), LibA, LibB})
			fix.World = BuildImage(ft, imgs, "world", []Lib{App("world", "a_len(); c_next();"), LibA, LibB, LibC})
			fix.Solo = BuildImage(ft, imgs, "solo", []Lib{App("solo", "")})
			fix.BigLib = Lib{Name: "libBig", Region: Region(0x4010_0000, 0x1000, 0x800000, 0x1000),
				Src: "int big_first(void) { return 1; }\n", Incbin: RandomFile(ft, imgs, 6<<20)}
			fix.Big = BuildImage(ft, imgs, "big", []Lib{App("big", "a_len();"), LibA, fix.BigLib})
		}()
		fixErr = ft.msg
	})
	if fixErr != "" {
		t.Fatalf("building test images: %s", fixErr)
	}
	return fix
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

// CLI builds cmd/unipool (with unipool-vmm beside it, as `make build`
// installs them: testcli.BuildCLI) once into the fixture directory and
// returns its path.
func CLI(t testing.TB) string {
	t.Helper()
	cliOnce.Do(func() {
		p, err := testcli.BuildCLI(dir)
		if err != nil {
			cliErr = err.Error()
			return
		}
		cliPath = p
	})
	if cliErr != "" {
		t.Fatal(cliErr)
	}
	return cliPath
}

// Unipool runs the CLI on a pool and returns its stdout, failing the test
// if it exits non-zero.
func Unipool(t testing.TB, pool string, args ...string) string {
	t.Helper()
	out, err := UnipoolErr(t, pool, args...)
	if err != nil {
		t.Fatalf("unipool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// UnipoolErr runs the CLI on a pool and returns its combined output and
// error.
func UnipoolErr(t testing.TB, pool string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(CLI(t), append([]string{"pool", "--pool", pool}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The sources of hello's two libraries and its app, linked by the pool
// tests that need the real toolchain's output.
const (
	HelloLibA = `static const char greeting[] = "hello from uka";
int a_counter = 42;
int a_len(void) { int n = 0; while (greeting[n]) n++; return n + a_counter; }`
	HelloLibB = `static const unsigned int table[64] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89};
int a_len(void);
unsigned int b_sum(int n) { unsigned s = a_len(); for (int i = 0; i < n && i < 64; i++) s += table[i]; return s; }`
	HelloApp = `int a_len(void); unsigned int b_sum(int);
void _start(void) { volatile int x = a_len() + b_sum(3); (void)x; for (;;) __asm__ volatile("hlt"); }`
)

// CompileObjects compiles each source of srcs (object name to C) into
// work/NAME as a library of the map is built.
func CompileObjects(t testing.TB, work string, srcs map[string]string) {
	t.Helper()
	for obj, src := range srcs {
		c := filepath.Join(work, obj+".c")
		if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		Run(t, "gcc", "-c", "-O2", "-ffreestanding", "-nostdlib", "-fpie", "-mno-red-zone", "-ffunction-sections",
			"-fdata-sections", "-fno-plt", "-fno-stack-protector", "-o", filepath.Join(work, obj), c)
	}
}

// NewPool makes an empty pool directory whose map has every test library.
func NewPool(t testing.TB) string {
	t.Helper()
	f := Images(t)
	dir := filepath.Join(t.TempDir(), "pool")
	WriteMap(t, dir, LibA, LibB, LibC, f.BigLib)
	return dir
}
