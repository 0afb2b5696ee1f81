package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// connCounter counts the connections a backend accepted and closed.
type connCounter struct{ opened, closed atomic.Int64 }

func (cc *connCounter) hook(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		cc.opened.Add(1)
	case http.StateClosed, http.StateHijacked:
		cc.closed.Add(1)
	}
}

// countedBackend is an httptest backend whose connections are counted.
func countedBackend(t *testing.T, h http.HandlerFunc) (*httptest.Server, *connCounter) {
	t.Helper()
	cc := &connCounter{}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = cc.hook
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, cc
}

func TestForward_KeepAlive(t *testing.T) {
	h := newHarness(t, Options{})
	be, cc := countedBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	h.rt.SetRoutes("app", webRoute(addrOf(be)))
	for i := range 20 {
		method := "GET"
		var body io.Reader
		if i%2 == 1 {
			method, body = "POST", strings.NewReader("form")
		}
		if res, got := h.do(h.request(method, "web.app.localhost", "/", body)); res.StatusCode != 200 || got != "ok" {
			t.Fatalf("request %d: got %d %q, want 200 ok", i, res.StatusCode, got)
		}
	}
	if n := cc.opened.Load(); n != 1 {
		t.Errorf("20 requests one after the other opened %d connections to the process, want 1", n)
	}
}

// rawBackend is a process written by hand, to misbehave on purpose: for
// the nth request it got (from 1), act(n) says what to do. It counts
// requests and connections.
type rawBackend struct {
	ln                net.Listener
	requests, accepts atomic.Int64
}

// Actions of a rawBackend.
const (
	answer      = iota // 200 "ok", keep-alive
	answerClose        // 200 "ok", then close the connection as if idle for too long
	drop               // close without answering
	partial            // the status line only, then close
)

func newRawBackend(t *testing.T, act func(n int64) int) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepts.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					switch act(b.requests.Add(1)) {
					case answer:
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					case answerClose:
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
						return
					case drop:
						return
					case partial:
						io.WriteString(c, "HTTP/1.1 200 OK\r\n")
						return
					}
				}
			}()
		}
	}()
	return b
}

func (b *rawBackend) addr() netip.AddrPort { return netip.MustParseAddrPort(b.ln.Addr().String()) }

func TestForward_PooledConnectionClosed(t *testing.T) {
	tests := []struct {
		name   string
		method string
		body   string
		// second is what the process does from the second request on;
		// the first is answered and leaves a pooled connection (closed
		// by the process at once with answerClose).
		first, second int
		code          int
		requests      int64 // the process saw, in all
	}{
		{"closed while idle, GET sent again", "GET", "", answerClose, answer, 200, 2},
		{"closed while idle, POST on a new connection", "POST", "form", answerClose, answer, 200, 2},
		{"closed while idle, DELETE on a new connection", "DELETE", "", answerClose, answer, 200, 2},
		{"dropped, GET sent again once", "GET", "", answer, drop, 502, 3},
		{"dropped, HEAD sent again once", "HEAD", "", answer, drop, 502, 3},
		{"dropped, POST not sent again", "POST", "form", answer, drop, 502, 2},
		{"dropped, POST without a body not sent again", "POST", "", answer, drop, 502, 2},
		{"dropped, GET with a body not sent again", "GET", "query", answer, drop, 502, 2},
		{"dropped after the status line, GET not sent again", "GET", "", answer, partial, 502, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			be := newRawBackend(t, func(n int64) int {
				if n == 1 {
					return tt.first
				}
				return tt.second
			})
			h.rt.SetRoutes("app", webRoute(be.addr()))
			if res, body := h.get("web.app.localhost", "/"); res.StatusCode != 200 || body != "ok" {
				t.Fatalf("first request: got %d %q, want 200 ok", res.StatusCode, body)
			}
			if tt.first == answerClose {
				// Let the close reach the router's side of the pooled
				// connection.
				time.Sleep(20 * time.Millisecond)
			}
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			res, _ := h.do(h.request(tt.method, "web.app.localhost", "/", body))
			if res.StatusCode != tt.code {
				t.Errorf("second request: got %d, want %d", res.StatusCode, tt.code)
			}
			if n := be.requests.Load(); n != tt.requests {
				t.Errorf("the process saw %d requests, want %d", n, tt.requests)
			}
		})
	}
}

