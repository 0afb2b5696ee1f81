package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	endian "encoding/binary"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
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
	bin := pebbleBinary(t)
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
				tlsPort = freePort(t)
			} else {
				httpPort = freePort(t)
			}
			p := startPebble(t, bin, httpPort, tlsPort)
			args := []string{"--acme-directory", p.directory, "--acme-email", "ops@example.com", "--acme-ca-file", p.caFile}
			r.spawn(args)
			t.Cleanup(func() { r.stop() })
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("rack output:\n%s\npebble output:\n%s", r.stderr, p.out)
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
			leaf, err := handshake(r.routerHTTPS, acmeDomain, p.roots, 60*time.Second)
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
			c := acmeClient(r.routerHTTPS, p.roots)
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
				again, err = handshake(r.routerHTTPS, acmeDomain, p.roots, 30*time.Second)
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

// pebbleServer is a running pebble, the ACME test server.
type pebbleServer struct {
	directory string         // its ACME directory URL
	caFile    string         // PEM of the CA of its HTTPS certificate
	roots     *x509.CertPool // its root, which issues the certificates
	out       *syncBuffer    // its output
}

// pebbleBinary finds pebble in PATH, GOBIN or GOPATH/bin, or fails the test
// saying how to install it.
func pebbleBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("pebble"); err == nil {
		return p
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(string(out), "\n")
		if lines[0] != "" {
			dirs = append(dirs, lines[0])
		}
		if len(lines) > 1 {
			for _, p := range filepath.SplitList(lines[1]) {
				dirs = append(dirs, filepath.Join(p, "bin"))
			}
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "pebble")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("pebble, the local ACME server of this test, is not installed (looked in PATH and %v): run `make tools`", dirs)
	return ""
}

// startPebble runs pebble on loopback until the test ends. It validates
// http-01 challenges at httpPort and tls-alpn-01 ones at tlsPort of
// 127.0.0.1, where its DNS server sends every name.
func startPebble(t *testing.T, bin string, httpPort, tlsPort int) *pebbleServer {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	selfSigned(t, certFile, keyFile)

	listen, mgmt := "127.0.0.1:"+strconv.Itoa(freePort(t)), "127.0.0.1:"+strconv.Itoa(freePort(t))
	config, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": mgmt,
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                httpPort,
		"tlsPort":                 tlsPort,
		"keyAlgorithm":            "ecdsa",
	}})
	configFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(configFile, config, 0o600); err != nil {
		t.Fatal(err)
	}

	p := &pebbleServer{directory: "https://" + listen + "/dir", caFile: certFile, out: &syncBuffer{}}
	cmd := exec.Command(bin, "-config", configFile, "-dnsserver", startDNS(t))
	// No random sleeps before validations, and no nonces rejected at random.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})

	caPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		res, err := client.Get(p.directory)
		if err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble is not up after 10 s: %v\n%s", err, p.out)
		}
	}
	res, err := client.Get("https://" + mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("pebble's root: %v", err)
	}
	root, _ := io.ReadAll(res.Body)
	res.Body.Close()
	p.roots = x509.NewCertPool()
	if !p.roots.AppendCertsFromPEM(root) {
		t.Fatalf("pebble's root is no PEM certificate: %q", root)
	}
	return p
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key, in
// PEM, for pebble's HTTPS.
func selfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "pebble test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startDNS serves DNS over TCP on loopback, as pebble asks, until the test
// ends: every name has the address 127.0.0.1, and no IPv6 address.
func startDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				for {
					conn.SetDeadline(time.Now().Add(10 * time.Second))
					var n uint16
					if endian.Read(conn, endian.BigEndian, &n) != nil {
						return
					}
					q := make([]byte, n)
					if _, err := io.ReadFull(conn, q); err != nil {
						return
					}
					a := dnsAnswer(q)
					if a == nil {
						return
					}
					conn.Write(append(endian.BigEndian.AppendUint16(nil, uint16(len(a))), a...))
				}
			})
		}
	})
	return ln.Addr().String()
}

// dnsAnswer answers the query q, of one question, with A 127.0.0.1 if it
// asks for an A record and with no record otherwise; nil if q is malformed.
func dnsAnswer(q []byte) []byte {
	if len(q) < 12 || endian.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	end := 12
	for end < len(q) && q[end] != 0 { // the name's labels
		end += 1 + int(q[end])
	}
	end += 1 + 4 // the root label, type and class
	if end > len(q) {
		return nil
	}
	isA := endian.BigEndian.Uint16(q[end-4:]) == 1
	a := endian.BigEndian.AppendUint16(nil, endian.BigEndian.Uint16(q)) // ID
	flags := uint16(0x8400) | endian.BigEndian.Uint16(q[2:])&0x0100     // response, authoritative, RD as asked
	a = endian.BigEndian.AppendUint16(a, flags)
	answers := byte(0)
	if isA {
		answers = 1
	}
	a = append(a, 0, 1, 0, answers, 0, 0, 0, 0) // one question, the answers, no others
	a = append(a, q[12:end]...)
	if isA {
		a = append(a, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1) // the name, A, IN, TTL 60, 127.0.0.1
	}
	return a
}
