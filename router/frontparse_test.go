package router

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// statusName names a headStatus in test messages.
func statusName(st headStatus) string {
	switch st {
	case headIncomplete:
		return "headIncomplete"
	case headOK:
		return "headOK"
	case headHandOff:
		return "headHandOff"
	}
	return "headStatus(" + strconv.Itoa(int(st)) + ")"
}

// padHead returns a request head of exactly n bytes, through its empty line.
func padHead(n int) string {
	const prefix = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: "
	return prefix + strings.Repeat("a", n-len(prefix)-len("\r\n\r\n")) + "\r\n\r\n"
}

func TestParseRequest(t *testing.T) {
	const get = "GET / HTTP/1.1\r\nHost: web.app.localhost\r\n"
	tests := []struct {
		name string
		head string // through the empty line, when complete
		body string // what follows the head
		st   headStatus
		// For headOK:
		method, path, host string
		bodyLen            int
		close              bool
	}{
		{name: "simple GET", head: "GET /index.html?q=1&r=%41 HTTP/1.1\r\nHost: web.app.localhost\r\nAccept: */*\r\n\r\n",
			st: headOK, method: "GET", path: "/index.html?q=1&r=%41", host: "web.app.localhost"},
		{name: "custom method", head: "PURGE /cache HTTP/1.1\r\nHost: x\r\n\r\n",
			st: headOK, method: "PURGE", path: "/cache", host: "x"},
		{name: "pipelined", head: get + "\r\n", body: get + "\r\n",
			st: headOK, method: "GET", path: "/", host: "web.app.localhost"},
		{name: "host with OWS", head: "GET / HTTP/1.1\r\nHost:\t web.app.localhost \t\r\n\r\n",
			st: headOK, method: "GET", path: "/", host: "web.app.localhost"},
		{name: "host with port", head: "GET / HTTP/1.1\r\nHost: web.app.localhost:8080\r\n\r\n",
			st: headOK, method: "GET", path: "/", host: "web.app.localhost:8080"},
		{name: "host IPv6", head: "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
			st: headOK, method: "GET", path: "/", host: "[::1]:80"},
		{name: "value with tab and obs-text", head: get + "X-A: a\tb \xe9\r\n\r\n",
			st: headOK, method: "GET", path: "/", host: "web.app.localhost"},
		{name: "mixed-case names", head: "POST /f HTTP/1.1\r\nHOST: x\r\ncontent-LENGTH: 3\r\nconnection: CLOSE\r\n\r\n", body: "abc",
			st: headOK, method: "POST", path: "/f", host: "x", bodyLen: 3, close: true},

		// Not all in yet.
		{name: "empty", st: headIncomplete},
		{name: "request line only", body: "GET / HTTP/1.1\r\n", st: headIncomplete},
		{name: "no empty line", body: get, st: headIncomplete},
		{name: "half the empty line", body: get + "\r", st: headIncomplete},
		{name: "at the limit without end", body: padHead(loopMaxHead + 4)[:loopMaxHead], st: headIncomplete},

		// Size limits.
		{name: "over the limit without end", body: "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", loopMaxHead), st: headHandOff},
		{name: "head at the limit", head: padHead(loopMaxHead), st: headOK, method: "GET", path: "/", host: "x"},
		{name: "head over the limit", body: padHead(loopMaxHead + 1), st: headHandOff},

		// Request lines.
		{name: "HTTP/1.0", body: "GET / HTTP/1.0\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "HTTP/2.0", body: "GET / HTTP/2.0\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "lower-case version", body: "GET / http/1.1\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "trailing space", body: "GET / HTTP/1.1 \r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "two spaces", body: "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "no method", body: " / HTTP/1.1\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "method not a token", body: "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "no version", body: "GET /\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "leading empty line", body: "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "CONNECT", body: "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", st: headHandOff},
		{name: "CONNECT with a path", body: "CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "absolute form", body: "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "asterisk form", body: "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "semicolon in query", body: "GET /?a=1;b=2 HTTP/1.1\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "bad escape in query", body: "GET /?a=%zz HTTP/1.1\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "short escape in query", body: "GET /?a=%4 HTTP/1.1\r\nHost: x\r\n\r\n", st: headHandOff},
		// net/http answers 400: url.ParseRequestURI rejects the escape.
		{name: "bad escape in path", body: "GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "short escape in path", body: "GET /a%4 HTTP/1.1\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "semicolon in path", head: "GET /a;b HTTP/1.1\r\nHost: x\r\n\r\n", st: headOK, method: "GET", path: "/a;b", host: "x"},
		{name: "DEL in target", body: "GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", st: headHandOff},
		{name: "non-ASCII target", body: "GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", st: headHandOff},

		// Host.
		{name: "two Host", body: get + "Host: web.app.localhost\r\n\r\n", st: headHandOff},
		{name: "two Host, cases differ", body: get + "host: other\r\n\r\n", st: headHandOff},
		{name: "no Host", body: "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", st: headHandOff},
		{name: "empty Host", body: "GET / HTTP/1.1\r\nHost: \r\n\r\n", st: headHandOff},
		{name: "Host with a space", body: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", st: headHandOff},
		{name: "Host with a slash", body: "GET / HTTP/1.1\r\nHost: x/y\r\n\r\n", st: headHandOff},
		{name: "Host with userinfo", body: "GET / HTTP/1.1\r\nHost: u@x\r\n\r\n", st: headHandOff},

		// Content-Length.
		{name: "Content-Length 5", head: "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", body: "hello",
			st: headOK, method: "POST", path: "/f", host: "x", bodyLen: 5},
		{name: "Content-Length body not in yet", head: "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", body: "he",
			st: headOK, method: "POST", path: "/f", host: "x", bodyLen: 5},
		{name: "Content-Length with OWS and zeros", head: "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length:  005 \r\n\r\n",
			st: headOK, method: "POST", path: "/f", host: "x", bodyLen: 5},
		{name: "Content-Length 0", head: "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
			st: headOK, method: "POST", path: "/f", host: "x"},
		{name: "Content-Length at the limit", head: "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(loopMaxBody) + "\r\n\r\n",
			st: headOK, method: "POST", path: "/f", host: "x", bodyLen: loopMaxBody},
		{name: "Content-Length over the limit", body: "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(loopMaxBody+1) + "\r\n\r\n", st: headHandOff},
		{name: "Content-Length overflows", body: "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", st: headHandOff},
		{name: "Content-Length +5", body: "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", st: headHandOff},
		{name: "Content-Length -1", body: "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", st: headHandOff},
		// net/http: 400 "bad Content-Length" (strconv.ParseUint).
		{name: "Content-Length -0", body: "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: -0\r\n\r\n", st: headHandOff},
		{name: "Content-Length empty", body: "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", st: headHandOff},
		{name: "Content-Length hex", body: "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n", st: headHandOff},
		{name: "Content-Length list", body: "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", st: headHandOff},
		{name: "two Content-Length", body: "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", st: headHandOff},

		// Fields the loop leaves to net/http.
		{name: "chunked", body: get + "Transfer-Encoding: chunked\r\n\r\n", st: headHandOff},
		{name: "chunked, lower case", body: get + "transfer-encoding: chunked\r\n\r\n", st: headHandOff},
		{name: "Expect", body: get + "Expect: 100-continue\r\n\r\n", st: headHandOff},
		{name: "Upgrade", body: get + "Upgrade: websocket\r\n\r\n", st: headHandOff},
		{name: "Te", body: get + "Te: trailers\r\n\r\n", st: headHandOff},
		{name: "Trailer", body: get + "Trailer: X-Sum\r\n\r\n", st: headHandOff},

		// Connection.
		{name: "Connection: close", head: get + "Connection: close\r\n\r\n",
			st: headOK, method: "GET", path: "/", host: "web.app.localhost", close: true},
		{name: "Connection: keep-alive", head: get + "Connection: keep-alive\r\n\r\n",
			st: headOK, method: "GET", path: "/", host: "web.app.localhost"},
		{name: "Connection: Keep-Alive, Close", head: get + "Connection: Keep-Alive, Close\r\n\r\n",
			st: headOK, method: "GET", path: "/", host: "web.app.localhost", close: true},
		{name: "two Connection", head: get + "Connection: keep-alive\r\nConnection: close\r\n\r\n",
			st: headOK, method: "GET", path: "/", host: "web.app.localhost", close: true},
		{name: "Connection: Upgrade", body: get + "Connection: Upgrade\r\n\r\n", st: headHandOff},
		{name: "Connection: close, X-Foo", body: get + "Connection: close, X-Foo\r\n\r\n", st: headHandOff},

		// Malformed fields.
		{name: "space before colon", body: get + "Accept : */*\r\n\r\n", st: headHandOff},
		{name: "Host with space before colon", body: "GET / HTTP/1.1\r\nHost : x\r\n\r\n", st: headHandOff},
		{name: "empty name", body: get + ": x\r\n\r\n", st: headHandOff},
		{name: "no colon", body: get + "Accept\r\n\r\n", st: headHandOff},
		{name: "name not a token", body: get + "X(y): 1\r\n\r\n", st: headHandOff},
		{name: "bare LF in the head", body: "GET / HTTP/1.1\nHost: x\r\n\r\n", st: headHandOff},
		{name: "bare LF after a field", body: get + "Accept: */*\n\r\n\r\n", st: headHandOff},
		// net/http takes bare LFs as line ends: these heads are complete,
		// and a client that sends one waits for an answer.
		{name: "bare LF throughout", body: "GET / HTTP/1.1\nHost: x\n\n", st: headHandOff},
		{name: "bare LF empty line", body: get + "\n", st: headHandOff},
		{name: "obs-fold", body: get + "X-A: 1\r\n  2\r\n\r\n", st: headHandOff},
		{name: "obs-fold with a tab", body: get + "X-A: 1\r\n\t2\r\n\r\n", st: headHandOff},
		{name: "first field folded", body: "GET / HTTP/1.1\r\n Host: x\r\n\r\n", st: headHandOff},
		{name: "NUL in value", body: get + "X-A: a\x00b\r\n\r\n", st: headHandOff},
		{name: "control char in value", body: get + "X-A: a\x01b\r\n\r\n", st: headHandOff},
		{name: "DEL in value", body: get + "X-A: a\x7fb\r\n\r\n", st: headHandOff},
		{name: "bare CR in value", body: get + "X-A: a\rb\r\n\r\n", st: headHandOff},
		{name: "bare CR line", body: get + "\rX-A: 1\r\n\r\n", st: headHandOff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, st := parseRequest([]byte(tt.head + tt.body))
			if st != tt.st {
				t.Fatalf("got %s, want %s", statusName(st), statusName(tt.st))
			}
			if st != headOK {
				return
			}
			if string(req.method) != tt.method || string(req.path) != tt.path || string(req.host) != tt.host {
				t.Errorf("got %q %q host %q, want %q %q host %q", req.method, req.path, req.host, tt.method, tt.path, tt.host)
			}
			if req.headLen != len(tt.head) || req.bodyLen != tt.bodyLen || req.close != tt.close {
				t.Errorf("got headLen %d, bodyLen %d, close %v; want %d, %d, %v",
					req.headLen, req.bodyLen, req.close, len(tt.head), tt.bodyLen, tt.close)
			}
			checkRequestAsNetHTTP(t, []byte(tt.head+tt.body), req)
		})
	}
}

// readRequestBytes reads a request from b with net/http, and reports how
// many bytes of b it took.
func readRequestBytes(b []byte) (*http.Request, int, error) {
	rd := bytes.NewReader(b)
	br := bufio.NewReader(rd)
	r, err := http.ReadRequest(br)
	return r, len(b) - rd.Len() - br.Buffered(), err
}

// checkRequestAsNetHTTP checks that net/http reads b, which parseRequest
// made req of, as the same request, and the request writeRequest makes of
// it as the direct path would send it (forwardedHeader).
func checkRequestAsNetHTTP(t *testing.T, b []byte, req loopRequest) {
	t.Helper()
	const ip, port = "192.0.2.7", "8080"
	r, n, err := readRequestBytes(b)
	if err != nil {
		t.Fatalf("parseRequest: headOK; http.ReadRequest: %v", err)
	}
	if r.Method != string(req.method) || r.RequestURI != string(req.path) || r.Host != string(req.host) {
		t.Errorf("http.ReadRequest got %q %q host %q, parseRequest %q %q host %q",
			r.Method, r.RequestURI, r.Host, req.method, req.path, req.host)
	}
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.ContentLength != int64(req.bodyLen) || r.Close != req.close {
		t.Errorf("http.ReadRequest got HTTP/%d.%d, ContentLength %d, Close %v; parseRequest bodyLen %d, close %v",
			r.ProtoMajor, r.ProtoMinor, r.ContentLength, r.Close, req.bodyLen, req.close)
	}
	if n != req.headLen {
		t.Errorf("http.ReadRequest read a head of %d bytes, parseRequest %d", n, req.headLen)
	}

	out := writeRequest(nil, b, &req, ip, "http", port)
	w, n, err := readRequestBytes(out)
	if err != nil {
		t.Fatalf("http.ReadRequest of what writeRequest wrote: %v\n%q", err, out)
	}
	if n != len(out) {
		t.Errorf("http.ReadRequest read %d bytes of the %d writeRequest wrote", n, len(out))
	}
	if w.Method != r.Method || w.RequestURI != r.RequestURI || w.Host != r.Host || w.ContentLength != r.ContentLength {
		t.Errorf("writeRequest sent %q %q host %q, ContentLength %d; want %q %q host %q, ContentLength %d",
			w.Method, w.RequestURI, w.Host, w.ContentLength, r.Method, r.RequestURI, r.Host, r.ContentLength)
	}
	if got, want := headerString(w.Header), headerString(forwardedHeader(r, ip, port)); got != want {
		t.Errorf("writeRequest sent the header\n%s\nthe direct path would send\n%s", got, want)
	}
}

// forwardedHeader is the header the direct path sends for r (writeHead),
// as net/http reads it back.
func forwardedHeader(r *http.Request, ip, port string) http.Header {
	h := http.Header{}
	listed := r.Header["Connection"]
	for k, vv := range r.Header {
		if dropRequestHeader(k) || listed != nil && hasToken(listed, k) {
			continue
		}
		h[k] = append(h[k], vv...)
	}
	if te := r.Header["Te"]; te != nil && hasToken(te, "trailers") {
		h["Te"] = []string{"trailers"}
	}
	h["X-Forwarded-For"] = []string{ip}
	h["X-Forwarded-Host"] = []string{r.Host}
	h["X-Forwarded-Proto"] = []string{"http"}
	if port != "" {
		h["X-Forwarded-Port"] = []string{port}
	}
	switch {
	case r.ContentLength > 0:
		h["Content-Length"] = []string{strconv.FormatInt(r.ContentLength, 10)}
	case r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH":
		h["Content-Length"] = []string{"0"}
	}
	return h
}

// headerString formats h one field a line, sorted by name.
func headerString(h http.Header) string {
	var lines []string
	for k, vv := range h {
		lines = append(lines, fmt.Sprintf("%s: %q", k, vv))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func TestWriteRequest(t *testing.T) {
	tests := []struct {
		name     string
		in       string // request head, then body
		ip, port string
		want     string // the head written
	}{
		{
			name: "dropped and kept fields",
			in: "POST /submit?a=1 HTTP/1.1\r\n" +
				"Host: web.app.localhost:8080\r\n" +
				"Connection: keep-alive\r\n" +
				"Accept: text/html\r\n" +
				"Keep-Alive: timeout=5\r\n" +
				"Proxy-Connection: keep-alive\r\n" +
				"Cookie: a=1; b=2\r\n" +
				"Proxy-Authorization: Basic eDp5\r\n" +
				"proxy-authenticate: Basic\r\n" +
				"Forwarded: for=203.0.113.9\r\n" +
				"X-Forwarded-For: 203.0.113.9\r\n" +
				"x-forwarded-host: evil.example\r\n" +
				"X-Forwarded-Proto: https\r\n" +
				"X-FORWARDED-PORT: 443\r\n" +
				"Content-Length: 5\r\n" +
				"x-CUSTOM-header:  spaced  value \r\n" +
				"Accept: application/json\r\n" +
				"\r\n" +
				"hello",
			ip: "192.0.2.7", port: "8080",
			want: "POST /submit?a=1 HTTP/1.1\r\n" +
				"Host: web.app.localhost:8080\r\n" +
				"Accept: text/html\r\n" +
				"Cookie: a=1; b=2\r\n" +
				"x-CUSTOM-header:  spaced  value \r\n" +
				"Accept: application/json\r\n" +
				"X-Forwarded-For: 192.0.2.7\r\n" +
				"X-Forwarded-Host: web.app.localhost:8080\r\n" +
				"X-Forwarded-Proto: http\r\n" +
				"X-Forwarded-Port: 8080\r\n" +
				"Content-Length: 5\r\n" +
				"\r\n",
		},
		{
			name: "GET, no port",
			in:   "GET /a/b?c=d HTTP/1.1\r\nhost: x\r\nConnection: close\r\nAccept: */*\r\n\r\n",
			ip:   "2001:db8::1",
			want: "GET /a/b?c=d HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n" +
				"X-Forwarded-For: 2001:db8::1\r\nX-Forwarded-Host: x\r\nX-Forwarded-Proto: http\r\n\r\n",
		},
		{
			name: "GET with a body",
			in:   "GET / HTTP/1.1\r\nContent-Length: 3\r\nHost: x\r\n\r\nabc",
			ip:   "192.0.2.7", port: "80",
			want: "GET / HTTP/1.1\r\nHost: x\r\n" +
				"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Host: x\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 80\r\n" +
				"Content-Length: 3\r\n\r\n",
		},
		{
			name: "POST without a body",
			in:   "POST / HTTP/1.1\r\nHost: x\r\n\r\n",
			ip:   "192.0.2.7", port: "80",
			want: "POST / HTTP/1.1\r\nHost: x\r\n" +
				"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Host: x\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 80\r\n" +
				"Content-Length: 0\r\n\r\n",
		},
		{
			name: "PUT with Content-Length 0",
			in:   "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
			ip:   "192.0.2.7", port: "80",
			want: "PUT / HTTP/1.1\r\nHost: x\r\n" +
				"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Host: x\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 80\r\n" +
				"Content-Length: 0\r\n\r\n",
		},
		{
			name: "PATCH without a body",
			in:   "PATCH / HTTP/1.1\r\nHost: x\r\n\r\n",
			ip:   "192.0.2.7",
			want: "PATCH / HTTP/1.1\r\nHost: x\r\n" +
				"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Host: x\r\nX-Forwarded-Proto: http\r\n" +
				"Content-Length: 0\r\n\r\n",
		},
		{
			name: "DELETE without a body",
			in:   "DELETE /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
			ip:   "192.0.2.7",
			want: "DELETE /x HTTP/1.1\r\nHost: x\r\n" +
				"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Host: x\r\nX-Forwarded-Proto: http\r\n\r\n",
		},
		{
			// RFC 9110 §7.6.1 and the direct path (writeHead) drop the
			// fields the Connection options name: "close" names Close.
			name: "field named by Connection: close",
			in:   "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nClose: 1\r\nX-A: 1\r\n\r\n",
			ip:   "192.0.2.7",
			want: "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n" +
				"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Host: x\r\nX-Forwarded-Proto: http\r\n\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			req, st := parseRequest(in)
			if st != headOK {
				t.Fatalf("parseRequest: got %s, want headOK", statusName(st))
			}
			prefix := []byte("kept")
			out := writeRequest(prefix, in, &req, tt.ip, "http", tt.port)
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("writeRequest did not append to out: got %q", out)
			}
			if got := string(out[len(prefix):]); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}

			// net/http reads it as the direct path would have sent it.
			body := in[req.headLen:]
			w, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(append(out[len(prefix):], body...))))
			if err != nil {
				t.Fatalf("http.ReadRequest: %v", err)
			}
			r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in)))
			if err != nil {
				t.Fatalf("http.ReadRequest of the request: %v", err)
			}
			if w.Method != r.Method || w.RequestURI != r.RequestURI || w.Host != r.Host || w.ContentLength != r.ContentLength {
				t.Errorf("got %q %q host %q, ContentLength %d; want %q %q host %q, ContentLength %d",
					w.Method, w.RequestURI, w.Host, w.ContentLength, r.Method, r.RequestURI, r.Host, r.ContentLength)
			}
			if got, want := headerString(w.Header), headerString(forwardedHeader(r, tt.ip, tt.port)); got != want {
				t.Errorf("got the header\n%s\nthe direct path would send\n%s", got, want)
			}
			if got, err := io.ReadAll(w.Body); err != nil || !bytes.Equal(got, body) {
				t.Errorf("got the body %q (%v), want %q", got, err, body)
			}
		})
	}
}