// echoHash is a backend that answers with what it got: method, length,
// transfer encoding, and the size and hash of the body.
func echoHash(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.New()
		n, err := io.Copy(sum, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%s length=%d te=%v got=%d sha=%x expect=%q", r.Method, r.ContentLength, r.TransferEncoding,
			n, sum.Sum(nil)[:8], r.Header.Get("Expect"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestForward_RequestBodies(t *testing.T) {
	h := newHarness(t, Options{})
	be := echoHash(t)
	h.rt.SetRoutes("app", webRoute(addrOf(be)))
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, over inlineBody
	hash := func(b []byte) string {
		s := sha256.Sum256(b)
		return fmt.Sprintf("%x", s[:8])
	}
	// An io.MultiReader hides the length: the client sends it chunked.
	chunked := func(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(b)) }
	tests := []struct {
		name   string
		method string
		body   io.Reader
		want   string
	}{
		{"small", "POST", strings.NewReader("hello"), "POST length=5 te=[] got=5 sha=" + hash([]byte("hello"))},
		{"empty POST", "POST", nil, "POST length=0 te=[] got=0 sha=" + hash(nil)},
		{"small chunked", "PUT", chunked([]byte("hello")), "PUT length=-1 te=[chunked] got=5 sha=" + hash([]byte("hello"))},
		{"large", "POST", bytes.NewReader(big), fmt.Sprintf("POST length=%d te=[] got=%d sha=%s", len(big), len(big), hash(big))},
		{"large chunked", "POST", chunked(big), fmt.Sprintf("POST length=-1 te=[chunked] got=%d sha=%s", len(big), hash(big))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := h.do(h.request(tt.method, "web.app.localhost", "/", tt.body))
			if want := tt.want + ` expect=""`; res.StatusCode != 200 || body != want {
				t.Errorf("got %d %q\nwant 200 %q", res.StatusCode, body, want)
			}
		})
	}
}

func TestForward_ResponseBodies(t *testing.T) {
	h := newHarness(t, Options{})
	big := bytes.Repeat([]byte("0123456789abcdef"), 5<<16) // 5 MiB
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/length" {
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		}
		for b := big; len(b) > 0; b = b[min(len(b), 100_000):] {
			w.Write(b[:min(len(b), 100_000)])
			if r.URL.Path == "/chunked" {
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(be.Close)
	h.rt.SetRoutes("app", webRoute(addrOf(be)))
	for _, path := range []string{"/length", "/chunked"} {
		t.Run(path, func(t *testing.T) {
			res, body := h.get("web.app.localhost", path)
			if res.StatusCode != 200 || body != string(big) {
				t.Errorf("got %d and %d bytes, want 200 and the %d bytes sent", res.StatusCode, len(body), len(big))
			}
			if chunked := res.ContentLength == -1; chunked != (path == "/chunked") {
				t.Errorf("got Content-Length %d", res.ContentLength)
			}
		})
	}
}

func TestForward_NoBody(t *testing.T) {
	h := newHarness(t, Options{})
	be, cc := countedBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/head":
			w.Header().Set("Content-Length", "1234")
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.Header().Set("ETag", `"v1"`)
			w.WriteHeader(http.StatusNotModified)
		default:
			io.WriteString(w, "ok")
		}
	})
	h.rt.SetRoutes("app", webRoute(addrOf(be)))
	tests := []struct {
		method, path string
		code         int
		header       string // a header of the answer, name=value
	}{
		{"HEAD", "/head", 200, "Content-Length=1234"},
		{"GET", "/204", 204, ""},
		{"GET", "/304", 304, `Etag="v1"`},
		{"GET", "/", 200, "Content-Length=2"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			// Twice: an answer without a body must leave the connection
			// ready for the next one.
			for range 2 {
				res, body := h.do(h.request(tt.method, "web.app.localhost", tt.path, nil))
				if res.StatusCode != tt.code || (tt.path != "/" && body != "") {
					t.Errorf("got %d %q, want %d and no body", res.StatusCode, body, tt.code)
				}
				if k, v, ok := strings.Cut(tt.header, "="); ok && res.Header.Get(k) != v {
					t.Errorf("got %s %q, want %q", k, res.Header.Get(k), v)
				}
			}
		})
	}
	if n := cc.opened.Load(); n != 1 {
		t.Errorf("the process got %d connections, want 1", n)
	}
}

