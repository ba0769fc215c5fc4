package pool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/unipool/unipool/internal/libmap"
)

// testRegistry is a minimal OCI distribution registry (the endpoints oras
// uses to push and pull) on a loopback port: blobs and manifests by digest,
// tags, monolithic uploads.
type testRegistry struct {
	mu        sync.Mutex
	blobs     map[digest.Digest][]byte
	manifests map[digest.Digest][]byte
	types     map[digest.Digest]string
	tags      map[string]digest.Digest
	blobGets  int
}

var (
	blobRE     = regexp.MustCompile(`^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$`)
	uploadRE   = regexp.MustCompile(`^/v2/(.+)/blobs/uploads/([0-9a-f]*)$`)
	manifestRE = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
	tagsRE     = regexp.MustCompile(`^/v2/(.+)/tags/list$`)
)

func newTestRegistry(t *testing.T) (*testRegistry, string) {
	r := &testRegistry{blobs: map[digest.Digest][]byte{}, manifests: map[digest.Digest][]byte{}, types: map[digest.Digest]string{}, tags: map[string]digest.Digest{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, strings.TrimPrefix(srv.URL, "http://")
}

func (r *testRegistry) ServeHTTP(w http.ResponseWriter, q *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	path := q.URL.Path
	switch {
	case path == "/v2/" || path == "/v2":
		w.WriteHeader(http.StatusOK)
	case blobRE.MatchString(path):
		d := digest.Digest(blobRE.FindStringSubmatch(path)[2])
		b, ok := r.blobs[d]
		if !ok {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Length", itoa(len(b)))
		w.Header().Set("Docker-Content-Digest", string(d))
		if q.Method == http.MethodGet {
			r.blobGets++
			w.Write(b)
		}
	case uploadRE.MatchString(path) && q.Method == http.MethodPost:
		id := make([]byte, 8)
		rand.Read(id)
		w.Header().Set("Location", "/v2/"+uploadRE.FindStringSubmatch(path)[1]+"/blobs/uploads/"+hex.EncodeToString(id))
		w.WriteHeader(http.StatusAccepted)
	case uploadRE.MatchString(path) && q.Method == http.MethodPut:
		d := digest.Digest(q.URL.Query().Get("digest"))
		b, _ := io.ReadAll(q.Body)
		if d.Validate() != nil || digest.SHA256.FromBytes(b) != d {
			http.Error(w, `{"errors":[{"code":"DIGEST_INVALID"}]}`, http.StatusBadRequest)
			return
		}
		r.blobs[d] = b
		w.Header().Set("Location", "/v2/"+uploadRE.FindStringSubmatch(path)[1]+"/blobs/"+string(d))
		w.WriteHeader(http.StatusCreated)
	case manifestRE.MatchString(path):
		ref := manifestRE.FindStringSubmatch(path)[2]
		d := digest.Digest(ref)
		if d.Validate() != nil {
			d = r.tags[ref]
		}
		if q.Method == http.MethodPut {
			b, _ := io.ReadAll(q.Body)
			md := digest.SHA256.FromBytes(b)
			r.manifests[md] = b
			r.types[md] = q.Header.Get("Content-Type")
			if digest.Digest(ref).Validate() != nil {
				r.tags[ref] = md
			}
			w.Header().Set("Docker-Content-Digest", string(md))
			w.WriteHeader(http.StatusCreated)
			return
		}
		b, ok := r.manifests[d]
		if !ok {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", r.types[d])
		w.Header().Set("Content-Length", itoa(len(b)))
		w.Header().Set("Docker-Content-Digest", string(d))
		if q.Method == http.MethodGet {
			w.Write(b)
		}
	case tagsRE.MatchString(path):
		var tags []string
		for t := range r.tags {
			tags = append(tags, t)
		}
		json.NewEncoder(w).Encode(map[string]any{"name": tagsRE.FindStringSubmatch(path)[1], "tags": tags})
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestPushThenPullRecreatesUnikernelsAndMapElsewhere(t *testing.T) {
	f := images(t)
	reg, host := newTestRegistry(t)
	ctx := context.Background()
	dir := newPool(t)
	mustAdd(t, dir, f.hello, AddOptions{})
	mustAdd(t, dir, f.world, AddOptions{})
	p := mustOpen(t, dir)
	repo := host + "/unipool/test"
	if err := p.Push(ctx, repo, nil, RemoteOptions{PlainHTTP: true}); err != nil {
		t.Fatal(err)
	}
	if len(reg.tags) != 3 || reg.tags[MapTag] == "" {
		t.Errorf("registry tags %v, want hello, world and %s", reg.tags, MapTag)
	}
	// 11 blobs in the pool: 9 non-manifest blobs go to the registry as
	// blobs, the 2 manifests as manifests, plus the map's layer and config.
	if len(reg.blobs) != 9+2 || len(reg.manifests) != 3 {
		t.Errorf("registry holds %d blobs and %d manifests, want 11 and 3", len(reg.blobs), len(reg.manifests))
	}

	other := filepath.Join(t.TempDir(), "other")
	res, err := Pull(ctx, other, repo, []string{"hello"}, RemoteOptions{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.MapLoaded || res.NewBlobs != 6 {
		t.Errorf("pull hello: %+v, want the map loaded and 6 new blobs", res)
	}
	gets := reg.blobGets
	res, err = Pull(ctx, other, repo, nil, RemoteOptions{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	// world needs only its own app, libC, private blob and config: libA
	// and libB are not downloaded again.
	if fetched := reg.blobGets - gets; fetched != 4 || res.NewBlobs != 5 {
		t.Errorf("pull of all: fetched %d blobs, stored %d new; want 4 fetched, 5 new (with its manifest)", fetched, res.NewBlobs)
	}
	q := mustOpen(t, other)
	mustVerify(t, q)
	for _, name := range []string{"hello", "world"} {
		a, _ := p.Inspect(name)
		b, err := q.Inspect(name)
		if err != nil {
			t.Fatal(err)
		}
		if a.Manifest != b.Manifest {
			t.Errorf("%s: manifest %s after the round trip, %s before", name, b.Manifest, a.Manifest)
		}
	}
	m, err := libmap.Load(q.MapPath())
	if err != nil || len(m.Libraries) != 4 {
		t.Errorf("pulled map: %v, %v", m, err)
	}
	// A pool whose map puts libB elsewhere refuses the pulled unikernel.
	third := filepath.Join(t.TempDir(), "third")
	moved := testLibB
	moved.region.Start += 0x100000
	writeMap(t, third, testLibA, moved)
	if _, err := Pull(ctx, third, repo, []string{"hello"}, RemoteOptions{PlainHTTP: true}); err == nil || !strings.Contains(err.Error(), `"libB"`) {
		t.Errorf("pull into a pool with another map: %v", err)
	}
}

func TestPushRefusesADamagedUnikernel(t *testing.T) {
	f := images(t)
	reg, host := newTestRegistry(t)
	dir := newPool(t)
	mustAdd(t, dir, f.hello, AddOptions{})
	p := mustOpen(t, dir)
	d, _ := p.Inspect("hello")
	path := p.BlobPath(string(d.Blobs[1].Digest)) // the config
	data, _ := os.ReadFile(path)
	data[10] ^= 1
	os.WriteFile(path, data, 0o644)
	err := p.Push(context.Background(), host+"/x", nil, RemoteOptions{PlainHTTP: true})
	if err == nil || !strings.Contains(err.Error(), string(d.Blobs[1].Digest)) {
		t.Errorf("push of a damaged unikernel: %v", err)
	}
	if len(reg.tags) != 0 {
		t.Errorf("registry got tags %v", reg.tags)
	}
}

func TestCLIPushPull(t *testing.T) {
	f := images(t)
	_, host := newTestRegistry(t)
	dir := newPool(t)
	unipool(t, dir, "add", f.world)
	repo := host + "/fleet"
	unipool(t, dir, "push", "--plain-http", repo)
	other := filepath.Join(t.TempDir(), "other")
	if out := unipool(t, other, "pull", "--plain-http", repo); !strings.HasPrefix(out, "pulled world (10 new blobs") /* 7 + 3 init blobs */ {
		t.Errorf("pull: %q", out)
	}
	if out := unipool(t, other, "verify"); !strings.Contains(out, "0 problems") {
		t.Errorf("verify after pull: %q", out)
	}
	if out, err := unipoolErr(t, other, "pull", "--plain-http", repo, "nothere"); err == nil || !strings.Contains(out, "nothere") {
		t.Errorf("pull of a missing tag: %v %q", err, out)
	}
}
