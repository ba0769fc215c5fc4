// Package registry starts a real OCI distribution registry — Debian's
// docker-registry package, the CNCF distribution registry — for the tests
// and `unipool bench distribute`: on the loopback address, on a port of its
// own, with its own config and storage folder, serving TLS with a
// certificate from a CA made for it and asking for passwords (htpasswd,
// bcrypt), as a platform would run it. Plain HTTP only when asked.
package registry

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

// Binary is the registry's executable as Debian installs it.
const Binary = "docker-registry"

// Options say how to run the registry.
type Options struct {
	// Dir holds everything of this registry: config.yml, storage/,
	// the CA and server certificate, htpasswd, registry.log. Required.
	Dir string
	// PlainHTTP serves http instead of https.
	PlainHTTP bool
	// Users are the accounts (name -> password) of the htpasswd file; with
	// none, the registry asks for no password.
	Users map[string]string
	// BcryptCost is the htpasswd hashes' cost. The registry checks the
	// password with bcrypt on every request, so the default is
	// bcrypt.MinCost: a benchmark measures transfers, not bcrypt.
	BcryptCost int
	// CertHosts are the names and addresses the server certificate is for
	// (default 127.0.0.1 and localhost); another name makes a certificate
	// a client must refuse.
	CertHosts []string
	// StartTimeout bounds the wait for the registry to listen (default 60 s).
	StartTimeout time.Duration
}

// Registry is a running registry.
type Registry struct {
	Host       string // "127.0.0.1:PORT", what a repository reference starts with
	CAFile     string // PEM certificate of the CA that signed the server's ("" with PlainHTTP)
	StorageDir string // the filesystem driver's root directory
	LogFile    string // its log
	AccessLog  string // its access log (combined log format, one line per request)
	cmd        *exec.Cmd
	done       chan struct{}
	waitErr    error
}

// Find returns the registry executable's path, or an error saying how to
// install it.
func Find() (string, error) {
	path, err := exec.LookPath(Binary)
	if err != nil {
		return "", fmt.Errorf("registry: %s not found: install Debian's docker-registry package (scripts/deps.sh does)", Binary)
	}
	return path, nil
}

var listenRE = regexp.MustCompile(`msg="listening on ([^",]+)`)

// Start writes the registry's config, certificates and htpasswd into
// o.Dir, starts it on 127.0.0.1 at a port the kernel picks, and returns
// once it accepts connections. The caller must Stop it.
func Start(ctx context.Context, o Options) (*Registry, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	if o.Dir == "" {
		return nil, errors.New("registry: no folder given")
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	r := &Registry{StorageDir: filepath.Join(o.Dir, "storage"), LogFile: filepath.Join(o.Dir, "registry.log"),
		AccessLog: filepath.Join(o.Dir, "access.log"), done: make(chan struct{})}
	if err := os.MkdirAll(r.StorageDir, 0o700); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "version: 0.1\nlog:\n  level: info\n  formatter: text\n")
	fmt.Fprintf(&cfg, "storage:\n  filesystem:\n    rootdirectory: %q\n  maintenance:\n    uploadpurging:\n      enabled: false\n", r.StorageDir)
	secret := make([]byte, 16)
	rand.Read(secret)
	fmt.Fprintf(&cfg, "http:\n  addr: 127.0.0.1:0\n  secret: %x\n", secret)
	if !o.PlainHTTP {
		hosts := o.CertHosts
		if len(hosts) == 0 {
			hosts = []string{"127.0.0.1", "localhost"}
		}
		if err := r.writeCerts(o.Dir, hosts); err != nil {
			return nil, err
		}
		fmt.Fprintf(&cfg, "  tls:\n    certificate: %q\n    key: %q\n", filepath.Join(o.Dir, "server.crt"), filepath.Join(o.Dir, "server.key"))
	}
	if len(o.Users) > 0 {
		path := filepath.Join(o.Dir, "htpasswd")
		if err := writeHtpasswd(path, o.Users, o.BcryptCost); err != nil {
			return nil, err
		}
		fmt.Fprintf(&cfg, "auth:\n  htpasswd:\n    realm: unipool\n    path: %q\n", path)
	}
	cfgPath := filepath.Join(o.Dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	logf, err := os.Create(r.LogFile)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	accessf, err := os.Create(r.AccessLog)
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("registry: %w", err)
	}
	defer accessf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Dir = o.Dir
	cmd.Stdout = accessf
	// Not the caller's: a registry outlives no test or benchmark.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("registry: %w", err)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("registry: start %s: %w", bin, err)
	}
	r.cmd = cmd
	addr := make(chan string, 1)
	go func() {
		// Copy the log, and catch the line with the address it listens on.
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		io.Copy(logf, stderr)
		r.waitErr = cmd.Wait()
		logf.Close()
		close(r.done)
	}()
	timer := time.NewTimer(o.StartTimeout)
	defer timer.Stop()
	select {
	case a := <-addr:
		if _, _, err := net.SplitHostPort(a); err != nil {
			r.Stop()
			return nil, fmt.Errorf("registry: it says it listens on %q", a)
		}
		r.Host = a
	case <-r.done:
		return nil, fmt.Errorf("registry: %s exited before listening (%v); its log: %s", bin, r.waitErr, r.tail())
	case <-timer.C:
		r.Stop()
		return nil, fmt.Errorf("registry: not listening after %s; its log: %s", o.StartTimeout, r.tail())
	case <-ctx.Done():
		r.Stop()
		return nil, ctx.Err()
	}
	return r, nil
}