func TestForward_ConnectionClose(t *testing.T) {
	t.Run("from the client", func(t *testing.T) {
		h := newHarness(t, Options{})
		be, cc := countedBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
		h.rt.SetRoutes("app", webRoute(addrOf(be)))
		for range 3 {
			req := h.request("GET", "web.app.localhost", "/", nil)
			req.Close = true
			if res, body := h.do(req); res.StatusCode != 200 || body != "ok" || !res.Close {
				t.Fatalf("got %d %q close=%t, want 200 ok and the client's connection closed", res.StatusCode, body, res.Close)
			}
		}
		if n := cc.opened.Load(); n != 1 {
			t.Errorf("the process got %d connections, want 1: the client's Connection header is not its", n)
		}
	})
	t.Run("from the process", func(t *testing.T) {
		h := newHarness(t, Options{})
		be, cc := countedBackend(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "ok")
		})
		h.rt.SetRoutes("app", webRoute(addrOf(be)))
		for range 3 {
			if res, body := h.get("web.app.localhost", "/"); res.StatusCode != 200 || body != "ok" || res.Close {
				t.Fatalf("got %d %q close=%t, want 200 ok and the client's connection kept", res.StatusCode, body, res.Close)
			}
		}
		if n := cc.opened.Load(); n != 3 {
			t.Errorf("the process got %d connections, want 3: one per request", n)
		}
	})
}

func TestForward_ExpectContinue(t *testing.T) {
	h := newHarness(t, Options{})
	be := echoHash(t)
	h.rt.SetRoutes("app", webRoute(addrOf(be)))
	h.client.Transport.(*http.Transport).ExpectContinueTimeout = 10 * time.Second
	for _, size := range []int{5, 200 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			payload := bytes.Repeat([]byte("x"), size)
			req := h.request("POST", "web.app.localhost", "/", bytes.NewReader(payload))
			req.Header.Set("Expect", "100-continue")
			start := time.Now()
			res, body := h.do(req)
			sum := sha256.Sum256(payload)
			want := fmt.Sprintf("POST length=%d te=[] got=%d sha=%x expect=\"\"", size, size, sum[:8])
			if res.StatusCode != 200 || body != want {
				t.Errorf("got %d %q\nwant 200 %q", res.StatusCode, body, want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s: the client waited for its 100 Continue in vain", d)
			}
		})
	}
}

