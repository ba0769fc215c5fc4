package desc

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// compactDoc is a description named name with one library of 5 relocs.
func compactDoc(name string) []byte {
	d := "sha256:" + strings.Repeat("0f", 32)
	var relocs []string
	for i := range 5 {
		relocs = append(relocs, fmt.Sprintf(`{"off":%d,"target":{"lib":0,"off":0}}`, 8*i))
	}
	return []byte(`{"schema_version":1,"name":"` + name + `","layout":"aligned","mem_size":1048576,"entry":{"lib":0,"off":0},` +
		`"libraries":[{"name":"libc","version":"v1","object_sha256":"` + strings.Repeat("ab", 32) + `",` +
		`"region":{"start":1073741824,"tramp_size":0,"shared_size":4096,"private_size":4096},` +
		`"tramp":{"size":0},"shared":{"size":4096,"digest":"` + d + `","segments":[{"off":0,"size":4096,"prot":"r-x"}]},` +
		`"private":{"file_size":0,"mem_size":4096},"relocs":[` + strings.Join(relocs, ",") + `]}]}`)
}

// A monitor holds every description of its fleet for the whole run, so a
// parsed description keeps one copy of what many descriptions repeat and
// no spare list capacity.
func TestParsedDescriptionsShareRepeatedStringsAndHoldNoSpareCapacity(t *testing.T) {
	a, err := Parse(compactDoc("a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse(compactDoc("b"))
	if err != nil {
		t.Fatal(err)
	}
	la, lb := a.Libraries[0], b.Libraries[0]
	for what, pair := range map[string][2]string{
		"name": {la.Name, lb.Name}, "version": {la.Version, lb.Version}, "object": {la.ObjectSHA256, lb.ObjectSHA256},
		"digest": {la.Shared.Digest, lb.Shared.Digest}, "prot": {la.Shared.Segments[0].Prot, lb.Shared.Segments[0].Prot},
	} {
		if unsafe.StringData(pair[0]) != unsafe.StringData(pair[1]) {
			t.Errorf("the %s %q is held twice", what, pair[0])
		}
	}
	if len(la.Relocs) != 5 || cap(la.Relocs) != 5 {
		t.Errorf("relocs: len %d cap %d, want 5 and 5", len(la.Relocs), cap(la.Relocs))
	}
	if cap(a.Libraries) != len(a.Libraries) {
		t.Errorf("libraries: len %d cap %d", len(a.Libraries), cap(a.Libraries))
	}
}

// A description read to be used once (ParseOnce: a monitor planning from
// it) is Parse's description, validated as Parse validates it, but not
// compacted: nothing interned, no list copied, fewer allocations.
func TestADescriptionParsedOnceIsParsesButNotCompacted(t *testing.T) {
	want, err := Parse(compactDoc("a"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseOnce(compactDoc("a"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("ParseOnce's description differs from Parse's")
	}
	b, err := ParseOnce(compactDoc("a"))
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.StringData(a.Libraries[0].Name) == unsafe.StringData(b.Libraries[0].Name) ||
		unsafe.StringData(a.Libraries[0].Shared.Digest) == unsafe.StringData(want.Libraries[0].Shared.Digest) {
		t.Errorf("ParseOnce interned the description's strings")
	}
	bad := compactDoc("a")
	bad = []byte(strings.Replace(string(bad), `"start":1073741824`, `"start":1073741825`, 1))
	if _, err := ParseOnce(bad); err == nil {
		t.Errorf("ParseOnce took a description Parse refuses (a region not page-aligned)")
	} else if _, perr := Parse(bad); perr == nil || perr.Error() != err.Error() {
		t.Errorf("ParseOnce refused with %v, Parse with %v", err, perr)
	}
	doc := compactDoc("a")
	once := testing.AllocsPerRun(20, func() { ParseOnce(doc) })
	full := testing.AllocsPerRun(20, func() { Parse(doc) })
	if once >= full {
		t.Errorf("ParseOnce made %.0f allocations, Parse %.0f: want fewer", once, full)
	}
}
