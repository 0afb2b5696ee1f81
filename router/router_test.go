package router

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// harness serves a Router on a plain-HTTP loopback listener, through a
// Front as the rack does, or with net/http alone when the environment sets
// ROUTER_TEST_SERVER=net/http (make test runs the package both ways).
type harness struct {
	t      *testing.T
	rt     *Router
	url    string // http://127.0.0.1:port
	addr   string // 127.0.0.1:port
	client *http.Client
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	if opts.Log == nil {
		// Shown with -v or when the test fails.
		opts.Log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	rt := New(opts)
	checkReleased(t, rt)
	t.Cleanup(rt.CloseIdleConnections)
	var addr string
	if os.Getenv("ROUTER_TEST_SERVER") == "net/http" {
		srv := httptest.NewServer(rt)
		t.Cleanup(srv.Close)
		addr = srv.Listener.Addr().String()
	} else {
		addr = serveFront(t, rt)
	}
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
		// The tests look at the router's redirects themselves.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(client.CloseIdleConnections)
	return &harness{t: t, rt: rt, url: "http://" + addr, addr: addr, client: client}
}

// checkReleased fails t if, once the test and its other clean-ups are
// done, a request is still counted in flight to a target of rt: a leak
// would hold off every Drain of that process.
func checkReleased(t *testing.T, rt *Router) {
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for {
			var busy []string
			rt.mu.Lock()
			for addr, tg := range rt.targets {
				if n := tg.inflight.Load(); n != 0 {
					busy = append(busy, fmt.Sprintf("%s: %d", addr, n))
				}
			}
			rt.mu.Unlock()
			if len(busy) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("requests still counted in flight after the test: %v", busy)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// serveHTTPS serves rt over HTTPS on ln with srv, whose TLSConfig is set,
// until the test ends: through a Front as the rack does, or with net/http
// alone when ROUTER_TEST_SERVER=net/http.
func serveHTTPS(t *testing.T, rt *Router, srv *http.Server, ln net.Listener) {
	t.Helper()
	serve := func() error { return srv.ServeTLS(ln, "", "") }
	stop := func(ctx context.Context) error { return srv.Shutdown(ctx) }
	if os.Getenv("ROUTER_TEST_SERVER") != "net/http" {
		f := NewFront(rt, ln, srv)
		serve, stop = f.Serve, f.Shutdown
	}
	served := make(chan error, 1)
	go func() { served <- serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stop(ctx); err != nil {
			t.Errorf("shutting down: %v", err)
		}
		if err := <-served; err != http.ErrServerClosed {
			t.Errorf("serving returned %v, want http.ErrServerClosed", err)
		}
	})
}

// serveFront serves rt through a Front on a loopback port until the test
// ends, and returns the port's address.
func serveFront(t *testing.T, rt *Router) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv := &http.Server{Handler: rt, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	f := NewFront(rt, ln, srv)
	f.Loops = 1
	served := make(chan error, 1)
	go func() { served <- f.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.Shutdown(ctx); err != nil {
			t.Errorf("shutting the front down: %v", err)
		}
		if err := <-served; err != http.ErrServerClosed {
			t.Errorf("Front.Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return addr
}

// do sends a request for host through the router and returns the response
// with its body read.
func (h *harness) do(req *http.Request) (*http.Response, string) {
	h.t.Helper()
	res, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s (Host %s): %v", req.Method, req.URL.Path, req.Host, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatalf("reading the body of %s %s (Host %s): %v", req.Method, req.URL.Path, req.Host, err)
	}
	return res, string(body)
}

func (h *harness) request(method, host, path string, body io.Reader) *http.Request {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Host = host
	return req
}

func (h *harness) get(host, path string) (*http.Response, string) {
	h.t.Helper()
	return h.do(h.request("GET", host, path, nil))
}

// backend is a process behind the router: it answers with its name, and
// counts the requests it got.
type backend struct {
	name string
	srv  *httptest.Server
	hits atomic.Int64
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() netip.AddrPort { return addrOf(b.srv) }

func addrOf(srv *httptest.Server) netip.AddrPort {
	return netip.MustParseAddrPort(srv.Listener.Addr().String())
}

// refusedAddr is a loopback port where nothing listens.
func refusedAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return addr
}

func TestRouter_Hosts(t *testing.T) {
	h := newHarness(t, Options{})
	app1web, app1api, app2web := newBackend(t, "app1/web"), newBackend(t, "app1/api"), newBackend(t, "app2/web")
	h.rt.SetRoutes("app1", []Route{
		{Service: "web", Hosts: []string{"web.app1.localhost"}, Targets: []netip.AddrPort{app1web.addr()}},
		{Service: "api", Hosts: []string{"api.app1.localhost"}, Targets: []netip.AddrPort{app1api.addr()}},
	})
	h.rt.SetRoutes("app2", []Route{
		{Service: "web", Hosts: []string{"web.app2.localhost", "WWW.Example.test."}, Targets: []netip.AddrPort{app2web.addr()}},
	})

	tests := []struct {
		host string
		code int
		body string // the backend's name, or a part of the router's page
	}{
		{"web.app1.localhost", 200, "app1/web"},
		{"api.app1.localhost", 200, "app1/api"},
		{"web.app2.localhost", 200, "app2/web"},
		{"www.example.test", 200, "app2/web"},
		{"WEB.App1.LocalHost:8080", 200, "app1/web"},
		{"www.example.test.", 200, "app2/web"},
		{"unknown.app1.localhost", 404, `no service is routed at host "unknown.app1.localhost"`},
		{"app1.localhost", 404, `"app1.localhost"`},
		{"127.0.0.1", 404, `"127.0.0.1"`},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			res, body := h.get(tt.host, "/")
			if res.StatusCode != tt.code || !strings.Contains(body, tt.body) {
				t.Errorf("got %d %q, want %d containing %q", res.StatusCode, body, tt.code, tt.body)
			}
		})
	}

	// Removing an app removes its hosts and nothing else.
	h.rt.SetRoutes("app1", nil)
	if res, _ := h.get("web.app1.localhost", "/"); res.StatusCode != 404 {
		t.Errorf("removed app: got %d, want 404", res.StatusCode)
	}
	if res, body := h.get("web.app2.localhost", "/"); res.StatusCode != 200 || body != "app2/web" {
		t.Errorf("other app: got %d %q, want 200 app2/web", res.StatusCode, body)
	}
}

func TestRouter_HostConflict(t *testing.T) {
	h := newHarness(t, Options{})
	a, b := newBackend(t, "a"), newBackend(t, "b")
	route := func(be *backend) []Route {
		return []Route{{Service: "web", Hosts: []string{"www.example.test"}, Targets: []netip.AddrPort{be.addr()}}}
	}
	h.rt.SetRoutes("first", route(a))
	h.rt.SetRoutes("second", route(b))
	h.rt.SetRoutes("second", route(b)) // a later update does not take the host over
	if _, body := h.get("www.example.test", "/"); body != "a" {
		t.Errorf("contested host: got %q, want the app routed first (a)", body)
	}
	h.rt.SetRoutes("first", nil)
	if _, body := h.get("www.example.test", "/"); body != "b" {
		t.Errorf("contested host released: got %q, want b", body)
	}
}

func TestRouter_NoTargets(t *testing.T) {
	h := newHarness(t, Options{})
	h.rt.SetRoutes("myapp", []Route{{Service: "web", Hosts: []string{"web.myapp.localhost"}}})
	res, body := h.get("web.myapp.localhost", "/")
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("got %d, want 503", res.StatusCode)
	}
	if !strings.Contains(body, "service web of app myapp") {
		t.Errorf("got page %q, want it to name the service and app", body)
	}
}

func TestRouter_RoundRobin(t *testing.T) {
	h := newHarness(t, Options{})
	backends := []*backend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")}
	var targets []netip.AddrPort
	for _, b := range backends {
		targets = append(targets, b.addr())
	}
	h.rt.SetRoutes("app", []Route{{Service: "web", Hosts: []string{"web.app.localhost"}, Targets: targets}})

	const n = 300
	for range n {
		if res, _ := h.get("web.app.localhost", "/"); res.StatusCode != 200 {
			t.Fatalf("got %d, want 200", res.StatusCode)
		}
	}
	for _, b := range backends {
		if got := b.hits.Load(); got < n/3-1 || got > n/3+1 {
			t.Errorf("backend %s got %d requests, want %d±1", b.name, got, n/3)
		}
	}
}

func TestRouter_Sticky(t *testing.T) {
	h := newHarness(t, Options{})
	backends := map[string]*backend{}
	var targets []netip.AddrPort
	for _, name := range []string{"a", "b", "c"} {
		backends[name] = newBackend(t, name)
		targets = append(targets, backends[name].addr())
	}
	route := Route{Service: "web", Hosts: []string{"web.app.localhost"}, Targets: targets, Sticky: true}
	h.rt.SetRoutes("app", []Route{route})

	res, pinned := h.get("web.app.localhost", "/")
	cookie := stickyCookie(res)
	if cookie == nil {
		t.Fatalf("first response sets cookies %q, want %s", res.Header["Set-Cookie"], StickyCookie)
	}
	if port := backends[pinned].addr().Port(); strings.Contains(cookie.Value, strconv.Itoa(int(port))) {
		t.Errorf("cookie %q reveals the port %d", cookie.Value, port)
	}

	for range 10 {
		req := h.request("GET", "web.app.localhost", "/", nil)
		req.AddCookie(cookie)
		res, body := h.do(req)
		if body != pinned {
			t.Fatalf("with the cookie: got backend %q, want %q", body, pinned)
		}
		if c := stickyCookie(res); c != nil {
			t.Errorf("a pinned response sets the cookie again: %v", c)
		}
	}

	t.Run("target gone", func(t *testing.T) {
		var rest []netip.AddrPort
		for name, b := range backends {
			if name != pinned {
				rest = append(rest, b.addr())
			}
		}
		route.Targets = rest
		h.rt.SetRoutes("app", []Route{route})
		req := h.request("GET", "web.app.localhost", "/", nil)
		req.AddCookie(cookie)
		res, body := h.do(req)
		if res.StatusCode != 200 || body == pinned {
			t.Fatalf("got %d from %q, want 200 from another backend than %q", res.StatusCode, body, pinned)
		}
		if c := stickyCookie(res); c == nil || c.Value == cookie.Value {
			t.Errorf("got cookie %v, want a new one", c)
		}
	})
}

func stickyCookie(res *http.Response) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == StickyCookie {
			return c
		}
	}
	return nil
}

