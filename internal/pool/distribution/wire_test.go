package distribution

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"

	"github.com/unipool/unipool/internal/desc"
	"github.com/unipool/unipool/internal/pool"
	"github.com/unipool/unipool/internal/pool/pooltest"
)

// registryManifest is the manifest the registry holds under tag.
func registryManifest(t *testing.T, reg *testRegistry, repo, tag string) (ocispec.Descriptor, *ocispec.Manifest) {
	t.Helper()
	r, _, err := Repository(repo, reg.opt)
	if err != nil {
		t.Fatal(err)
	}
	d, data, err := oras.FetchBytes(context.Background(), r, tag, oras.FetchBytesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return d, &m
}

func TestPushSendsEachDescriptionCompressedInsideItsManifestAndPullRestoresThePoolsManifest(t *testing.T) {
	reg, repo, src, _ := pushed(t, false)
	ctx := context.Background()
	s := mustOpen(t, src)
	a, _ := s.Inspect("world")
	_, m := registryManifest(t, reg, repo, "world")
	var cfg pool.Blob
	for _, b := range a.Blobs {
		if b.Role == "config" {
			cfg = b
		}
	}
	if m.Config.MediaType != pool.MediaTypeConfigGzip || m.Config.Annotations[pool.AnnotationConfigDigest] != string(cfg.Digest) {
		t.Fatalf("the registry's manifest of world has config %+v, want the compressed description of %s", m.Config, cfg.Digest)
	}
	if len(m.Config.Data) == 0 || int64(len(m.Config.Data)) != m.Config.Size || int64(len(m.Config.Data)) >= cfg.Size {
		t.Errorf("embedded description: %d bytes (descriptor says %d), the description %d", len(m.Config.Data), m.Config.Size, cfg.Size)
	}

	// A fresh pool: the description comes out of the manifest, no blob
	// request for it, and the manifest is the source's byte for byte.
	dst := filepath.Join(t.TempDir(), "fresh")
	_, off := reg.blobGets(t, 0)
	res, err := Pull(ctx, dst, repo, []string{"world"}, reg.opt)
	if err != nil {
		t.Fatal(err)
	}
	gets, _ := reg.blobGets(t, off)
	if slices.Contains(gets, cfg.Digest) || slices.Contains(gets, m.Config.Digest) {
		t.Errorf("the registry served world's description (%v) although its manifest carries it", gets)
	}
	if res.LocalConfigs != 0 {
		t.Errorf("a fresh pool read %d descriptions locally", res.LocalConfigs)
	}
	b, err := mustOpen(t, dst).Inspect("world")
	if err != nil {
		t.Fatal(err)
	}
	if b.Manifest != a.Manifest {
		t.Errorf("world's manifest after the round trip is %s, at the source %s", b.Manifest, a.Manifest)
	}
	mustVerify(t, mustOpen(t, dst))
}

func TestPullReadsARegistryWrittenTheWayEarlierVersionsPushed(t *testing.T) {
	f := pooltest.Images(t)
	reg := startRegistry(t, false)
	ctx := context.Background()
	src := pooltest.NewPool(t)
	mustAdd(t, src, f.Hello, pool.AddOptions{InitBlobs: true})
	repo := reg.Host + "/old"
	o := reg.opt
	o.PlainDescriptions = true
	if _, err := Push(ctx, mustOpen(t, src), repo, nil, o); err != nil {
		t.Fatal(err)
	}
	a, _ := mustOpen(t, src).Inspect("hello")
	if d, m := registryManifest(t, reg, repo, "hello"); d.Digest != a.Manifest || m.Config.MediaType != desc.MediaTypeConfig {
		t.Fatalf("pushed with plain descriptions: manifest %s (config %+v), want the pool's %s", d.Digest, m.Config, a.Manifest)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if _, err := Pull(ctx, dst, repo, nil, reg.opt); err != nil {
		t.Fatal(err)
	}
	if b, _ := mustOpen(t, dst).Inspect("hello"); b == nil || b.Manifest != a.Manifest {
		t.Errorf("pulled from an old-style registry: %+v, want manifest %s", b, a.Manifest)
	}
	mustVerify(t, mustOpen(t, dst))
}

func TestPullRefusesACompressedDescriptionThatIsNotTheOneItsManifestNames(t *testing.T) {
	reg, repo, src, dst := pushed(t, false)
	ctx := context.Background()
	r, _, err := Repository(repo, reg.opt)
	if err != nil {
		t.Fatal(err)
	}
	_, world := registryManifest(t, reg, repo, "world")
	_, hello := registryManifest(t, reg, repo, "hello")
	push := func(tag string, m ocispec.Manifest) {
		t.Helper()
		if err := pushIfMissing(ctx, r, ocispec.Descriptor{MediaType: m.Config.MediaType, Digest: m.Config.Digest, Size: m.Config.Size}, m.Config.Data); err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(m)
		if _, err := oras.TagBytes(ctx, r, ocispec.MediaTypeImageManifest, data, tag); err != nil {
			t.Fatal(err)
		}
	}
	// world's layers with hello's description (a consistent blob of its
	// own), under world's description digest.
	swapped := *world
	swapped.Config = hello.Config
	swapped.Config.Annotations = world.Config.Annotations
	push("swapped", swapped)
	// world's description with one byte of the embedded data changed.
	flipped := *world
	flipped.Config.Data = bytes.Clone(world.Config.Data)
	flipped.Config.Data[len(flipped.Config.Data)/2] ^= 1
	push("flipped", flipped)
	// A gzip bomb: far more than a description may have.
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zw.Write(make([]byte, pool.MaxMetaSize+1))
	zw.Close()
	huge := *world
	d := content.NewDescriptorFromBytes(pool.MediaTypeConfigGzip, bomb.Bytes())
	huge.Config = ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, Data: bomb.Bytes(), Annotations: world.Config.Annotations}
	push("huge", huge)

	before := poolState(t, dst)
	for tag, want := range map[string]string{"swapped": "unpacks to", "flipped": "does not match its digest", "huge": "more than a description may have"} {
		_, err := Pull(ctx, dst, repo, []string{tag}, reg.opt)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("pull of %s: %v, want an error saying %q", tag, err, want)
		}
	}
	if after := poolState(t, dst); after != before {
		t.Errorf("a refused pull changed the pool:\n%s\nwas\n%s", after, before)
	}
	_ = src
}
