package balancer

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// Listener is one port of one balancer of an app, as the engine computes it
// from the manifest (`ports: {listen: target}`) and the service's healthy
// processes.
type Listener struct {
	// Name is the balancer's name in the manifest; errors and logs use it.
	Name string
	// Service names the service behind the balancer, for logs.
	Service string
	// Port is the host port to listen on (the `listen` side), on the
	// balancer's BindAddr.
	Port int
	// Targets are the service's healthy processes at the `target` port, as
	// the loopback host ports they are published on. Connections go to them
	// round robin; none means connections are accepted and closed at once.
	Targets []netip.AddrPort
	// Whitelist, when not empty, limits clients to these networks
	// (`whitelist`); a connection from elsewhere is closed at once, before
	// any byte is read and without dialing a target.
	Whitelist []netip.Prefix
}

// listener is a bound port of an app and the connections it accepted.
type listener struct {
	app  string
	port int
	sock *lsock
	// cfg is what the accept loop and new connections read, without locks.
	// It is never modified, only replaced by Set.
	cfg atomic.Pointer[config]
	// next spreads connections round robin; it survives target swaps so that
	// frequent Sets do not favour the first target.
	next atomic.Uint32

	// Guarded by Balancer.mu.
	conns   map[*conn]struct{}
	retired bool        // no longer accepting
	expired bool        // retired and its drain grace has passed
	timer   *time.Timer // closes conns when the drain grace passes
}

// config is a listener's immutable view of its Listener.
type config struct {
	name, service string
	targets       []*target
	whitelist     []netip.Prefix
}

// allows reports whether a client at addr may connect.
func (c *config) allows(addr netip.Addr) bool {
	if len(c.whitelist) == 0 {
		return true
	}
	// A listener on all interfaces sees IPv4 clients as ::ffff:a.b.c.d.
	ip := addr.Unmap()
	for _, p := range c.whitelist {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix into its IPv4 form, which is
// how allows compares client addresses.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// newConfig builds spec's configuration, taking a reference on each of its
// targets. b.mu is held.
func (b *Balancer) newConfig(spec Listener) *config {
	cfg := &config{
		name:      spec.Name,
		service:   spec.Service,
		whitelist: spec.Whitelist,
		targets:   make([]*target, 0, len(spec.Targets)),
	}
	for _, addr := range spec.Targets {
		cfg.targets = append(cfg.targets, b.acquireTarget(addr))
	}
	return cfg
}

// release drops cfg's references on its targets. b.mu is held.
func (b *Balancer) release(cfg *config) {
	for _, t := range cfg.targets {
		b.releaseTarget(t)
	}
}

// retire stops l accepting and gives its connections the drain grace. b.mu
// is held.
func (b *Balancer) retire(l *listener) {
	if l.retired {
		return
	}
	l.retired = true
	b.unserve(l)
	if len(l.conns) > 0 {
		b.drainListener(l)
	}
}

// drainListener starts the drain grace of a retired l that has connections.
// b.mu is held.
func (b *Balancer) drainListener(l *listener) {
	if _, ok := b.draining[l]; ok {
		return
	}
	b.draining[l] = struct{}{}
	var tm *time.Timer
	tm = b.afterGrace(func() {
		if l.timer != tm {
			return // drained meanwhile
		}
		l.timer = nil
		if n := len(l.conns); n > 0 {
			cfg := l.cfg.Load()
			b.log.Info("drain grace passed: closing connections of a removed balancer port",
				"app", l.app, "balancer", cfg.name, "port", l.port, "connections", n)
		}
		b.killListener(l)
	})
	l.timer = tm
}

// killListener closes every connection of a retired l. b.mu is held.
func (b *Balancer) killListener(l *listener) {
	l.expired = true
	b.stopTimer(&l.timer)
	for c := range l.conns {
		c.kill()
	}
	delete(b.draining, l)
}
