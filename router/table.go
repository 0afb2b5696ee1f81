package router

import (
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
)

// Route is the public route of one service, as the engine computes it from
// the manifest and the service's healthy processes. Internal services
// (`internal: true`) have no Route.
type Route struct {
	// Service names the service in the router's pages and logs.
	Service string
	// Hosts are the names the service answers at: <service>.<app>.<rack
	// domain> and every `domain:` of the service. Case, a port and a
	// trailing dot are ignored. A host already routed by an app that was
	// routed earlier stays with that app; the conflict is logged.
	Hosts []string
	// Targets are the service's healthy processes, as loopback host ports.
	// A process enters only once healthy; none means the router answers
	// 503 with a page naming the service.
	Targets []netip.AddrPort
	// Scheme is how the router speaks to Targets: "http" (the default),
	// "https" (TLS whose certificate is not verified: self-signed is fine),
	// or "grpc" (HTTP/2 without TLS), as the manifest's `port` says.
	Scheme string
	// Sticky pins each client to one process with the StickyCookie
	// (`sticky`); otherwise requests go round robin.
	Sticky bool
	// Timeout bounds connecting to a process and waiting for its response
	// headers (`timeout`); zero means DefaultTimeout. A response that has
	// started, such as a stream or a websocket, is not cut off.
	Timeout time.Duration
	// Redirect sends plain-HTTP requests to HTTPS with 308
	// (`tls.redirect`, which the manifest defaults to true).
	Redirect bool
	// Whitelist, when not empty, limits clients to these networks
	// (`whitelist`); others get 403.
	Whitelist []netip.Prefix
}

// table is an immutable snapshot of every app's routes, keyed by host.
type table struct {
	hosts map[string]*route
}

// appRoutes are the routes of one app, built from its last SetRoutes.
type appRoutes struct {
	seq    uint64 // when the app was first routed: earlier apps keep contested hosts
	routes []*route
}

// route is a Route ready for requests; it is never modified once in a table.
type route struct {
	app, service string
	hosts        []string
	targets      []*target
	scheme       string // URL scheme towards targets
	direct       bool   // plain HTTP/1.1 to targets: the direct path (forward.go) may serve
	transport    *http.Transport
	timeout      time.Duration
	sticky       bool
	redirect     bool
	whitelist    []netip.Prefix
	// byCookie finds a sticky client's target by its cookie value.
	byCookie map[string]*target
	// next spreads requests round robin. It is carried over from the
	// previous table so that frequent swaps do not favour the first target.
	next *atomic.Uint64
}

// SetRoutes replaces every route of app with routes, atomically: a request
// sees either all of the old routes or all of the new ones. An empty routes
// removes the app. Targets that no route names any more stop receiving
// requests at once; requests already sent to them continue, and Drain waits
// for them.
func (rt *Router) SetRoutes(app string, routes []Route) {
	rt.mu.Lock()
	defer rt.mu.Unlock()

	old := rt.apps[app]
	if len(routes) == 0 {
		delete(rt.apps, app)
	} else {
		ar := &appRoutes{}
		if old != nil {
			ar.seq = old.seq
		} else {
			rt.seq++
			ar.seq = rt.seq
		}
		for _, r := range routes {
			ar.routes = append(ar.routes, rt.build(app, r, old))
		}
		rt.apps[app] = ar
	}
	rt.table.Store(rt.buildTable(app))
	// Only now, with the new table in place, may targets be marked removed:
	// see target.acquire for why the order matters.
	rt.retire()
}

// build turns r into a route of app, reusing the round-robin counter of the
// same service in old. rt.mu is held.
func (rt *Router) build(app string, r Route, old *appRoutes) *route {
	rte := &route{
		app:       app,
		service:   r.Service,
		sticky:    r.Sticky,
		redirect:  r.Redirect,
		timeout:   cmp.Or(r.Timeout, DefaultTimeout),
		whitelist: slices.Clone(r.Whitelist),
	}
	for _, h := range r.Hosts {
		if h = canonicalHost(h); h != "" && !slices.Contains(rte.hosts, h) {
			rte.hosts = append(rte.hosts, h)
		}
	}
	for _, addr := range r.Targets {
		if !addr.IsValid() || slices.ContainsFunc(rte.targets, func(t *target) bool { return t.addr == addr }) {
			continue
		}
		rte.targets = append(rte.targets, rt.target(addr))
	}

	kind := transportKey{timeout: rte.timeout}
	switch r.Scheme {
	case "", "http":
		rte.scheme, rte.direct = "http", true
	case "https":
		rte.scheme, kind.tls = "https", true
	case "grpc":
		rte.scheme, kind.h2c = "http", true
	default:
		rt.log.Warn("unknown scheme for a route; using http", "app", app, "service", r.Service, "scheme", r.Scheme)
		rte.scheme, rte.direct = "http", true
	}
	rte.transport = rt.transportFor(kind)

	if rte.sticky {
		rte.byCookie = make(map[string]*target, len(rte.targets))
		for _, t := range rte.targets {
			rte.byCookie[rt.cookieValue(rte, t)] = t
		}
	}

	if old != nil {
		for _, o := range old.routes {
			if o.service == rte.service {
				rte.next = o.next
				break
			}
		}
	}
	if rte.next == nil {
		rte.next = new(atomic.Uint64)
	}
	return rte
}

