package corpus

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// BaseCflags are the flags every guest source is compiled with
// (docs/formats.md, "Guest sources"); lib.json cflags and variant defines
// come after them.
var BaseCflags = []string{
	"-O2", "-ffreestanding", "-nostdlib", "-fpie", "-mno-red-zone",
	"-ffunction-sections", "-fdata-sections", "-fstack-protector-strong", "-fno-plt",
}

// asmFlags are added for .S/.s files only: an assembly file without a
// .note.GNU-stack section would make the final link ask for an executable
// stack.
var asmFlags = []string{"-Wa,--noexecstack"}

// prefixGuest and prefixGen are what the source tree and the generated
// files' folder are called inside objects (-ffile-prefix-map), so an
// object does not depend on where the cache lives.
const (
	prefixGuest = "guest"
	prefixGen   = "gen"
)

// toolchain is the gcc and binutils the objects are built with.
type toolchain struct {
	gcc, ld, objcopy string
	// identity is the tools' version text: it keys the cache, since
	// another compiler makes other objects from the same sources.
	identity string
}

func findToolchain(ctx context.Context) (*toolchain, error) {
	tc := &toolchain{}
	var ident strings.Builder
	for _, t := range []struct {
		name string
		dst  *string
		pkg  string
	}{{"gcc", &tc.gcc, "gcc"}, {"ld", &tc.ld, "binutils"}, {"objcopy", &tc.objcopy, "binutils"}} {
		p, err := exec.LookPath(t.name)
		if err != nil {
			return nil, fmt.Errorf("%s not found (install the Debian package %s; scripts/deps.sh does): %w", t.name, t.pkg, err)
		}
		*t.dst = p
		out, err := exec.CommandContext(ctx, p, "--version").Output()
		if err != nil {
			return nil, fmt.Errorf("%s --version: %w", p, err)
		}
		first, _, _ := strings.Cut(string(out), "\n")
		fmt.Fprintf(&ident, "%s: %s\n", t.name, first)
	}
	out, err := exec.CommandContext(ctx, tc.gcc, "-dumpmachine").Output()
	if err != nil {
		return nil, fmt.Errorf("gcc -dumpmachine: %w", err)
	}
	machine := strings.TrimSpace(string(out))
	if !strings.HasPrefix(machine, "x86_64-") {
		return nil, fmt.Errorf("gcc targets %s; the guest is x86-64 only", machine)
	}
	fmt.Fprintf(&ident, "target: %s\n", machine)
	tc.identity = ident.String()
	return tc, nil
}

// toolError is a tool that failed: its command line and what it said.
type toolError struct {
	tool   string
	args   []string
	err    error
	output string
}

func (e *toolError) Error() string {
	return fmt.Sprintf("%s %s: %v\n%s", e.tool, strings.Join(e.args, " "), e.err, e.output)
}

func (e *toolError) Unwrap() error { return e.err }

// run runs one tool; its error carries the tool's own message.
func run(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stderr = &out
	cmd.Stdout = &out
	// Fixed locale: messages (and nothing else) would vary with it.
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 4000 {
			msg = msg[:4000] + "\n..."
		}
		return &toolError{tool: filepath.Base(name), args: args, err: err, output: msg}
	}
	return nil
}

// compileSpec is what one compile step needs.
type compileSpec struct {
	srcRoot  string   // the extracted guest tree, "" if not used
	genDir   string   // where generated sources live, "" if none
	includes []string // absolute include dirs
	cflags   []string // lib.json/app.json cflags
	defines  []string // variant defines
}

func (tc *toolchain) compileArgs(s compileSpec, src, out string) []string {
	args := append([]string{"-pipe"}, BaseCflags...)
	args = append(args, s.cflags...)
	for _, d := range s.defines {
		args = append(args, "-D"+d)
	}
	for _, inc := range s.includes {
		args = append(args, "-I"+inc)
	}
	if s.srcRoot != "" {
		args = append(args, "-ffile-prefix-map="+s.srcRoot+"="+prefixGuest)
	}
	if s.genDir != "" {
		args = append(args, "-ffile-prefix-map="+s.genDir+"="+prefixGen)
	}
	if ext := filepath.Ext(src); ext == ".S" || ext == ".s" {
		args = append(args, asmFlags...)
	}
	return append(args, "-c", src, "-o", out)
}

