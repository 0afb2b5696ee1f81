package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// frontHarness serves a Router through a Front with the server settings
// given, whatever ROUTER_TEST_SERVER says: over HTTPS when opts has a CA.
func frontHarness(t *testing.T, opts Options, srv *http.Server, loops int) (*Router, *Front, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return frontOn(t, ln, opts, srv, loops)
}

// frontOn is frontHarness on a listener of the caller's.
func frontOn(t *testing.T, ln net.Listener, opts Options, srv *http.Server, loops int) (*Router, *Front, string) {
	t.Helper()
	opts.Log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	rt := New(opts)
	checkReleased(t, rt)
	t.Cleanup(rt.CloseIdleConnections)
	srv.Handler = rt
	if opts.CA != nil {
		srv.TLSConfig = rt.TLSConfig()
	}
	f := NewFront(rt, ln, srv)
	f.Loops = loops
	served := make(chan error, 1)
	go func() { served <- f.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.Shutdown(ctx)
		<-served
	})
	return rt, f, ln.Addr().String()
}

// rawGet writes a GET for host on c and reads the response.
func rawGet(t *testing.T, c net.Conn, br *bufio.Reader, host, path string) (*http.Response, string) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host); err != nil {
		t.Fatal(err)
	}
	return readResponse(t, br, "GET")
}

func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// A client too slow for a large response gets it whole, and its connection
// then goes on serving requests.
func TestFront_SlowClient(t *testing.T) {
	rt, _, addr := frontHarness(t, Options{}, &http.Server{}, 1)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Header().Set("Content-Length", strconv.Itoa(len(big))) // the loop's to relay
			w.Write(big)
			return
		}
		io.WriteString(w, "small")
	}))
	t.Cleanup(be.Close)
	rt.SetRoutes("app", webRoute(addrOf(be)))

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: web.app.localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // more than the socket buffers hold: the loop's writes fill them
	res, body := readResponse(t, br, "GET")
	if res.StatusCode != 200 || sha256.Sum256([]byte(body)) != sha256.Sum256(big) {
		t.Fatalf("got %d with %d bytes, want 200 with the %d bytes sent", res.StatusCode, len(body), len(big))
	}
	for i := range 3 {
		if res, body := rawGet(t, c, br, "web.app.localhost", "/"); res.StatusCode != 200 || body != "small" {
			t.Fatalf("request %d after the large one: got %d %q, want 200 small", i, res.StatusCode, body)
		}
	}
}

// Requests sent ahead of their responses are answered in order.
func TestFront_Pipelined(t *testing.T) {
	rt, _, addr := frontHarness(t, Options{}, &http.Server{}, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	t.Cleanup(be.Close)
	rt.SetRoutes("app", webRoute(addrOf(be)))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var reqs strings.Builder
	for i := range 5 {
		fmt.Fprintf(&reqs, "GET /%d HTTP/1.1\r\nHost: web.app.localhost\r\n\r\n", i)
	}
	// A POST with a body, and one the loop hands to net/http (chunked),
	// after which net/http answers the rest.
	reqs.WriteString("POST /post HTTP/1.1\r\nHost: web.app.localhost\r\nContent-Length: 3\r\n\r\nabc")
	reqs.WriteString("POST /chunked HTTP/1.1\r\nHost: web.app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	reqs.WriteString("GET /last HTTP/1.1\r\nHost: web.app.localhost\r\n\r\n")
	if _, err := io.WriteString(c, reqs.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, want := range []string{"/0", "/1", "/2", "/3", "/4", "/post", "/chunked", "/last"} {
		method := "GET"
		if strings.HasPrefix(want, "/c") || strings.HasPrefix(want, "/p") {
			method = "POST"
		}
		if res, body := readResponse(t, br, method); res.StatusCode != 200 || body != want {
			t.Fatalf("got %d %q, want 200 %q", res.StatusCode, body, want)
		}
	}
}

// Shutdown lets responses in flight finish, closes idle connections, and
// stops accepting.
func TestFront_Shutdown(t *testing.T) {
	rt, f, addr := frontHarness(t, Options{}, &http.Server{}, 2)
	started := make(chan struct{}, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			time.Sleep(300 * time.Millisecond)
		}
		io.WriteString(w, "done")
	}))
	t.Cleanup(be.Close)
	rt.SetRoutes("app", webRoute(addrOf(be)))

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	ibr := bufio.NewReader(idle)
	if res, _ := rawGet(t, idle, ibr, "web.app.localhost", "/"); res.StatusCode != 200 {
		t.Fatalf("got %d, want 200", res.StatusCode)
	}

	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	type result struct {
		res  *http.Response
		body string
	}
	got := make(chan result, 1)
	go func() {
		io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: web.app.localhost\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(busy), nil)
		if err != nil {
			got <- result{}
			return
		}
		b, _ := io.ReadAll(res.Body)
		got <- result{res, string(b)}
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	r := <-got
	if r.res == nil || r.res.StatusCode != 200 || r.body != "done" {
		t.Errorf("the request in flight at shutdown: got %+v, want 200 done", r)
	}
	idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := ibr.Read(make([]byte, 1)); err == nil {
		t.Errorf("the idle connection is still open after Shutdown (read %d bytes)", n)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("a new connection was accepted after Shutdown")
	}
}

