package pool

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/pool/pooltest"
)

// seedPool returns the index, a manifest and a config of a real pool, for
// seeding the fuzzers with valid inputs to mutate (nil if gcc is missing).
func seedPool(f *testing.F) (index, manifest, config []byte) {
	fx := pooltest.Images(f)
	dir := filepath.Join(f.TempDir(), "pool")
	pooltest.WriteMap(f, dir, pooltest.LibA, pooltest.LibB, pooltest.LibC, fx.BigLib)
	if _, err := Add(dir, fx.World, AddOptions{}); err != nil {
		f.Fatal(err)
	}
	p := &Pool{dir: dir}
	index, _ = os.ReadFile(p.indexPath())
	idx, err := parseIndex(index)
	if err != nil {
		f.Fatal(err)
	}
	manifest, _ = os.ReadFile(p.BlobPath(string(idx.Manifests[0].Digest)))
	m, err := parseManifest(manifest)
	if err != nil {
		f.Fatal(err)
	}
	config, _ = os.ReadFile(p.BlobPath(string(m.Config.Digest)))
	return index, manifest, config
}

func FuzzParseIndex(f *testing.F) {
	index, _, _ := seedPool(f)
	f.Add(index)
	f.Add([]byte(`{"schemaVersion":2,"manifests":[]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../x","size":-1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		idx, err := parseIndex(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, m := range idx.Manifests {
			name := m.Annotations[ocispec.AnnotationRefName]
			if checkName(name) != nil || seen[name] || m.Digest.Validate() != nil || m.Size < 0 {
				t.Fatalf("accepted a bad entry %+v", m)
			}
			seen[name] = true
			if !isBlobName(m.Digest.Encoded()) {
				t.Fatalf("accepted digest %s that names no blob file", m.Digest)
			}
		}
		// What the pool writes back must read the same.
		out, err := json.Marshal(idx)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseIndex(out)
		if err != nil || len(again.Manifests) != len(idx.Manifests) {
			t.Fatalf("re-encoded index does not parse: %v", err)
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	_, manifest, _ := seedPool(f)
	f.Add(manifest)
	f.Add([]byte(`{"schemaVersion":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseManifest(data)
		if err != nil {
			return
		}
		private := 0
		for _, l := range m.Layers {
			if l.MediaType == desc.MediaTypePrivate {
				private++
			}
			if !isBlobName(l.Digest.Encoded()) || l.Size < 0 {
				t.Fatalf("accepted layer %+v", l)
			}
		}
		if private != 1 || m.ArtifactType != desc.ArtifactType {
			t.Fatalf("accepted a manifest with %d private layers, artifactType %q", private, m.ArtifactType)
		}
	})
}

// FuzzDescription feeds config blobs to desc.Parse and the pool's check of a
// description against its manifest, which a monitor trusts once they pass.
func FuzzDescription(f *testing.F) {
	_, manifest, config := seedPool(f)
	f.Add(config)
	f.Add([]byte(`{"schema_version":1,"layout":"aligned","libraries":[{"name":"a","region":{"start":4096,"shared_size":4096},"shared":{"size":4096}}],"entry":{"lib":0,"off":8192}}`))
	// With a snapshot whose pages lie in a pack (at offsets) and in a
	// page blob of their own (the seed's own description, a snapshot added).
	if sc, err := desc.Parse(config); err == nil {
		pd := "sha256:" + strings.Repeat("ab", 32)
		sc.Snapshot = &desc.Snapshot{Monitor: "process", MemSize: 1 << 20, BootArea: 1 << 16, Pages: []desc.Page{
			{Addr: 0x2000_0000, Digest: pd, Blob: pd, Offset: 0x1000}, {Addr: 0x2000_1000, Digest: "sha256:" + strings.Repeat("cd", 32)}}}
		if data, err := json.Marshal(sc); err == nil {
			f.Add(data)
		}
		sc.Snapshot.Pages[0].Offset = 0x2000 // past the pack's end
		if data, err := json.Marshal(sc); err == nil {
			f.Add(data)
		}
	}
	// A pack (a member on its page entry) beside a dense library and a
	// contiguous one: material for the overlap sweep (desc.firstOverlap).
	packed := &desc.Config{SchemaVersion: desc.SchemaVersionPack, Layout: "aligned", Libraries: []desc.Library{
		{Name: "m", Region: desc.Region{Start: 0x40001040, SharedSize: 0x200, PrivateStart: 0x70000010, PrivateSize: 0x20},
			Shared: desc.Shared{Size: 0x200}, Private: desc.Part{MemSize: 0x20}, Pack: 0x40000000},
		{Name: desc.PackPageName(0x40001000), Region: desc.Region{Start: 0x40001000, SharedSize: 0x1000},
			Shared: desc.Shared{Size: 0x1000, Segments: []desc.Segment{{Off: 0, Size: 0x1000, Prot: desc.ProtRX}}}, Pack: 0x40000000, PackPage: true},
		{Name: "d", Region: desc.Region{Start: 0x40002000, SharedSize: 0x1000, PrivateStart: 0x70000030, PrivateSize: 0x20},
			Shared: desc.Shared{Size: 0x1000}, Private: desc.Part{MemSize: 0x20}},
		{Name: "c", Region: desc.Region{Start: 0x40003000, SharedSize: 0x1000, PrivateSize: 0x1000},
			Shared: desc.Shared{Size: 0x1000}, Private: desc.Part{MemSize: 0x1000}},
	}}
	if data, err := json.Marshal(packed); err == nil {
		f.Add(data)
	}
	m, err := parseManifest(manifest)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := desc.Parse(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate rejects: %v", err)
		}
		// Accepted: no two libraries overlap but a pack member and its
		// pack's page entries (Validate sweeps; here every pair).
		for i, l := range c.Libraries {
			for _, o := range c.Libraries[:i] {
				if !(l.Pack != 0 && o.Pack == l.Pack && l.PackPage != o.PackPage) && desc.Overlap(l.Region, o.Region) {
					t.Fatalf("libraries %q and %q overlap, accepted", o.Name, l.Name)
				}
			}
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := desc.Parse(out); err != nil {
			t.Fatalf("re-encoded description does not parse: %v", err)
		}
		// Against the seed's manifest and one made to match c.
		checkDescription(m, c)
		mm := *m
		mm.Layers = nil
		for _, l := range c.Libraries {
			if d := digest.Digest(l.Shared.Digest); d.Validate() == nil {
				mm.Layers = append(mm.Layers, ocispec.Descriptor{MediaType: desc.MediaTypeShared, Digest: d, Size: int64(l.Shared.Size)})
			}
			if l.Init != nil {
				mm.Layers = append(mm.Layers, ocispec.Descriptor{MediaType: desc.MediaTypeInit, Digest: digest.Digest(l.Init.Digest), Size: l.Init.Size})
			}
		}
		if c.Private != nil {
			mm.Layers = append(mm.Layers, ocispec.Descriptor{MediaType: desc.MediaTypePrivate, Digest: digest.Digest(c.Private.Digest), Size: c.Private.Size})
		}
		// The snapshot's blobs as layers: a page blob of its own at a
		// page's size, a page pack of two pages (the seed's packed page
		// is its second; the fuzzer moves the offset).
		const packSize = 2 * desc.SnapshotPageSize
		if s := c.Snapshot; s != nil {
			named := map[string]bool{}
			for _, pg := range s.Pages {
				if b := pg.BlobDigest(); !named[pg.Blob+b] {
					named[pg.Blob+b] = true
					if pg.Blob != "" {
						mm.Layers = append(mm.Layers, ocispec.Descriptor{MediaType: desc.MediaTypeSnapshotPack, Digest: digest.Digest(b), Size: packSize})
					} else {
						mm.Layers = append(mm.Layers, ocispec.Descriptor{MediaType: desc.MediaTypeSnapshotPage, Digest: digest.Digest(b), Size: desc.SnapshotPageSize})
					}
				}
			}
		}
		if checkDescription(&mm, c) == nil {
			if s := c.Snapshot; s != nil {
				for _, pg := range s.Pages {
					if pg.Blob != "" && (pg.Offset%desc.SnapshotPageSize != 0 || pg.Offset+desc.SnapshotPageSize > uint64(packSize)) {
						t.Fatalf("snapshot page at %#x: offset %#x in a pack of %d bytes accepted", pg.Addr, pg.Offset, packSize)
					}
					if pg.Blob == "" && pg.Offset != 0 {
						t.Fatalf("snapshot page at %#x: offset %#x in a page blob of its own accepted", pg.Addr, pg.Offset)
					}
				}
			}
			for _, l := range c.Libraries {
				if l.Tramp.Size > 0 && l.Tramp.BlobOff+l.Tramp.Size > uint64(c.Private.Size) {
					t.Fatalf("library %q: tramp table outside the private blob accepted", l.Name)
				}
				if l.Private.FileSize > 0 && l.Private.BlobOff+l.Private.FileSize > uint64(c.Private.Size) {
					t.Fatalf("library %q: private data outside the private blob accepted", l.Name)
				}
				if l.Init != nil && (l.Init.Size%4096 != 0 || uint64(l.Init.Size) < l.InitDataOff()+l.Private.FileSize) {
					t.Fatalf("library %q: init blob of %d bytes accepted", l.Name, l.Init.Size)
				}
			}
		}
	})
}

