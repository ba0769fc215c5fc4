package pool

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/pool/pooltest"
)

func jsonMarshal(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }

func mustAdd(t *testing.T, dir, image string, opt AddOptions) *AddResult {
	t.Helper()
	res, err := Add(dir, image, opt)
	if err != nil {
		t.Fatalf("add %s: %v", image, err)
	}
	return res
}

func mustOpen(t *testing.T, dir string) *Pool {
	t.Helper()
	p, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustVerify(t *testing.T, p *Pool) {
	t.Helper()
	r, err := p.Verify()
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range r.Problems {
		t.Errorf("verify: %s", pr)
	}
}

// imageBytes reads n bytes the image loads at vaddr (zeros where only
// memory, no file, backs it), independently of the pool's reader.
func imageBytes(t *testing.T, path string, vaddr, n uint64) []byte {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := make([]byte, n)
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		lo, hi := max(vaddr, p.Vaddr), min(vaddr+n, p.Vaddr+p.Filesz)
		if lo < hi {
			if _, err := p.ReadAt(out[lo-vaddr:hi-vaddr], int64(lo-p.Vaddr)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

func TestAddSplitsImageIntoBlobsThatHoldItsBytes(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.World, AddOptions{Name: "w", Cmdline: "x=1", MemSize: 8 << 20})
	p := mustOpen(t, dir)
	c, err := p.Resolve("w")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "w" || c.Cmdline != "x=1" || c.MemSize != 8<<20 {
		t.Errorf("name/cmdline/mem = %q %q %d, want w x=1 8MiB", c.Name, c.Cmdline, c.MemSize)
	}
	st, _ := os.Stat(f.World)
	if c.Image == nil || c.Image.Size != st.Size() {
		t.Errorf("image ref %+v, want size %d", c.Image, st.Size())
	}
	priv, err := os.ReadFile(p.BlobPath(c.Private.Digest))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range c.Libraries {
		r := l.Region
		blob, err := os.ReadFile(p.BlobPath(l.Shared.Digest))
		if err != nil {
			t.Fatalf("library %s: %v", l.Name, err)
		}
		if uint64(len(blob)) != l.Shared.Size || len(blob)%0x1000 != 0 {
			t.Errorf("library %s: shared blob %#x bytes, description %#x, want equal whole pages", l.Name, len(blob), l.Shared.Size)
		}
		if want := imageBytes(t, f.World, r.SharedAddr(), l.Shared.Size); !bytes.Equal(blob, want) {
			t.Errorf("library %s: shared blob differs from the image's bytes at %#x", l.Name, r.SharedAddr())
		}
		if l.Tramp.BlobOff%privateAlign != 0 || l.Private.BlobOff%privateAlign != 0 {
			t.Errorf("library %s: private blob offsets %#x %#x not %d-byte aligned", l.Name, l.Tramp.BlobOff, l.Private.BlobOff, privateAlign)
		}
		if got, want := priv[l.Tramp.BlobOff:l.Tramp.BlobOff+l.Tramp.Size], imageBytes(t, f.World, r.TrampAddr(), l.Tramp.Size); !bytes.Equal(got, want) {
			t.Errorf("library %s: tramp table in the private blob differs from the image", l.Name)
		}
		if got, want := priv[l.Private.BlobOff:l.Private.BlobOff+l.Private.FileSize], imageBytes(t, f.World, r.PrivateAddr(), l.Private.FileSize); !bytes.Equal(got, want) {
			t.Errorf("library %s: private data in the private blob differs from the image", l.Name)
		}
	}
	// Dense private parts are also in the data-arena pages, whole pages
	// of the private blob that a loader maps copy-on-write.
	dense := 0
	for _, l := range c.Libraries {
		r := l.Region
		if !r.Dense() || l.Private.FileSize == 0 {
			continue
		}
		dense++
		found := false
		for _, a := range c.Arena {
			if a.BlobOff%0x1000 != 0 || a.BlobOff+a.Size > uint64(len(priv)) {
				t.Fatalf("arena run %+v: not page-aligned inside the private blob (%#x bytes)", a, len(priv))
			}
			if at := r.PrivateAddr(); at >= a.Addr && at+l.Private.FileSize <= a.Addr+a.Size {
				found = true
				off := a.BlobOff + at - a.Addr
				if got, want := priv[off:off+l.Private.FileSize], imageBytes(t, f.World, at, l.Private.FileSize); !bytes.Equal(got, want) {
					t.Errorf("library %s: its data in the arena pages of the private blob differs from the image", l.Name)
				}
			}
		}
		if !found {
			t.Errorf("library %s: dense private part at %#x in no arena run %+v", l.Name, r.PrivateAddr(), c.Arena)
		}
	}
	if dense == 0 && len(c.Arena) != 0 {
		t.Errorf("arena runs %+v for an image without dense private data", c.Arena)
	}
	// The tramp table of libA is non-zero in the test source: make sure the
	// comparison above compared something.
	if a := c.Libraries[1]; a.Tramp.Size == 0 || bytes.Equal(priv[a.Tramp.BlobOff:a.Tramp.BlobOff+a.Tramp.Size], make([]byte, a.Tramp.Size)) {
		t.Errorf("libA's tramp table is empty or zero in the private blob")
	}
	mustVerify(t, p)
}

func TestImagesSharingLibrariesStoreThemOnce(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	r1 := mustAdd(t, dir, f.Hello, AddOptions{})
	r2 := mustAdd(t, dir, f.World, AddOptions{})
	// hello: app, libA, libB shared + private + config + manifest = 6 new.
	// world: libA and libB are already there: app, libC, private, config,
	// manifest = 5 new.
	if r1.NewBlobs != 6 || r2.NewBlobs != 5 {
		t.Errorf("new blobs %d then %d, want 6 then 5", r1.NewBlobs, r2.NewBlobs)
	}
	p := mustOpen(t, dir)
	h, _ := p.Resolve("hello")
	w, _ := p.Resolve("world")
	for i := 1; i <= 2; i++ {
		if h.Libraries[i].Shared.Digest != w.Libraries[i].Shared.Digest {
			t.Errorf("%s: digests differ between images: %s vs %s", h.Libraries[i].Name, h.Libraries[i].Shared.Digest, w.Libraries[i].Shared.Digest)
		}
	}
	ents, _ := os.ReadDir(p.blobDir())
	if len(ents) != 11 {
		t.Errorf("%d blob files, want 11", len(ents))
	}
	s, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Unikernels != 2 || s.Blobs != 11 || s.LibraryUses != 5 || s.LibraryBlobs != 3 || s.AppBlobs != 2 {
		t.Errorf("stats %+v: want 2 unikernels, 11 blobs, 5 library uses in 3 blobs, 2 app blobs", s)
	}
	if s.BytesReferenced-s.BytesStored != 2*0x1000 || s.DedupRatio <= 1 {
		t.Errorf("stats: referenced %d - stored %d, want the two shared pages of libA and libB; ratio %.2f", s.BytesReferenced, s.BytesStored, s.DedupRatio)
	}
	// Adding the same image again stores nothing new but the index.
	if r := mustAdd(t, dir, f.World, AddOptions{}); r.NewBlobs != 0 || !r.Replaced {
		t.Errorf("re-add: %+v, want no new blobs, replaced", r)
	}
}

func TestListInspectRemoveAndGC(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.Hello, AddOptions{})
	mustAdd(t, dir, f.World, AddOptions{})
	mustAdd(t, dir, f.Solo, AddOptions{Name: "solo-1"})
	p := mustOpen(t, dir)
	ents, err := p.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "hello,world,solo-1" {
		t.Errorf("list %v, want hello, world, solo-1", names)
	}
	d, err := p.Inspect("world")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Config.Libraries) != 4 || len(d.Blobs) != 7 || d.Blobs[0].Role != "manifest" || d.Blobs[0].Digest != ents[1].Manifest {
		t.Errorf("inspect world: %d libraries, blobs %+v", len(d.Config.Libraries), d.Blobs)
	}

	if err := p.Remove("world"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resolve("world"); !errors.Is(err, ErrNotFound) {
		t.Errorf("resolve after rm: %v, want ErrNotFound", err)
	}
	if err := p.Remove("world"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second rm: %v, want ErrNotFound", err)
	}
	w := d.Config
	// Before gc the removed unikernel's blobs are still there.
	if _, err := os.Stat(p.BlobPath(w.Libraries[3].Shared.Digest)); err != nil {
		t.Errorf("libC blob gone before gc: %v", err)
	}
	os.WriteFile(filepath.Join(p.blobDir(), tmpPrefix+"leftover"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, tmpPrefix+"index.json-dead"), []byte("x"), 0o644)
	res, err := p.GC()
	if err != nil {
		t.Fatal(err)
	}
	// world alone had: app shared, libC shared, private, config, manifest.
	if res.Blobs != 5 || res.TempFiles != 2 {
		t.Errorf("gc %+v, want 5 blobs and 2 temporary files removed", res)
	}
	for _, dg := range []string{w.Libraries[3].Shared.Digest, w.Private.Digest, string(d.Manifest)} {
		if _, err := os.Stat(p.BlobPath(dg)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("blob %s of the removed unikernel survived gc", dg)
		}
	}
	for _, n := range []string{"hello", "solo-1"} {
		c, err := p.Resolve(n)
		if err != nil {
			t.Fatalf("after gc: %v", err)
		}
		for _, l := range c.Libraries {
			if err := p.VerifyBlob(l.Shared.Digest); err != nil {
				t.Errorf("after gc: %v", err)
			}
		}
	}
	mustVerify(t, p)
}

func TestReaddingANameReplacesIt(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.Hello, AddOptions{Name: "u"})
	res := mustAdd(t, dir, f.World, AddOptions{Name: "u"})
	if !res.Replaced {
		t.Error("second add under the same name did not say it replaced")
	}
	p := mustOpen(t, dir)
	ents, _ := p.List()
	if len(ents) != 1 || ents[0].Manifest != res.Manifest {
		t.Errorf("list %+v, want only u -> %s", ents, res.Manifest)
	}
	if c, _ := p.Resolve("u"); len(c.Libraries) != 4 {
		t.Errorf("u resolves to %d libraries, want world's 4", len(c.Libraries))
	}
}

func TestAddRefusesRegionsTheMapDisagreesWith(t *testing.T) {
	f := pooltest.Images(t)
	dir := filepath.Join(t.TempDir(), "pool")
	moved := pooltest.LibB
	moved.Region.Start += 0x10_0000
	pooltest.WriteMap(t, dir, pooltest.LibA, moved)
	_, err := Add(dir, f.Hello, AddOptions{})
	if err == nil || !strings.Contains(err.Error(), `"libB"`) || !strings.Contains(err.Error(), filepath.Join(dir, MapFile)) || !strings.Contains(err.Error(), f.Hello) {
		t.Errorf("add with libB moved in the map: %v; want an error naming the image, libB and the map", err)
	}
	pooltest.WriteMap(t, dir, pooltest.LibA)
	if _, err := Add(dir, f.Hello, AddOptions{}); err == nil || !strings.Contains(err.Error(), "no region") {
		t.Errorf("add with libB missing from the map: %v", err)
	}
	os.Remove(filepath.Join(dir, MapFile))
	if _, err := Add(dir, f.Hello, AddOptions{}); err == nil || !strings.Contains(err.Error(), "no library map") {
		t.Errorf("add with no map: %v", err)
	}
	// An image of only its app needs no map.
	mustAdd(t, dir, f.Solo, AddOptions{})
	p := mustOpen(t, dir)
	if ents, _ := p.List(); len(ents) != 1 {
		t.Errorf("refused adds left entries: %+v", ents)
	}
	mustVerify(t, p)
}

// withSection rewrites an image's .unipool section.
func withSection(t *testing.T, image string, content []byte) string {
	t.Helper()
	dir := t.TempDir()
	sec := filepath.Join(dir, "sec")
	os.WriteFile(sec, content, 0o644)
	out := filepath.Join(dir, filepath.Base(image))
	pooltest.Run(t, "objcopy", "--update-section", desc.SectionName+"="+sec, image, out)
	return out
}

func sectionConfig(t *testing.T, image string) *desc.Config {
	t.Helper()
	ef, err := elf.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	data, err := ef.Section(desc.SectionName).Data()
	if err != nil {
		t.Fatal(err)
	}
	c, err := desc.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAddRejectsBadImagesNamingTheFile(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	tmp := t.TempDir()
	notELF := filepath.Join(tmp, "notelf")
	os.WriteFile(notELF, []byte("#!/bin/sh\necho hi\n"), 0o644)
	noSection := filepath.Join(tmp, "nosection")
	pooltest.Run(t, "objcopy", "--remove-section", desc.SectionName, f.Hello, noSection)
	data, _ := os.ReadFile(f.Hello)
	truncated := filepath.Join(tmp, "truncated")
	os.WriteFile(truncated, data[:0x4800], 0o644)
	badJSON := withSection(t, f.Hello, []byte(`{"schema_version": 1, "libraries": [`))
	c := sectionConfig(t, f.Hello)
	c.Libraries[2].Region = c.Libraries[1].Region
	overlap, _ := jsonMarshal(c)
	invalid := withSection(t, f.Hello, overlap)
	c = sectionConfig(t, f.Hello)
	c.Libraries[1].Shared.Size = 0 // libA's code would be lost
	c.Libraries[1].Shared.Segments = nil
	lossy, _ := jsonMarshal(c)
	lost := withSection(t, f.Hello, lossy)
	c = sectionConfig(t, f.Hello)
	c.Entry.Off += 4
	wrongEntry, _ := jsonMarshal(c)
	entry := withSection(t, f.Hello, wrongEntry)

	for _, tc := range []struct{ name, path, want string }{
		{"missing", filepath.Join(tmp, "nope"), "no such file"},
		{"not ELF", notELF, "not an ELF file"},
		{"no section", noSection, "no .unipool section"},
		{"truncated", truncated, "truncated"},
		{"bad JSON", badJSON, "description"},
		{"invalid description", invalid, "overlap"},
		{"content outside the description", lost, "lies in no library part"},
		{"wrong entry", entry, "entry"},
	} {
		_, err := Add(dir, tc.path, AddOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: add: %v; want an error naming %s and saying %q", tc.name, err, tc.path, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		p := mustOpen(t, dir)
		if ents, _ := p.List(); len(ents) != 0 {
			t.Errorf("bad images were added: %+v", ents)
		}
	}
}

func TestCorruptIndexIsReportedAndBlocksWrites(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.Hello, AddOptions{})
	p := mustOpen(t, dir)
	index := filepath.Join(dir, "index.json")
	os.WriteFile(index, []byte(`{"schemaVersion": 2, "manifests": [{"mediaType": "appli`), 0o644)
	blobsBefore, _ := os.ReadDir(p.blobDir())
	for name, err := range map[string]error{
		"resolve": func() error { _, err := p.Resolve("hello"); return err }(),
		"list":    func() error { _, err := p.List(); return err }(),
		"add":     func() error { _, err := Add(dir, f.World, AddOptions{}); return err }(),
		"gc":      func() error { _, err := p.GC(); return err }(),
		"rm":      p.Remove("hello"),
	} {
		if err == nil || !strings.Contains(err.Error(), index) || !strings.Contains(err.Error(), "not valid JSON") {
			t.Errorf("%s with a corrupt index: %v; want an error naming %s", name, err, index)
		}
	}
	if after, _ := os.ReadDir(p.blobDir()); len(after) != len(blobsBefore) {
		t.Errorf("blob files %d -> %d: add or gc wrote or removed blobs despite the corrupt index", len(blobsBefore), len(after))
	}
	r, err := p.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() || r.Problems[0].File != index {
		t.Errorf("verify: %+v, want a problem naming %s", r.Problems, index)
	}
}

func TestVerifyNamesABlobWithOneFlippedByte(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.Hello, AddOptions{})
	mustAdd(t, dir, f.World, AddOptions{})
	p := mustOpen(t, dir)
	c, _ := p.Resolve("world")
	bad := c.Libraries[1].Shared.Digest // libA: both unikernels use it
	path := p.BlobPath(bad)
	data, _ := os.ReadFile(path)
	data[0x123] ^= 0x10
	os.WriteFile(path, data, 0o644)

	err := p.VerifyBlob(bad)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "does not match its digest") {
		t.Errorf("VerifyBlob: %v; want an error naming %s and %s", err, bad, path)
	}
	for _, l := range c.Libraries[2:] {
		if err := p.VerifyBlob(l.Shared.Digest); err != nil {
			t.Errorf("VerifyBlob of an intact blob: %v", err)
		}
	}
	r, err := p.Verify()
	if err != nil {
		t.Fatal(err)
	}
	// One problem for the file itself, one per unikernel using it.
	var onFile, users int
	for _, pr := range r.Problems {
		if pr.Blob != bad {
			t.Errorf("verify blames %s, want only %s", pr, bad)
		}
		if pr.Unikernel == "" {
			onFile++
		} else {
			users++
		}
	}
	if onFile != 1 || users != 2 {
		t.Errorf("verify problems %v: want the damaged blob once and each of its 2 users", r.Problems)
	}
	// Adding an image that has the same library repairs the blob.
	mustAdd(t, dir, f.Hello, AddOptions{Name: "again"})
	mustVerify(t, p)
}

