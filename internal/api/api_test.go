package api

import (
	"strings"
	"testing"
)

func TestStartRequestDefaultsCountToOne(t *testing.T) {
	r, err := ParseStartRequest([]byte(`{"unikernels": ["hello"], "aslr": true}`))
	if err != nil || r.Count != 1 || !r.ASLR || r.Unikernels[0] != "hello" {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestStartRequestRefusalsNameTheField(t *testing.T) {
	for body, want := range map[string]string{
		``:                                                      "empty body",
		`[]`:                                                    "bad JSON",
		`{"unikernels": ["a"]} {}`:                              "more than one value",
		`{"unikernels": ["a"], "bogus": 1}`:                     "unknown field",
		`{"unikernels": []}`:                                    `"unikernels"`,
		`{"unikernels": ["a/b"]}`:                               "no slashes",
		`{"unikernels": ["a"], "count": -1}`:                    `"count"`,
		`{"unikernels": ["a"], "count": 10001}`:                 `"count"`,
		`{"unikernels": ["a"], "load": "copy"}`:                 `"load"`,
		`{"unikernels": ["a"], "timeout_ms": -5}`:               `"timeout_ms"`,
		`{"unikernels": ["a"], "hold_ms": -5}`:                  `"hold_ms"`,
		`{"unikernels": ["a"], "cmdline": "x\u0000y"}`:          "NUL",
		`{"unikernels": ["a"], "mem_size_bytes": 1e12}`:         "mem_size_bytes",
		`{"unikernels": ["a"], "snapshot": true, "aslr": true}`: "fixes the layout",
		`{"unikernels": ["a"], "snapshot": true, "aslr_per_library": true}`:     "fixes the layout",
		`{"unikernels": ["a"], "cmdline": "` + strings.Repeat("x", 5000) + `"}`: `"cmdline"`,
	} {
		_, err := ParseStartRequest([]byte(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.60q: error %v, want it to mention %q", body, err, want)
		}
	}
}

func TestActionMustBeStop(t *testing.T) {
	if _, err := ParseAction([]byte(`{"action_type": "Stop"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseAction([]byte(`{"action_type": "Reboot"}`)); err == nil || !strings.Contains(err.Error(), "action_type") {
		t.Fatalf("Reboot accepted or unnamed: %v", err)
	}
}

func TestIDsArePositiveDecimals(t *testing.T) {
	for _, bad := range []string{"", "0", "-1", "01", "1e3", "0x10", "18446744073709551616", " 1"} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
	if id, err := ParseID("42"); err != nil || id != 42 {
		t.Fatalf("42: %d %v", id, err)
	}
}

// Whatever the body, the parser answers without panicking, and what it
// accepts is within the limits the daemon relies on.
func FuzzParseStartRequest(f *testing.F) {
	f.Add([]byte(`{"unikernels": ["hello", "sha256"], "count": 3, "cmdline": "-v", "timeout_ms": 100, "hold_ms": 50, "load": "naive"}`))
	f.Add([]byte(`{"unikernels": ["a"], "mem_size_bytes": 16777216, "aslr": true, "seed": 7}`))
	f.Add([]byte(`{"unikernels": null}`))
	f.Add([]byte(`{"unikernels": ["a"], "snapshot": true, "count": 2}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseStartRequest(body)
		if err != nil {
			return
		}
		if r.Snapshot && (r.ASLR || r.ASLRPerLibrary) {
			t.Fatalf("accepted a snapshot start with ASLR: %+v", r)
		}
		if len(r.Unikernels) == 0 || len(r.Unikernels) > MaxNames || r.Count < 1 || r.Count > MaxCount ||
			len(r.Cmdline) > MaxCmdlineLen || r.MemSize > MaxMemSize || r.TimeoutMS < 0 || r.TimeoutMS > MaxTimeoutMS {
			t.Fatalf("accepted out of limits: %+v", r)
		}
		for _, n := range r.Unikernels {
			if CheckName(n) != nil {
				t.Fatalf("accepted name %q", n)
			}
		}
	})
}

func FuzzParseAction(f *testing.F) {
	f.Add([]byte(`{"action_type": "Stop"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if a, err := ParseAction(body); err == nil && a.ActionType != ActionStop {
			t.Fatalf("accepted %q", a.ActionType)
		}
	})
}

func FuzzParseID(f *testing.F) {
	f.Add("17")
	f.Fuzz(func(t *testing.T, s string) {
		if id, err := ParseID(s); err == nil && id == 0 {
			t.Fatalf("%q parsed as 0", s)
		}
	})
}

func TestStartRequestCarriesSnapshot(t *testing.T) {
	r, err := ParseStartRequest([]byte(`{"unikernels": ["hello"], "snapshot": true, "count": 3}`))
	if err != nil || !r.Snapshot || r.Count != 3 {
		t.Fatalf("%+v %v: want snapshot taken, as run --host --snapshot sends it", r, err)
	}
}

func TestStartRequestCarriesPerLibraryASLR(t *testing.T) {
	r, err := ParseStartRequest([]byte(`{"unikernels": ["hello"], "aslr_per_library": true}`))
	if err != nil || !r.ASLRPerLibrary {
		t.Fatalf("%+v %v: want aslr_per_library taken, as run --host --aslr-per-library sends it", r, err)
	}
}
