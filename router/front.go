package router

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Front serves a Router on one of its listeners, plain HTTP or HTTPS. On
// Linux, event loops (front_linux.go) take the listener's connections and
// proxy the ordinary requests themselves: HTTP/1.1, a body of known small
// length or none, a routed host whose service is reached over plain HTTP,
// an answer with a Content-Length. That is most of a web app's traffic, and
// the loops serve it for about the CPU nginx spends, some 60% of what
// net/http's goroutine per connection costs (BENCHMARKS.md, Router). Over
// HTTPS, a goroutine does each handshake; connections that chose HTTP/1.1
// come back to the loops, which read and write them through their tls.Conn
// (front_tls_linux.go), and HTTP/2 ones stay with net/http.
//
// Everything else is handed to the http.Server, with the bytes already read,
// and the connection stays there for the rest of its life: requests the
// loops do not parse (HTTP/1.0, chunked bodies, Expect, upgrades such as
// websockets, headers they do not vouch for), the router's own answers (404,
// 403, 503, redirects to HTTPS, ACME challenges), sticky routes, https and
// gRPC targets. An answer the loops do not relay (chunked, until close, 1xx,
// a head too large) is handed over with the request it answers, already sent:
// the handler reads it from the process's connection as the direct path
// would have (Router.resume). A client too slow to take a response is left
// to a goroutine of its own, which finishes the response and hands the
// connection over too. So the loops never block and never queue much.
//
// Elsewhere than Linux, Front is the http.Server alone.
type Front struct {
	// Loops is how many event loops Serve runs on Linux; zero means one per
	// two Ps. Each has its own pools of connections to processes. Set it
	// before Serve.
	Loops int

	rt  *Router
	ln  net.Listener
	srv *http.Server
	// tls is srv.TLSConfig when the Front serves HTTPS, else nil.
	tls *tls.Config
	// port is the listener's port, for X-Forwarded-Port.
	port string
	// handoff is the listener srv serves: the connections the loops give
	// up.
	handoff *handoffListener
	// relays counts the goroutines finishing responses for slow clients.
	relays sync.WaitGroup
	loops  frontLoops // front_linux.go, front_other.go

	// mu orders Serve's start of the loops and Shutdown's stop of them.
	mu     sync.Mutex
	closed bool
}

// NewFront returns a Front that serves rt on ln through srv, whose Handler
// must be rt: over HTTPS when srv.TLSConfig is set (rt.TLSConfig), else
// over plain HTTP. It sets srv.ConnContext, keeping any it had.
func NewFront(rt *Router, ln net.Listener, srv *http.Server) *Front {
	f := &Front{rt: rt, ln: ln, srv: srv, handoff: newHandoffListener(ln.Addr())}
	if srv.TLSConfig != nil {
		// As ServeTLS would: offer HTTP/2 (which Serve then sets up for the
		// connections that chose it) and HTTP/1.1.
		cfg := srv.TLSConfig.Clone()
		if !slices.Contains(cfg.NextProtos, "h2") {
			cfg.NextProtos = append([]string{"h2"}, cfg.NextProtos...)
		}
		if !slices.Contains(cfg.NextProtos, "http/1.1") {
			cfg.NextProtos = append(cfg.NextProtos, "http/1.1")
		}
		srv.TLSConfig, f.tls = cfg, cfg
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		f.port = strconv.Itoa(ta.Port)
	}
	next := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if next != nil {
			ctx = next(ctx, c)
		}
		hc, ok := c.(*handoffConn)
		if !ok {
			return ctx
		}
		h := &handedOver{pending: hc.pending}
		if tc, ok := hc.Conn.(*tls.Conn); ok {
			// net/http sets r.TLS only for a *tls.Conn of its own.
			st := tc.ConnectionState()
			h.tls = &st
		}
		return context.WithValue(ctx, handedOverKey{}, h)
	}
	return f
}

