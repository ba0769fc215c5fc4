package pool

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/unipool/unipool/internal/pool/pooltest"
)

// A resolved unikernel's description can be let go and read again by its
// Ref: ResolveRef's reads the config alone, by the digest its manifest
// gave (nothing of the index, not the manifest again), a Ref of the
// manifest alone reads both and checks them as Resolve does; and the
// parsed index goes on DropIndex.
func TestADescriptionIsReadAgainByItsRefAsResolveReadsIt(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.Hello, AddOptions{})
	mustAdd(t, dir, f.World, AddOptions{})
	p := mustOpen(t, dir)
	ref, c, err := p.ResolveRef("world")
	if err != nil {
		t.Fatal(err)
	}
	want, err := p.Resolve("world")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("ResolveRef's description differs from Resolve's")
	}
	p.DropIndex()
	if p.idxCache != nil {
		t.Errorf("the parsed index is kept after DropIndex")
	}
	again, err := p.Describe(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Errorf("the description read again by its ref differs from Resolve's")
	}
	if p.idxCache != nil {
		t.Errorf("reading a description by its ref parsed the index")
	}
	// The ref reads the config alone: fewer allocations than a ref of the
	// manifest only (a Ref made elsewhere), which reads and checks both.
	byManifest := Ref{Manifest: ref.Manifest, Size: ref.Size}
	if c, err := p.Describe(byManifest); err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("by the manifest alone: %v, or a different description", err)
	}
	alone := testing.AllocsPerRun(10, func() { p.Describe(ref) })
	both := testing.AllocsPerRun(10, func() { p.Describe(byManifest) })
	if alone >= both {
		t.Errorf("Describe by ResolveRef's ref made %.0f allocations, by the manifest %.0f: want fewer", alone, both)
	}
	// The manifest's bytes changed under the ref: ResolveRef's ref does
	// not read it again; a ref of the manifest alone refuses it, naming it.
	change := func(dgst string) {
		t.Helper()
		path := p.BlobPath(dgst)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)-2] ^= ' ' ^ '\t'
		os.Chmod(path, 0o644)
		if err := os.WriteFile(path, data, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	change(string(ref.Manifest))
	if _, err := p.Describe(byManifest); err == nil || !strings.Contains(err.Error(), string(ref.Manifest)) || !strings.Contains(err.Error(), "digest") {
		t.Errorf("a manifest changed under its ref: %v, want an error naming it and its digest", err)
	}
	if c, err := p.Describe(ref); err != nil || !reflect.DeepEqual(c, want) {
		t.Errorf("ResolveRef's ref read the changed manifest: %v", err)
	}
	// The config's bytes changed: refused, naming the config.
	change(string(ref.config.Digest))
	if _, err := p.Describe(ref); err == nil || !strings.Contains(err.Error(), string(ref.config.Digest)) || !strings.Contains(err.Error(), "digest") {
		t.Errorf("a config changed under its ref: %v, want an error naming it and its digest", err)
	}
}

// ResolveRefOnce (a caller that checks the description and lets it go)
// resolves as ResolveRef does, with the description parsed for that one
// use: the same description and Ref, its strings not interned.
func TestResolveRefOnceIsResolveRefNotCompacted(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.World, AddOptions{})
	p := mustOpen(t, dir)
	ref, want, err := p.ResolveRef("world")
	if err != nil {
		t.Fatal(err)
	}
	once, c, err := p.ResolveRefOnce("world")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(once, ref) || !reflect.DeepEqual(c, want) {
		t.Fatalf("ResolveRefOnce: ref %+v, want %+v, or a different description", once, ref)
	}
	name := want.Libraries[0].Name
	if _, interned, _ := p.ResolveRef("world"); unsafe.StringData(interned.Libraries[0].Name) != unsafe.StringData(name) {
		t.Fatalf("ResolveRef's descriptions do not share their strings")
	}
	if unsafe.StringData(c.Libraries[0].Name) == unsafe.StringData(name) {
		t.Errorf("ResolveRefOnce interned the description's strings")
	}
	if _, _, err := p.ResolveRefOnce("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ResolveRefOnce of no unikernel: %v, want ErrNotFound", err)
	}
}
