package engine

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// healthSpec is a service's readiness check (spec §1.4 `health`).
type healthSpec struct {
	Path     string
	Scheme   string // http or https
	Grace    time.Duration
	Interval time.Duration
	Timeout  time.Duration
	Disable  bool
}

// healthClient is shared by every check: no keep-alives, so a check always
// tests a fresh connection as a router would make one, and self-signed
// certificates are fine for https services (spec §1.4 `port`).
var healthClient = &http.Client{
	Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// check runs one readiness check against addr: a TCP connect, then, unless
// disabled, GET path answering 200–399 within the timeout.
func (h healthSpec) check(ctx context.Context, addr netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	if h.Disable {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr.String())
		if err != nil {
			return fmt.Errorf("connect to port: %w", err)
		}
		return conn.Close()
	}
	scheme := h.Scheme
	if scheme != "https" {
		scheme = "http"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr.String()+h.Path, nil)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	req.Header.Set("User-Agent", "convox-health-check")
	res, err := healthClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", h.Path, err)
	}
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 399 {
		return fmt.Errorf("GET %s returned %d", h.Path, res.StatusCode)
	}
	return nil
}
