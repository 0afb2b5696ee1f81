// Package pebbletest is test support for starting pebble, a local ACME CA,
// with a loopback DNS server that sends every name to 127.0.0.1, so that
// pebble validates its challenges on the router under test. The router and
// e2e tests use it.
package pebbletest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/singlehost/convox/internal/porttest"
)

// Server is a running pebble.
type Server struct {
	Directory string         // its ACME directory URL
	CAFile    string         // PEM of the CA of its HTTPS certificate, for clients of its own
	Client    *http.Client   // trusts its HTTPS certificate
	Roots     *x509.CertPool // its root, which issues the certificates
	outFile   string
}

// Output is what pebble wrote so far, to show when a test fails.
func (s *Server) Output() string {
	out, _ := os.ReadFile(s.outFile)
	return string(out)
}

// Binary finds pebble in PATH, GOBIN or GOPATH/bin, or fails the test
// saying how to install it: a test that needs pebble must not pass
// without it.
func Binary(t testing.TB) string {
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

// Start runs pebble on loopback until the test ends. It validates http-01
// challenges at httpPort and tls-alpn-01 ones at tlsPort of 127.0.0.1,
// where its DNS server sends every name.
func Start(t testing.TB, bin string, httpPort, tlsPort int) *Server {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := selfSigned(certFile, keyFile); err != nil {
		t.Fatal(err)
	}

	listen, mgmt := "127.0.0.1:"+strconv.Itoa(porttest.Free(t)), "127.0.0.1:"+strconv.Itoa(porttest.Free(t))
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

	s := &Server{Directory: "https://" + listen + "/dir", CAFile: certFile, outFile: filepath.Join(dir, "pebble.log")}
	// A file, not a buffer: the test reads it while pebble writes, with no
	// lock to share.
	out, err := os.Create(s.outFile)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(bin, "-config", configFile, "-dnsserver", startDNS(t))
	// No random sleeps before validations, and no nonces rejected at random.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	cmd.Stdout, cmd.Stderr = out, out
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
	s.Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(s.Client.CloseIdleConnections)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		res, err := s.Client.Get(s.Directory)
		if err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble is not up after 10 s: %v\n%s", err, s.Output())
		}
	}
	res, err := s.Client.Get("https://" + mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("pebble's root: %v", err)
	}
	root, _ := io.ReadAll(res.Body)
	res.Body.Close()
	s.Roots = x509.NewCertPool()
	if !s.Roots.AppendCertsFromPEM(root) {
		t.Fatalf("pebble's root is no PEM certificate: %q", root)
	}
	return s
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key, in
// PEM, for pebble's HTTPS. It is a CA too, so that its file can be given
// to a client as the CA to trust for pebble.
func selfSigned(certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pebble's HTTPS key: %w", err)
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
		return fmt.Errorf("pebble's HTTPS certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("pebble's HTTPS key: %w", err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// startDNS serves DNS over TCP on loopback, as pebble asks, until the test
// ends: every name has the address 127.0.0.1, and no IPv6 address, so that
// pebble validates every name on the test's listeners.
func startDNS(t testing.TB) string {
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
					if binary.Read(conn, binary.BigEndian, &n) != nil {
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
					conn.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(a))), a...))
				}
			})
		}
	})
	return ln.Addr().String()
}

// dnsAnswer answers the query q, of one question, with A 127.0.0.1 if it
// asks for an A record and with no record otherwise; nil if q is malformed.
func dnsAnswer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
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
	isA := binary.BigEndian.Uint16(q[end-4:]) == 1
	a := binary.BigEndian.AppendUint16(nil, binary.BigEndian.Uint16(q)) // ID
	flags := uint16(0x8400) | binary.BigEndian.Uint16(q[2:])&0x0100     // response, authoritative, RD as asked
	a = binary.BigEndian.AppendUint16(a, flags)
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
