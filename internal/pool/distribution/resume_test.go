package distribution

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/unipool/unipool/internal/pool"
	"github.com/unipool/unipool/internal/pool/pooltest"
)

// cuttingProxy stands between a client and the real registry, passing
// everything through, except that it cuts the first download of one blob
// off after a number of bytes (as a lost connection or a kill would). It
// records the Range header and the bytes it passed on of every download
// of that blob.
type cuttingProxy struct {
	host string
	mu   sync.Mutex
	gets []proxiedGet
}

type proxiedGet struct {
	rangeHeader string
	bytes       int64
}

func newCuttingProxy(t *testing.T, reg *testRegistry, target digest.Digest, cut int64) *cuttingProxy {
	t.Helper()
	pem, err := os.ReadFile(reg.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	backend, _ := url.Parse("https://" + reg.Host)
	cp := &cuttingProxy{}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(backend) },
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
		FlushInterval: -1,                         // every byte read from the registry goes out at once
		ErrorLog:      log.New(io.Discard, "", 0), // the cut is meant
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method != http.MethodGet || !strings.HasSuffix(resp.Request.URL.Path, "/blobs/"+string(target)) || resp.StatusCode >= 300 {
				return nil
			}
			cp.mu.Lock()
			defer cp.mu.Unlock()
			g := len(cp.gets)
			cp.gets = append(cp.gets, proxiedGet{rangeHeader: resp.Request.Header.Get("Range")})
			limit := int64(-1)
			if g == 0 {
				limit = cut
			}
			resp.Body = &countingCut{ReadCloser: resp.Body, limit: limit, n: func(n int64) {
				cp.mu.Lock()
				cp.gets[g].bytes += n
				cp.mu.Unlock()
			}}
			return nil
		},
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	cp.host = strings.TrimPrefix(srv.URL, "http://")
	return cp
}

// countingCut passes a body on, counting it, and fails after limit bytes
// (limit < 0: never).
type countingCut struct {
	io.ReadCloser
	limit, done int64
	n           func(int64)
}

func (c *countingCut) Read(p []byte) (int, error) {
	if c.limit >= 0 {
		if c.done >= c.limit {
			return 0, errors.New("cut off by the test's proxy")
		}
		if int64(len(p)) > c.limit-c.done {
			p = p[:c.limit-c.done]
		}
	}
	n, err := c.ReadCloser.Read(p)
	c.done += int64(n)
	c.n(int64(n))
	return n, err
}

func TestAPullCutOffInsideABlobContinuesFromTheByteItHadAndFetchesOnlyTheRest(t *testing.T) {
	f := pooltest.Images(t)
	reg := startRegistry(t, false)
	ctx := context.Background()
	src := pooltest.NewPool(t)
	mustAdd(t, src, f.Big, pool.AddOptions{InitBlobs: true})
	if _, err := Push(ctx, mustOpen(t, src), reg.Host+"/big", nil, reg.opt); err != nil {
		t.Fatal(err)
	}
	a, _ := mustOpen(t, src).Inspect("big")
	var target pool.Blob
	for _, b := range a.Blobs {
		if b.Role == "shared" && b.Library == "libBig" {
			target = b
		}
	}
	if target.Size < 4<<20 {
		t.Fatalf("libBig's shared blob is %d bytes, want a large one", target.Size)
	}
	cut := target.Size/3 + 12345 // not on a page or buffer boundary
	proxy := newCuttingProxy(t, reg, target.Digest, cut)
	o := reg.opt
	o.PlainHTTP, o.CAFile = true, "" // to the proxy; the proxy speaks TLS to the registry
	repo := proxy.host + "/big"
	dst := filepath.Join(t.TempDir(), "dst")

	_, err := Pull(ctx, dst, repo, nil, o)
	if err == nil || !strings.Contains(err.Error(), string(target.Digest)) {
		t.Fatalf("a pull whose download of %s is cut off: %v, want an error naming the blob", target.Digest, err)
	}
	partial := filepath.Join(dst, stagingDir, target.Digest.Encoded()+partialSuffix)
	if fi, err := os.Stat(partial); err != nil || fi.Size() != cut {
		t.Fatalf("after the cut, the partial download %s: %v, want %d bytes", partial, fi, cut)
	}
	if vr, err := mustOpen(t, dst).Verify(); err != nil || !vr.OK() || vr.Unikernels != 0 {
		t.Fatalf("after the cut the pool holds %+v (%v), want nothing", vr, err)
	}

	res, err := Pull(ctx, dst, repo, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	proxy.mu.Lock()
	gets := append([]proxiedGet(nil), proxy.gets...)
	proxy.mu.Unlock()
	if len(gets) != 2 {
		t.Fatalf("the blob was downloaded %d times through the proxy, want 2: %+v", len(gets), gets)
	}
	wantRange := fmt.Sprintf("bytes=%d-%d", cut, target.Size-1)
	if gets[0].rangeHeader != "" || gets[0].bytes != cut || gets[1].rangeHeader != wantRange || gets[1].bytes != target.Size-cut {
		t.Errorf("downloads of the blob: %+v; want the whole blob cut at %d, then %q and its %d bytes only", gets, cut, wantRange, target.Size-cut)
	}
	t.Logf("blob %s: %d bytes, cut at %d; second download %q, %d bytes", target.Digest, target.Size, cut, gets[1].rangeHeader, gets[1].bytes)
	// Downloads in flight when the cut failed the first pull were
	// stopped too and are continued as well.
	if res.Continued < 1 || res.ContinuedFrom < cut {
		t.Errorf("second pull: %+v, want the download continued from byte %d among those continued", res, cut)
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Errorf("the partial file is still there: %v", err)
	}
	q := mustOpen(t, dst)
	mustVerify(t, q)
	if b, err := q.Inspect("big"); err != nil || b.Manifest != a.Manifest {
		t.Errorf("pulled big: %+v %v, want manifest %s", b, err, a.Manifest)
	}
}
