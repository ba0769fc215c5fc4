package distribution

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/pool"
)

// Helpers of package pool's tests that push and pull's tests use (copies:
// a test of package pool cannot import this package, nor this one see
// pool's test files).

// stagingDir, blobPerm and partialSuffix are pool's: where pull stages
// blobs, the mode of every blob, the suffix of a download under way.
const (
	stagingDir    = ".pull"
	blobPerm      = 0o444
	partialSuffix = ".partial"
)

func mustAdd(t *testing.T, dir, image string, opt pool.AddOptions) *pool.AddResult {
	t.Helper()
	res, err := pool.Add(dir, image, opt)
	if err != nil {
		t.Fatalf("add %s: %v", image, err)
	}
	return res
}

func mustOpen(t *testing.T, dir string) *pool.Pool {
	t.Helper()
	p, err := pool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustVerify(t *testing.T, p *pool.Pool) {
	t.Helper()
	r, err := p.Verify()
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range r.Problems {
		t.Errorf("verify: %s", pr)
	}
}

func page(b byte) []byte { return bytes.Repeat([]byte{b}, desc.SnapshotPageSize) }

// unipool runs the CLI on a pool and returns its stdout, failing the test
// if it exits non-zero.
func unipool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := unipoolErr(t, dir, args...)
	if err != nil {
		t.Fatalf("unipool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func unipoolErr(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(cli(t), append([]string{"pool", "--pool", dir}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

const (
	helloLibA = `static const char greeting[] = "hello from uka";
int a_counter = 42;
int a_len(void) { int n = 0; while (greeting[n]) n++; return n + a_counter; }`
	helloLibB = `static const unsigned int table[64] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89};
int a_len(void);
unsigned int b_sum(int n) { unsigned s = a_len(); for (int i = 0; i < n && i < 64; i++) s += table[i]; return s; }`
	helloApp = `int a_len(void); unsigned int b_sum(int);
void _start(void) { volatile int x = a_len() + b_sum(3); (void)x; for (;;) __asm__ volatile("hlt"); }`
)

// compileObjects compiles each source of srcs (object name to C) into
// work/NAME as a library of the map is built.
func compileObjects(t *testing.T, work string, srcs map[string]string) {
	t.Helper()
	for obj, src := range srcs {
		c := filepath.Join(work, obj+".c")
		if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "gcc", "-c", "-O2", "-ffreestanding", "-nostdlib", "-fpie", "-mno-red-zone", "-ffunction-sections",
			"-fdata-sections", "-fno-plt", "-fno-stack-protector", "-o", filepath.Join(work, obj), c)
	}
}