func TestRouter_Forwarded(t *testing.T) {
	h := newHarness(t, Options{})
	seen := make(chan *http.Request, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r
	}))
	t.Cleanup(be.Close)
	h.rt.SetRoutes("app1", []Route{{Service: "web", Hosts: []string{"web.app1.localhost"}, Targets: []netip.AddrPort{addrOf(be)}}})

	req := h.request("GET", "Web.App1.localhost:1234", "/path?q=1", nil)
	// A client's own forwarding headers are not to be believed.
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-Port", "1")
	if res, _ := h.do(req); res.StatusCode != 200 {
		t.Fatalf("got %d, want 200", res.StatusCode)
	}
	r := <-seen
	_, routerPort, _ := net.SplitHostPort(h.addr)
	want := map[string]string{
		"Host":              "Web.App1.localhost:1234",
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Host":  "Web.App1.localhost:1234",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Port":  routerPort,
		"URI":               "/path?q=1",
	}
	got := map[string]string{
		"Host":              r.Host,
		"X-Forwarded-For":   strings.Join(r.Header.Values("X-Forwarded-For"), ","),
		"X-Forwarded-Host":  r.Header.Get("X-Forwarded-Host"),
		"X-Forwarded-Proto": r.Header.Get("X-Forwarded-Proto"),
		"X-Forwarded-Port":  r.Header.Get("X-Forwarded-Port"),
		"URI":               r.RequestURI,
	}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("backend saw %s %q, want %q", k, got[k], want[k])
		}
	}
}