func TestParseResponse(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\n"
	tests := []struct {
		name        string
		head        string // through the empty line, when complete
		body        string // what follows the head
		method      string // of the request, GET if ""
		closeClient bool
		st          headStatus
		// For headOK:
		bodyLen int64
		close   bool
		out     string
	}{
		{name: "200 with Content-Length", head: ok + "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n", body: "ok",
			st: headOK, bodyLen: 2, out: ok + "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n"},
		{name: "body not in yet", head: ok + "Content-Length: 10\r\n\r\n", body: "abc",
			st: headOK, bodyLen: 10, out: ok + "Content-Length: 10\r\n\r\n"},
		{name: "pipelined", head: ok + "Content-Length: 2\r\n\r\n", body: "ok" + ok + "Content-Length: 2\r\n\r\nok",
			st: headOK, bodyLen: 2, out: ok + "Content-Length: 2\r\n\r\n"},
		{name: "Content-Length 0", head: "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
			st: headOK, out: "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"},
		{name: "large Content-Length", head: ok + "Content-Length: 1099511627776\r\n\r\n",
			st: headOK, bodyLen: 1 << 40, out: ok + "Content-Length: 1099511627776\r\n\r\n"},
		{name: "closeClient", head: ok + "Content-Length: 2\r\n\r\n", body: "ok", closeClient: true,
			st: headOK, bodyLen: 2, out: ok + "Content-Length: 2\r\nConnection: close\r\n\r\n"},
		{name: "no reason phrase", head: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
			st: headOK, out: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"},
		{name: "empty reason phrase", head: "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
			st: headOK, out: "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n"},
		{name: "mixed-case names", head: ok + "content-LENGTH: 2\r\nCONNECTION: Close\r\n\r\n", body: "ok",
			st: headOK, bodyLen: 2, close: true, out: ok + "content-LENGTH: 2\r\n\r\n"},
		{name: "204 with Content-Length", head: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
			st: headOK, out: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"},
		{name: "204", head: "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
			st: headOK, out: "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"},
		{name: "304 with Content-Length", head: "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nEtag: \"x\"\r\n\r\n",
			st: headOK, out: "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nEtag: \"x\"\r\n\r\n"},
		{name: "HEAD with Content-Length", head: ok + "Content-Length: 100\r\n\r\n", method: "HEAD",
			st: headOK, out: ok + "Content-Length: 100\r\n\r\n"},
		{name: "HEAD without Content-Length", head: ok + "Content-Type: text/html\r\n\r\n", method: "HEAD",
			st: headOK, out: ok + "Content-Type: text/html\r\n\r\n"},
		{
			name: "hop-by-hop dropped",
			head: ok +
				"Connection: keep-alive\r\n" +
				"Set-Cookie: a=1\r\n" +
				"Keep-Alive: timeout=5\r\n" +
				"Te: trailers\r\n" +
				"proxy-connection: keep-alive\r\n" +
				"Proxy-Authenticate: Basic\r\n" +
				"PROXY-AUTHORIZATION: Basic eDp5\r\n" +
				"Content-Length: 2\r\n" +
				"x-Custom:  v \r\n" +
				"Set-Cookie: b=2\r\n" +
				"\r\n",
			body: "ok",
			st:   headOK, bodyLen: 2,
			out: ok + "Set-Cookie: a=1\r\nContent-Length: 2\r\nx-Custom:  v \r\nSet-Cookie: b=2\r\n\r\n",
		},
		{name: "Connection: close", head: ok + "Connection: close\r\nContent-Length: 2\r\n\r\n", body: "ok",
			st: headOK, bodyLen: 2, close: true, out: ok + "Content-Length: 2\r\n\r\n"},
		{name: "Connection: close and closeClient", head: ok + "Connection: close\r\nContent-Length: 2\r\n\r\n", body: "ok",
			closeClient: true, st: headOK, bodyLen: 2, close: true, out: ok + "Content-Length: 2\r\nConnection: close\r\n\r\n"},

		// Not all in yet.
		{name: "empty", st: headIncomplete},
		{name: "status line only", body: ok, st: headIncomplete},
		{name: "no empty line", body: ok + "Content-Length: 2\r\n", st: headIncomplete},
		{name: "at the limit without end", body: ok + "X: " + strings.Repeat("a", loopMaxHead-len(ok)-3), st: headIncomplete},

		// Size limit.
		{name: "over the limit without end", body: ok + "X: " + strings.Repeat("a", loopMaxHead), st: headHandOff},
		{name: "head over the limit", body: ok + "Content-Length: 0\r\nX: " + strings.Repeat("a", loopMaxHead) + "\r\n\r\n", st: headHandOff},

		// Framing the loop leaves to net/http.
		{name: "no Content-Length", body: ok + "Content-Type: text/plain\r\n\r\nuntil close", st: headHandOff},
		{name: "chunked", body: ok + "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", st: headHandOff},
		{name: "chunked with Content-Length", body: ok + "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", st: headHandOff},
		{name: "Trailer", body: ok + "Content-Length: 2\r\nTrailer: X-Sum\r\n\r\n", st: headHandOff},
		{name: "Upgrade", body: ok + "Content-Length: 0\r\nUpgrade: websocket\r\n\r\n", st: headHandOff},
		{name: "two Content-Length", body: ok + "Content-Length: 2\r\nContent-Length: 2\r\n\r\nok", st: headHandOff},
		{name: "two Content-Length on 204", body: "HTTP/1.1 204 No Content\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", st: headHandOff},
		{name: "Content-Length -1", body: ok + "Content-Length: -1\r\n\r\n", st: headHandOff},
		{name: "Content-Length +2", body: ok + "Content-Length: +2\r\n\r\n", st: headHandOff},
		// net/http: "bad Content-Length" (strconv.ParseUint).
		{name: "Content-Length -0", body: ok + "Content-Length: -0\r\n\r\n", st: headHandOff},
		{name: "Content-Length not a number", body: ok + "Content-Length: two\r\n\r\n", st: headHandOff},
		{name: "Connection: keep-alive, foo", body: ok + "Connection: keep-alive, foo\r\nContent-Length: 0\r\n\r\n", st: headHandOff},

		// Status lines.
		{name: "100", body: "HTTP/1.1 100 Continue\r\n\r\n", st: headHandOff},
		{name: "101", body: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", st: headHandOff},
		{name: "103", body: "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n", st: headHandOff},
		{name: "HTTP/1.0", body: "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", st: headHandOff},
		{name: "2x0", body: "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", st: headHandOff},
		{name: "two digits", body: "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n", st: headHandOff},
		{name: "four digits", body: "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", st: headHandOff},
		{name: "099", body: "HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n", st: headHandOff},
		{name: "two spaces", body: "HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n", st: headHandOff},
		{name: "lower-case version", body: "http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", st: headHandOff},

		// Malformed fields.
		{name: "space before colon", body: ok + "Content-Length : 0\r\n\r\n", st: headHandOff},
		{name: "no colon", body: ok + "Content-Length: 0\r\nX\r\n\r\n", st: headHandOff},
		{name: "bare LF", body: "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", st: headHandOff},
		{name: "obs-fold", body: ok + "Content-Length: 0\r\nX-A: 1\r\n 2\r\n\r\n", st: headHandOff},
		{name: "control char in value", body: ok + "Content-Length: 0\r\nX-A: a\x01b\r\n\r\n", st: headHandOff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := orDefault(tt.method, "GET")
			b := []byte(tt.head + tt.body)
			prefix := []byte("kept")
			out, res, st := parseResponse(prefix, b, method == "HEAD", tt.closeClient)
			if st != tt.st {
				t.Fatalf("got %s, want %s", statusName(st), statusName(tt.st))
			}
			if st != headOK {
				return
			}
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("parseResponse did not append to out: got %q", out)
			}
			if res.headLen != len(tt.head) || res.bodyLen != tt.bodyLen || res.close != tt.close {
				t.Errorf("got headLen %d, bodyLen %d, close %v; want %d, %d, %v",
					res.headLen, res.bodyLen, res.close, len(tt.head), tt.bodyLen, tt.close)
			}
			if got := string(out[len(prefix):]); got != tt.out {
				t.Errorf("got the head\n%q\nwant\n%q", got, tt.out)
			}
			checkResponseAsNetHTTP(t, b, method, out[len(prefix):], res)
		})
	}
}

func orDefault(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// readResponseBytes reads a response to method from b with net/http, and
// reports how many bytes of b its head took.
func readResponseBytes(b []byte, method string) (*http.Response, int, error) {
	rd := bytes.NewReader(b)
	br := bufio.NewReader(rd)
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	return res, len(b) - rd.Len() - br.Buffered(), err
}

// checkResponseAsNetHTTP checks that net/http reads the response b to a
// request of method as parseResponse read it (res), and out, the head
// parseResponse wrote, as b's head without its hop-by-hop fields.
func checkResponseAsNetHTTP(t *testing.T, b []byte, method string, out []byte, res loopResponse) {
	t.Helper()
	r, n, err := readResponseBytes(b, method)
	if err != nil {
		t.Fatalf("parseResponse: headOK; http.ReadResponse: %v", err)
	}
	if n != res.headLen {
		t.Errorf("http.ReadResponse read a head of %d bytes, parseResponse %d", n, res.headLen)
	}
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.StatusCode < 200 || r.Close != res.close {
		t.Errorf("http.ReadResponse got HTTP/%d.%d %d, Close %v; parseResponse close %v",
			r.ProtoMajor, r.ProtoMinor, r.StatusCode, r.Close, res.close)
	}
	avail := int64(len(b) - res.headLen)
	got, err := io.Copy(io.Discard, r.Body)
	switch {
	case res.bodyLen <= avail && (got != res.bodyLen || err != nil):
		t.Errorf("net/http read a body of %d bytes (%v), parseResponse bodyLen %d", got, err, res.bodyLen)
	case res.bodyLen > avail && (got != avail || err == nil):
		t.Errorf("net/http read %d of %d bytes (%v), parseResponse bodyLen %d", got, avail, err, res.bodyLen)
	}

	w, n, err := readResponseBytes(out, method)
	if err != nil {
		t.Fatalf("http.ReadResponse of the head parseResponse wrote: %v\n%q", err, out)
	}
	if n != len(out) {
		t.Errorf("http.ReadResponse read %d bytes of the %d parseResponse wrote", n, len(out))
	}
	if w.StatusCode != r.StatusCode || w.Status != r.Status {
		t.Errorf("the client gets status %q, want %q", w.Status, r.Status)
	}
	want := http.Header{}
	listed := r.Header["Connection"]
	for k, vv := range r.Header {
		if !hopByHop(k) && (listed == nil || !hasToken(listed, k)) {
			want[k] = vv
		}
	}
	delete(w.Header, "Connection") // closeClient's
	if got, want := headerString(w.Header), headerString(want); got != want {
		t.Errorf("the client gets the header\n%s\nthe direct path would pass on\n%s", got, want)
	}
}

func TestConnectionTokens(t *testing.T) {
	tests := []struct {
		v         string
		close, ok bool
	}{
		{"", false, true},
		{"close", true, true},
		{"Close", true, true},
		{"CLOSE", true, true},
		{"keep-alive", false, true},
		{"Keep-Alive", false, true},
		{"keep-alive, close", true, true},
		{" close ,\tkeep-alive\t", true, true},
		{"close,", true, true},
		{",", false, true},
		{"close,,keep-alive", true, true},
		{"upgrade", false, false},
		{"Upgrade, close", false, false},
		{"close, X-Foo", false, false},
		{"keep-alive, foo", false, false},
		{"closed", false, false},
		{"close keep-alive", false, false},
		{"te", false, false},
	}
	for _, tt := range tests {
		close, ok := connectionTokens([]byte(tt.v))
		if close != tt.close || ok != tt.ok {
			t.Errorf("connectionTokens(%q): got %v, %v; want %v, %v", tt.v, close, ok, tt.close, tt.ok)
		}
	}
}

func TestRequestField(t *testing.T) {
	tests := []struct {
		name string
		want field
	}{
		{"Host", fieldHost},
		{"HOST", fieldHost},
		{"hOsT", fieldHost},
		{"Content-Length", fieldLength},
		{"content-length", fieldLength},
		{"Connection", fieldConnection},
		{"connection", fieldConnection},
		{"Keep-Alive", fieldHopByHop},
		{"Proxy-Connection", fieldHopByHop},
		{"Proxy-Authorization", fieldHopByHop},
		{"Proxy-Authenticate", fieldHopByHop},
		{"Forwarded", fieldHopByHop},
		{"X-Forwarded-For", fieldHopByHop},
		{"X-Forwarded-Host", fieldHopByHop},
		{"X-Forwarded-Proto", fieldHopByHop},
		{"x-forwarded-port", fieldHopByHop},
		{"Transfer-Encoding", fieldRefused},
		{"Te", fieldRefused},
		{"TE", fieldRefused},
		{"Trailer", fieldRefused},
		{"Expect", fieldRefused},
		{"Upgrade", fieldRefused},
		{"Accept", fieldOther},
		{"Cookie", fieldOther},
		{"X-Custom", fieldOther},
		{"Hosts", fieldOther},
		{"Hos", fieldOther},
		{"Tf", fieldOther},
		{"Content-Type", fieldOther},
		{"X-Forwarded-Server", fieldOther},
		{"Authorization", fieldOther},
		{"Close", fieldOther},
	}
	for _, tt := range tests {
		got := requestField([]byte(tt.name))
		if got != tt.want {
			t.Errorf("requestField(%q): got %d, want %d", tt.name, got, tt.want)
		}
		// The loop passes on what the direct path passes on.
		if drop := dropRequestHeader(http.CanonicalHeaderKey(tt.name)); drop != (got != fieldOther) {
			t.Errorf("requestField(%q) is %d, but dropRequestHeader says %v", tt.name, got, drop)
		}
	}
}

func TestResponseField(t *testing.T) {
	tests := []struct {
		name string
		want field
	}{
		{"Content-Length", fieldLength},
		{"CONTENT-LENGTH", fieldLength},
		{"Connection", fieldConnection},
		{"Keep-Alive", fieldHopByHop},
		{"Te", fieldHopByHop},
		{"Proxy-Connection", fieldHopByHop},
		{"Proxy-Authenticate", fieldHopByHop},
		{"Proxy-Authorization", fieldHopByHop},
		{"Transfer-Encoding", fieldRefused},
		{"Trailer", fieldRefused},
		{"Upgrade", fieldRefused},
		{"Host", fieldOther},
		{"Expect", fieldOther},
		{"Forwarded", fieldOther},
		{"X-Forwarded-For", fieldOther},
		{"Set-Cookie", fieldOther},
		{"Content-Type", fieldOther},
		{"Trailers", fieldOther},
	}
	for _, tt := range tests {
		got := responseField([]byte(tt.name))
		if got != tt.want {
			t.Errorf("responseField(%q): got %d, want %d", tt.name, got, tt.want)
		}
		// The loop passes on what the direct path passes on.
		if drop := hopByHop(http.CanonicalHeaderKey(tt.name)); drop != (got != fieldOther && got != fieldLength) {
			t.Errorf("responseField(%q) is %d, but hopByHop says %v", tt.name, got, drop)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: web.app.localhost\r\n\r\n",
		"GET /a/b?c=d&e=%41 HTTP/1.1\r\nHost: x:8080\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
		"POST /f HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nConnection: close\r\nCookie: a=1\r\n\r\nhello",
		"PUT /f HTTP/1.1\r\nHost: [::1]:80\r\nX-Forwarded-For: 1.2.3.4\r\nKeep-Alive: 5\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: y\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\nHost: x\n\n",
		"GET /a%2Fb;c?x=%41 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nClose: 1\r\n\r\n",
		"DELETE /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nPragma: no-cache\r\n\r\n0123456789",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, st := parseRequest(b)
		if st != headOK {
			return
		}
		checkRequestAsNetHTTP(t, b, req)
	})
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nKeep-Alive: 5\r\n\r\n",
		"HTTP/1.1 200\r\ncontent-length: 0\r\nSet-Cookie: a=1\r\nTe: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s), false, false)
		f.Add([]byte(s), true, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, head, closeClient bool) {
		out, res, st := parseResponse(nil, b, head, closeClient)
		if st != headOK {
			return
		}
		method := "GET"
		if head {
			method = "HEAD"
		}
		checkResponseAsNetHTTP(t, b, method, out, res)
	})
}
