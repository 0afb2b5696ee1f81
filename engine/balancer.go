package engine

import (
	"context"
	"net/netip"
	"sort"

	"github.com/singlehost/convox/api"
)

// Balancers are the rack's TCP listeners, as the engine drives them: one
// app's whole set at a time. Set binds new ports before it releases any, so
// a port that cannot be bound fails the call and changes nothing.
type Balancers interface {
	Set(ctx context.Context, app string, listeners []Listener) error
	// Drain waits until no connection is open to target, which must no
	// longer be a target of any listener.
	Drain(ctx context.Context, target netip.AddrPort) error
}

// Listener forwards TCP connections on a host port to a service's healthy
// processes.
type Listener struct {
	Name      string // the balancer's name
	Service   string
	Port      int
	Targets   []netip.AddrPort
	Whitelist []netip.Prefix
}

// balancerSpec is one balancer of a plan.
type balancerSpec struct {
	Name      string
	Service   string
	Ports     map[int]int // listen → target container port
	Whitelist []netip.Prefix
}

// listeners computes app's listeners for plan pl from the processes that
// are healthy now.
func (e *Engine) listeners(app string, pl *plan) []Listener {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Listener
	for _, b := range pl.Balancers {
		listens := make([]int, 0, len(b.Ports))
		for l := range b.Ports {
			listens = append(listens, l)
		}
		sort.Ints(listens)
		for _, l := range listens {
			var targets []netip.AddrPort
			for _, h := range e.healthy {
				if h.app == app && h.service == b.Service {
					if addr, ok := h.ports[b.Ports[l]]; ok {
						targets = append(targets, addr)
					}
				}
			}
			sort.Slice(targets, func(i, j int) bool { return targets[i].Port() < targets[j].Port() })
			out = append(out, Listener{Name: b.Name, Service: b.Service, Port: l, Targets: targets, Whitelist: b.Whitelist})
		}
	}
	return out
}

// BalancerList returns the balancers of app's active release.
func (e *Engine) BalancerList(ctx context.Context, app string) ([]api.Balancer, error) {
	a, err := e.AppGet(ctx, app)
	if err != nil {
		return nil, err
	}
	out := []api.Balancer{}
	if a.Release == "" {
		return out, nil
	}
	pl, err := e.plan(ctx, app, a.Release)
	if err != nil {
		return nil, err
	}
	for _, b := range pl.Balancers {
		ab := api.Balancer{Name: b.Name, Service: b.Service, Endpoint: e.domain, Ports: []api.BalancerPort{}}
		listens := make([]int, 0, len(b.Ports))
		for l := range b.Ports {
			listens = append(listens, l)
		}
		sort.Ints(listens)
		for _, l := range listens {
			ab.Ports = append(ab.Ports, api.BalancerPort{Protocol: "tcp", Source: l, Target: b.Ports[l]})
		}
		out = append(out, ab)
	}
	return out, nil
}
