package corpus

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

// minimalTree is the smallest tree LoadTree accepts; tests break one file.
func minimalTree() fstest.MapFS {
	f := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	return fstest.MapFS{
		"plat/lib.json":                f(`{"name": "ukplat", "core": true}`),
		"plat/exportsyms.uk":           f("_start\n"),
		"plat/start.S":                 f(""),
		"lib/libc/lib.json":            f(`{"name": "libc", "core": true}`),
		"lib/libc/exportsyms.uk":       f("strlen\n"),
		"lib/libc/include/string.h":    f(""),
		"lib/libc/s.c":                 f(""),
		"lib/ukalloc/lib.json":         f(`{"name": "ukalloc", "provides": "allocator"}`),
		"lib/ukalloc/exportsyms.uk":    f("malloc\n"),
		"lib/ukalloc/a.c":              f(""),
		"third_party/z/lib.json":       f(`{"name": "z", "origin": "zlib1g-dev", "archive": "/usr/lib/x86_64-linux-gnu/libz.a", "symbols": ["crc32"]}`),
		"apps/hello/app.json":          f(`{"name": "hello", "deps": ["z"], "cases": [{"input": "", "expect": "hi"}]}`),
		"apps/hello/main.c":            f(""),
		"apps/hello/hello_test.go":     f("package hello"),
		"apps/hello/include/hello.h":   f(""),
		"lib/libc/include/sys/types.h": f(""),
	}
}

func TestMinimalTreeLoads(t *testing.T) {
	tr, err := LoadTree(minimalTree())
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Libraries) != 4 || len(tr.Apps) != 1 {
		t.Fatalf("got %d libraries, %d apps", len(tr.Libraries), len(tr.Apps))
	}
	if got := tr.Apps[0].Exports; len(got) != 1 || got[0] != "main" {
		t.Errorf("an app without exportsyms.uk exports %v, want [main]", got)
	}
	for _, f := range tr.Apps[0].Files {
		if strings.HasSuffix(f, ".go") {
			t.Errorf("Go file %s counted as an app file", f)
		}
	}
	if z := tr.Libraries["z"]; z.Origin != "zlib1g-dev" || !z.ThirdParty() || z.Exports[0] != "crc32" {
		t.Errorf("third-party library: %+v", z)
	}
	if want := "apps/hello/include lib/libc/include"; strings.Join(tr.Includes, " ") != want {
		t.Errorf("includes %v, want %s", tr.Includes, want)
	}
	if got := tr.Libraries["libc"].Variants; len(got) != 1 || got[0].ID != DefaultVariant {
		t.Errorf("a library without variants has %v", got)
	}
}

