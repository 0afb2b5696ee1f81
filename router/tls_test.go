package router

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestLoadOrCreateCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca") // created on first use
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]os.FileMode{CAKeyFile: 0o600, CACertFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", file, got, want)
		}
	}
	onDisk, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	if !bytes.Equal(ca.PEM(), onDisk) {
		t.Errorf("PEM() differs from %s", CACertFile)
	}
	cert, err := parseCert(ca.PEM())
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || !strings.Contains(cert.Subject.CommonName, "convox local rack CA") {
		t.Errorf("got CA %q (IsCA %t), want a CA named convox local rack CA", cert.Subject.CommonName, cert.IsCA)
	}
	if years := cert.NotAfter.Sub(cert.NotBefore).Hours() / 24 / 365; years < 9.9 || years > 10.1 {
		t.Errorf("CA is valid for %.1f years, want 10", years)
	}

	t.Run("loads the same CA", func(t *testing.T) {
		again, err := LoadOrCreateCA(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.PEM(), ca.PEM()) {
			t.Error("a second start made a new CA")
		}
	})
	t.Run("certificate lost after a crash", func(t *testing.T) {
		dir := t.TempDir()
		first, err := LoadOrCreateCA(dir)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, CACertFile))
		again, err := LoadOrCreateCA(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !again.key.Equal(first.key) {
			t.Error("the certificate was remade with a new key")
		}
	})
	t.Run("key lost", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := LoadOrCreateCA(dir); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, CAKeyFile))
		if _, err := LoadOrCreateCA(dir); err == nil || !strings.Contains(err.Error(), CAKeyFile) {
			t.Errorf("got %v, want an error naming %s", err, CAKeyFile)
		}
	})
	t.Run("mismatched files", func(t *testing.T) {
		a, b := t.TempDir(), t.TempDir()
		for _, d := range []string{a, b} {
			if _, err := LoadOrCreateCA(d); err != nil {
				t.Fatal(err)
			}
		}
		other, _ := os.ReadFile(filepath.Join(b, CACertFile))
		os.WriteFile(filepath.Join(a, CACertFile), other, 0o644)
		if _, err := LoadOrCreateCA(a); err == nil || !strings.Contains(err.Error(), "does not belong") {
			t.Errorf("got %v, want a key/certificate mismatch", err)
		}
	})
	t.Run("garbage key", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("not a key"), 0o600)
		if _, err := LoadOrCreateCA(dir); err == nil {
			t.Error("got no error, want one")
		}
	})
}

// httpsRouter serves a Router with a fresh CA over TLS, as the rack does, and
// returns it with the address and a pool trusting only the CA's ca.crt.
func httpsRouter(t *testing.T) (*Router, string, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	rt := New(Options{CA: ca})
	t.Cleanup(rt.CloseIdleConnections)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:   rt,
		TLSConfig: rt.TLSConfig(),
		// Failed handshakes are the point of some tests.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	serveHTTPS(t, rt, srv, ln)
	pem, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca.crt holds no certificate")
	}
	return rt, ln.Addr().String(), pool
}

