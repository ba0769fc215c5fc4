package distribution

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// RemoteOptions are how to reach a registry and who to be there.
type RemoteOptions struct {
	// PlainHTTP speaks http, not https: only when asked for.
	PlainHTTP bool
	// CAFile is a PEM file of CA certificates trusted besides the system's.
	CAFile string
	// Username and Password, when Username is set, are the credentials
	// (the CLI reads the password from stdin, never from argv). Otherwise
	// they come from the docker config: DockerConfig, else
	// $DOCKER_CONFIG/config.json, else ~/.docker/config.json (auths,
	// credsStore, credHelpers).
	Username     string
	Password     string
	DockerConfig string
	// Jobs is how many blobs move at once (default 4).
	Jobs int
	// PlainDescriptions: push each manifest as the pool has it, its
	// description a blob of its own, as versions before the wire form
	// (wire.go) did. For comparing; pull reads both.
	PlainDescriptions bool
}

func (o RemoteOptions) jobs() int {
	if o.Jobs <= 0 {
		return 4
	}
	return o.Jobs
}

// Transfer is what went over the wire: HTTP requests, and the bytes of
// request and response bodies (blobs, manifests, tag lists, error bodies).
type Transfer struct {
	Requests int64 `json:"requests"`
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
}

func (t *Transfer) snapshot() Transfer {
	return Transfer{Requests: atomic.LoadInt64(&t.Requests), BytesIn: atomic.LoadInt64(&t.BytesIn), BytesOut: atomic.LoadInt64(&t.BytesOut)}
}

// countingTransport counts t's requests and body bytes.
type countingTransport struct {
	base http.RoundTripper
	t    *Transfer
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	atomic.AddInt64(&c.t.Requests, 1)
	if req.Body != nil && req.Body != http.NoBody {
		r := req.Clone(req.Context())
		r.Body = &countingBody{ReadCloser: req.Body, n: &c.t.BytesOut}
		req = r
	}
	resp, err := c.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.t.BytesIn}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	n *int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	atomic.AddInt64(b.n, int64(n))
	return n, err
}

// remoteRepo is a repository with its client's settings, kept to explain
// errors.
type remoteRepo struct {
	*remote.Repository
	ref      string
	host     string
	opt      RemoteOptions
	credFrom string // where the credentials come from, for errors
	transfer *Transfer
}

func openRemote(ref string, opt RemoteOptions) (*remoteRepo, error) {
	repo, err := remote.NewRepository(ref)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w (want host[:port]/path)", ref, err)
	}
	r := &remoteRepo{Repository: repo, ref: ref, host: repo.Reference.Registry, opt: opt, transfer: &Transfer{}}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if opt.CAFile != "" {
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		pem, err := os.ReadFile(opt.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", opt.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	client := &auth.Client{
		// Registries answer 5xx (and 429) to requests that race with
		// others or meet a busy server; clients retry them with backoff
		// (oras' default policy: at most 5 more tries, 0.2–3 s apart). Each
		// try is counted.
		Client: &http.Client{Transport: retry.NewTransport(&countingTransport{base: tr, t: r.transfer})},
		Header: http.Header{"User-Agent": {"unipool"}},
		Cache:  auth.NewCache(),
	}
	switch {
	case opt.Username != "":
		client.Credential = auth.StaticCredential(r.host, auth.Credential{Username: opt.Username, Password: opt.Password})
		r.credFrom = fmt.Sprintf("user %q from --username", opt.Username)
	default:
		var store *credentials.DynamicStore
		if opt.DockerConfig != "" {
			store, err = credentials.NewStore(opt.DockerConfig, credentials.StoreOptions{})
		} else {
			store, err = credentials.NewStoreFromDocker(credentials.StoreOptions{})
		}
		if err != nil {
			return nil, fmt.Errorf("docker config: %w", err)
		}
		client.Credential = credentials.Credential(store)
		r.credFrom = "no credentials (no --username, and " + store.ConfigPath() + " has none for " + r.host + ")"
		if c, err := store.Get(context.Background(), credentials.ServerAddressFromHostname(r.host)); err == nil && c != auth.EmptyCredential {
			r.credFrom = "credentials for " + r.host + " from " + store.ConfigPath()
		}
	}
	repo.Client = client
	repo.PlainHTTP = opt.PlainHTTP
	return r, nil
}