// FuzzReadImage feeds files to the image reader add uses, and splits
// what it accepts as add would.
func FuzzReadImage(f *testing.F) {
	fx := pooltest.Images(f)
	for _, p := range []string{fx.Hello, fx.Solo} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("\x7fELF"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "image")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		im, err := openImage(path)
		if err != nil {
			return
		}
		for _, l := range im.config.Libraries {
			if _, err := im.read(l.Region.SharedAddr(), pageUp(l.Shared.Size), false); err != nil {
				return
			}
		}
		privateBlob(im, im.config, true)
	})
}

// FuzzWireManifest: a manifest from a registry, in the wire form or not,
// and the compressed description it carries. Whatever is accepted gives a
// manifest in the pool's form whose config is a description that hashes
// to the digest the manifest names.
func FuzzWireManifest(f *testing.F) {
	_, manifest, config := seedPool(f)
	wire, gz, ok := wireManifest(manifest, config)
	if !ok {
		f.Fatal("the seed manifest has no wire form")
	}
	f.Add(wire, gz)
	f.Add(manifest, []byte{})
	f.Add([]byte(`{"schemaVersion":2,"config":{"mediaType":"`+MediaTypeConfigGzip+`","digest":"sha256:00","size":1,"annotations":{"`+AnnotationConfigDigest+`":"sha256:../x"}}}`), gz)
	f.Fuzz(func(t *testing.T, data, packed []byte) {
		out, wc, err := poolManifest(data)
		if err != nil {
			return
		}
		if wc == nil {
			if !bytes.Equal(out, data) {
				t.Fatal("a manifest in the pool's form came back changed")
			}
			return
		}
		if !isBlobName(wc.Digest.Encoded()) {
			t.Fatalf("accepted description digest %q", wc.Digest)
		}
		cData, err := unpackConfig(packed, wc.Digest)
		if err != nil {
			return
		}
		if digest.SHA256.FromBytes(cData) != wc.Digest {
			t.Fatal("unpacked a description that does not hash to its digest")
		}
		pm, err := withConfig(data, wc, cData)
		if err != nil {
			return
		}
		m, err := parseManifest(pm)
		if err != nil {
			return
		}
		if m.Config.Digest != wc.Digest || m.Config.Size != int64(len(cData)) {
			t.Fatalf("restored config %+v, want %s (%d bytes)", m.Config, wc.Digest, len(cData))
		}
	})
}

