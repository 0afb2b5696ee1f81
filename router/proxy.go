package router

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// pick is the routing decision of one request, shared by ServeHTTP and the
// proxy's hooks through the request context. The hooks run on the request's
// goroutine, one after the other, so pick needs no lock.
type pick struct {
	host       string
	route      *route
	target     *target // acquired; released when ServeHTTP returns
	fromCookie bool    // the client's sticky cookie chose target
	retried    bool
}

type pickKey struct{}

func withPick(r *http.Request, p *pick) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), pickKey{}, p))
}

func pickOf(r *http.Request) *pick {
	p, _ := r.Context().Value(pickKey{}).(*pick)
	return p
}

func (rt *Router) newProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:   rt.rewrite,
		Transport: retrier{rt},
		// No FlushInterval: ReverseProxy already flushes at once for
		// event streams and bodies of unknown length, and flushing every
		// write costs a timer and a write per response (a quarter of the
		// router's CPU in bench/router).
		BufferPool:     copyBuffers,
		ErrorHandler:   rt.proxyError,
		ModifyResponse: rt.modifyResponse,
		// What ReverseProxy logs itself is a client or process hanging up
		// mid-body: routine, so kept out of the way.
		ErrorLog: slog.NewLogLogger(rt.log.Handler(), slog.LevelDebug),
	}
}

// rewrite aims the outgoing request at the picked target. The Host header is
// kept, so the process sees the name the client used; the X-Forwarded
// headers a client sent are dropped by ReverseProxy and replaced by ours:
// the router is the edge, nobody in front of it is trusted.
func (rt *Router) rewrite(pr *httputil.ProxyRequest) {
	p := pickOf(pr.In)
	pr.Out.URL.Scheme = p.route.scheme
	pr.Out.URL.Host = p.target.host
	if pr.Out.Body != nil {
		pr.Out.Body = keepOpen{pr.Out.Body}
	}
	pr.SetXForwarded()
	pr.Out.Header.Del("X-Forwarded-Port")
	if port := rt.localPort(pr.In); port != "" {
		pr.Out.Header.Set("X-Forwarded-Port", port)
	}
}

// keepOpen hides Close from the transport, which closes the body of a
// request whose dial failed: the retry sends that body. ReverseProxy closes
// the body it gave us when the request ends.
type keepOpen struct{ io.ReadCloser }

func (keepOpen) Close() error { return nil }

// retrier is the proxy's transport: the route's transport, plus one retry on
// another target when connecting failed.
//
// That retry is what keeps a deploy from failing requests: a process can
// exit between the table swap and a dial of a request that picked it on the
// old table, or crash before the engine notices. A failed dial sent nothing,
// not even a byte of the body, so the retry is safe whatever the method.
type retrier struct{ rt *Router }

func (x retrier) RoundTrip(req *http.Request) (*http.Response, error) {
	p := pickOf(req)
	res, err := p.route.transport.RoundTrip(req)
	if err == nil || p.retried || !dialFailed(err) || !x.rt.repick(p) {
		return res, err
	}
	p.retried = true
	x.rt.log.Debug("retrying on another process", "app", p.route.app, "service", p.route.service,
		"target", p.target.host, "error", err)
	again := req.Clone(req.Context())
	again.URL.Scheme = p.route.scheme
	again.URL.Host = p.target.host
	return p.route.transport.RoundTrip(again)
}

func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// repick moves p to another target of its host in the current table, if
// there is one, and reports whether it did.
func (rt *Router) repick(p *pick) bool {
	rte := rt.table.Load().hosts[p.host]
	if rte == nil || len(rte.targets) == 0 {
		return false
	}
	n := uint64(len(rte.targets))
	start := rte.next.Add(1) - 1
	for i := range n {
		t := rte.targets[(start+i)%n]
		if t.addr == p.target.addr || !t.acquire() {
			continue
		}
		p.target.release()
		p.route, p.target, p.fromCookie = rte, t, false
		return true
	}
	return false
}

