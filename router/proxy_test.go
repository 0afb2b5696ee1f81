package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// waitUntil polls cond until it holds, failing the test after a deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// gate blocks a backend's handlers until opened; opening twice is fine.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

// newGate returns a closed gate. Register its open as a cleanup after the
// backend's Close: cleanups run last-registered first, and the backend's
// Close waits for the handlers the gate holds.
func newGate() *gate {
	return &gate{ch: make(chan struct{})}
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

func webRoute(targets ...netip.AddrPort) []Route {
	return []Route{{Service: "web", Hosts: []string{"web.app.localhost"}, Targets: targets}}
}

func TestRouter_Streaming(t *testing.T) {
	h := newHarness(t, Options{})
	g := newGate()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-g.ch
		io.WriteString(w, "second\n")
	}))
	t.Cleanup(be.Close)
	t.Cleanup(g.open)
	h.rt.SetRoutes("app", webRoute(addrOf(be)))

	res, err := h.client.Do(h.request("GET", "web.app.localhost", "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	first := make(chan string, 1)
	go func() {
		line, _ := br.ReadString('\n')
		first <- line
	}()
	select {
	case line := <-first:
		if line != "first\n" {
			t.Fatalf("got first chunk %q, want %q", line, "first\n")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first chunk did not reach the client while the backend was still writing")
	}
	g.open()
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Errorf("got rest %q, %v; want %q", rest, err, "second\n")
	}
}

func TestRouter_Websocket(t *testing.T) {
	h := newHarness(t, Options{})
	be := websocketEcho(t)
	h.rt.SetRoutes("app", webRoute(addrOf(be)))

	dialer := websocket.Dialer{NetDial: func(string, string) (net.Conn, error) {
		return net.Dial("tcp", h.addr)
	}}
	c, res, err := dialer.Dial("ws://web.app.localhost/socket", nil)
	if err != nil {
		t.Fatalf("dialing through the router: %v", err)
	}
	defer c.Close()
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got %d, want 101", res.StatusCode)
	}
	checkEcho(t, c)

	// An open websocket is a request in flight: it holds off Drain.
	h.rt.SetRoutes("app", webRoute())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.rt.Drain(ctx, addrOf(be)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("draining with the websocket open: got %v, want a deadline error", err)
	}
	c.Close()
	if err := h.rt.Drain(context.Background(), addrOf(be)); err != nil {
		t.Errorf("draining after the websocket closed: %v", err)
	}
}

// websocketEcho is a backend that echoes websocket messages.
func websocketEcho(t *testing.T) *httptest.Server {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			kind, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(kind, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func checkEcho(t *testing.T, c *websocket.Conn) {
	t.Helper()
	for _, msg := range []string{"hello", "world"} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.ReadMessage()
		if err != nil || string(got) != "echo: "+msg {
			t.Fatalf("got %q, %v; want %q", got, err, "echo: "+msg)
		}
	}
}

func TestRouter_Timeout(t *testing.T) {
	h := newHarness(t, Options{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // until the router gives up
	}))
	t.Cleanup(be.Close)
	h.rt.SetRoutes("app", []Route{{Service: "web", Hosts: []string{"web.app.localhost"},
		Targets: []netip.AddrPort{addrOf(be)}, Timeout: 100 * time.Millisecond}})

	res, body := h.get("web.app.localhost", "/")
	if res.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "service web of app app did not answer within 100ms") {
		t.Errorf("got %d %q, want 504 naming the service and the timeout", res.StatusCode, body)
	}
}