func TestForward_HopByHop(t *testing.T) {
	h := newHarness(t, Options{})
	seen := make(chan http.Header, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		seen <- req.Header
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Resp-Hop\r\nX-Resp-Hop: 1\r\n"+
			"Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-Resp-Keep: yes\r\n\r\nok")
	}()
	h.rt.SetRoutes("app", webRoute(netip.MustParseAddrPort(ln.Addr().String())))

	req := h.request("GET", "web.app.localhost", "/", nil)
	req.Header.Set("Connection", "keep-alive, X-Hop")
	req.Header.Set("X-Hop", "1")
	req.Header.Set("Keep-Alive", "300")
	req.Header.Set("Proxy-Authorization", "Basic eDp5")
	req.Header.Set("Proxy-Connection", "keep-alive")
	req.Header.Set("Te", "trailers, deflate")
	req.Header.Set("Forwarded", "for=203.0.113.9")
	req.Header.Set("X-Keep", "yes")
	res, body := h.do(req)
	if res.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %d %q, want 200 ok", res.StatusCode, body)
	}
	got := <-seen
	for _, k := range []string{"Connection", "X-Hop", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Forwarded"} {
		if v, ok := got[k]; ok {
			t.Errorf("the process got %s %q, want it dropped", k, v)
		}
	}
	if got.Get("X-Keep") != "yes" || got.Get("Te") != "trailers" {
		t.Errorf("the process got X-Keep %q and Te %q, want yes and trailers", got.Get("X-Keep"), got.Get("Te"))
	}
	for _, k := range []string{"X-Resp-Hop", "Keep-Alive", "Proxy-Authenticate"} {
		if v, ok := res.Header[k]; ok {
			t.Errorf("the client got %s %q, want it dropped", k, v)
		}
	}
	if res.Header.Get("X-Resp-Keep") != "yes" {
		t.Errorf("the client got X-Resp-Keep %q, want yes", res.Header.Get("X-Resp-Keep"))
	}
}

func TestForward_Trailers(t *testing.T) {
	h := newHarness(t, Options{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	}))
	t.Cleanup(be.Close)
	h.rt.SetRoutes("app", webRoute(addrOf(be)))
	res, body := h.get("web.app.localhost", "/")
	if res.StatusCode != 200 || body != "body" {
		t.Fatalf("got %d %q, want 200 body", res.StatusCode, body)
	}
	if res.Trailer.Get("X-Sum") != "42" || res.Trailer.Get("X-Late") != "yes" {
		t.Errorf("got trailers %v, want X-Sum 42 and X-Late yes", res.Trailer)
	}
}

func TestForward_StreamHead(t *testing.T) {
	h := newHarness(t, Options{})
	g := newGate()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-g.ch
		io.WriteString(w, "data: 1\n\n")
	}))
	t.Cleanup(be.Close)
	t.Cleanup(g.open)
	h.rt.SetRoutes("app", webRoute(addrOf(be)))

	headed := make(chan *http.Response, 1)
	go func() {
		res, err := h.client.Do(h.request("GET", "web.app.localhost", "/", nil))
		if err != nil {
			t.Error(err)
			close(headed)
			return
		}
		headed <- res
	}()
	var res *http.Response
	select {
	case res = <-headed:
	case <-time.After(5 * time.Second):
		t.Fatal("the head of an event stream did not reach the client before its first event")
	}
	if res == nil {
		return
	}
	defer res.Body.Close()
	g.open()
	if body, err := io.ReadAll(res.Body); err != nil || string(body) != "data: 1\n\n" {
		t.Errorf("got %q, %v", body, err)
	}
}

func TestForward_ClientGone(t *testing.T) {
	h := newHarness(t, Options{})
	entered, left := make(chan struct{}), make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // the router closed the connection
		close(left)
	}))
	t.Cleanup(be.Close)
	h.rt.SetRoutes("app", webRoute(addrOf(be)))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := h.client.Do(h.request("GET", "web.app.localhost", "/", nil).WithContext(ctx))
		done <- err
	}()
	<-entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("client: got %v, want context.Canceled", err)
	}
	select {
	case <-left:
	case <-time.After(5 * time.Second):
		t.Fatal("the process's request went on after its client left")
	}
	h.rt.SetRoutes("app", webRoute())
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	if err := h.rt.Drain(dctx, addrOf(be)); err != nil {
		t.Errorf("Drain after the client left: %v", err)
	}
}

