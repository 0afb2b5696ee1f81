package engine

import (
	"context"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/singlehost/convox/api"
	"github.com/singlehost/convox/store"
)

// Routes is the HTTP router as the engine drives it: one app's whole route
// table at a time, and a way to wait for a target's in-flight requests.
type Routes interface {
	SetRoutes(app string, routes []Route)
	// Drain waits until no request is in flight to target, which must
	// already be out of every route.
	Drain(ctx context.Context, target netip.AddrPort) error
}

// Route sends the requests for Hosts to a service's healthy processes.
type Route struct {
	Service   string
	Hosts     []string
	Targets   []netip.AddrPort
	Scheme    string // http, https or grpc, to the processes
	Sticky    bool
	Timeout   time.Duration
	Redirect  bool // HTTP → HTTPS with a 308
	Whitelist []netip.Prefix
}

// healthyProcess is a process that passed its health check and so takes
// traffic: HTTP on its main port (target, zero if none), TCP from
// balancers on its other published ports.
type healthyProcess struct {
	app, service string
	pid          string // set when it leaves, for the log
	target       netip.AddrPort
	ports        map[int]netip.AddrPort
}

// markHealthy routes traffic to p, which passed its health check.
func (e *Engine) markHealthy(ctx context.Context, s serviceSpec, p Process) {
	app := p.Labels[LabelApp]
	e.mu.Lock()
	e.healthy[p.ID] = healthyProcess{app: app, service: s.Name, target: p.Ports[s.Port], ports: p.Ports}
	e.mu.Unlock()
	e.publishRoutes(ctx, app)
}

// unroute takes p out of the routes and waits, at most grace, for the
// requests in flight to it to finish: then it can be stopped without
// failing a request.
func (e *Engine) unroute(ctx context.Context, p Process, grace time.Duration) {
	e.unrouteAll(ctx, []Process{p}, grace)
}

// unrouteAll takes every process of ps out of the routes in one table swap
// per app, then drains them in parallel: a process leaving with others must
// not take new work while they drain, nor wait for their drain to start its
// own.
func (e *Engine) unrouteAll(ctx context.Context, ps []Process, grace time.Duration) {
	var gone []healthyProcess
	apps := map[string]bool{}
	e.mu.Lock()
	for _, p := range ps {
		if h, ok := e.healthy[p.ID]; ok {
			delete(e.healthy, p.ID)
			h.pid = p.Labels[LabelProcess]
			gone = append(gone, h)
			apps[h.app] = true
		}
	}
	e.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	for app := range apps {
		e.publishRoutes(ctx, app)
	}
	ctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, h := range gone {
		wg.Go(func() { e.drain(ctx, h) })
	}
	wg.Wait()
}

// drain waits until h's in-flight requests and connections have ended, or
// ctx is done.
func (e *Engine) drain(ctx context.Context, h healthyProcess) {
	if e.routes != nil && h.target.IsValid() {
		if err := e.routes.Drain(ctx, h.target); err != nil && ctx.Err() == nil {
			e.log.Warn("draining a process", "process", h.pid, "error", err)
		}
	}
	if e.balancers != nil {
		for _, addr := range h.ports {
			if err := e.balancers.Drain(ctx, addr); err != nil && ctx.Err() == nil {
				e.log.Warn("draining a process's connections", "process", h.pid, "error", err)
			}
		}
	}
}

// publishRoutes gives the router app's current table: one route per public
// service of the active release, to its healthy processes.
func (e *Engine) publishRoutes(ctx context.Context, app string) {
	a, err := e.AppGet(ctx, app)
	if err != nil || a.Release == "" {
		if e.routes != nil {
			e.routes.SetRoutes(app, nil)
		}
		return
	}
	pl, err := e.plan(ctx, app, a.Release)
	if err != nil {
		e.log.Warn("routing", "app", app, "error", err)
		return
	}
	if e.balancers != nil {
		// The ports were bound when the release was promoted; only
		// targets change here, which cannot fail for want of a port.
		if err := e.balancers.Set(ctx, app, e.listeners(app, pl)); err != nil {
			e.log.Warn("balancers", "app", app, "error", err)
		}
	}
	if e.routes == nil {
		return
	}
	targets := map[string][]netip.AddrPort{}
	e.mu.Lock()
	for _, h := range e.healthy {
		if h.app == app && h.target.IsValid() {
			targets[h.service] = append(targets[h.service], h.target)
		}
	}
	e.mu.Unlock()
	var routes []Route
	for _, s := range pl.Services {
		if s.Port == 0 || s.Internal {
			continue
		}
		t := targets[s.Name]
		sort.Slice(t, func(i, j int) bool { return t[i].Port() < t[j].Port() })
		routes = append(routes, Route{
			Service:   s.Name,
			Hosts:     e.hostsOf(app, s),
			Targets:   t,
			Scheme:    s.Health.Scheme,
			Sticky:    s.Sticky,
			Timeout:   s.Timeout,
			Redirect:  s.Redirect,
			Whitelist: s.Whitelist,
		})
	}
	e.routes.SetRoutes(app, routes)
}

// hostsOf is what routed service s of app answers at: its default host and
// every domain: of the manifest.
func (e *Engine) hostsOf(app string, s serviceSpec) []string {
	return append([]string{e.serviceHost(app, s.Name)}, s.Domains...)
}

// serviceHost is a service's default public host name.
func (e *Engine) serviceHost(app, service string) string {
	return strings.ToLower(service + "." + app + "." + e.domain)
}

// checkHosts refuses a plan of app that would route one host to two of its
// services, or a host another app's active release routes already: the
// router keeps such a host with the service that had it first, so the
// deploy would seem to work and serve nothing there.
func (e *Engine) checkHosts(tx *store.Tx, app string, pl *plan) error {
	mine, err := e.publicHosts(app, pl)
	if err != nil || len(mine) == 0 {
		return err
	}
	apps, err := tx.Apps()
	if err != nil {
		return err
	}
	for _, a := range apps {
		if a.Name == app || a.Release == "" {
			continue
		}
		rel, err := tx.Release(a.Name, a.Release)
		if err != nil {
			continue // nothing routed for a release that is gone
		}
		pl, err := e.planTx(tx, a.Name, rel)
		if err != nil {
			continue // nor for one that no longer loads
		}
		theirs, _ := e.publicHosts(a.Name, pl)
		for host, other := range theirs {
			if service, taken := mine[host]; taken {
				return api.Errorf(api.ErrConflict, "service %s: host %s is already routed to service %s of app %s; remove it from one of them", service, host, other, a.Name)
			}
		}
	}
	return nil
}

// publicHosts maps the hosts app's routed services answer at under plan pl
// (their default host and every domain:, as the router compares them) to
// the service. A host of two services is an error; the map keeps the last.
func (e *Engine) publicHosts(app string, pl *plan) (map[string]string, error) {
	hosts := map[string]string{}
	var err error
	for _, s := range pl.Services {
		if s.Port == 0 || s.Internal {
			continue
		}
		for _, h := range e.hostsOf(app, s) {
			h = canonicalHost(h)
			if other, dup := hosts[h]; dup && other != s.Name && err == nil {
				err = api.Errorf(api.ErrInvalid, "services %s and %s both answer at host %s; keep it on one of them", other, s.Name, h)
			}
			hosts[h] = s.Name
		}
	}
	return hosts, err
}

// canonicalHost is host as the router compares it: lower case, without a
// trailing dot.
func canonicalHost(host string) string {
	return strings.TrimSuffix(strings.ToLower(host), ".")
}
