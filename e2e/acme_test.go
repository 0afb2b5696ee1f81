package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/singlehost/convox/internal/pebbletest"
	"github.com/singlehost/convox/internal/porttest"
)

// acmeDomain is the `domain:` of the ACME test's service: a public-looking
// name, so the router asks the ACME CA for its certificate, which the
// test's DNS server resolves to 127.0.0.1 for pebble.
const acmeDomain = "app.example.com"

// TestACME: a rack started with --acme-directory pointing at pebble, a
// local ACME server, serves a service's `domain:` with a certificate from
// pebble, obtained through the challenge under test on the rack's router
// listeners, and keeps it across a daemon restart; the rack's own hosts
// keep certificates of the rack CA.
func TestACME(t *testing.T) {
	bin := pebbletest.Binary(t)
	manifest := `services:
  web:
    build: .
    port: 5000
    health: /health
    domain: ` + acmeDomain + `
`
	dir := sampleApp(t, manifest)

	for _, challenge := range []string{"http-01", "tls-alpn-01"} {
		t.Run(challenge, func(t *testing.T) {
			r := newRack(t)
			// pebble validates the challenge under test on the router, and
			// the other one on a port where nothing listens.
			httpPort, tlsPort := portOfAddr(r.routerHTTP), portOfAddr(r.routerHTTPS)
			if challenge == "http-01" {
				tlsPort = porttest.Free(t)
			} else {
				httpPort = porttest.Free(t)
			}
			p := pebbletest.Start(t, bin, httpPort, tlsPort)
			args := []string{"--acme-directory", p.Directory, "--acme-email", "ops@example.com", "--acme-ca-file", p.CAFile}
			r.spawn(args)
			t.Cleanup(func() { r.stop() })
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("rack output:\n%s\npebble output:\n%s", r.stderr, p.Output())
				}
			})
			r.waitUp()

			r.convox("apps", "create", "acme").expect(t, "Creating acme... OK\n", "", 0)
			r1, res := r.deploy(t, "acme", dir)
			if res.code != 0 {
				t.Fatalf("deploy: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
			}
			rackRoots := x509.NewCertPool()
			if ca := r.convox("rack", "ca"); ca.code != 0 || !rackRoots.AppendCertsFromPEM([]byte(ca.stdout)) {
				t.Fatalf("convox rack ca: exit %d\n%s%s", ca.code, ca.stdout, ca.stderr)
			}

			// The first handshake waits for the certificate from pebble.
			leaf, err := handshake(r.routerHTTPS, acmeDomain, p.Roots, 60*time.Second)
			if err != nil {
				t.Fatalf("handshake for %s, trusting pebble's root only: %v", acmeDomain, err)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: rackRoots}); err == nil {
				t.Errorf("the certificate of %s is signed by the rack CA, want pebble's", acmeDomain)
			}
			if !slices.Contains(leaf.DNSNames, acmeDomain) {
				t.Errorf("the certificate names %v, want %s", leaf.DNSNames, acmeDomain)
			}
			t.Logf("%s: certificate %s issued by %q", acmeDomain, leaf.SerialNumber, leaf.Issuer.CommonName)

			// Requests reach the app with it.
			c := acmeClient(r.routerHTTPS, p.Roots)
			want := "hello from acme/web release " + r1
			if code, b := body(t, c, "https://"+acmeDomain+"/"); code != 200 || b != want {
				t.Errorf("GET https://%s/: %d %q, want 200 %q", acmeDomain, code, b, want)
			}
			if _, b := body(t, c, "https://"+acmeDomain+"/hostname"); !slices.Contains(r.webPids(t, "acme"), b) {
				t.Errorf("GET https://%s/hostname: %q, want a process of the app", acmeDomain, b)
			}

			// The rack's own host keeps a certificate of the rack CA.
			if _, err := handshake(r.routerHTTPS, "web.acme.localhost", rackRoots, 10*time.Second); err != nil {
				t.Errorf("handshake for web.acme.localhost, trusting the rack CA: %v", err)
			}

			// A restarted daemon serves the certificate it keeps in its home.
			r.stop()
			r.spawn(args)
			r.waitUp()
			var again *x509.Certificate
			eventually(t, 30*time.Second, acmeDomain+" routed again after the daemon restart", func() bool {
				again, err = handshake(r.routerHTTPS, acmeDomain, p.Roots, 30*time.Second)
				return err == nil
			})
			if again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
				t.Errorf("after a daemon restart %s has certificate %s, want the kept %s", acmeDomain, again.SerialNumber, leaf.SerialNumber)
			}
		})
	}
}

// handshake makes a TLS handshake with addr for host, verifying the
// certificate against roots, and returns the certificate.
func handshake(addr, host string, roots *x509.CertPool, timeout time.Duration) (*x509.Certificate, error) {
	d := &tls.Dialer{Config: &tls.Config{ServerName: host, RootCAs: roots}}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// acmeClient sends every request to addr, trusting roots only.
func acmeClient(addr string, roots *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
			DisableKeepAlives: true,
		},
	}
}

func portOfAddr(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}
