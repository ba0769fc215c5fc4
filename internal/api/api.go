// Package api is the HTTP/JSON API of `unipool serve` on its Unix socket:
// the request and response bodies, their parsers (which treat every body
// as hostile), and the client the CLI uses. Conventions follow
// Firecracker's API: resources under fixed paths, JSON bodies in
// snake_case, and every error answered with {"fault_message": "..."}.
//
//	GET    /                          the daemon: version, monitor, pool
//	POST   /instances                 StartRequest -> 201 StartResponse
//	GET    /instances[?batch=N&wait=true&output=true]  []Instance
//	GET    /instances/{id}            Instance (with its console output)
//	PUT    /instances/{id}/actions    Action{"action_type": "Stop"} -> 204
//	                                  (a resident instance: releases its group)
//	DELETE /instances/{id}            forget a finished instance -> 204
//	GET    /metrics                   Metrics
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/unipool/unipool/internal/monitor"
)

// Limits every request body is checked against.
const (
	MaxBodyBytes   = 64 << 10 // a request body larger than this is refused
	MaxNames       = 1024     // unikernels named in one start request
	MaxNameLen     = 255
	MaxCount       = 10000 // instances of each unikernel in one request
	MaxCmdlineLen  = 4096  // bytes; the boot-info page holds the command line
	MaxMemSize     = 4 << 30
	MaxTimeoutMS   = 24 * 3600 * 1000
	ActionStop     = "Stop"
	StatePending   = "pending" // accepted, not yet started
	StateRunning   = "running" // guest running
	StateExited    = "exited"  // wrote an exit code (see exit_code)
	StateFailed    = "failed"  // faulted, timed out, failed to load, killed
	StateStopped   = "stopped" // stopped by request
	VersionHeader  = "X-Unipool-Api"
	CurrentVersion = "1"
)

// StartRequest is the body of POST /instances: count instances of each
// named unikernel of the daemon's pool (like `unipool run -n COUNT NAME...`).
type StartRequest struct {
	Unikernels []string `json:"unikernels"`
	Count      int      `json:"count,omitempty"`          // default 1
	Cmdline    string   `json:"cmdline,omitempty"`        // default: each description's
	MemSize    uint64   `json:"mem_size_bytes,omitempty"` // heap+stack; default: the description's
	TimeoutMS  int64    `json:"timeout_ms,omitempty"`     // default: the daemon's --default-timeout
	Load       string   `json:"load,omitempty"`           // shared (default) or naive
	ASLR       bool     `json:"aslr,omitempty"`
	// ASLRPerLibrary: with ASLR, each library and the app at a base of
	// its own (run --aslr-per-library).
	ASLRPerLibrary bool   `json:"aslr_per_library,omitempty"`
	KSM            bool   `json:"ksm,omitempty"`
	Seed           uint64 `json:"seed,omitempty"` // 0: random
	// Snapshot starts every instance from its unikernel's pooled boot
	// snapshot (`unipool snapshot`; run --snapshot) instead of booting it.
	// Not with ASLR: a snapshot fixes the layout it was taken with.
	Snapshot bool `json:"snapshot,omitempty"`
	// HoldMS keeps the instances resident after their guests end, like a
	// warm pool: once every instance of a group has ended (the batch; under
	// serve --vms-per-process, each jail's share of it), the group's guest
	// memory and VMs stay held, no thread running, for at most this long.
	// Exited instances report "resident": true meanwhile; a Stop action on
	// one releases its whole group. 0: end them at once.
	HoldMS int64 `json:"hold_ms,omitempty"`
}

// StartResponse answers a start: the batch and its instances' ids, in
// result order (unikernel by unikernel, instance by instance).
type StartResponse struct {
	Batch     uint64   `json:"batch"`
	Instances []uint64 `json:"instances"`
}

// Instance is one instance as the daemon knows it. The embedded result is
// what `unipool run --json` prints for it; Output is left out of lists
// unless asked for.
type Instance struct {
	ID    uint64 `json:"id"`
	Batch uint64 `json:"batch"`
	State string `json:"state"`
	// Resident: the instance has ended and its guest memory (and VM) is
	// held (StartRequest.HoldMS).
	Resident bool `json:"resident,omitempty"`
	monitor.Result
}

// Finished reports whether the instance has ended, one way or another.
func (in Instance) Finished() bool {
	return in.State != StatePending && in.State != StateRunning
}

// Action is the body of PUT /instances/{id}/actions.
type Action struct {
	ActionType string `json:"action_type"`
}

// Info answers GET /.
type Info struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	Monitor string `json:"monitor"`
	Pool    string `json:"pool"`
}

// Metrics answers GET /metrics: what the host spends on its instances.
type Metrics struct {
	Monitor   string       `json:"monitor"`
	Instances CountMetrics `json:"instances"`
	Memory    MemMetrics   `json:"memory"`
	LoadTime  TimeMetrics  `json:"load_time"`
	Console   Budget       `json:"console"`
	Jails     JailMetrics  `json:"jails"`
}

// JailMetrics counts the jails' processes (serve --vms-per-process) and
// what their cgroups are charged: every page their processes hold,
// guest memory included, page tables and kernel memory as the cgroup
// accounts them.
type JailMetrics struct {
	Processes   int    `json:"processes"`
	MemoryBytes uint64 `json:"memory_bytes"`
}

// CountMetrics counts the instances the daemon holds, by state, and all
// it ever started.
type CountMetrics struct {
	Pending  int    `json:"pending"`
	Running  int    `json:"running"`
	Exited   int    `json:"exited"`
	Failed   int    `json:"failed"`
	Stopped  int    `json:"stopped"`
	Resident int    `json:"resident"` // ended, held in memory (hold_ms)
	Started  uint64 `json:"started_total"`
	Retained int    `json:"retained"`
}