// modifyResponse pins a sticky client to the target that answered, unless
// its cookie already did. The cookie is not Secure: a route without Redirect
// serves both schemes, and a client moving between them keeps its process.
func (rt *Router) modifyResponse(res *http.Response) error {
	p := pickOf(res.Request)
	if p == nil || !p.route.sticky || p.fromCookie {
		return nil
	}
	res.Header.Add("Set-Cookie", rt.stickyCookie(p))
	return nil
}

// stickyCookie is the Set-Cookie value that pins a client to p's target.
func (rt *Router) stickyCookie(p *pick) string {
	c := &http.Cookie{
		Name:     StickyCookie,
		Value:    rt.cookieValue(p.route, p.target),
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	return c.String()
}

// proxyError answers when the proxy got no response to pass on.
func (rt *Router) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	rt.fail(w, r, pickOf(r), err)
}

// fail answers r, picked as p, when no response of a process came to pass
// on.
func (rt *Router) fail(w http.ResponseWriter, r *http.Request, p *pick, err error) {
	log := rt.log.With("app", p.route.app, "service", p.route.service, "target", p.target.host, "error", err)
	var tooBig *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &tooBig):
		routerError(w, http.StatusRequestEntityTooLarge, "the request body is over the limit of %d bytes", tooBig.Limit)
	case r.Context().Err() != nil:
		// The client went away: nobody will read an answer.
		log.Debug("client gone before the response")
		w.WriteHeader(http.StatusBadGateway)
	case errors.As(err, &netErr) && netErr.Timeout():
		log.Info("process timed out", "timeout", p.route.timeout)
		routerError(w, http.StatusGatewayTimeout, "%s did not answer within %s", p.route.name(), p.route.timeout)
	default:
		log.Warn("proxying failed")
		routerError(w, http.StatusBadGateway, "%s could not be reached", p.route.name())
	}
}

// transportKey sorts routes into the few transports they need: the response
// header timeout is per transport, and so are TLS and HTTP/2.
type transportKey struct {
	timeout time.Duration
	tls     bool // https to the process
	h2c     bool // HTTP/2 without TLS, for gRPC
}

// maxIdlePerTarget keeps enough connections to each process for bursts of
// concurrent requests to reuse them: dialling even loopback costs more than
// proxying a small request.
const maxIdlePerTarget = 256

// transportFor returns the shared transport for k. rt.mu is held.
func (rt *Router) transportFor(k transportKey) *http.Transport {
	if t := rt.transports[k]; t != nil {
		return t
	}
	dialer := &net.Dialer{Timeout: k.timeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		// Targets are on loopback: an HTTP_PROXY in the rack's environment
		// must not apply to them.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConnsPerHost:   maxIdlePerTarget,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: k.timeout,
		TLSHandshakeTimeout:   k.timeout,
		ExpectContinueTimeout: time.Second,
		// A proxy passes Accept-Encoding and bodies through as they are.
		DisableCompression: true,
	}
	if k.tls {
		// A service's `port: https:…` is the app's own, usually
		// self-signed, certificate: Convox does not verify it either.
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	if k.h2c {
		t.Protocols = new(http.Protocols)
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	rt.transports[k] = t
	return t
}

// CloseIdleConnections closes the router's idle connections to processes.
// Call it on shutdown, after the servers have stopped; the router remains
// usable.
func (rt *Router) CloseIdleConnections() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, t := range rt.transports {
		t.CloseIdleConnections()
	}
	for _, t := range rt.targets {
		t.closeIdle()
	}
}

// copyBuffers recycles the buffers that copy bodies, across requests and
// routers.
var copyBuffers = &bufferPool{}

// bufferPool is a pool of 32 KiB buffers. Get and Put serve ReverseProxy.
type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) get() *[]byte {
	if buf, ok := b.pool.Get().(*[]byte); ok {
		return buf
	}
	buf := make([]byte, 32<<10)
	return &buf
}

func (b *bufferPool) put(buf *[]byte) { b.pool.Put(buf) }

func (b *bufferPool) Get() []byte { return *b.get() }

func (b *bufferPool) Put(buf []byte) { b.put(&buf) }