func TestVerifyNamesMissingBlobsAndBadDescriptions(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.Hello, AddOptions{})
	mustAdd(t, dir, f.World, AddOptions{})
	p := mustOpen(t, dir)
	h, _ := p.Inspect("hello")
	w, _ := p.Inspect("world")
	// hello loses its private blob; world's config is replaced by a
	// description that does not validate, stored under its true digest.
	os.Remove(p.BlobPath(h.Config.Private.Digest))
	bad := []byte(`{"schema_version": 1, "layout": "aligned", "libraries": []}`)
	bd := digest.SHA256.FromBytes(bad)
	os.WriteFile(p.BlobPath(string(bd)), bad, 0o644)
	mdata, _ := os.ReadFile(p.BlobPath(string(w.Manifest)))
	m, _ := parseManifest(mdata)
	m.Config.Digest, m.Config.Size = bd, int64(len(bad))
	mdata, _ = jsonMarshal(m)
	md := digest.SHA256.FromBytes(mdata)
	os.WriteFile(p.BlobPath(string(md)), mdata, 0o644)
	idx, _ := p.readIndex()
	idx.Manifests[1].Digest, idx.Manifests[1].Size = md, int64(len(mdata))
	p.writeIndex(idx)

	r, err := p.Verify()
	if err != nil {
		t.Fatal(err)
	}
	var sawMissing, sawInvalid bool
	for _, pr := range r.Problems {
		sawMissing = sawMissing || pr.Unikernel == "hello" && pr.Blob == h.Config.Private.Digest && strings.Contains(pr.What, "missing")
		sawInvalid = sawInvalid || pr.Unikernel == "world" && pr.Blob == string(bd) && strings.Contains(pr.What, "no libraries")
	}
	if !sawMissing || !sawInvalid || len(r.Problems) != 2 {
		t.Errorf("verify problems %v: want hello's missing private blob and world's invalid description", r.Problems)
	}
	if _, err := p.Resolve("world"); err == nil || !strings.Contains(err.Error(), string(bd)) {
		t.Errorf("resolve of an invalid description: %v", err)
	}
	// gc cannot know what an unreadable manifest references: it must refuse
	// rather than delete. (world's is readable; break hello's.)
	os.WriteFile(p.BlobPath(string(h.Manifest)), []byte("{}"), 0o644)
	if _, err := p.GC(); err == nil || !strings.Contains(err.Error(), "nothing removed") {
		t.Errorf("gc with a damaged manifest: %v, want a refusal", err)
	}
}

