// Package router is the rack's HTTP(S) front door: it routes requests by Host
// to the healthy processes of a service, over loopback.
//
// The engine owns every decision and pushes the result here: SetRoutes
// replaces all routes of one app at once, and Drain waits for the requests
// still in flight to a process the engine has taken out of the table, so it
// can stop the process without failing them. The router knows nothing of
// apps beyond host strings and target addresses, and it imports nothing of
// the rack.
//
// Lifecycle, as the rack uses it:
//
//  1. LoadOrCreateCA on the rack home (first start creates the CA).
//  2. New, then serve the Router through a Front (front.go: event loops
//     for ordinary requests, an http.Server for the rest) on a plain-HTTP
//     listener and, with TLSConfig, on an HTTPS listener. Both share the
//     one handler: it tells them apart by r.TLS.
//  3. The engine calls SetRoutes whenever an app's healthy processes change
//     (it passes no route for internal services), and Drain before it stops
//     a process it removed.
//  4. On shutdown, after the servers have stopped, CloseIdleConnections.
//
// The Fronts' loops proxy most HTTP/1.1 requests to plain-HTTP targets
// without the handler. What reaches the handler for such targets is served
// by the direct path (forward.go): each request is written and its response
// read on the handler's goroutine, over a keep-alive connection from the
// target's pool. Upgrades (websockets),
// https and gRPC targets and unusual requests go through
// httputil.ReverseProxy.
//
// The router starts no goroutine of its own, but for each Front's loops
// (one per two Ps, until Shutdown), its relays (one per
// response a client is slow to take, which ends with the response) and its
// TLS handshakes (one per new HTTPS connection, until the handshake ends);
// the timers that renew ACME certificates (Options.ACME), one per host in use, which run for the
// life of the process; a timer per target that closes connections idle for
// 45 to 90 s, armed while the target has some; and, for a request whose
// body is large or of unknown length, one that writes the body while the
// response is read, which ends with the request. The goroutines of
// ReverseProxy's pooled connections to processes end with the connections:
// when a process closes them, after 90 s idle, or at CloseIdleConnections.
// A target's idle connections are closed when it is removed from the
// routes, and at CloseIdleConnections.
package router

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Router. The zero value is usable: no HTTPS, default
// limits, silent.
type Options struct {
	// Log receives proxy failures (a process refusing or resetting
	// connections) and configuration warnings. Nil means silent.
	Log *slog.Logger
	// MaxBodyBytes bounds a request body; a larger one gets 413. Zero means
	// DefaultMaxBodyBytes, negative means no limit.
	MaxBodyBytes int64
	// CA signs the certificates TLSConfig serves. Nil means every TLS
	// handshake fails.
	CA *CA
	// HTTPSPort is the port of the HTTPS listener, used in redirects from
	// HTTP. Zero means 443, which redirects leave out of the URL.
	HTTPSPort int
	// LocalDomains are the rack's own domains, such as its router domain: a
	// host equal to one or under one (<service>.<app>.<domain>) always gets
	// a certificate signed by CA, never one from ACME. So do hosts under
	// "localhost", IP addresses and names of a single label.
	LocalDomains []string
	// ACME, when set, gets the certificates of every other routed host,
	// the `domain:` names of services, from an ACME CA such as Let's
	// Encrypt (see ACMEOptions). Nil means CA signs every certificate.
	ACME *ACMEOptions
}

// DefaultMaxBodyBytes is the request body limit when Options leave it unset.
const DefaultMaxBodyBytes = 100 << 20

// DefaultTimeout is a route's timeout when it leaves it unset: the manifest's
// default `timeout` (spec/convox.md §1.4).
const DefaultTimeout = 60 * time.Second

// StickyCookie is the cookie that pins a client to one process of a sticky
// service; Convox v3 uses the same name.
const StickyCookie = "CONVOXSESSION"

// acmeChallengePrefix is never redirected to HTTPS: an ACME server validates
// http-01 challenges over plain HTTP, before any certificate exists.
const acmeChallengePrefix = "/.well-known/acme-challenge/"

// Router is an http.Handler that proxies each request to a healthy process
// of the service its Host names. Its methods are safe for concurrent use.
type Router struct {
	log       *slog.Logger
	maxBody   int64
	ca        *CA
	httpsPort int
	proxy     *httputil.ReverseProxy
	// localDomains are Options.LocalDomains, canonical, and "localhost".
	localDomains []string
	// acme is nil unless Options.ACME is set.
	acme *acmeCerts
	// stickyKey makes sticky cookies opaque: they name a process by an HMAC
	// of its address, so clients learn nothing about ports and cannot aim at
	// a process of another service. It is random per Router, so a rack
	// restart re-spreads sticky clients once.
	stickyKey []byte

	// table is the route table requests read, without locks. It is never
	// modified, only replaced, so a request sees either the old table or the
	// new one, never a mix.
	table atomic.Pointer[table]

	// mu serialises the writers of table and guards the fields below.
	mu         sync.Mutex
	apps       map[string]*appRoutes
	seq        uint64                     // orders apps by first SetRoutes, to settle host conflicts
	targets    map[netip.AddrPort]*target // every routed or draining target
	transports map[transportKey]*http.Transport

	certs certCache
	// ports caches the decimal form of listener ports (localPort).
	ports [2]atomic.Pointer[portString]
}