func TestBadGuestFilesGiveErrorsNamingTheFile(t *testing.T) {
	cases := []struct {
		name, file, data, want string
	}{
		{"lib.json not JSON", "lib/libc/lib.json", `{"name": `, "lib/libc/lib.json"},
		{"lib.json unknown field", "lib/libc/lib.json", `{"name": "libc", "dep": ["x"]}`, `lib/libc/lib.json: json: unknown field "dep"`},
		{"lib.json bad name", "lib/libc/lib.json", `{"name": "../x"}`, "lib/libc/lib.json: invalid or missing name"},
		{"lib.json popularity", "lib/libc/lib.json", `{"name": "libc", "popularity": 2}`, "lib/libc/lib.json: popularity 2"},
		{"lib.json unknown dep", "lib/libc/lib.json", `{"name": "libc", "deps": ["nope"]}`, `lib/libc/lib.json: deps: no library "nope"`},
		{"lib.json duplicate variant", "lib/libc/lib.json", `{"name": "libc", "variants": [{"id": "a"}, {"id": "a"}]}`, `lib/libc/lib.json: variant "a" is listed twice`},
		{"lib.json bad define", "lib/libc/lib.json", `{"name": "libc", "variants": [{"id": "a", "defines": ["-o x"]}]}`, "lib/libc/lib.json: variant \"a\": define"},
		{"lib.json output flag", "lib/libc/lib.json", `{"name": "libc", "cflags": ["-o"]}`, "lib/libc/lib.json: cflags"},
		{"core allocator", "lib/ukalloc/lib.json", `{"name": "ukalloc", "core": true, "provides": "allocator"}`, "lib/ukalloc/lib.json: an allocator cannot be core"},
		{"duplicate library", "lib/other/lib.json", `{"name": "libc"}`, "lib/other/lib.json: library \"libc\" is also defined in lib/libc/lib.json"},
		{"exportsyms missing", "lib/new/lib.json", `{"name": "new"}`, "lib/new/exportsyms.uk"},
		{"exportsyms bad symbol", "lib/libc/exportsyms.uk", "strlen\nnot a symbol\n", "lib/libc/exportsyms.uk:2"},
		{"third-party half", "third_party/z/lib.json", `{"name": "z", "origin": "zlib1g-dev"}`, "third_party/z/lib.json: a third-party library needs"},
		{"third-party relative archive", "third_party/z/lib.json", `{"name": "z", "origin": "zlib1g-dev", "archive": "libz.a", "symbols": ["crc32"]}`, "third_party/z/lib.json: archive"},
		{"app.json no cases", "apps/hello/app.json", `{"name": "hello"}`, "apps/hello/app.json: no cases"},
		{"app.json two-line expect", "apps/hello/app.json", `{"name": "hello", "cases": [{"input": "", "expect": "a\nb"}]}`, "apps/hello/app.json: case 0"},
		{"app.json unknown dep", "apps/hello/app.json", `{"name": "hello", "deps": ["q"], "cases": [{"expect": "x"}]}`, `apps/hello/app.json: deps: no library "q"`},
		{"app.json trailing data", "apps/hello/app.json", `{"name": "hello", "cases": [{"expect": "x"}]} {}`, "apps/hello/app.json: trailing data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := minimalTree()
			fsys[c.file] = &fstest.MapFile{Data: []byte(c.data)}
			if c.name == "duplicate library" {
				fsys["lib/other/exportsyms.uk"] = &fstest.MapFile{Data: []byte("strlen\n")}
			}
			_, err := LoadTree(fsys)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestTreeWithoutAllocatorIsRejected(t *testing.T) {
	fsys := minimalTree()
	fsys["lib/ukalloc/lib.json"] = &fstest.MapFile{Data: []byte(`{"name": "ukalloc"}`)}
	if _, err := LoadTree(fsys); err == nil || !strings.Contains(err.Error(), "allocator") {
		t.Fatalf("error %v, want one about the missing allocator", err)
	}
}

func TestAppPullingTwoAllocatorsIsRejected(t *testing.T) {
	fsys := minimalTree()
	fsys["lib/ukalloc2/lib.json"] = &fstest.MapFile{Data: []byte(`{"name": "ukalloc2", "provides": "allocator"}`)}
	fsys["lib/ukalloc2/exportsyms.uk"] = &fstest.MapFile{Data: []byte("malloc\n")}
	fsys["apps/hello/app.json"] = &fstest.MapFile{Data: []byte(`{"name": "hello", "deps": ["ukalloc", "ukalloc2"], "cases": [{"expect": "x"}]}`)}
	tr, err := LoadTree(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plan(tr, 1, 1, ""); err == nil || !strings.Contains(err.Error(), "apps/hello/app.json") {
		t.Fatalf("error %v, want one naming apps/hello/app.json", err)
	}
}

func TestFixtureTreeLoads(t *testing.T) {
	tr, err := LoadTree(os.DirFS("testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Libraries["ukplat"].Sources; len(got) != 2 {
		t.Errorf("ukplat sources %v, want plat.c and start.S", got)
	}
}

func TestTestdataAndGoFilesAreNotGuestSources(t *testing.T) {
	for p, want := range map[string]bool{
		"lib/libc/string.c":                true,
		"lib/libc/include/sys/types.h":     true,
		"lib/libc/include/README":          true,
		"plat/lib.json":                    true,
		"apps/hello/app.json":              true,
		"apps/testdata/drivers/common.h":   false,
		"apps/hello/testdata/x/app.json":   false,
		"apps/hello/hello_test.go":         false,
		"lib/libc/.hidden.c":               false,
		"lib/libc/README.md":               false,
		"runtimetest/boot.c":               false,
		"embed.go":                         false,
		"third_party/zlib/lib.json":        true,
		"third_party/zlib/include/glue.go": false,
	} {
		if got := IsGuestFile(p); got != want {
			t.Errorf("IsGuestFile(%q) = %v, want %v", p, got, want)
		}
	}
	fsys := minimalTree()
	fsys["apps/testdata/x/app.json"] = &fstest.MapFile{Data: []byte(`not even JSON`)}
	fsys["apps/testdata/x/common.h"] = &fstest.MapFile{Data: []byte(``)}
	tr, err := LoadTree(fsys)
	if err != nil {
		t.Fatalf("a testdata folder was read as an app: %v", err)
	}
	for _, h := range tr.Headers {
		if strings.Contains(h, "testdata") {
			t.Errorf("header %s from testdata keys the build", h)
		}
	}
}