// FuzzParseSnapPages: the snapshot page index is the pool's own derived
// file, but it is read from disk; what parseSnapPages accepts names
// blobs by digest and pages inside them.
func FuzzParseSnapPages(f *testing.F) {
	d := string(digest.SHA256.FromBytes(make([]byte, desc.SnapshotPageSize)))
	e := string(digest.SHA256.FromString("pack"))
	f.Add([]byte(`{"index":"` + e + `","pages":{"` + d + `":{"blob":"` + e + `","offset":4096,"pack":true}},"sizes":{"` + e + `":8192}}`))
	f.Add([]byte(`{"index":"` + e + `","pages":{"` + d + `":{"blob":"` + d + `"}},"sizes":{"` + d + `":4096}}`))
	f.Add([]byte(`{"index":"` + e + `","pages":{"` + d + `":{"blob":"sha256:../../x","offset":4095}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sp, err := parseSnapPages(data)
		if err != nil {
			return
		}
		for pd, at := range sp.Pages {
			if digest.Digest(pd).Validate() != nil || digest.Digest(at.Blob).Validate() != nil || !isBlobName(digest.Digest(at.Blob).Encoded()) {
				t.Fatalf("accepted page %q in blob %q", pd, at.Blob)
			}
			if size := sp.Sizes[at.Blob]; at.Offset%desc.SnapshotPageSize != 0 || at.Offset+desc.SnapshotPageSize > uint64(size) {
				t.Fatalf("accepted page %s at %#x of a %d-byte blob", pd, at.Offset, size)
			}
		}
	})
}