func TestRouter_Whitelist(t *testing.T) {
	h := newHarness(t, Options{})
	be := newBackend(t, "web")
	tests := []struct {
		name      string
		whitelist []netip.Prefix
		code      int
	}{
		{"outside", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}, 403},
		{"inside", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}, 200},
		{"no whitelist", nil, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.rt.SetRoutes("app", []Route{{Service: "web", Hosts: []string{"web.app.localhost"},
				Targets: []netip.AddrPort{be.addr()}, Whitelist: tt.whitelist}})
			res, body := h.get("web.app.localhost", "/")
			if res.StatusCode != tt.code {
				t.Errorf("got %d %q, want %d", res.StatusCode, body, tt.code)
			}
		})
	}
}

func TestRouter_Redirect(t *testing.T) {
	be := newBackend(t, "web")
	route := []Route{{Service: "web", Hosts: []string{"web.app.localhost"}, Targets: []netip.AddrPort{be.addr()}, Redirect: true}}
	tests := []struct {
		name      string
		httpsPort int
		method    string
		path      string
		code      int
		location  string
	}{
		{"get", 0, "GET", "/a/b?x=1&y=%20", 308, "https://web.app.localhost/a/b?x=1&y=%20"},
		{"post keeps its method through 308", 0, "POST", "/form", 308, "https://web.app.localhost/form"},
		{"https port", 8443, "GET", "/?q", 308, "https://web.app.localhost:8443/?q"},
		{"acme challenge", 0, "GET", "/.well-known/acme-challenge/token", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{HTTPSPort: tt.httpsPort})
			h.rt.SetRoutes("app", route)
			res, _ := h.do(h.request(tt.method, "web.app.localhost:8080", tt.path, strings.NewReader("x")))
			if res.StatusCode != tt.code || res.Header.Get("Location") != tt.location {
				t.Errorf("got %d to %q, want %d to %q", res.StatusCode, res.Header.Get("Location"), tt.code, tt.location)
			}
		})
	}

	t.Run("over https", func(t *testing.T) {
		rt := New(Options{})
		rt.SetRoutes("app", route)
		t.Cleanup(rt.CloseIdleConnections)
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, httptest.NewRequest("GET", "https://web.app.localhost/", nil))
		if rec.Code != 200 || rec.Body.String() != "web" {
			t.Errorf("got %d %q, want 200 from the backend", rec.Code, rec.Body.String())
		}
	})
}

