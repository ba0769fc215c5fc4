package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/unipool/unipool/internal/api"
)

// maxWait is how long one GET /instances?wait=true waits before it
// answers with the batch as it is (the client asks again).
const maxWait = 30 * time.Second

// Handler answers the API (internal/api) from d.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { reply(w, 200, d.Info()) })
	mux.HandleFunc("POST /instances", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(w, r)
		if err != nil {
			fail(w, err)
			return
		}
		req, err := api.ParseStartRequest(body)
		if err != nil {
			fail(w, errorf(400, "%v", err))
			return
		}
		resp, err := d.Start(req)
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, 201, resp)
	})
	mux.HandleFunc("GET /instances", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var batch uint64
		if s := q.Get("batch"); s != "" {
			var err error
			if batch, err = api.ParseID(s); err != nil {
				fail(w, errorf(400, "batch: %v", err))
				return
			}
		}
		wait, err := boolParam(q.Get("wait"), "wait")
		if err != nil {
			fail(w, err)
			return
		}
		output, err := boolParam(q.Get("output"), "output")
		if err != nil {
			fail(w, err)
			return
		}
		is, err := d.List(r.Context(), batch, wait, output, maxWait)
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, 200, is)
	})
	withID := func(h func(w http.ResponseWriter, r *http.Request, id uint64)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			id, err := api.ParseID(r.PathValue("id"))
			if err != nil {
				fail(w, errorf(400, "instance %v", err))
				return
			}
			h(w, r, id)
		}
	}
	mux.HandleFunc("GET /instances/{id}", withID(func(w http.ResponseWriter, r *http.Request, id uint64) {
		in, err := d.Get(id)
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, 200, in)
	}))
	mux.HandleFunc("PUT /instances/{id}/actions", withID(func(w http.ResponseWriter, r *http.Request, id uint64) {
		body, err := readBody(w, r)
		if err != nil {
			fail(w, err)
			return
		}
		if _, err := api.ParseAction(body); err != nil {
			fail(w, errorf(400, "%v", err))
			return
		}
		if err := d.Stop(id); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("DELETE /instances/{id}", withID(func(w http.ResponseWriter, r *http.Request, id uint64) {
		if err := d.Delete(id); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) { reply(w, 200, d.Metrics()) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, errorf(404, "no resource %s %s (see internal/api for the API)", r.Method, r.URL.Path))
	})
	return mux
}

func boolParam(s, name string) (bool, error) {
	switch s {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, errorf(400, "%s=%q: want true or false", name, s)
}

// readBody reads a request body of at most api.MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, api.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, errorf(413, "request body over the %d-byte limit", api.MaxBodyBytes)
	}
	if err != nil {
		return nil, errorf(400, "read request body: %v", err)
	}
	return data, nil
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, err error) {
	status := 500
	var e *Error
	if errors.As(err, &e) {
		status = e.Status
	}
	reply(w, status, api.Error{FaultMessage: err.Error()})
}

// Listen opens the Unix socket at path, mode 0600 (only its owner may
// drive the daemon). A socket left by a daemon that died is replaced; one
// that a live daemon answers on is not.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another daemon is listening there", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; not touching it", path)
		}
		os.Remove(path)
	}
	old := umask(0o177)
	l, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Serve answers the API on l until ctx is cancelled, then shuts down
// gracefully: no new requests or starts, running instances get grace to
// finish, then are stopped; the socket is removed.
func (d *Daemon) Serve(ctx context.Context, l net.Listener, grace time.Duration) error {
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		d.Shutdown(0)
		return err
	case <-ctx.Done():
	}
	d.mu.Lock()
	d.closing = true
	d.mu.Unlock()
	d.Shutdown(grace)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx) // waiters on batches have their answer by now
	return nil
}

// DefaultSocket is where serve listens and the clients look without
// --socket/--host: $UNIPOOL_SOCKET, else $XDG_RUNTIME_DIR/unipool.sock,
// else /run/unipool/unipool.sock for root, else /tmp/unipool-UID/unipool.sock.
func DefaultSocket() string {
	if s := os.Getenv("UNIPOOL_SOCKET"); s != "" {
		return s
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "unipool.sock")
	}
	if os.Getuid() == 0 {
		return "/run/unipool/unipool.sock"
	}
	return fmt.Sprintf("/tmp/unipool-%d/unipool.sock", os.Getuid())
}
