package distribution

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/pool"
	"github.com/unipool/unipool/internal/pool/pooltest"
)

// forge stores in p a unikernel named to: from's description and manifest
// as edit leaves them (a hostile pool's, pushed as it is: push checks
// blobs against their digests and descriptions against their manifests,
// not against the map). It writes the pool's files itself, as a hostile
// pool's owner would.
func forge(t *testing.T, p *pool.Pool, from, to string, edit func(m *ocispec.Manifest, c *desc.Config)) {
	t.Helper()
	idx, err := p.Index()
	if err != nil {
		t.Fatal(err)
	}
	var ent ocispec.Descriptor
	for _, md := range idx.Manifests {
		if md.Annotations[ocispec.AnnotationRefName] == from {
			ent = md
		}
	}
	mData, cData, err := p.ReadVerified(ent)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(mData, &m); err != nil {
		t.Fatal(err)
	}
	c, err := desc.Parse(cData)
	if err != nil {
		t.Fatal(err)
	}
	edit(&m, c)
	c.Name = to
	cfg, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := desc.Parse(cfg); err != nil {
		t.Fatalf("the forged description does not validate: %v", err)
	}
	m.Config = ocispec.Descriptor{MediaType: desc.MediaTypeConfig, Digest: storeBlob(t, p, cfg), Size: int64(len(cfg))}
	mData, _ = json.Marshal(&m)
	ent.Digest, ent.Size = storeBlob(t, p, mData), int64(len(mData))
	ent.Annotations = map[string]string{ocispec.AnnotationRefName: to}
	if _, _, err := p.ReadVerified(ent); err != nil {
		t.Fatalf("the forged description does not pass the checks it is meant to pass: %v", err)
	}
	idx.Manifests = append(idx.Manifests, ent)
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.Dir(), ocispec.ImageIndexFile), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// storeBlob writes data into p as a blob (read-only, as the pool stores
// them) and returns its digest.
func storeBlob(t *testing.T, p *pool.Pool, data []byte) digest.Digest {
	t.Helper()
	d := digest.SHA256.FromBytes(data)
	path := p.BlobPath(string(d))
	if _, err := os.Stat(path); err == nil {
		return d
	}
	if err := os.WriteFile(path, data, blobPerm); err != nil {
		t.Fatal(err)
	}
	return d
}

// packedHello is a pool holding "hello" linked with packs by the real
// toolchain (`unipool link --layout aligned`: its two small libraries
// share one pack page), pooled by `pool add` (the pack one whole blob).
func packedHello(t *testing.T) string {
	t.Helper()
	pooltest.Images(t) // skips without gcc/binutils
	bin := pooltest.CLI(t)
	work := t.TempDir()
	pooltest.CompileObjects(t, work, map[string]string{"libuka.o": pooltest.HelloLibA, "libukb.o": pooltest.HelloLibB, "apphello.o": pooltest.HelloApp})
	dir := filepath.Join(work, "pool")
	o := func(n string) string { return filepath.Join(work, n) }
	pooltest.Run(t, bin, "link", "--layout", "aligned", "--pool", dir, "-o", o("hello.elf"), o("apphello.o"), o("libuka.o"), o("libukb.o"))
	mustAdd(t, dir, o("hello.elf"), pool.AddOptions{})
	return dir
}

// forgePack stores in p, which holds hello with a pack, "evil": hello
// with one byte of its pack blob flipped (the first member's first
// instruction). It returns hello's pack entry and evil's pack blob.
func forgePack(t *testing.T, p *pool.Pool) (desc.Library, digest.Digest) {
	t.Helper()
	var pack desc.Library
	h, err := p.Resolve("hello")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range h.Libraries {
		if l.PackPage {
			pack = l
		}
	}
	if pack.Shared.Digest == "" {
		t.Fatalf("hello has no pack entry: %+v", h.Libraries)
	}
	var forged digest.Digest
	forge(t, p, "hello", "evil", func(m *ocispec.Manifest, c *desc.Config) {
		data, err := os.ReadFile(p.BlobPath(pack.Shared.Digest))
		if err != nil {
			t.Fatal(err)
		}
		data[0] ^= 0xcc
		forged = storeBlob(t, p, data)
		for i := range c.Libraries {
			if c.Libraries[i].Shared.Digest == pack.Shared.Digest {
				c.Libraries[i].Shared.Digest = string(forged)
			}
		}
		for i := range m.Layers {
			if m.Layers[i].Digest == digest.Digest(pack.Shared.Digest) {
				m.Layers[i].Digest = forged
			}
		}
	})
	return pack, forged
}