// Serve serves until Shutdown, and returns http.ErrServerClosed then. If the
// loops cannot start, it serves ln with srv alone.
func (f *Front) Serve() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return http.ErrServerClosed
	}
	err := f.loops.start(f)
	f.mu.Unlock()
	if err != nil {
		if !errors.Is(err, errNoLoops) {
			f.rt.log.Warn("the router's event loops did not start; serving with net/http alone", "error", err)
		}
		if f.tls != nil {
			return f.srv.ServeTLS(f.ln, "", "")
		}
		return f.srv.Serve(f.ln)
	}
	return f.srv.Serve(f.handoff)
}

// Shutdown stops accepting connections, closes idle ones, and waits for the
// responses in flight, the loops' and then srv's, as long as ctx lasts.
// When ctx ends first, the loops close what they still hold.
func (f *Front) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	err := f.loops.stop(ctx)
	done := make(chan struct{})
	go func() { f.relays.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return errors.Join(err, f.srv.Shutdown(ctx))
}

// errNoLoops is the start error of frontLoops where there are none.
var errNoLoops = errors.New("no event loops on this system")

// pending is an exchange a loop handed over after sending the request: the
// process's connection, the bytes of its answer read so far, and the target
// it counts against.
type pending struct {
	route    *route
	target   *target
	nc       net.Conn
	read     []byte
	deadline time.Time // for the response head
	taken    atomic.Bool
}

// handedOver is what a connection a loop handed over brings along, in the
// context of its requests.
type handedOver struct {
	pending *pending             // the exchange in flight, if any
	tls     *tls.ConnectionState // over HTTPS
}

type handedOverKey struct{}

// fromFront completes r as net/http would have, had its connection come
// straight from the listener (r.TLS), and returns the exchange handed over
// with the connection if r is the request it answers; once.
func fromFront(r *http.Request) *pending {
	h, _ := r.Context().Value(handedOverKey{}).(*handedOver)
	if h == nil {
		return nil
	}
	if r.TLS == nil {
		r.TLS = h.tls
	}
	if pd := h.pending; pd != nil && pd.taken.CompareAndSwap(false, true) {
		return pd
	}
	return nil
}

// abandon ends an exchange nobody took: net/http closed the connection
// before a handler ran, say on a request it found malformed.
func (pd *pending) abandon() {
	if pd.taken.CompareAndSwap(false, true) {
		pd.nc.Close()
		pd.target.release()
	}
}

// resume answers r, whose request a loop has sent already, from the
// process's connection: the direct path from its reading of the response
// on.
func (rt *Router) resume(w http.ResponseWriter, r *http.Request, pd *pending) {
	p := &pick{route: pd.route, target: pd.target}
	defer func() { p.target.release() }()
	c := newConn(pd.nc)
	c.reused = true
	if len(pd.read) > 0 {
		c.br.Reset(io.MultiReader(bytes.NewReader(pd.read), c.w))
	}
	x := &exchange{c: c, ctx: r.Context(), received: len(pd.read) > 0}
	x.watch()
	c.SetReadDeadline(pd.deadline)
	if err := rt.readHead(w, r, x, true, pd.deadline); err != nil {
		x.unwatch()
		c.Close()
		rt.fail(w, r, p, err)
		return
	}
	rt.respond(w, p, x)
}

// handoffListener is what the http.Server behind a Front accepts from: the
// connections the loops give up.
type handoffListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn, 256), closed: make(chan struct{})}
}

// give queues c for Accept without blocking the caller, a loop.
func (l *handoffListener) give(c net.Conn) {
	select {
	case l.conns <- c:
		return
	default:
	}
	go func() {
		select {
		case l.conns <- c:
		case <-l.closed:
			c.Close()
		}
	}()
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// handoffConn is a client connection a loop gave up, with the bytes it had
// read and not answered.
type handoffConn struct {
	net.Conn
	unread  []byte
	pending *pending
}

func (c *handoffConn) Read(p []byte) (int, error) {
	if len(c.unread) > 0 {
		n := copy(p, c.unread)
		c.unread = c.unread[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *handoffConn) Close() error {
	if c.pending != nil {
		c.pending.abandon()
	}
	return c.Conn.Close()
}
