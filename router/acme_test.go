package router

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/singlehost/convox/internal/pebbletest"
)

// The hosts of the ACME tests: the rack's domain is localDomain, and
// publicHost is a `domain:` of the same service, which the test DNS server
// resolves to 127.0.0.1 for pebble.
const (
	localDomain = "convox.test"
	localHost   = "web.app." + localDomain
	publicHost  = "app.example.test"
)

// TestACME_Pebble gets certificates from pebble, a real ACME server, on
// loopback: once through http-01 answered on the router's HTTP listener,
// once through tls-alpn-01 answered on its HTTPS listener.
func TestACME_Pebble(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the ACME tests against pebble, a local ACME server")
	}
	bin := pebbletest.Binary(t)

	for _, challenge := range []string{"http-01", "tls-alpn-01"} {
		t.Run(challenge, func(t *testing.T) {
			rig := newACMERig(t, bin, challenge)

			leaf := rig.handshake(t, publicHost, rig.pebbleRoots)
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: rig.rackRoots}); err == nil {
				t.Fatalf("the certificate of %s is signed by the rack CA, want pebble's", publicHost)
			}
			t.Logf("%s: certificate issued by %q after %d order(s)", publicHost, leaf.Issuer.CommonName, rig.orders.Load())
			switch n := rig.challenges.Load(); {
			case challenge == "http-01" && n == 0:
				t.Error("the router answered no http-01 challenge")
			case challenge == "tls-alpn-01" && n != 0:
				t.Errorf("the router answered %d http-01 challenges, want tls-alpn-01 alone", n)
			}
			orders := rig.orders.Load()
			if orders == 0 {
				t.Fatal("counted no order: is the test's transport in use?")
			}

			// Requests go through with the new certificate.
			res, err := rig.client(rig.pebbleRoots).Get("https://" + publicHost + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || string(body) != "hello" {
				t.Errorf("got %d %q, want 200 hello", res.StatusCode, body)
			}

			t.Run("second handshake reuses it", func(t *testing.T) {
				again := rig.handshake(t, publicHost, rig.pebbleRoots)
				if again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
					t.Error("a second handshake got another certificate")
				}
				if n := rig.orders.Load(); n != orders {
					t.Errorf("%d more orders, want none", n-orders)
				}
			})
			t.Run("a restart reuses the cached one", func(t *testing.T) {
				if _, err := os.Stat(filepath.Join(rig.cacheDir, publicHost)); err != nil {
					t.Fatalf("the certificate is not in the cache: %v", err)
				}
				rt2 := New(rig.opts)
				rt2.SetRoutes("app", rig.routes)
				addr := serveTLS(t, rt2)
				again := handshakeAt(t, addr, publicHost, rig.pebbleRoots)
				if again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
					t.Error("a new router with the same cache got another certificate")
				}
				if n := rig.orders.Load(); n != orders {
					t.Errorf("%d more orders, want none", n-orders)
				}
			})
			t.Run("the rack's hosts keep the rack CA", func(t *testing.T) {
				rig.handshake(t, localHost, rig.rackRoots)
				if n := rig.orders.Load(); n != orders {
					t.Errorf("%d orders for %s, want none", n-orders, localHost)
				}
			})
			t.Run("no certificate for an unrouted host", func(t *testing.T) {
				conn, err := tls.Dial("tcp", rig.httpsAddr, &tls.Config{ServerName: "other.example.test", InsecureSkipVerify: true})
				if err == nil {
					conn.Close()
					t.Error("the handshake succeeded, want it to fail")
				}
				if n := rig.orders.Load(); n != orders {
					t.Errorf("%d orders for an unrouted host, want none", n-orders)
				}
			})
		})
	}
}

// TestACME_Fallback: when the ACME CA gives no certificate, a handshake gets
// the rack CA's, the failure is logged once, and the CA is not asked again
// at every handshake.
func TestACME_Fallback(t *testing.T) {
	var asked atomic.Int64
	dir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Error(w, `{"type":"urn:ietf:params:acme:error:unauthorized","detail":"no"}`, http.StatusForbidden)
	}))
	t.Cleanup(dir.Close)
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	rt := New(Options{
		CA:           ca,
		Log:          slog.New(slog.NewTextHandler(&logs, nil)),
		LocalDomains: []string{localDomain},
		ACME:         &ACMEOptions{DirectoryURL: dir.URL + "/directory", CacheDir: filepath.Join(t.TempDir(), "acme")},
	})
	rt.SetRoutes("app", []Route{{Service: "web", Hosts: []string{localHost, publicHost}, Targets: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}}})
	addr := serveTLS(t, rt)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM())

	for i := range 3 {
		handshakeAt(t, addr, publicHost, roots)
		if i == 0 && asked.Load() == 0 {
			t.Fatal("the ACME CA was not asked")
		}
	}
	if n := asked.Load(); n > 2 { // the directory, and maybe a retry
		t.Errorf("the ACME CA was asked %d times, want it left alone until the next try", n)
	}
	if n := strings.Count(logs.String(), "no certificate from the ACME CA"); n != 1 {
		t.Errorf("the failure was logged %d times, want once; logs:\n%s", n, logs.String())
	}
}