func TestRouter_BodyLimit(t *testing.T) {
	h := newHarness(t, Options{MaxBodyBytes: 1024})
	be := newBackend(t, "web")
	h.rt.SetRoutes("app", []Route{{Service: "web", Hosts: []string{"web.app.localhost"}, Targets: []netip.AddrPort{be.addr()}}})
	tests := []struct {
		name string
		body io.Reader
		code int
	}{
		{"at the limit", strings.NewReader(strings.Repeat("x", 1024)), 200},
		{"over, with a length", strings.NewReader(strings.Repeat("x", 1025)), 413},
		// An io.MultiReader hides the length: the body is sent chunked.
		{"over, chunked", io.MultiReader(strings.NewReader(strings.Repeat("x", 4096))), 413},
		{"under, chunked", io.MultiReader(strings.NewReader("small")), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := h.do(h.request("POST", "web.app.localhost", "/", tt.body))
			if res.StatusCode != tt.code {
				t.Errorf("got %d %q, want %d", res.StatusCode, body, tt.code)
			}
		})
	}
}

func TestRouter_SetRoutesConcurrent(t *testing.T) {
	h := newHarness(t, Options{})
	a, b, c := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")
	sets := [][]netip.AddrPort{{a.addr(), b.addr()}, {b.addr(), c.addr()}, {c.addr()}, {a.addr(), b.addr(), c.addr()}}
	h.rt.SetRoutes("app", []Route{{Service: "web", Hosts: []string{"web.app.localhost"}, Targets: sets[0]}})

	stop := make(chan struct{})
	swapped := make(chan int)
	go func() {
		n := 0
		defer func() { swapped <- n }()
		for ; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			hosts := []string{"web.app.localhost"}
			if n%2 == 0 {
				hosts = append(hosts, "www.example.test")
			}
			h.rt.SetRoutes("app", []Route{{Service: "web", Hosts: hosts, Targets: sets[n%len(sets)], Sticky: n%3 == 0}})
			h.rt.SetRoutes("other", []Route{{Service: "web", Hosts: []string{"web.other.localhost"}, Targets: sets[(n+1)%len(sets)]}})
		}
	}()

	var failed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				req := h.request("GET", "web.app.localhost", "/", nil)
				res, err := h.client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	n := <-swapped
	if f := failed.Load(); f != 0 {
		t.Errorf("%d of 1600 requests failed during %d table swaps, want 0", f, n)
	}
	t.Logf("%d table swaps", n)
}

func BenchmarkRouter(b *testing.B) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	defer be.Close()
	rt := New(Options{})
	defer rt.CloseIdleConnections()
	rt.SetRoutes("app", []Route{{Service: "web", Hosts: []string{"web.app.localhost"},
		Targets: []netip.AddrPort{addrOf(be)}}})
	front := httptest.NewServer(rt)
	defer front.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()

	run := func(b *testing.B, url, host string) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest("GET", url, nil)
				req.Host = host
				res, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					b.Errorf("got %d, want 200", res.StatusCode)
					return
				}
			}
		})
	}
	b.Run("direct", func(b *testing.B) { run(b, be.URL, "web.app.localhost") })
	b.Run("router", func(b *testing.B) { run(b, front.URL, "web.app.localhost") })
}
