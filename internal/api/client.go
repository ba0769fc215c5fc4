package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
)

// Client talks to a daemon over its Unix socket.
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client of the daemon listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{Socket: socket, hc: &http.Client{Transport: tr}}
}

// do sends a request and decodes a 2xx answer into out (if not nil); any
// other answer becomes an error carrying the daemon's fault_message.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://unipool"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(VersionHeader, CurrentVersion)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("daemon at %s: %w (is `unipool serve --socket %s` running?)", c.Socket, err, c.Socket)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return fmt.Errorf("daemon at %s: %s %s: %w", c.Socket, method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(data, &e) == nil && e.FaultMessage != "" {
			return fmt.Errorf("daemon at %s: %s", c.Socket, e.FaultMessage)
		}
		return fmt.Errorf("daemon at %s: %s %s: %s", c.Socket, method, path, resp.Status)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("daemon at %s: %s %s: bad answer: %w", c.Socket, method, path, err)
	}
	return nil
}

// Info asks the daemon who it is.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var i Info
	return i, c.do(ctx, http.MethodGet, "/", nil, &i)
}

// Start starts instances.
func (c *Client) Start(ctx context.Context, r StartRequest) (StartResponse, error) {
	var s StartResponse
	return s, c.do(ctx, http.MethodPost, "/instances", r, &s)
}

// ListOptions filter GET /instances.
type ListOptions struct {
	Batch  uint64 // only this batch (0: all)
	Wait   bool   // with Batch: answer once the batch has finished (or after a while)
	Output bool   // include console output
}

// List lists instances in id order.
func (c *Client) List(ctx context.Context, o ListOptions) ([]Instance, error) {
	q := url.Values{}
	if o.Batch != 0 {
		q.Set("batch", strconv.FormatUint(o.Batch, 10))
	}
	if o.Wait {
		q.Set("wait", "true")
	}
	if o.Output {
		q.Set("output", "true")
	}
	path := "/instances"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var is []Instance
	return is, c.do(ctx, http.MethodGet, path, nil, &is)
}

// WaitBatch lists a batch with its output once every instance of it has
// finished.
func (c *Client) WaitBatch(ctx context.Context, batch uint64) ([]Instance, error) {
	for {
		is, err := c.List(ctx, ListOptions{Batch: batch, Wait: true, Output: true})
		if err != nil {
			return nil, err
		}
		done := true
		for _, in := range is {
			done = done && in.Finished()
		}
		if done {
			return is, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// Get fetches one instance with its console output and exit status.
func (c *Client) Get(ctx context.Context, id uint64) (Instance, error) {
	var in Instance
	return in, c.do(ctx, http.MethodGet, "/instances/"+strconv.FormatUint(id, 10), nil, &in)
}

// Stop stops a pending or running instance.
func (c *Client) Stop(ctx context.Context, id uint64) error {
	return c.do(ctx, http.MethodPut, "/instances/"+strconv.FormatUint(id, 10)+"/actions", Action{ActionType: ActionStop}, nil)
}

// Delete forgets a finished instance (its output with it).
func (c *Client) Delete(ctx context.Context, id uint64) error {
	return c.do(ctx, http.MethodDelete, "/instances/"+strconv.FormatUint(id, 10), nil, nil)
}

// Metrics fetches the host metrics.
func (c *Client) Metrics(ctx context.Context) (Metrics, error) {
	var m Metrics
	return m, c.do(ctx, http.MethodGet, "/metrics", nil, &m)
}