// explain turns the errors a registry client meets into what to do about
// them. It never shows a password: the client's errors carry URLs and
// registry error codes only.
func (r *remoteRepo) explain(err error) error {
	if err == nil {
		return nil
	}
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &hostErr):
		names := "no name"
		if c := hostErr.Certificate; c != nil {
			var all []string
			all = append(all, c.DNSNames...)
			for _, ip := range c.IPAddresses {
				all = append(all, ip.String())
			}
			if len(all) > 0 {
				names = strings.Join(all, ", ")
			}
		}
		return fmt.Errorf("registry %s: its TLS certificate is not valid for %s (it names %s): %w", r.host, hostErr.Host, names, err)
	case errors.As(err, &unknownCA), errors.As(err, &invalid), errors.As(err, &verify):
		return fmt.Errorf("registry %s: its TLS certificate is not trusted (%w); give the CA that signed it with --ca-file", r.host, err)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("registry %s speaks plain HTTP, not HTTPS; pass --plain-http if that is meant: %w", r.host, err)
	}
	if errors.Is(err, auth.ErrBasicCredentialNotFound) {
		return fmt.Errorf("registry %s asks for a password and there is none — %s; give --username (password on stdin) or log in with docker: %w", r.host, r.credFrom, err)
	}
	var er *errcode.ErrorResponse
	if errors.As(err, &er) {
		switch er.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("registry %s refused the credentials (401 unauthorized) — %s: %w", r.host, r.credFrom, err)
		case http.StatusForbidden:
			return fmt.Errorf("registry %s: access denied (403 forbidden) — %s: %w", r.host, r.credFrom, err)
		}
	}
	return err
}

// Repository is a client for the repository ref ("host[:port]/path")
// configured as push and pull configure theirs (TLS, credentials), and
// the counter of what goes over its wire. For shipping other artifacts
// beside a pool (bench distribute's whole images).
func Repository(ref string, opt RemoteOptions) (*remote.Repository, *Transfer, error) {
	r, err := openRemote(ref, opt)
	if err != nil {
		return nil, nil, err
	}
	return r.Repository, r.transfer, nil
}

// Snapshot reads the counters.
func (t *Transfer) Snapshot() Transfer { return t.snapshot() }

// getBlob GETs blob d from byte off on (a Range request when off > 0).
// whole says the body is the whole blob (the registry ignored the range,
// or none was asked for); else it starts at off.
func (r *remoteRepo) getBlob(ctx context.Context, d ocispec.Descriptor, off int64) (body io.ReadCloser, whole bool, err error) {
	scheme := "https"
	if r.PlainHTTP {
		scheme = "http"
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", scheme, r.Reference.Host(), r.Reference.Repository, d.Digest)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false, err
	}
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, d.Size-1))
	}
	resp, err := r.Client.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return resp.Body, true, nil
	case resp.StatusCode == http.StatusPartialContent && off > 0:
		var start, end, size int64
		cr := resp.Header.Get("Content-Range")
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &start, &end, &size); err != nil || start != off || end != d.Size-1 || size != d.Size {
			resp.Body.Close()
			return nil, false, fmt.Errorf("blob %s: the registry answered bytes %d- with Content-Range %q", d.Digest, off, cr)
		}
		return resp.Body, false, nil
	}
	defer resp.Body.Close()
	er := &errcode.ErrorResponse{Method: req.Method, URL: req.URL, StatusCode: resp.StatusCode}
	if b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)); len(b) > 0 {
		var body struct{ Errors errcode.Errors }
		if json.Unmarshal(b, &body) == nil {
			er.Errors = body.Errors
		}
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, false, fmt.Errorf("blob %s: %w: %w", d.Digest, errdef.ErrNotFound, er)
	}
	return nil, false, fmt.Errorf("blob %s: %w", d.Digest, er)
}
