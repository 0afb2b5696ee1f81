package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// routerClient sends requests for host to the rack's router: HTTPS trusting
// only the rack's CA (from `convox rack ca`), or plain HTTP.
func (r *rack) routerClient(t *testing.T, host string, https bool) (*http.Client, string) {
	t.Helper()
	addr, scheme := r.routerHTTP, "http"
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 64,
	}
	if https {
		res := r.convox("rack", "ca")
		if res.code != 0 {
			t.Fatalf("convox rack ca: %s", res.stderr)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(res.stdout)) {
			t.Fatalf("convox rack ca printed no certificate:\n%s", res.stdout)
		}
		addr, scheme = r.routerHTTPS, "https"
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: host}
	}
	c := &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, scheme + "://" + host
}

func body(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimSpace(string(b))
}

// TestRouter: a deployed service answers at <service>.<app>.localhost over
// HTTPS with the rack's CA, HTTP redirects there, requests spread over the
// processes, and deploys, restarts and scale-downs under load fail nothing.
func TestRouter(t *testing.T) {
	r := newRack(t)
	r.start()
	dir := sampleApp(t, "")
	r.convox("apps", "create", "routed").expect(t, "Creating routed... OK\n", "", 0)
	r1, res := r.deploy(t, "routed", dir)
	if res.code != 0 {
		t.Fatalf("deploy: %s %s", res.stdout, res.stderr)
	}
	host := "web.routed.localhost"
	c, base := r.routerClient(t, host, true)
	eventually(t, 20*time.Second, "the service routed", func() bool {
		code, b := body(t, c, base+"/")
		return code == 200 && b == "hello from routed/web release "+r1
	})

	// Spread over both processes.
	seen := map[string]bool{}
	for range 20 {
		if code, b := body(t, c, base+"/hostname"); code == 200 {
			seen[b] = true
		}
	}
	if len(seen) != 2 {
		t.Errorf("20 requests reached %v, want both processes", seen)
	}

	// HTTP redirects to HTTPS (tls.redirect defaults to on).
	hc, hbase := r.routerClient(t, host, false)
	res2, err := hc.Get(hbase + "/path?q=1")
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	_, httpsPort, _ := net.SplitHostPort(r.routerHTTPS)
	if res2.StatusCode != http.StatusPermanentRedirect || res2.Header.Get("Location") != "https://"+host+":"+httpsPort+"/path?q=1" {
		t.Errorf("HTTP: %d Location %q", res2.StatusCode, res2.Header.Get("Location"))
	}

	// Unknown host: 404.
	uc, ubase := r.routerClient(t, "nope.routed.localhost", false)
	if code, b := body(t, uc, ubase+"/"); code != 404 || !strings.Contains(b, "nope.routed.localhost") {
		t.Errorf("unknown host: %d %q", code, b)
	}

	// Zero failed requests through a deploy, a restart and a scale-down.
	var failures, total atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, b := body(t, c, base+"/")
				total.Add(1)
				if code != 200 {
					failures.Add(1)
					lastErr.Store(b)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	for _, args := range [][]string{
		{"env", "set", "GREETING=hey", "-a", "routed", "--promote"},
		{"restart", "-a", "routed"},
		{"scale", "web", "--count", "1", "-a", "routed"},
	} {
		if res := r.convox(args...); res.code != 0 {
			t.Errorf("convox %s: exit %d\n%s\n%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
		}
	}
	eventually(t, 30*time.Second, "one process left", func() bool { return len(r.webProcesses(t, "routed")) == 1 })
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || total.Load() < 50 {
		t.Errorf("under load: %d of %d requests failed (last: %v)", failures.Load(), total.Load(), lastErr.Load())
	}

	// No healthy process: 503 naming the service.
	r.convox("scale", "web", "--count", "0", "-a", "routed")
	eventually(t, 30*time.Second, "503 with no process", func() bool {
		code, b := body(t, c, base+"/")
		return code == 503 && strings.Contains(b, "web")
	})
}