func TestOpenRefusesADirectoryThatIsNoPool(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "not a pool") {
		t.Errorf("open of an empty directory: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion": "9"}`), 0o644)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "oci-layout") {
		t.Errorf("open of a pool of another layout version: %v", err)
	}
}

func TestDefaultDirFollowsEnvironment(t *testing.T) {
	t.Setenv(EnvPool, "/srv/pool")
	if d, _ := DefaultDir(); d != "/srv/pool" {
		t.Errorf("with $%s: %s", EnvPool, d)
	}
	t.Setenv(EnvPool, "")
	t.Setenv("XDG_DATA_HOME", "/data")
	if d, _ := DefaultDir(); d != "/data/unipool/pool" {
		t.Errorf("with $XDG_DATA_HOME: %s", d)
	}
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/u")
	if d, _ := DefaultDir(); d != "/home/u/.local/share/unipool/pool" {
		t.Errorf("with only $HOME: %s", d)
	}
}

func TestBlobPathStaysInsideThePool(t *testing.T) {
	p := &Pool{dir: "/pool"}
	for _, d := range []string{"sha256:../../etc/passwd", "sha512:" + strings.Repeat("a", 128), "", "sha256:" + strings.Repeat("A", 64)} {
		if got := p.BlobPath(d); filepath.Dir(got) != "/pool/blobs/sha256" || isBlobName(filepath.Base(got)) {
			t.Errorf("BlobPath(%q) = %s", d, got)
		}
	}
}

func TestInitBlobsHoldTablesAndDataAndAreStoredOnce(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	r1 := mustAdd(t, dir, f.Hello, AddOptions{InitBlobs: true})
	r2 := mustAdd(t, dir, f.World, AddOptions{InitBlobs: true})
	// hello: app, libA, libB shared; app and libA init (libB has neither
	// table nor data); private, config, manifest = 8 new.
	// world: libA and libB are there, and its app's init blob is hello's
	// (same data, no table): app and libC shared, libC init, private,
	// config, manifest = 6 new.
	if r1.NewBlobs != 8 || r2.NewBlobs != 6 {
		t.Errorf("new blobs %d then %d, want 8 then 6", r1.NewBlobs, r2.NewBlobs)
	}
	p := mustOpen(t, dir)
	mustVerify(t, p)
	h, _ := p.Resolve("hello")
	c, _ := p.Resolve("world")
	if h.Libraries[1].Init == nil || h.Libraries[1].Init.Digest != c.Libraries[1].Init.Digest {
		t.Errorf("libA's init blob differs between images: %+v vs %+v", h.Libraries[1].Init, c.Libraries[1].Init)
	}
	// Each init blob holds the table from 0 and the data from
	// InitDataOff, in whole pages.
	for _, l := range c.Libraries {
		if l.Tramp.Size == 0 && l.Private.FileSize == 0 {
			if l.Init != nil {
				t.Errorf("library %s: init blob without table or data", l.Name)
			}
			continue
		}
		if l.Init == nil {
			t.Errorf("library %s: no init blob", l.Name)
			continue
		}
		ib, err := os.ReadFile(p.BlobPath(l.Init.Digest))
		if err != nil {
			t.Fatal(err)
		}
		r := l.Region
		if int64(len(ib)) != l.Init.Size || len(ib)%0x1000 != 0 || uint64(len(ib)) < l.InitDataOff()+l.Private.FileSize {
			t.Errorf("library %s: init blob %#x bytes (description %#x)", l.Name, len(ib), l.Init.Size)
			continue
		}
		if !bytes.Equal(ib[:l.Tramp.Size], imageBytes(t, f.World, r.TrampAddr(), l.Tramp.Size)) ||
			!bytes.Equal(ib[l.InitDataOff():l.InitDataOff()+l.Private.FileSize], imageBytes(t, f.World, r.PrivateAddr(), l.Private.FileSize)) {
			t.Errorf("library %s: init blob differs from the image's table or data", l.Name)
		}
	}
	d, err := p.Inspect("world")
	if err != nil {
		t.Fatal(err)
	}
	inits := 0
	for _, b := range d.Blobs {
		if b.Role == "init" {
			inits++
		}
	}
	if inits != 3 {
		t.Errorf("inspect world lists %d init blobs, want 3 (app, libA, libC)", inits)
	}
	if s, err := p.Stats(); err != nil || s.InitUses != 5 || s.InitBlobs != 3 || s.InitBytes != 4*0x1000 {
		t.Errorf("stats %+v, %v: want 5 init uses in 3 blobs of 4 pages", s, err)
	}
	// Without the option the same image has none.
	mustAdd(t, dir, f.World, AddOptions{Name: "plain"})
	if c, _ := p.Resolve("plain"); c.Libraries[1].Init != nil {
		t.Error("init blob stored without InitBlobs")
	}
	mustVerify(t, p)
}

func TestAnOpenPoolSeesWhatOtherWritersAdd(t *testing.T) {
	f := pooltest.Images(t)
	dir := pooltest.NewPool(t)
	mustAdd(t, dir, f.Hello, AddOptions{})
	p := mustOpen(t, dir)
	if _, err := p.Resolve("hello"); err != nil {
		t.Fatal(err)
	}
	// Another process (here: another Pool value) adds and removes.
	mustAdd(t, dir, f.World, AddOptions{})
	if _, err := p.Resolve("world"); err != nil {
		t.Errorf("resolve after another writer added world: %v", err)
	}
	if err := mustOpen(t, dir).Remove("hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resolve("hello"); !errors.Is(err, ErrNotFound) {
		t.Errorf("resolve after another writer removed hello: %v", err)
	}
	// The caller owns what List returns: changing it changes nothing.
	ents, _ := p.List()
	ents[0].Name = "changed"
	if again, _ := p.List(); again[0].Name != "world" {
		t.Errorf("list after a caller changed its copy: %+v", again)
	}
}