// echoBackend answers with the request's method and body.
func echoBackend(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRouter_RetryRefused(t *testing.T) {
	h := newHarness(t, Options{})
	live := echoBackend(t)
	dead := refusedAddr(t)
	h.rt.SetRoutes("app", webRoute(dead, addrOf(live)))

	for i := range 10 {
		for _, method := range []string{"GET", "POST", "DELETE"} {
			payload := fmt.Sprintf("payload %d", i)
			res, body := h.do(h.request(method, "web.app.localhost", "/", strings.NewReader(payload)))
			if want := method + " " + payload; res.StatusCode != 200 || body != want {
				t.Fatalf("%s through a dead and a live process: got %d %q, want 200 %q", method, res.StatusCode, body, want)
			}
		}
	}

	h.rt.SetRoutes("app", webRoute(dead))
	if res, body := h.get("web.app.localhost", "/"); res.StatusCode != http.StatusBadGateway || !strings.Contains(body, "service web of app app") {
		t.Errorf("only a dead process: got %d %q, want 502 naming the service", res.StatusCode, body)
	}
}

func TestRouter_Drain(t *testing.T) {
	h := newHarness(t, Options{})
	entered := make(chan struct{}, 1)
	g := newGate()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-g.ch
		io.WriteString(w, "slow")
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(g.open)
	fast := newBackend(t, "fast")
	h.rt.SetRoutes("app", webRoute(addrOf(slow)))

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		res, err := h.client.Do(h.request("GET", "web.app.localhost", "/", nil))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		done <- result{res.StatusCode, string(body), err}
	}()
	<-entered

	if err := h.rt.Drain(context.Background(), addrOf(slow)); err == nil || !strings.Contains(err.Error(), "still routed") {
		t.Errorf("draining a routed target: got %v, want an error saying it is still routed", err)
	}

	h.rt.SetRoutes("app", webRoute(fast.addr()))
	if _, body := h.get("web.app.localhost", "/"); body != "fast" {
		t.Errorf("after the swap: got %q, want the new target", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.rt.Drain(ctx, addrOf(slow)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("draining with a request in flight: got %v, want a deadline error", err)
	}

	drained := make(chan error, 1)
	go func() { drained <- h.rt.Drain(context.Background(), addrOf(slow)) }()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned %v with the request still in flight", err)
	default:
	}
	g.open()
	if r := <-done; r.err != nil || r.code != 200 || r.body != "slow" {
		t.Errorf("in-flight request: got %d %q %v, want 200 %q", r.code, r.body, r.err, "slow")
	}
	if err := <-drained; err != nil {
		t.Errorf("Drain: %v", err)
	}
	if err := h.rt.Drain(context.Background(), refusedAddr(t)); err != nil {
		t.Errorf("draining an unknown target: got %v, want nil", err)
	}
}

// TestRouter_ZeroDowntime runs a rolling deploy, a restart and a scale-down
// the way the engine does them, under a continuous load of GETs and POSTs:
// not one request may fail.
func TestRouter_ZeroDowntime(t *testing.T) {
	h := newHarness(t, Options{})
	route := func(backends ...*backend) {
		var targets []netip.AddrPort
		for _, b := range backends {
			targets = append(targets, b.addr())
		}
		h.rt.SetRoutes("app", webRoute(targets...))
	}
	stop := func(b *backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.rt.Drain(ctx, b.addr()); err != nil {
			t.Errorf("draining %s: %v", b.name, err)
		}
		// Stop abruptly, as a process that exits on SIGTERM does: whatever
		// was still in flight would fail.
		b.srv.CloseClientConnections()
		b.srv.Close()
	}
	generation := func(name string) []*backend {
		return []*backend{newBackend(t, name+"-1"), newBackend(t, name+"-2")}
	}

	v1 := generation("v1")
	route(v1...)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-quit:
					return
				default:
				}
				req := h.request("GET", "web.app.localhost", "/", nil)
				if (i+n)%2 == 1 {
					req = h.request("POST", "web.app.localhost", "/", strings.NewReader("some form"))
				}
				res, err := h.client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if err == nil && res.StatusCode != 200 {
						err = fmt.Errorf("status %d", res.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		})
	}
	underLoad := func(phase string) {
		target := ok.Load() + 200
		waitUntil(t, "200 more requests "+phase, func() bool { return ok.Load() >= target || failed.Load() > 0 })
	}

	// roll replaces old by new one process at a time: start one new, route
	// it beside the old ones, unroute one old, drain and stop it.
	roll := func(phase string, old, new []*backend) {
		for i := range old {
			route(append(append([]*backend{}, old[i:]...), new[:i+1]...)...)
			underLoad(phase)
			route(append(append([]*backend{}, old[i+1:]...), new[:i+1]...)...)
			stop(old[i])
			underLoad(phase)
		}
	}
	underLoad("before the deploy")
	v2 := generation("v2")
	roll("during the deploy", v1, v2)
	v3 := generation("v3")
	roll("during the restart", v2, v3)
	route(v3[0])
	stop(v3[1])
	underLoad("after the scale-down")

	close(quit)
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d requests failed, want 0; first: %v", f, f+ok.Load(), firstErr.Load())
	}
	t.Logf("%d requests, none failed", ok.Load())
}

func TestRouter_Schemes(t *testing.T) {
	proto := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s tls=%t", r.Proto, r.TLS != nil)
	})
	https := httptest.NewTLSServer(proto) // self-signed
	t.Cleanup(https.Close)
	h2c := httptest.NewUnstartedServer(proto)
	h2c.Config.Protocols = new(http.Protocols)
	h2c.Config.Protocols.SetHTTP1(true)
	h2c.Config.Protocols.SetUnencryptedHTTP2(true)
	h2c.Start()
	t.Cleanup(h2c.Close)
	plain := httptest.NewServer(proto)
	t.Cleanup(plain.Close)

	tests := []struct {
		scheme string
		srv    *httptest.Server
		want   string
	}{
		{"", plain, "HTTP/1.1 tls=false"},
		{"http", plain, "HTTP/1.1 tls=false"},
		{"https", https, "HTTP/1.1 tls=true"},
		{"grpc", h2c, "HTTP/2.0 tls=false"},
	}
	for _, tt := range tests {
		t.Run(tt.scheme, func(t *testing.T) {
			h := newHarness(t, Options{})
			h.rt.SetRoutes("app", []Route{{Service: "web", Hosts: []string{"web.app.localhost"},
				Targets: []netip.AddrPort{addrOf(tt.srv)}, Scheme: tt.scheme}})
			if res, body := h.get("web.app.localhost", "/"); res.StatusCode != 200 || body != tt.want {
				t.Errorf("got %d %q, want 200 %q", res.StatusCode, body, tt.want)
			}
		})
	}
}