// A pulled description whose pack blob is not the bytes the map sealed
// for the pack is refused before any blob is downloaded, naming the
// unikernel, the pack and the blob; the pool stays as it was.
func TestPullRefusesAPackBlobThatIsNotTheMapsSealedBytes(t *testing.T) {
	src := packedHello(t)
	p := mustOpen(t, src)
	pack, forged := forgePack(t, p)
	reg := startRegistry(t, false)
	ctx := context.Background()
	repo := reg.Host + "/packs"
	if _, err := Push(ctx, p, repo, nil, reg.opt); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if _, err := Pull(ctx, dst, repo, []string{"hello"}, reg.opt); err != nil {
		t.Fatalf("pull of the true hello: %v", err)
	}
	before := poolState(t, dst)
	_, off := reg.blobGets(t, 0)
	_, err := Pull(ctx, dst, repo, []string{"evil"}, reg.opt)
	if err == nil || !strings.Contains(err.Error(), "unikernel evil") || !strings.Contains(err.Error(), `pack "`+pack.Name+`"`) ||
		!strings.Contains(err.Error(), string(forged)) || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("pull of a unikernel whose pack blob is not the map's sealed bytes: %v; want it refused naming evil, %s and %s", err, pack.Name, forged)
	}
	t.Logf("refused: %v", err)
	if after := poolState(t, dst); after != before {
		t.Errorf("a refused pull changed the pool:\n%s\nwas\n%s", after, before)
	}
	if gets, _ := reg.blobGets(t, off); len(gets) != 0 {
		t.Errorf("the refused pull downloaded %v", gets)
	}
	if _, err := os.Stat(filepath.Join(dst, stagingDir, forged.Encoded())); err == nil {
		t.Error("the forged pack blob is in the staging folder")
	}
	mustVerify(t, mustOpen(t, dst))
}

// A pulled description that names a page of a snapshot page pack by a
// digest the page's bytes do not have is refused, whether the pack comes
// with it or is in the pool already, naming the unikernel, the page and
// the pack; the pool stays as it was.
func TestPullRefusesASnapshotPageWhoseBytesAreNotItsDigest(t *testing.T) {
	f := pooltest.Images(t)
	src := pooltest.NewPool(t)
	mustAdd(t, src, f.Hello, pool.AddOptions{})
	p := mustOpen(t, src)
	s := &desc.Snapshot{Monitor: "process", MemSize: 1 << 20, BootArea: 1 << 16}
	if _, err := p.SetSnapshot("hello", s, map[uint64][]byte{0x2002_0000: page(1), 0x2002_1000: page(2)}); err != nil {
		t.Fatal(err)
	}
	lie := string(digest.SHA256.FromBytes(page(9)))
	var pack string
	forge(t, p, "hello", "evil", func(m *ocispec.Manifest, c *desc.Config) {
		pages := append([]desc.Page(nil), c.Snapshot.Pages...)
		pages[1].Digest = lie // page(2)'s bytes, said to be page(9)'s
		pack = pages[1].Blob
		snap := *c.Snapshot
		snap.Pages = pages
		c.Snapshot = &snap
	})
	if pack == "" {
		t.Fatal("hello's snapshot page is not in a pack")
	}
	reg := startRegistry(t, false)
	ctx := context.Background()
	repo := reg.Host + "/snaps"
	if _, err := Push(ctx, p, repo, nil, reg.opt); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error, dst, before string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "unikernel evil") || !strings.Contains(err.Error(), "snapshot page at 0x20021000") ||
			!strings.Contains(err.Error(), pack) || !strings.Contains(err.Error(), lie) {
			t.Fatalf("%s: %v; want it refused naming evil, the page at 0x20021000, its pack %s and the digest %s", what, err, pack, lie)
		}
		t.Logf("%s: refused: %v", what, err)
		if before == "" {
			// A new pool: made empty (as a pull does before it
			// downloads), no blob or unikernel in it.
			ents, _ := os.ReadDir(filepath.Join(dst, "blobs", "sha256"))
			if q, err := pool.Open(dst); err != nil || len(ents) != 0 {
				t.Errorf("%s: the pool after a refused pull: %v, %d blobs", what, err, len(ents))
			} else if names, _ := q.List(); len(names) != 0 {
				t.Errorf("%s: the pool after a refused pull lists %v", what, names)
			}
		} else if after := poolState(t, dst); after != before {
			t.Errorf("%s: a refused pull changed the pool:\n%s\nwas\n%s", what, after, before)
		}
	}
	// The pack downloaded with it (checked in the staging folder).
	fresh := filepath.Join(t.TempDir(), "fresh")
	_, err := Pull(ctx, fresh, repo, []string{"evil"}, reg.opt)
	check("pull into a new pool", err, fresh, "")
	// The pack in the pool already (hello's, pulled first).
	dst := filepath.Join(t.TempDir(), "dst")
	if _, err := Pull(ctx, dst, repo, []string{"hello"}, reg.opt); err != nil {
		t.Fatal(err)
	}
	before := poolState(t, dst)
	_, err = Pull(ctx, dst, repo, []string{"evil"}, reg.opt)
	check("pull into a pool that holds the pack", err, dst, before)
	mustVerify(t, mustOpen(t, dst))
}

// pool verify reports such a pack blob in a local pool (one written by
// hand: add and pull refuse it), naming the unikernel, the pack and the
// blob, and nothing for the unikernel whose pack is the map's.
func TestVerifyReportsAPackBlobThatIsNotTheMapsSealedBytes(t *testing.T) {
	p := mustOpen(t, packedHello(t))
	mustVerify(t, p)
	pack, forged := forgePack(t, p)
	r, err := p.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 1 || r.Problems[0].Unikernel != "evil" || r.Problems[0].Blob != string(forged) ||
		!strings.Contains(r.Problems[0].What, `pack "`+pack.Name+`"`) || !strings.Contains(r.Problems[0].What, "sealed") {
		t.Fatalf("verify of a pool whose evil has a pack blob that is not the map's: %+v; want one problem naming evil, %s and %s", r.Problems, pack.Name, forged)
	}
	t.Logf("reported: %+v", r.Problems[0])
}