// target returns the registered target for addr, registering it if needed,
// and marks it routed. rt.mu is held.
func (rt *Router) target(addr netip.AddrPort) *target {
	t := rt.targets[addr]
	if t == nil {
		t = &target{addr: addr, host: addr.String()}
		rt.targets[addr] = t
	}
	t.removed.Store(false)
	return t
}

// buildTable indexes every app's routes by host. Apps are taken in the order
// they were first routed, so a host claimed twice stays with the app that
// had it first, whatever order later updates come in. Conflicts are logged
// only when they involve changed, the app being updated, so that one
// conflict is not repeated at every update of other apps. rt.mu is held.
func (rt *Router) buildTable(changed string) *table {
	apps := make([]string, 0, len(rt.apps))
	for app := range rt.apps {
		apps = append(apps, app)
	}
	slices.SortFunc(apps, func(a, b string) int { return cmp.Compare(rt.apps[a].seq, rt.apps[b].seq) })

	tb := &table{hosts: map[string]*route{}}
	for _, app := range apps {
		for _, rte := range rt.apps[app].routes {
			for _, h := range rte.hosts {
				if owner, taken := tb.hosts[h]; taken {
					if owner.app == changed || app == changed {
						rt.log.Warn("host is routed twice; the first route keeps it", "host", h,
							"kept", owner.name(), "ignored", rte.name())
					}
					continue
				}
				tb.hosts[h] = rte
			}
		}
	}
	return tb
}

// retire marks removed every registered target that no route names, closes
// their idle connections, and forgets those with nothing in flight. rt.mu is
// held.
func (rt *Router) retire() {
	routed := map[*target]bool{}
	for _, ar := range rt.apps {
		for _, rte := range ar.routes {
			for _, t := range rte.targets {
				routed[t] = true
			}
		}
	}
	for addr, t := range rt.targets {
		if routed[t] {
			continue
		}
		t.removed.Store(true)
		t.closeIdle()
		if t.inflight.Load() == 0 {
			delete(rt.targets, addr)
		}
	}
}

// name is how pages and logs refer to the route's service.
func (rte *route) name() string {
	return "service " + rte.service + " of app " + rte.app
}

// lookup returns the route of a Host header's value, if any.
func (tb *table) lookup(host []byte) *route {
	for _, c := range host {
		if 'A' <= c && c <= 'Z' || c == ':' || c == '[' {
			return tb.hosts[canonicalHost(string(host))]
		}
	}
	if len(host) > 0 && host[len(host)-1] == '.' {
		return tb.hosts[canonicalHost(string(host))]
	}
	return tb.hosts[string(host)] // canonical already: no copy
}

// allows reports whether the client at remoteAddr may use the route.
func (rte *route) allows(remoteAddr string) bool {
	if len(rte.whitelist) == 0 {
		return true
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	return rte.allowsAddr(ap.Addr().Unmap())
}

// allowsAddr reports whether the client at ip, unmapped, may use the route.
func (rte *route) allowsAddr(ip netip.Addr) bool {
	if len(rte.whitelist) == 0 {
		return true
	}
	for _, p := range rte.whitelist {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// choose picks the target for r: the one its sticky cookie names if it is
// still routed, else the next one round robin. fromCookie reports the
// former, so that the response does not set the cookie again.
func (rte *route) choose(r *http.Request) (t *target, fromCookie bool) {
	if rte.sticky {
		if c, err := r.Cookie(StickyCookie); err == nil {
			if t := rte.byCookie[c.Value]; t != nil {
				return t, true
			}
		}
	}
	return rte.targets[(rte.next.Add(1)-1)%uint64(len(rte.targets))], false
}

// cookieValue names t in rte's sticky cookie without revealing its address.
func (rt *Router) cookieValue(rte *route, t *target) string {
	mac := hmac.New(sha256.New, rt.stickyKey)
	mac.Write([]byte(rte.app + "\x00" + rte.service + "\x00" + t.host))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:12])
}

func randomKey() []byte {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand documentation)
	return key
}