// New returns a Router with an empty route table: every host gets 404 until
// SetRoutes.
func New(opts Options) *Router {
	rt := &Router{
		log:        opts.Log,
		maxBody:    opts.MaxBodyBytes,
		ca:         opts.CA,
		httpsPort:  opts.HTTPSPort,
		stickyKey:  randomKey(),
		apps:       map[string]*appRoutes{},
		targets:    map[netip.AddrPort]*target{},
		transports: map[transportKey]*http.Transport{},
	}
	if rt.log == nil {
		rt.log = slog.New(slog.DiscardHandler)
	}
	if rt.maxBody == 0 {
		rt.maxBody = DefaultMaxBodyBytes
	}
	if rt.httpsPort == 0 {
		rt.httpsPort = 443
	}
	// "localhost" is never in public DNS (RFC 6761).
	rt.localDomains = []string{"localhost"}
	for _, d := range opts.LocalDomains {
		if d = canonicalHost(d); d != "" {
			rt.localDomains = append(rt.localDomains, d)
		}
	}
	if opts.ACME != nil {
		rt.acme = rt.newACME(opts.ACME)
	}
	rt.proxy = rt.newProxy()
	rt.table.Store(&table{hosts: map[string]*route{}})
	return rt
}

// ServeHTTP routes r by its Host. Serve the same Router on the HTTP and the
// HTTPS listener: a plain-HTTP request to a route with Redirect is sent to
// HTTPS with 308, except ACME http-01 challenges, and X-Forwarded-Proto
// tells the process which one the client used.
//
// With Options.ACME, the router answers the ACME CA's http-01 validation
// requests for its own certificates on plain HTTP, whatever the route's
// whitelist; other requests under /.well-known/acme-challenge/ go to the
// route as usual.
//
// Answers of the router itself: 404 for a host with no route, 403 for a
// client outside the route's whitelist, 503 when the service has no healthy
// process, 413 for a body over the limit, 502 when no process could be
// reached, 504 when the process did not answer within the route's timeout.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if pd := fromFront(r); pd != nil {
		rt.resume(w, r, pd)
		return
	}
	host := canonicalHost(r.Host)
	if rt.acme != nil && r.TLS == nil && strings.HasPrefix(r.URL.Path, acmeChallengePrefix) &&
		!rt.isLocal(host) && rt.acme.serveChallenge(w, r) {
		return
	}
	p := &pick{host: host}
	for {
		rte := rt.table.Load().hosts[host]
		if rte == nil {
			routerError(w, http.StatusNotFound, "no service is routed at host %q", host)
			return
		}
		if !rte.allows(r.RemoteAddr) {
			routerError(w, http.StatusForbidden, "%s is not allowed by the whitelist of %s", clientIP(r.RemoteAddr), rte.name())
			return
		}
		if r.TLS == nil && rte.redirect && !strings.HasPrefix(r.URL.Path, acmeChallengePrefix) {
			rt.redirect(w, r, host)
			return
		}
		if len(rte.targets) == 0 {
			w.Header().Set("Retry-After", "5")
			routerError(w, http.StatusServiceUnavailable, "%s has no healthy process", rte.name())
			return
		}
		t, fromCookie := rte.choose(r)
		if t.acquire() {
			p.route, p.target, p.fromCookie = rte, t, fromCookie
			break
		}
		// The target left the table between our load and acquire: the
		// table we read is stale, so read the new one.
	}
	defer func() { p.target.release() }()

	if rt.maxBody > 0 && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > rt.maxBody {
			routerError(w, http.StatusRequestEntityTooLarge, "the request body is over the limit of %d bytes", rt.maxBody)
			return
		}
		// Chunked bodies are checked as they stream; the proxy's error
		// handler turns the reader's error into 413.
		r.Body = http.MaxBytesReader(w, r.Body, rt.maxBody)
	}
	if direct(p.route, r) {
		rt.forward(w, r, p)
		return
	}
	rt.proxy.ServeHTTP(w, withPick(r, p))
}

// redirect sends a plain-HTTP request to the same URL over HTTPS, with 308
// so that the method and body are kept (tls.redirect, spec/convox.md §1.4).
func (rt *Router) redirect(w http.ResponseWriter, r *http.Request, host string) {
	hostport := host
	if strings.Contains(host, ":") { // IPv6 literal
		hostport = "[" + host + "]"
	}
	if rt.httpsPort != 443 {
		hostport += ":" + strconv.Itoa(rt.httpsPort)
	}
	http.Redirect(w, r, "https://"+hostport+r.URL.RequestURI(), http.StatusPermanentRedirect)
}

// routerError answers for the router itself, with a one-line text page that
// says who answered, so a user can tell the router's 503 from their app's.
func routerError(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Cache-Control", "no-store")
	msg := fmt.Sprintf("%d %s: %s (convox router)", code, http.StatusText(code), fmt.Sprintf(format, args...))
	http.Error(w, msg, code)
}

// canonicalHost is the host part of a Host header, lower-cased, without port,
// brackets or trailing dot: the key of the route table.
func canonicalHost(hostport string) string {
	host := hostport
	switch {
	case strings.HasPrefix(host, "["): // [v6] or [v6]:port
		if end := strings.IndexByte(host, ']'); end > 0 {
			host = host[1:end]
		}
	case strings.Count(host, ":") == 1: // name:port; more colons is a bare v6
		host, _, _ = strings.Cut(host, ":")
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// clientIP is the address part of a RemoteAddr, for messages.
func clientIP(remoteAddr string) string {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return ap.Addr().Unmap().String()
	}
	return remoteAddr
}