func TestRouter_HTTPS(t *testing.T) {
	rt, addr, pool := httpsRouter(t)
	seen := make(chan string, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Forwarded-Proto")
	}))
	t.Cleanup(be.Close)
	rt.SetRoutes("app1", []Route{{Service: "web", Hosts: []string{"web.app1.localhost", "www.example.test"},
		Targets: []netip.AddrPort{addrOf(be)}, Redirect: true}})

	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
		// Every name resolves to the router.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	t.Cleanup(client.CloseIdleConnections)

	for _, host := range []string{"web.app1.localhost", "www.example.test"} {
		t.Run(host, func(t *testing.T) {
			res, err := client.Get("https://" + host + "/")
			if err != nil {
				t.Fatalf("a client trusting only ca.crt: %v", err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("got %d, want 200 (no redirect over HTTPS)", res.StatusCode)
			}
			if proto := <-seen; proto != "https" {
				t.Errorf("backend saw X-Forwarded-Proto %q, want https", proto)
			}
			if res.ProtoMajor != 2 {
				t.Errorf("got %s, want HTTP/2 over TLS", res.Proto)
			}
			leaf := res.TLS.PeerCertificates[0]
			if !slices.Equal(leaf.DNSNames, []string{host}) {
				t.Errorf("certificate names %q, want [%s]", leaf.DNSNames, host)
			}
			if days := time.Until(leaf.NotAfter).Hours() / 24; days < 89 || days > 91 {
				t.Errorf("certificate is valid for %.0f more days, want 90", days)
			}
		})
	}

	t.Run("websocket", func(t *testing.T) {
		ws := websocketEcho(t)
		rt.SetRoutes("app2", []Route{{Service: "ws", Hosts: []string{"ws.app2.localhost"}, Targets: []netip.AddrPort{addrOf(ws)}}})
		dialer := websocket.Dialer{
			TLSClientConfig: &tls.Config{RootCAs: pool},
			NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		}
		c, _, err := dialer.Dial("wss://ws.app2.localhost/socket", nil)
		if err != nil {
			t.Fatalf("dialing through the router: %v", err)
		}
		defer c.Close()
		checkEcho(t, c)
	})

	t.Run("cached", func(t *testing.T) {
		a, err := rt.getCertificate(&tls.ClientHelloInfo{ServerName: "web.app1.localhost"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := rt.getCertificate(&tls.ClientHelloInfo{ServerName: "WEB.app1.localhost"})
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Error("a second handshake for the same host signed a new certificate")
		}
	})

	// A name under the rack's domain with no route gets a certificate
	// and the router's 404 page, as over HTTP.
	for _, host := range []string{"unrouted.localhost", "gone.app1.localhost", "localhost"} {
		t.Run("404 for "+host, func(t *testing.T) {
			res, err := client.Get("https://" + host + "/")
			if err != nil {
				t.Fatalf("a client trusting only ca.crt: %v", err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 404 || !strings.Contains(string(b), "no service is routed") {
				t.Errorf("got %d %q, want the router's 404", res.StatusCode, b)
			}
			if leaf := res.TLS.PeerCertificates[0]; !slices.Equal(leaf.DNSNames, []string{host}) {
				t.Errorf("certificate names %q, want [%s]", leaf.DNSNames, host)
			}
		})
	}

	for _, name := range []string{"evil.example.com", "localhost.example.com", "1.2.3.4", ""} {
		t.Run("no certificate for "+name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, RootCAs: pool, InsecureSkipVerify: name == ""})
			if err == nil {
				conn.Close()
				t.Fatalf("handshake for %q succeeded, want it to fail", name)
			}
		})
	}
}

func TestRouter_HTTPSNoCA(t *testing.T) {
	rt := New(Options{})
	rt.SetRoutes("app", webRoute())
	if _, err := rt.getCertificate(&tls.ClientHelloInfo{ServerName: "web.app.localhost"}); err == nil {
		t.Error("got a certificate with no CA")
	}
}

// TestCertCache_StrayBound: certificates of names no route has are kept up
// to maxStrayCerts, and those of routed hosts are never dropped for them.
func TestCertCache_StrayBound(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var c certCache
	routed, err := c.get("web.app.localhost", ca, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxStrayCerts + 10 {
		if _, err := c.get(fmt.Sprintf("x%d.localhost", i), ca, false); err != nil {
			t.Fatal(err)
		}
		if n := len(c.stray); n > maxStrayCerts {
			t.Fatalf("%d stray certificates kept, want at most %d", n, maxStrayCerts)
		}
	}
	if again, _ := c.get("web.app.localhost", ca, true); again != routed {
		t.Error("the routed host's certificate was signed again after many stray ones")
	}
	last := fmt.Sprintf("x%d.localhost", maxStrayCerts+9)
	a, _ := c.get(last, ca, false)
	if b, _ := c.get(last, ca, false); a != b {
		t.Error("a stray certificate was not cached")
	}
}
