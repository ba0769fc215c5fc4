package serve

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipool/unipool/internal/api"
	_ "github.com/unipool/unipool/internal/monitor/process"
)

func testDaemon(t *testing.T) *Daemon {
	d, err := New(Config{Monitor: "process", Pool: filepath.Join(t.TempDir(), "pool")})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Every refusal is an error object with a fault_message and the status
// that says whose fault it is.
func TestAPIRefusalsAreErrorObjects(t *testing.T) {
	h := testDaemon(t).Handler()
	for _, c := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/instances", `{"unikernels": ["nosuch"]}`, 400, "not a pool"},
		{"POST", "/instances", `{"unikernels": ["a"], "count": 0.5}`, 400, "bad JSON"},
		{"POST", "/instances", `{"unikernels": ["` + strings.Repeat("a", api.MaxBodyBytes) + `"]}`, 413, "limit"},
		{"GET", "/instances/7", "", 404, "no instance 7"},
		{"GET", "/instances/x", "", 400, "positive decimal"},
		{"PUT", "/instances/7/actions", `{"action_type": "Stop"}`, 404, "no instance 7"},
		{"PUT", "/instances/7/actions", `{"action_type": "Pause"}`, 400, "action_type"},
		{"DELETE", "/instances/7", "", 404, "no instance 7"},
		{"GET", "/instances?wait=true", "", 400, "batch"},
		{"GET", "/instances?batch=3", "", 404, "no batch 3"},
		{"GET", "/nothing", "", 404, "no resource"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, strings.NewReader(c.body)))
		var e api.Error
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || rec.Code != c.status || !strings.Contains(e.FaultMessage, c.want) {
			t.Errorf("%s %s: status %d body %.200q; want %d and %q", c.method, c.path, rec.Code, rec.Body.String(), c.status, c.want)
		}
	}
}

func TestInfoAndEmptyListAndMetrics(t *testing.T) {
	h := testDaemon(t).Handler()
	for _, p := range []string{"/", "/instances", "/metrics"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %s", p, rec.Code, rec.Body.String())
		}
	}
}

// The console budget is reserved in full at start: a start whose caps do
// not fit is refused before anything runs.
func TestStartOverTheConsoleBudgetIsRefused(t *testing.T) {
	d, err := New(Config{Monitor: "process", Pool: t.TempDir(), ConsoleCap: 1 << 20, ConsoleBudget: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	d.used = 3 << 20
	_, err = d.Start(api.StartRequest{Unikernels: []string{"a"}, Count: 2})
	if e, ok := err.(*Error); !ok || e.Status != 503 || !strings.Contains(e.Msg, "console budget") {
		t.Fatalf("got %v", err)
	}
}