// Stop ends the registry (its storage stays in Dir).
func (r *Registry) Stop() error {
	if r.cmd == nil || r.cmd.Process == nil {
		return nil
	}
	select {
	case <-r.done:
		return nil
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
	return nil
}

// BlobDataPath is the file the filesystem driver keeps a blob's bytes in.
func (r *Registry) BlobDataPath(d digest.Digest) string {
	enc := d.Encoded()
	return filepath.Join(r.StorageDir, "docker", "registry", "v2", "blobs", d.Algorithm().String(), enc[:2], enc, "data")
}

func (r *Registry) tail() string {
	data, _ := os.ReadFile(r.LogFile)
	s := strings.TrimSpace(string(data))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

func writeHtpasswd(path string, users map[string]string, cost int) error {
	if cost == 0 {
		cost = bcrypt.MinCost
	}
	names := make([]string, 0, len(users))
	for n := range users {
		if n == "" || strings.ContainsAny(n, ":\n") {
			return fmt.Errorf("registry: user name %q cannot go into htpasswd", n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		h, err := bcrypt.GenerateFromPassword([]byte(users[n]), cost)
		if err != nil {
			return fmt.Errorf("registry: htpasswd: %w", err)
		}
		fmt.Fprintf(&b, "%s:%s\n", n, h)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

// writeCerts makes a CA (ca.crt) and a server certificate it signs for
// hosts (server.crt, server.key), all ECDSA P-256, valid for a day.
func (r *Registry) writeCerts(dir string, hosts []string) error {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("registry: CA key: %w", err)
	}
	ca := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "unipool test registry CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("registry: CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("registry: CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("registry: server key: %w", err)
	}
	srv := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			srv.IPAddresses = append(srv.IPAddresses, ip)
		} else {
			srv.DNSNames = append(srv.DNSNames, h)
		}
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("registry: server certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("registry: server key: %w", err)
	}
	r.CAFile = filepath.Join(dir, "ca.crt")
	for _, f := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{r.CAFile, "CERTIFICATE", caDER, 0o644},
		{filepath.Join(dir, "server.crt"), "CERTIFICATE", srvDER, 0o644},
		{filepath.Join(dir, "server.key"), "EC PRIVATE KEY", keyDER, 0o600},
	} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.mode); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}
