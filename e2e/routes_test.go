package e2e

import (
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"
)

// routesManifest has three services of one image: web (two processes, a
// 2 s router timeout), admin (two processes, sticky, a custom domain) and
// hidden (internal: no route).
const routesManifest = `environment:
  - GREETING=hello
services:
  web:
    build: .
    port: 5000
    health: /health
    timeout: 2
    scale:
      count: 2
  admin:
    build: .
    port: 5000
    health: /health
    domain: admin.alpha.test
    sticky: true
    scale:
      count: 2
  hidden:
    build: .
    port: 5000
    health: /health
    internal: true
`

// TestRouterRoutes: each host reaches its own app and service (rack hosts
// and a custom domain), internal services get no route, sticky services
// keep a client on one process, the process learns the client's view
// through X-Forwarded-*, the service timeout gives 504 and an oversized
// body 413; a deploy claiming another app's host, or one host for two of
// its services, is refused and changes nothing; `convox services` and
// `convox apps info` show the routes.
func TestRouterRoutes(t *testing.T) {
	r := newRack(t)
	r.start()
	for _, app := range []struct{ name, manifest string }{{"alpha", routesManifest}, {"beta", ""}} {
		r.convox("apps", "create", app.name).expect(t, "Creating "+app.name+"... OK\n", "", 0)
		if _, res := r.deploy(t, app.name, sampleApp(t, app.manifest)); res.code != 0 {
			t.Fatalf("deploy %s: exit %d\n%s\n%s", app.name, res.code, res.stdout, res.stderr)
		}
	}

	t.Run("hosts", func(t *testing.T) {
		// A name under the rack's domain without a route gets the 404
		// over HTTPS too (a certificate of the rack CA); any other name
		// only over HTTP, its handshake fails.
		for _, tt := range []struct {
			host  string
			https bool
			code  int
			want  string // prefix of the body
		}{
			{"web.alpha.localhost", true, 200, "hello from alpha/web release "},
			{"web.beta.localhost", true, 200, "hello from beta/web release "},
			{"admin.alpha.localhost", true, 200, "hello from alpha/admin release "},
			{"admin.alpha.test", true, 200, "hello from alpha/admin release "},
			{"ADMIN.Alpha.Test", true, 200, "hello from alpha/admin release "},
			{"hidden.alpha.localhost", true, 404, "404 Not Found: no service is routed"},
			{"hidden.alpha.localhost", false, 404, "404 Not Found: no service is routed"},
			{"admin.beta.localhost", true, 404, "404 Not Found: no service is routed"},
			{"alpha.localhost", true, 404, "404 Not Found: no service is routed"},
			{"nosuch.example.org", false, 404, "404 Not Found: no service is routed"},
		} {
			c, base := r.routerClient(t, strings.ToLower(tt.host), tt.https)
			req, _ := http.NewRequest("GET", base+"/", nil)
			req.Host = tt.host
			res, err := c.Do(req)
			if err != nil {
				t.Errorf("%s: %v", tt.host, err)
				continue
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.code || !strings.HasPrefix(string(b), tt.want) {
				t.Errorf("%s: %d %q, want %d %q…", tt.host, res.StatusCode, b, tt.code, tt.want)
			}
		}
		c, base := r.routerClient(t, "nosuch.example.org", true)
		if res, err := c.Get(base + "/"); err == nil {
			res.Body.Close()
			t.Errorf("nosuch.example.org over HTTPS: %s, want a failed handshake", res.Status)
		}
	})

	t.Run("sticky", func(t *testing.T) {
		c, base := r.routerClient(t, "admin.alpha.test", true)
		hosts := func(c *http.Client) map[string]bool {
			seen := map[string]bool{}
			for range 12 {
				if code, b := body(t, c, base+"/hostname"); code == 200 {
					seen[b] = true
				}
			}
			return seen
		}
		if seen := hosts(c); len(seen) != 2 {
			t.Errorf("without the cookie 12 requests reached %v, want both processes", seen)
		}
		c.Jar, _ = cookiejar.New(nil)
		if seen := hosts(c); len(seen) != 1 {
			t.Errorf("with the cookie 12 requests reached %v, want one process", seen)
		}
	})

	t.Run("forwarded", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(r.routerHTTPS)
		c, base := r.routerClient(t, "web.alpha.localhost", true)
		code, b := body(t, c, base+"/headers")
		want := "Host: web.alpha.localhost\nX-Forwarded-For: 127.0.0.1\nX-Forwarded-Host: web.alpha.localhost\nX-Forwarded-Port: " + port + "\nX-Forwarded-Proto: https"
		if code != 200 || b != want {
			t.Errorf("headers the process saw: %d\n%s\nwant\n%s", code, b, want)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		c, base := r.routerClient(t, "web.alpha.localhost", true)
		if code, b := body(t, c, base+"/sleep/100"); code != 200 || b != "slept" {
			t.Errorf("a quick answer: %d %q", code, b)
		}
		start := time.Now()
		code, b := body(t, c, base+"/sleep/6000")
		took := time.Since(start)
		if code != http.StatusGatewayTimeout || !strings.Contains(b, "web") || took < 2*time.Second || took > 5*time.Second {
			t.Errorf("past the 2 s timeout: %d %q after %s, want 504 naming the service after about 2 s", code, b, took.Round(time.Millisecond))
		}
	})

	t.Run("body limit", func(t *testing.T) {
		c, base := r.routerClient(t, "web.alpha.localhost", true)
		for _, tt := range []struct {
			size int64
			code int
			want string
		}{
			{1 << 20, 200, "1048576"},
			{100<<20 + 1, http.StatusRequestEntityTooLarge, "limit"},
		} {
			req, _ := http.NewRequest("POST", base+"/size", io.LimitReader(zeros{}, tt.size))
			req.ContentLength = tt.size
			res, err := c.Do(req)
			if err != nil {
				t.Errorf("POST %d bytes: %v", tt.size, err)
				continue
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.code || !strings.Contains(string(b), tt.want) {
				t.Errorf("POST %d bytes: %d %q, want %d %q", tt.size, res.StatusCode, b, tt.code, tt.want)
			}
		}
	})

	t.Run("host of another app", func(t *testing.T) {
		before := r.convox("apps", "info", "beta").stdout
		service := func(name, domain string) string {
			return "  " + name + ":\n    build: .\n    port: 5000\n    health: /health\n    domain: " + domain + "\n"
		}
		for _, tt := range []struct{ services, want string }{
			{service("web", "ADMIN.alpha.test"), "service web: host admin.alpha.test is already routed to service admin of app alpha; remove it from one of them"},
			{service("web", "web.alpha.localhost"), "service web: host web.alpha.localhost is already routed to service web of app alpha; remove it from one of them"},
			{service("web", "shared.beta.test") + service("api", "shared.beta.test."), "services web and api both answer at host shared.beta.test; keep it on one of them"},
		} {
			_, res := r.deploy(t, "beta", sampleApp(t, "services:\n"+tt.services))
			if res.code != 1 || !strings.HasSuffix(res.stderr, "ERROR: "+tt.want+"\n") {
				t.Errorf("deploying beta with\n%s: exit %d, stderr %q, want exit 1 and %q", tt.services, res.code, res.stderr, tt.want)
			}
		}
		// Nothing changed: beta runs its release, alpha keeps its hosts.
		if after := r.convox("apps", "info", "beta").stdout; after != before {
			t.Errorf("beta after the refused deploys:\n%s\nwant as before:\n%s", after, before)
		}
		for host, want := range map[string]string{"admin.alpha.test": "hello from alpha/admin release ", "web.beta.localhost": "hello from beta/web release "} {
			c, base := r.routerClient(t, host, true)
			if code, b := body(t, c, base+"/"); code != 200 || !strings.HasPrefix(b, want) {
				t.Errorf("%s after the refused deploys: %d %q, want 200 %q…", host, code, b, want)
			}
		}
	})

	t.Run("services", func(t *testing.T) {
		r.convox("services", "-a", "alpha").expect(t,
			"SERVICE  DOMAIN                 PORTS\n"+
				"web      web.alpha.localhost    443:5000\n"+
				"admin    admin.alpha.localhost  443:5000\n"+
				"hidden                          5000\n", "", 0)
		info := r.convox("apps", "info", "alpha")
		if info.code != 0 || !strings.Contains(info.stdout, "Router") || !strings.Contains(info.stdout, "localhost") {
			t.Errorf("apps info: exit %d\n%s%s", info.code, info.stdout, info.stderr)
		}
	})
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
