package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"
)

func TestStartedRegistryServesTLSFromItsCAAndAsksForThePassword(t *testing.T) {
	r, err := Start(context.Background(), Options{Dir: t.TempDir(), Users: map[string]string{"u": "secret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	if !strings.HasPrefix(r.Host, "127.0.0.1:") {
		t.Errorf("host %q, want the loopback address", r.Host)
	}
	pem, err := os.ReadFile(r.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	get := func(user, pw string) int {
		req, _ := http.NewRequest("GET", "https://"+r.Host+"/v2/", nil)
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get("", ""); s != http.StatusUnauthorized {
		t.Errorf("no password: status %d, want 401", s)
	}
	if s := get("u", "wrong"); s != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d, want 401", s)
	}
	if s := get("u", "secret"); s != http.StatusOK {
		t.Errorf("right password: status %d, want 200", s)
	}
	if _, err := http.Get("https://" + r.Host + "/v2/"); err == nil {
		t.Error("a client without the test CA trusted the registry")
	}
	if resp, err := http.Get("http://" + r.Host + "/v2/"); err == nil && resp.StatusCode == http.StatusOK {
		t.Error("the TLS registry answered plain HTTP")
	}
	r.Stop()
	if _, err := c.Get("https://" + r.Host + "/v2/"); err == nil {
		t.Error("still serving after Stop")
	}
}
