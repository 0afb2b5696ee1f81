package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/singlehost/convox/bench/internal/rackbench"
)

// caPool is the rack's CA, to check the router's certificate before the
// benchmark relies on it: what `convox rack ca` prints where the CLI has
// that command, else the public certificate in the rack's home (ca.crt).
func caPool(ctx context.Context, r *rackbench.Rack) (*x509.CertPool, error) {
	pemData, err := r.Convox(ctx, "rack", "ca")
	if err != nil {
		data, ferr := os.ReadFile(filepath.Join(r.Home(), "ca.crt"))
		if ferr != nil {
			return nil, fmt.Errorf("the rack's CA: convox rack ca: %v (%s); %w", err, strings.TrimSpace(pemData), ferr)
		}
		pemData = string(data)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(pemData)) {
		return nil, fmt.Errorf("the rack's CA is no PEM certificate:\n%s", pemData)
	}
	return pool, nil
}

// probe sends GET / to addr with the Host header host (over TLS with
// the SNI host when pool or insecure says so) and returns the body of a
// 200 answer.
func probe(ctx context.Context, addr, host string, tlsConf *tls.Config) (string, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:   tlsConf,
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		Timeout:       2 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, "GET", scheme+"://"+host+"/", nil)
	if err != nil {
		return "", err
	}
	res, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	if res.StatusCode != 200 {
		return string(b), fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// waitProbe retries probe until it answers 200 or the timeout passes.
func waitProbe(ctx context.Context, timeout time.Duration, addr, host string, tlsConf *tls.Config) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		body, err := probe(ctx, addr, host, tlsConf)
		if err == nil {
			return body, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("%s (Host %s) did not answer 200 within %s: %w", addr, host, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// manifest is testdata/apps/web's convox.yml with one process (so that
// the router, nginx and the direct runs all reach the same one), no
// HTTP-to-HTTPS redirect (so that plain HTTP is proxied, not answered with
// 308), and cpu set to the whole machine: the default request of 250
// millicores becomes a Docker CPU quota of a quarter of a CPU, which would
// make the throttled backend, not the proxies, the subject of the
// benchmark (and its 100 ms CFS periods the p99).
func manifest(cpus int) string {
	return fmt.Sprintf(`environment:
  - GREETING=hello
services:
  web:
    build: .
    port: 5000
    health: /health
    scale:
      count: 1
      cpu: %d
    tls:
      redirect: false
    termination:
      grace: 5
`, 1000*cpus)
}
