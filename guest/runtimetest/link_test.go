package runtimetest

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// runtimeLibs are the libraries this package tests, by folder.
var runtimeLibs = []string{"plat", "lib/ukboot", "lib/libc", "lib/ukallocbuddy", "lib/ukalloctlsf",
	"lib/ukrand", "lib/uktime"}

func TestEveryExportIsDefinedInEveryVariant(t *testing.T) {
	for _, dir := range runtimeLibs {
		for _, v := range readLib(t, dir).Variants {
			obj := buildLib(t, work(t), dir, v.ID, true)
			exports := readExports(t, dir)
			defined := definedGlobals(t, obj)
			for _, e := range exports {
				if !defined[e] {
					t.Errorf("%s (variant %s): exportsyms.uk lists %s, which it does not define", dir, v.ID, e)
				}
			}
		}
	}
}

func readExports(t testing.TB, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(guestRoot, dir, "exportsyms.uk"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

func elfSymbols(t testing.TB, file string) []elf.Symbol {
	t.Helper()
	f, err := elf.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return syms
}

func definedGlobals(t testing.TB, file string) map[string]bool {
	t.Helper()
	m := map[string]bool{}
	for _, s := range elfSymbols(t, file) {
		b := elf.ST_BIND(s.Info)
		if s.Section != elf.SHN_UNDEF && (b == elf.STB_GLOBAL || b == elf.STB_WEAK) {
			m[s.Name] = true
		}
	}
	return m
}

// runtimeObjects are the localised guest objects of a unikernel's runtime
// with the given allocator (default variants).
func runtimeObjects(t testing.TB, alloc string) []string {
	t.Helper()
	var objs []string
	for _, dir := range []string{"plat", "lib/ukboot", "lib/libc", "lib/" + alloc, "lib/ukrand", "lib/uktime"} {
		v := readLib(t, dir).Variants[0].ID
		objs = append(objs, localize(t, work(t), dir, buildLib(t, work(t), dir, v, true)))
	}
	return objs
}

// compileApp compiles a testdata app with the guest's flags.
func compileApp(t testing.TB, name string) string {
	t.Helper()
	src, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(name, ".c")+".o")
	args := append(compileFlags(t, libJSON{}, nil), "-c", src, "-o", out)
	run(t, ".", "gcc", args...)
	return out
}

// linkImage links objects (and archives) into a static image the way a
// stock unikernel build does: GNU ld's default script, entry _start.
func linkImage(t testing.TB, out string, inputs ...string) ([]byte, error) {
	t.Helper()
	args := append([]string{"-static", "-nostdlib", "-e", "_start", "-o", out}, inputs...)
	return exec.Command("ld", args...).CombinedOutput()
}

func TestHelloImageLinksWithNothingUndefinedForEachAllocator(t *testing.T) {
	app := compileApp(t, "hello.c")
	for _, alloc := range []string{"ukallocbuddy", "ukalloctlsf"} {
		img := filepath.Join(t.TempDir(), "hello.elf")
		if out, err := linkImage(t, img, append([]string{app}, runtimeObjects(t, alloc)...)...); err != nil {
			t.Fatalf("with %s: ld: %v\n%s", alloc, err, out)
		}
		f, err := elf.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		var start uint64
		syms, _ := f.Symbols()
		for _, s := range syms {
			if s.Section == elf.SHN_UNDEF && s.Name != "" && elf.ST_BIND(s.Info) != elf.STB_WEAK {
				t.Errorf("with %s: %s is undefined in the image", alloc, s.Name)
			}
			if s.Name == "_start" {
				start = s.Value
			}
		}
		if f.Entry != start || start == 0 {
			t.Errorf("with %s: entry %#x, _start at %#x", alloc, f.Entry, start)
		}
		var text uint64
		for _, p := range f.Progs {
			if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 {
				text += p.Memsz
			}
		}
		f.Close()
		t.Logf("hello with %s: %d bytes of code", alloc, text)
	}
}

func TestLinkingTwoAllocatorsFailsNamingTheDuplicateSymbol(t *testing.T) {
	app := compileApp(t, "hello.c")
	objs := append([]string{app}, runtimeObjects(t, "ukallocbuddy")...)
	tlsf := localize(t, work(t), "lib/ukalloctlsf", buildLib(t, work(t), "lib/ukalloctlsf", "sl32", true))
	out, err := linkImage(t, filepath.Join(t.TempDir(), "bad.elf"), append(objs, tlsf)...)
	if err == nil {
		t.Fatal("ld linked two allocators into one image")
	}
	if !strings.Contains(string(out), "multiple definition of `uk_alloc_malloc'") {
		t.Fatalf("ld's message does not name the duplicate symbol:\n%s", out)
	}
}

// debianArchives are the static libraries of the Debian packages
// scripts/deps.sh installs.
var debianArchives = map[string]string{
	"zlib1g-dev":  "/usr/lib/x86_64-linux-gnu/libz.a",
	"liblz4-dev":  "/usr/lib/x86_64-linux-gnu/liblz4.a",
	"libzstd-dev": "/usr/lib/x86_64-linux-gnu/libzstd.a",
	"libyaml-dev": "/usr/lib/x86_64-linux-gnu/libyaml.a",
}

func archivesImage(t testing.TB) string {
	t.Helper()
	inputs := append([]string{compileApp(t, "archives.c")}, runtimeObjects(t, "ukalloctlsf")...)
	for pkg, a := range debianArchives {
		if _, err := os.Stat(a); err != nil {
			t.Fatalf("%s missing (Debian package %s; scripts/deps.sh installs it): %v", a, pkg, err)
		}
	}
	inputs = append(inputs, debianArchives["zlib1g-dev"], debianArchives["liblz4-dev"],
		debianArchives["libzstd-dev"], debianArchives["libyaml-dev"])
	img := filepath.Join(t.TempDir(), "archives.elf")
	if out, err := linkImage(t, img, inputs...); err != nil {
		t.Fatalf("ld: %v\n%s", err, out)
	}
	return img
}

func TestDebianArchivesFindEverythingTheyCallInTheGuestLibc(t *testing.T) {
	archivesImage(t)
}

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// unipoolCLI builds cmd/unipool once for the tests that run images.
func unipoolCLI(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		cliPath = filepath.Join(work(t), "unipool")
		out, err := exec.Command("go", "build", "-o", cliPath, "github.com/unipool/unipool/cmd/unipool").CombinedOutput()
		if err != nil {
			cliErr = fmt.Errorf("go build cmd/unipool: %v\n%s", err, out)
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

type runResult struct {
	ExitCode int    `json:"exit_code"`
	Output   string `json:"output"`
	Error    string `json:"error"`
}

// runImage runs a plain image once under the process monitor.
func runImage(t *testing.T, img, cmdline string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unipoolCLI(t), "run", "--monitor", "process", "--json",
		"--timeout", "30s", "--seed", "7", "--cmdline", cmdline, "--image", img)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run() // non-zero whenever the guest's exit code is: judged below
	var res []runResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || len(res) != 1 {
		t.Fatalf("unipool run %s: no result (%v)\nstdout:\n%s\nstderr:\n%s", img, err, stdout.String(), stderr.String())
	}
	if res[0].Error != "" {
		t.Fatalf("unipool run %s: %s\noutput:\n%s", img, res[0].Error, res[0].Output)
	}
	return res[0]
}

func TestHelloRunsUnderTheProcessMonitorWithEachAllocator(t *testing.T) {
	app := compileApp(t, "hello.c")
	for _, alloc := range []string{"ukallocbuddy", "ukalloctlsf"} {
		img := filepath.Join(t.TempDir(), "hello.elf")
		if out, err := linkImage(t, img, append([]string{app}, runtimeObjects(t, alloc)...)...); err != nil {
			t.Fatalf("ld: %v\n%s", err, out)
		}
		res := runImage(t, img, `one "two three" four`)
		want := "hello argc=4 [one] [two three] [four] ctor=1 pi=3.14159 e=2.71828e+10\n" +
			"heap 2080000 random ok clock ok\nto stderr\n"
		if res.Output != want || res.ExitCode != 4 {
			t.Errorf("with %s: exit %d, output:\n%s\nwant exit 4, output:\n%s", alloc, res.ExitCode, res.Output, want)
		}
	}
}

func TestDebianArchivesRunInTheGuest(t *testing.T) {
	res := runImage(t, archivesImage(t), "")
	// 24 events: stream, document, 3 mappings and 2 sequences (start and
	// end each), 10 scalars.
	for _, want := range []string{"zlib ok", "gzopen none", "lz4 ok", "zstd ok", "yaml ok 24 events"} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("output lacks %q:\n%s", want, res.Output)
		}
	}
	if res.ExitCode != 0 {
		t.Errorf("exit code %d", res.ExitCode)
	}
}