// The loops close connections idle longer than the server's IdleTimeout,
// and those that take longer than ReadHeaderTimeout to send a request head.
func TestFront_ClientTimeouts(t *testing.T) {
	rt, _, addr := frontHarness(t, Options{}, &http.Server{IdleTimeout: 300 * time.Millisecond, ReadHeaderTimeout: 300 * time.Millisecond}, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(be.Close)
	rt.SetRoutes("app", webRoute(addrOf(be)))
	for _, tt := range []struct {
		name  string
		first string // sent, then nothing more
	}{
		{"idle after a request", ""},
		{"half a request head", "GET / HTTP/1.1\r\nHost: web.app"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			if tt.first == "" {
				if res, _ := rawGet(t, c, br, "web.app.localhost", "/"); res.StatusCode != 200 {
					t.Fatalf("got %d, want 200", res.StatusCode)
				}
			} else {
				io.WriteString(c, tt.first)
			}
			start := time.Now()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = br.ReadByte()
			if err == nil || isTimeout(err) {
				t.Fatalf("read %v: the router did not close the connection within 5 s", err)
			}
			if d := time.Since(start); d < 250*time.Millisecond {
				t.Errorf("closed after %s, before the 300 ms timeout", d)
			}
		})
	}
}

// Several loops serve concurrent clients, spread round robin over the
// processes.
func TestFront_Loops(t *testing.T) {
	rt, _, addr := frontHarness(t, Options{}, &http.Server{}, 2)
	a, b := newBackend(t, "a"), newBackend(t, "b")
	rt.SetRoutes("app", webRoute(a.addr(), b.addr()))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
				req.Host = "web.app.localhost"
				res, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 || (string(body) != "a" && string(body) != "b") {
					errs <- fmt.Errorf("got %d %q, want 200 from a or b", res.StatusCode, body)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if na, nb := a.hits.Load(), b.hits.Load(); na+nb != 800 || na < 300 || nb < 300 {
		t.Errorf("hits a=%d b=%d, want 800 spread about evenly", na, nb)
	}
}

// Over HTTPS, HTTP/1.1 clients are served by the loops after a handshake
// on a goroutine, HTTP/2 ones by net/http; either way the process sees
// X-Forwarded-Proto https, and a route with Redirect does not redirect.
func TestFront_HTTPS(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rt, _, addr := frontHarness(t, Options{CA: ca}, &http.Server{}, 1)
	_, port, _ := net.SplitHostPort(addr)

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(big)
			return
		}
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Port"), r.URL.Path)
	}))
	t.Cleanup(be.Close)
	rt.SetRoutes("app", []Route{{Service: "web", Hosts: []string{"web.app.localhost"}, Targets: []netip.AddrPort{addrOf(be)}, Redirect: true}})

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	client := func(h2 bool) *http.Client {
		cfg := &tls.Config{RootCAs: pool, ServerName: "web.app.localhost", NextProtos: []string{"http/1.1"}}
		if h2 {
			cfg.NextProtos = []string{"h2"}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}}
		t.Cleanup(c.CloseIdleConnections)
		return c
	}
	want := func(path string) string { return "https " + port + " " + path }
	for _, tt := range []struct {
		name   string
		h2     bool
		method string
		body   io.Reader
		proto  string
	}{
		{"HTTP/1.1 GET, the loop's", false, "GET", nil, "HTTP/1.1"},
		{"HTTP/1.1 POST with a length, the loop's", false, "POST", strings.NewReader("form"), "HTTP/1.1"},
		{"HTTP/1.1 chunked POST, handed to net/http", false, "POST", io.MultiReader(strings.NewReader("chunked")), "HTTP/1.1"},
		{"HTTP/2", true, "GET", nil, "HTTP/2.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := client(tt.h2)
			for i := range 3 { // and again on the same connection
				path := fmt.Sprintf("/%d", i)
				req, _ := http.NewRequest(tt.method, "https://web.app.localhost"+path, tt.body)
				tt.body = nil
				res, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 || string(body) != want(path) || res.Proto != tt.proto {
					t.Fatalf("got %d %s %q, want 200 %s %q", res.StatusCode, res.Proto, body, tt.proto, want(path))
				}
			}
		})
	}

	t.Run("slow HTTP/1.1 client", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "web.app.localhost", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		io.WriteString(conn, "GET /big HTTP/1.1\r\nHost: web.app.localhost\r\n\r\n")
		time.Sleep(300 * time.Millisecond)
		res, body := readResponse(t, br, "GET")
		if res.StatusCode != 200 || sha256.Sum256([]byte(body)) != sha256.Sum256(big) {
			t.Fatalf("got %d with %d bytes, want 200 with the %d bytes sent", res.StatusCode, len(body), len(big))
		}
		if res, body := rawGet(t, conn, br, "web.app.localhost", "/after"); res.StatusCode != 200 || body != want("/after") {
			t.Fatalf("after the large response: got %d %q, want 200 %q", res.StatusCode, body, want("/after"))
		}
	})
}

// What the loops cannot parse gets net/http's answer, not silence.
func TestFront_BadRequests(t *testing.T) {
	_, _, addr := frontHarness(t, Options{}, &http.Server{}, 1)
	for _, tt := range []struct {
		name, req string
		want      int
	}{
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", http.StatusBadRequest},
		{"no host", "GET / HTTP/1.1\r\n\r\n", http.StatusBadRequest},
		{"bad escape", "GET /%zz HTTP/1.1\r\nHost: web.app.localhost\r\n\r\n", http.StatusBadRequest},
		{"head over the loops' limit", "GET / HTTP/1.1\r\nHost: nosuch.localhost\r\nX-Big: " + strings.Repeat("x", 2*loopMaxHead) + "\r\n\r\n", http.StatusNotFound},
		{"unknown host", "GET / HTTP/1.1\r\nHost: nosuch.localhost\r\n\r\n", http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go io.WriteString(c, tt.req) // a large head may not all be read
			res, _ := readResponse(t, bufio.NewReader(c), "GET")
			if res.StatusCode != tt.want {
				t.Errorf("got %d, want %d", res.StatusCode, tt.want)
			}
		})
	}
}