func TestACME_Challenge(t *testing.T) {
	be := newBackend(t, "app")
	h := newHarness(t, Options{LocalDomains: []string{localDomain}, ACME: &ACMEOptions{DirectoryURL: "http://127.0.0.1:1/directory", CacheDir: t.TempDir()}})
	h.rt.SetRoutes("app", []Route{{Service: "web", Hosts: []string{localHost, publicHost}, Targets: []netip.AddrPort{be.addr()},
		Whitelist: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}})
	// The router answers no challenge it did not ask for: the request goes
	// to the route, here refused by its whitelist.
	for _, host := range []string{publicHost, localHost} {
		res, _ := h.get(host, acmeChallengePrefix+"token")
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s: got %d, want the route's 403", host, res.StatusCode)
		}
	}
	// With a token of the manager, as during an order, it answers.
	const token = "tok123"
	if err := h.rt.acme.m.Cache.Put(context.Background(), token+"+http-01", []byte("key-authz")); err != nil {
		t.Fatal(err)
	}
	res, body := h.get(publicHost+":80", acmeChallengePrefix+token)
	if res.StatusCode != 200 || body != "key-authz" {
		t.Errorf("got %d %q, want 200 key-authz", res.StatusCode, body)
	}
	// Not for the rack's own hosts, whose certificates come from the rack CA.
	if res, _ := h.get(localHost, acmeChallengePrefix+token); res.StatusCode != http.StatusForbidden {
		t.Errorf("%s: got %d, want the route's 403", localHost, res.StatusCode)
	}
}

func TestRouter_isLocal(t *testing.T) {
	rt := New(Options{LocalDomains: []string{"Convox.Test."}})
	for host, want := range map[string]bool{
		"convox.test":         true,
		"web.app.convox.test": true,
		"localhost":           true,
		"web.app.localhost":   true,
		"127.0.0.1":           true,
		"::1":                 true,
		"intranet":            true,
		"notconvox.test":      false,
		"app.example.com":     false,
	} {
		if got := rt.isLocal(host); got != want {
			t.Errorf("isLocal(%q) = %t, want %t", host, got, want)
		}
	}
}

// acmeRig is a router with ACME on, served on loopback, and the pebble that
// signs its certificates.
type acmeRig struct {
	opts        Options
	routes      []Route
	httpsAddr   string
	cacheDir    string
	rackRoots   *x509.CertPool
	pebbleRoots *x509.CertPool
	orders      atomic.Int64 // new orders the router sent
	challenges  atomic.Int64 // http-01 requests the router got
}

func newACMERig(t *testing.T, pebble, challenge string) *acmeRig {
	t.Helper()
	rig := &acmeRig{cacheDir: filepath.Join(t.TempDir(), "acme")}
	httpLn, httpsLn := listenLoopback(t), listenLoopback(t)
	// pebble validates the challenge type under test on the router, and the
	// other one on a port where nothing listens.
	httpPort, tlsPort := portOf(httpLn), portOf(httpsLn)
	if challenge == "http-01" {
		tlsPort = freePort(t)
	} else {
		httpPort = freePort(t)
	}
	p := pebbletest.Start(t, pebble, httpPort, tlsPort)
	rig.pebbleRoots = p.Roots

	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rig.rackRoots = x509.NewCertPool()
	rig.rackRoots.AppendCertsFromPEM(ca.PEM())

	var logs syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("router log:\n%s\npebble's output:\n%s", logs.String(), p.Output())
		}
	})
	rig.opts = Options{
		CA:           ca,
		Log:          slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HTTPSPort:    portOf(httpsLn),
		LocalDomains: []string{localDomain},
		ACME: &ACMEOptions{
			DirectoryURL: p.Directory,
			Email:        "ops@example.test",
			CacheDir:     rig.cacheDir,
			HTTPClient:   &http.Client{Transport: orderCounter{p.Client.Transport, &rig.orders}},
		},
	}
	rt := New(rig.opts)
	t.Cleanup(rt.CloseIdleConnections)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	t.Cleanup(be.Close)
	rig.routes = []Route{{Service: "web", Hosts: []string{localHost, publicHost}, Targets: []netip.AddrPort{addrOf(be)}, Redirect: true}}
	rt.SetRoutes("app", rig.routes)

	serve(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, acmeChallengePrefix) {
			rig.challenges.Add(1)
		}
		rt.ServeHTTP(w, r)
	})}, httpLn, false)
	serve(t, &http.Server{Handler: rt, TLSConfig: rt.TLSConfig()}, httpsLn, true)
	rig.httpsAddr = httpsLn.Addr().String()
	return rig
}

func (rig *acmeRig) handshake(t *testing.T, host string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	return handshakeAt(t, rig.httpsAddr, host, roots)
}

// client sends every request to the rig's HTTPS listener.
func (rig *acmeRig) client(roots *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, rig.httpsAddr)
		},
		DisableKeepAlives: true,
	}}
}

// handshakeAt makes a TLS handshake with addr for host, verifying the
// certificate against roots, and returns the certificate.
func handshakeAt(t *testing.T, addr, host string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	d := &tls.Dialer{Config: &tls.Config{ServerName: host, RootCAs: roots}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("handshake for %s: %v", host, err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
}

// serveTLS serves rt over TLS on a loopback port, for its address.
func serveTLS(t *testing.T, rt *Router) string {
	t.Helper()
	ln := listenLoopback(t)
	serve(t, &http.Server{Handler: rt, TLSConfig: rt.TLSConfig()}, ln, true)
	return ln.Addr().String()
}

func serve(t *testing.T, srv *http.Server, ln net.Listener, tls bool) {
	t.Helper()
	srv.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are expected
	if tls {
		serveHTTPS(t, srv.Handler.(*Router), srv, ln)
		return
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serving: %v", err)
		}
	})
}

// orderCounter counts the new orders sent through it.
type orderCounter struct {
	base http.RoundTripper
	n    *atomic.Int64
}

func (c orderCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.URL.Path == "/order-plz" { // pebble's newOrder
		c.n.Add(1)
	}
	return c.base.RoundTrip(r)
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// freePort is a loopback port where nothing listens, for a moment.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return portOf(ln)
}

func portOf(ln net.Listener) int {
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