// compileError says which source failed and what gcc said, with the
// scratch paths shown as the guest tree's own (guest/lib/..., gen/...).
func (s compileSpec) compileError(src string, err error) error {
	var te *toolError
	if !errors.As(err, &te) {
		return err
	}
	var pairs []string
	if s.srcRoot != "" {
		pairs = append(pairs, s.srcRoot+"/", prefixGuest+"/")
	}
	if s.genDir != "" {
		pairs = append(pairs, s.genDir+"/", prefixGen+"/")
	}
	r := strings.NewReplacer(pairs...)
	return fmt.Errorf("gcc %s: %w\n%s", r.Replace(src), te.err, r.Replace(te.output))
}

// compile compiles sources (absolute paths) into work, one object each,
// named by position so equal base names never collide.
func (tc *toolchain) compile(ctx context.Context, s compileSpec, sources []string, work string) ([]string, error) {
	var objs []string
	for i, src := range sources {
		out := filepath.Join(work, fmt.Sprintf("%03d-%s.o", i, strings.TrimSuffix(filepath.Base(src), filepath.Ext(src))))
		if err := run(ctx, work, tc.gcc, tc.compileArgs(s, src, out)...); err != nil {
			return nil, s.compileError(src, err)
		}
		objs = append(objs, out)
	}
	return objs, nil
}

// partialLink is `ld -r`: objects first, then the archive, whose members
// are pulled only as far as the -u symbols and the objects need them.
func (tc *toolchain) partialLink(ctx context.Context, work, out string, objs []string, undefined []string, archive string) error {
	args := []string{"-r", "-o", out}
	for _, u := range undefined {
		args = append(args, "-u", u)
	}
	args = append(args, objs...)
	if archive != "" {
		args = append(args, archive)
	}
	return run(ctx, work, tc.ld, args...)
}

// localize keeps exports global and makes every other defined symbol
// local, as Unikraft does with exportsyms.uk: a library's boundary is its
// export list, and its internals cannot clash with another library's.
func (tc *toolchain) localize(ctx context.Context, work, in, out string, exports []string) error {
	if len(exports) == 0 {
		// objcopy fails without a word on an empty keep list.
		return run(ctx, work, tc.objcopy, "--wildcard", "--localize-symbol=*", in, out)
	}
	list := filepath.Join(work, "exports.txt")
	if err := os.WriteFile(list, []byte(strings.Join(exports, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	return run(ctx, work, tc.objcopy, "--keep-global-symbols="+list, in, out)
}

// checkOnlyExports is checkExports, and also refuses any other defined
// global symbol.
func checkOnlyExports(file string, exports []string) error {
	if err := checkExports(file, exports); err != nil {
		return err
	}
	defined, err := definedGlobals(file)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, e := range exports {
		want[e] = true
	}
	var extra []string
	for name := range defined {
		if !want[name] {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("defines global symbols it does not export: %s", strings.Join(extra, ", "))
	}
	return nil
}

func definedGlobals(file string) (map[string]bool, error) {
	f, err := elf.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, err
	}
	defined := map[string]bool{}
	for _, s := range syms {
		b := elf.ST_BIND(s.Info)
		if s.Section != elf.SHN_UNDEF && (b == elf.STB_GLOBAL || b == elf.STB_WEAK) {
			defined[s.Name] = true
		}
	}
	return defined, nil
}

// checkExports reports the exported symbols the object does not define:
// objcopy keeps a missing name quietly, and the link would fail far from
// the cause.
func checkExports(file string, exports []string) error {
	defined, err := definedGlobals(file)
	if err != nil {
		return err
	}
	var missing []string
	for _, e := range exports {
		if !defined[e] {
			missing = append(missing, e)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("exported but not defined: %s", strings.Join(missing, ", "))
	}
	return nil
}