func TestForward_DrainClosesIdle(t *testing.T) {
	h := newHarness(t, Options{})
	be, cc := countedBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	h.rt.SetRoutes("app", webRoute(addrOf(be)))
	if res, _ := h.get("web.app.localhost", "/"); res.StatusCode != 200 {
		t.Fatalf("got %d, want 200", res.StatusCode)
	}
	if n := cc.closed.Load(); n != 0 {
		t.Fatalf("%d connections closed before the drain, want 0", n)
	}
	h.rt.SetRoutes("app", webRoute())
	if err := h.rt.Drain(context.Background(), addrOf(be)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the pooled connection to the drained process is closed", func() bool { return cc.closed.Load() == 1 })
}

func TestForward_EarlyAnswer(t *testing.T) {
	h := newHarness(t, Options{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "too big for me", http.StatusRequestEntityTooLarge)
	}))
	t.Cleanup(be.Close)
	h.rt.SetRoutes("app", webRoute(addrOf(be)))
	for _, tt := range []struct {
		name string
		body io.Reader
	}{
		{"length", bytes.NewReader(make([]byte, 4<<20))},
		{"chunked", io.MultiReader(bytes.NewReader(make([]byte, 4<<20)))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := h.client.Do(h.request("POST", "web.app.localhost", "/", tt.body))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "too big for me") {
				t.Errorf("got %d %q, want the process's 413", res.StatusCode, body)
			}
		})
	}
	// The router still serves.
	if res, _ := h.get("web.app.localhost", "/"); res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("afterwards: got %d, want 413", res.StatusCode)
	}
}

func TestDirect(t *testing.T) {
	plain := &route{direct: true}
	tests := []struct {
		name   string
		rte    *route
		method string
		target string
		header map[string]string
		want   bool
	}{
		{"GET", plain, "GET", "/a?b=c", nil, true},
		{"OPTIONS *", plain, "OPTIONS", "*", nil, true},
		{"https or grpc target", &route{}, "GET", "/", nil, false},
		{"websocket", plain, "GET", "/", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"}, false},
		{"absolute URI", plain, "GET", "http://web.app.localhost/", nil, false},
		{"semicolon in the query", plain, "GET", "/?a=1;b=2", nil, false},
		{"bad escape in the query", plain, "GET", "/?a=%zz", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if got := direct(tt.rte, r); got != tt.want {
				t.Errorf("direct: got %t, want %t", got, tt.want)
			}
		})
	}
}

// slowBody yields n pieces of "x", one every d.
type slowBody struct {
	n int
	d time.Duration
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, io.EOF
	}
	time.Sleep(b.d)
	b.n--
	p[0] = 'x'
	return 1, nil
}

func TestForward_TimeoutAfterBody(t *testing.T) {
	h := newHarness(t, Options{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/slow" {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}
		fmt.Fprintf(w, "%d bytes", len(body))
	}))
	t.Cleanup(be.Close)
	h.rt.SetRoutes("app", []Route{{Service: "web", Hosts: []string{"web.app.localhost"},
		Targets: []netip.AddrPort{addrOf(be)}, Timeout: 100 * time.Millisecond}})
	tests := []struct {
		name   string
		path   string
		length bool // send a Content-Length
		code   int
		body   string
	}{
		{"a slow upload takes the time it needs", "/", false, 200, "6 bytes"},
		{"a slow upload of a known length too", "/", true, 200, "6 bytes"},
		{"the timeout runs from the end of the body", "/slow", false, 504, "did not answer within 100ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = &slowBody{n: 6, d: 40 * time.Millisecond}
			req := h.request("POST", "web.app.localhost", tt.path, body)
			if tt.length {
				req.ContentLength = 6
			}
			res, got := h.do(req)
			if res.StatusCode != tt.code || !strings.Contains(got, tt.body) {
				t.Errorf("got %d %q, want %d with %q", res.StatusCode, got, tt.code, tt.body)
			}
		})
	}
}
