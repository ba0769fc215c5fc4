package unikraft

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSharedDirIsFoundFromAnyFolderBelowIt(t *testing.T) {
	root := t.TempDir()
	shared := filepath.Join(root, "shared", "unikraft")
	deep := filepath.Join(root, "ci", "clone", "internal", "x")
	for _, d := range []string{shared, deep} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := SharedDir(deep); ok {
		t.Fatal("found a shared dir without the tarball")
	}
	if err := os.WriteFile(filepath.Join(shared, "unikraft-"+Release+".tar.gz"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, ok := SharedDir(deep)
	if !ok || got != shared {
		t.Fatalf("SharedDir = %q, %v; want %q", got, ok, shared)
	}
}

func TestAGivenFolderThatIsNoUnikraftTreeIsRefusedByName(t *testing.T) {
	dir := t.TempDir()
	_, err := Find(context.Background(), dir, dir)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "not a Unikraft tree") {
		t.Fatalf("err = %v", err)
	}
}

func TestHelloWorldBuildsToPerLibraryObjectsInLinkOrder(t *testing.T) {
	b := HelloWorld(t, NoRDSEED)
	var names []string
	for _, o := range b.Objects {
		names = append(names, filepath.Base(o))
	}
	if names[0] != "libkvmplat.o" || !strings.Contains(strings.Join(names, " "), "apphelloworld.o") {
		t.Fatalf("objects %v: want libkvmplat.o first and apphelloworld.o", names)
	}
	for _, n := range names {
		if n == "libukrandom.o" {
			t.Fatalf("CONFIG_LIBUKRANDOM=n, yet %s was built", n)
		}
	}
	if len(b.Fragments) == 0 {
		t.Fatalf("no linker-script fragments found in the build's link command")
	}
}
