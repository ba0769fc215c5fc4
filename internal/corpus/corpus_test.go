package corpus

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const validCorpus = `{
  "seed": 1,
  "count": 1,
  "unikernels": [
    {
      "name": "hello-0000",
      "app": "hello",
      "input": "",
      "expect": "hello",
      "libraries": [
        {"name": "ukplat", "version": "default", "origin": "unipool", "object": "hello-0000/libukplat.o",
         "sha256": "6519eb8894aabe76f429642164d3acec86feea81cb3247097358f7dcce4b4e1a"},
        {"name": "zlib", "version": "default", "origin": "zlib1g-dev", "object": "hello-0000/libzlib.o",
         "sha256": "4f6803aa0b08a47c1a09fed32420be6e572bc60fd0a2477435b0e2b28107a510"},
        {"name": "hello", "version": "default", "origin": "app", "object": "hello-0000/app-hello.o",
         "sha256": "174f00498dfabc95ed83cdd434d161f2f0a6f471435349c3816ac9c7189fc324"}
      ]
    }
  ]
}`

func TestValidCorpusParses(t *testing.T) {
	c, err := Parse([]byte(validCorpus))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Unikernels) != 1 || len(c.Unikernels[0].Libraries) != 3 {
		t.Fatalf("parsed %+v", c)
	}
}

func TestBadCorpusJSONIsRejected(t *testing.T) {
	cases := []struct{ name, from, to, want string }{
		{"not JSON", `"seed": 1`, `"seed": `, "invalid character"},
		{"unknown field", `"seed": 1`, `"seed": 1, "extra": 2`, `unknown field "extra"`},
		{"count mismatch", `"count": 1`, `"count": 2`, "count is 2"},
		{"absolute object", `"hello-0000/libukplat.o"`, `"/etc/passwd.o"`, "not a relative slash path"},
		{"escaping object", `"hello-0000/libukplat.o"`, `"../x/libukplat.o"`, "leaves the corpus folder"},
		{"unclean object", `"hello-0000/libukplat.o"`, `"hello-0000/./libukplat.o"`, "not clean"},
		{"not an object", `"hello-0000/libukplat.o"`, `"hello-0000/libukplat.so"`, "does not name a .o file"},
		{"bad sha256", `"6519eb8894aabe76`, `"6519EB8894AABE76`, "not 64 lower-case hex"},
		{"app not last", `"origin": "app"`, `"origin": "unipool"`, "last library must be the app"},
		{"app mismatch", `"app": "hello"`, `"app": "other"`, "is not the unikernel's app"},
		{"bad origin", `"origin": "zlib1g-dev"`, `"origin": "Zlib Dev"`, "invalid origin"},
		{"bad name", `"name": "hello-0000"`, `"name": "a/b"`, "invalid name"},
		{"two-line expect", `"expect": "hello"`, `"expect": "a\nb"`, "expect is not one line"},
		{"duplicate library", `"name": "zlib"`, `"name": "ukplat"`, "listed twice"},
		{"empty", `"unikernels": [`, `"unikernels": [], "x": [`, "unknown field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := strings.Replace(validCorpus, c.from, c.to, 1)
			if data == validCorpus {
				t.Fatalf("replacement %q not found", c.from)
			}
			_, err := Parse([]byte(data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestLoadErrorNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(`{"seed": 1, "count": 0, "unikernels": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, FileName)) {
		t.Fatalf("error %v, want one naming %s", err, filepath.Join(dir, FileName))
	}
}

func TestVerifyCatchesAChangedObject(t *testing.T) {
	c, _ := build(t, fixture(t))
	l := c.Unikernels[0].Libraries[0]
	p := c.Path(l)
	// Objects are hard links into the cache and read-only; replace, do
	// not write through.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("\x7fELF not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("Verify: %v, want an error naming %s", err, p)
	}
}

// FuzzParse: corpus.json comes from elsewhere; Parse must never panic, and
// whatever it accepts must survive a round trip and keep its object paths
// inside the corpus folder.
func FuzzParse(f *testing.F) {
	f.Add([]byte(validCorpus))
	f.Add([]byte(`{"seed": 1, "count": 0, "unikernels": []}`))
	f.Add([]byte(`{"unikernels": [{"libraries": [{"object": "../../x.o"}]}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		for _, u := range c.Unikernels {
			for _, l := range u.Libraries {
				rel, err := filepath.Rel("/corpus", filepath.Join("/corpus", filepath.FromSlash(l.Object)))
				if err != nil || strings.HasPrefix(rel, "..") {
					t.Fatalf("accepted object path %q leaves the corpus folder", l.Object)
				}
			}
		}
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Parse(again)
		if err != nil {
			t.Fatalf("re-parse of accepted corpus: %v", err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatal("round trip changed the corpus")
		}
	})
}

// FuzzLoadTreeLibJSON: lib.json files come from other authors; a bad one
// must give an error, never a panic.
func FuzzLoadTreeLibJSON(f *testing.F) {
	f.Add([]byte(`{"name": "libc", "core": true, "variants": [{"id": "v1", "defines": ["A=1"]}]}`))
	f.Add([]byte(`{"name": "z", "origin": "zlib1g-dev", "archive": "/usr/lib/libz.a", "symbols": ["crc32"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := minimalTree()
		fsys["lib/libc/lib.json"].Data = data
		tr, err := LoadTree(fsys)
		if err != nil {
			return
		}
		if _, err := plan(tr, 3, 1, ""); err != nil && !strings.Contains(err.Error(), ".json") {
			t.Fatalf("plan error names no file: %v", err)
		}
	})
}