// runtimeImage links a testdata app with the runtime (TLSF allocator).
func runtimeImage(t *testing.T, app string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), strings.TrimSuffix(app, ".c")+".elf")
	if out, err := linkImage(t, img, append([]string{compileApp(t, app)}, runtimeObjects(t, "ukalloctlsf")...)...); err != nil {
		t.Fatalf("ld: %v\n%s", err, out)
	}
	return img
}

func TestThreadLocalVariablesStartFromTheTemplateInTheGuest(t *testing.T) {
	res := runImage(t, runtimeImage(t, "tls.c"), "")
	want := "tls counter=6 big0=0 big99=x aligned=77 aligned-ok=1\n"
	if res.Output != want || res.ExitCode != 0 {
		t.Fatalf("exit %d, output %q; want exit 0, %q", res.ExitCode, res.Output, want)
	}
}

func TestFailuresInTheGuestExitWithTheirCodesAndMessages(t *testing.T) {
	img := runtimeImage(t, "faults.c")
	for _, c := range []struct {
		cmdline, want string
		code          int
	}{
		{"smash " + strings.Repeat("A", 40), "*** stack smashing detected ***: terminated", 134},
		{"smash short", "survived", 0},
		{"assert", "faults.c:25: main: Assertion `argc == 0' failed.", 134},
		{"abort", "mode abort", 134},
		{"exit 7", "mode exit\nunterminated line", 7},
	} {
		res := runImage(t, img, c.cmdline)
		if res.ExitCode != c.code || !strings.Contains(res.Output, c.want) {
			t.Errorf("%q: exit %d, output:\n%s\nwant exit %d and %q", c.cmdline, res.ExitCode, res.Output, c.code, c.want)
		}
	}
}