// MemMetrics is memory as the measurement package reads it: the daemon's
// own PSS, the summed PSS of the processes holding running or resident
// instances (process monitor, and jails; under kvm without jails they are
// the daemon), and MemAvailable.
type MemMetrics struct {
	DaemonPSS      uint64 `json:"daemon_pss_bytes"`
	InstancesPSS   uint64 `json:"instances_pss_bytes"`
	InstancesRead  int    `json:"instances_measured"`
	MemAvailable   uint64 `json:"mem_available_bytes"`
	PerInstancePSS uint64 `json:"per_running_instance_pss_bytes"`
}

// TimeMetrics summarises the load times of the most recent starts.
type TimeMetrics struct {
	Count  int   `json:"count"`
	MeanNS int64 `json:"mean_ns"`
	P50NS  int64 `json:"p50_ns"`
	P99NS  int64 `json:"p99_ns"`
}

// Budget is the console budget: every instance reserves its cap from it
// when started; a finished instance keeps what its output holds until it
// is deleted or evicted.
type Budget struct {
	CapBytes    int   `json:"per_instance_cap_bytes"`
	BudgetBytes int64 `json:"budget_bytes"`
	UsedBytes   int64 `json:"used_bytes"`
}

// Error is every error answer's body.
type Error struct {
	FaultMessage string `json:"fault_message"`
}

// decodeStrict reads exactly one JSON value with no unknown fields.
func decodeStrict(data []byte, v any) error {
	if len(data) > MaxBodyBytes {
		return fmt.Errorf("body of %d bytes is over the %d-byte limit", len(data), MaxBodyBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty body: want a JSON object")
		}
		return fmt.Errorf("bad JSON body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("bad JSON body: more than one value")
	}
	return nil
}

// ParseStartRequest reads and checks a POST /instances body. Count 0
// becomes 1.
func ParseStartRequest(data []byte) (StartRequest, error) {
	var r StartRequest
	if err := decodeStrict(data, &r); err != nil {
		return StartRequest{}, err
	}
	if len(r.Unikernels) == 0 {
		return StartRequest{}, errors.New(`"unikernels": name at least one unikernel of the pool`)
	}
	if len(r.Unikernels) > MaxNames {
		return StartRequest{}, fmt.Errorf(`"unikernels": %d names, at most %d`, len(r.Unikernels), MaxNames)
	}
	for _, n := range r.Unikernels {
		if err := CheckName(n); err != nil {
			return StartRequest{}, fmt.Errorf(`"unikernels": %w`, err)
		}
	}
	if r.Count == 0 {
		r.Count = 1
	}
	if r.Count < 0 || r.Count > MaxCount {
		return StartRequest{}, fmt.Errorf(`"count": %d, want 1..%d`, r.Count, MaxCount)
	}
	if len(r.Cmdline) > MaxCmdlineLen {
		return StartRequest{}, fmt.Errorf(`"cmdline": %d bytes, at most %d`, len(r.Cmdline), MaxCmdlineLen)
	}
	if strings.IndexByte(r.Cmdline, 0) >= 0 {
		return StartRequest{}, errors.New(`"cmdline": contains a NUL byte`)
	}
	if r.MemSize > MaxMemSize {
		return StartRequest{}, fmt.Errorf(`"mem_size_bytes": %d, at most %d`, r.MemSize, uint64(MaxMemSize))
	}
	if r.TimeoutMS < 0 || r.TimeoutMS > MaxTimeoutMS {
		return StartRequest{}, fmt.Errorf(`"timeout_ms": %d, want 0..%d`, r.TimeoutMS, MaxTimeoutMS)
	}
	if r.HoldMS < 0 || r.HoldMS > MaxTimeoutMS {
		return StartRequest{}, fmt.Errorf(`"hold_ms": %d, want 0..%d`, r.HoldMS, MaxTimeoutMS)
	}
	switch r.Load {
	case "", monitor.LoadShared, monitor.LoadNaive:
	default:
		return StartRequest{}, fmt.Errorf(`"load": %q, want %q or %q`, r.Load, monitor.LoadShared, monitor.LoadNaive)
	}
	if r.Snapshot && (r.ASLR || r.ASLRPerLibrary) {
		return StartRequest{}, errors.New(`"snapshot" with "aslr": ` + monitor.SnapshotFixesLayout)
	}
	return r, nil
}

// CheckName accepts a pool name: printable, no slash, not too long.
func CheckName(n string) error {
	if n == "" || len(n) > MaxNameLen {
		return fmt.Errorf("name %q: want 1..%d bytes", n, MaxNameLen)
	}
	for _, c := range n {
		if c == '/' || !unicode.IsPrint(c) || unicode.IsSpace(c) {
			return fmt.Errorf("name %q: no slashes, spaces or control characters", n)
		}
	}
	return nil
}

// ParseAction reads and checks a PUT /instances/{id}/actions body.
func ParseAction(data []byte) (Action, error) {
	var a Action
	if err := decodeStrict(data, &a); err != nil {
		return Action{}, err
	}
	if a.ActionType != ActionStop {
		return Action{}, fmt.Errorf(`"action_type": %q, want %q`, a.ActionType, ActionStop)
	}
	return a, nil
}

// ParseID reads an instance or batch id from a path or query.
func ParseID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("id %q: want a positive decimal number", s)
	}
	return id, nil
}
