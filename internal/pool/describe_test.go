package pool

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// A resolved unikernel's description can be let go and read again by its
// Ref (its manifest's digest and size: nothing of the index), checked as
// Resolve checks it; and the parsed index goes on DropIndex.
func TestADescriptionIsReadAgainByItsRefAsResolveReadsIt(t *testing.T) {
	f := images(t)
	dir := newPool(t)
	mustAdd(t, dir, f.hello, AddOptions{})
	mustAdd(t, dir, f.world, AddOptions{})
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
	// The manifest's bytes changed under the ref: refused, naming it.
	data, err := os.ReadFile(p.BlobPath(string(ref.Manifest)))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-2] ^= ' ' ^ '\t'
	path := p.BlobPath(string(ref.Manifest))
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, data, 0o444); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Describe(ref); err == nil || !strings.Contains(err.Error(), string(ref.Manifest)) || !strings.Contains(err.Error(), "digest") {
		t.Errorf("a manifest changed under its ref: %v, want an error naming it and its digest", err)
	}
}
