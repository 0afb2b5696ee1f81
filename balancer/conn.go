package balancer

import "sync/atomic"

// conn is one forwarded connection: what the balancer's bookkeeping needs
// of it, and the platform's way of moving its bytes (wire: event loops on
// Linux, goroutines elsewhere).
type conn struct {
	l *listener
	// killed is set, with Balancer.mu held, when the balancer ends c before
	// its time (a drain grace passed, Close); what moves c's bytes may read
	// it without the lock.
	killed atomic.Bool

	// Guarded by Balancer.mu.
	t *target

	wire
}

// track registers c with its listener, unless the balancer is closing or
// c's listener has been removed for longer than the drain grace. b.mu is
// held.
func (b *Balancer) track(c *conn) bool {
	if b.closed || c.l.expired {
		return false
	}
	c.l.conns[c] = struct{}{}
	b.conns++
	if c.l.retired {
		// Accepted just before Set removed the port: it drains with the rest.
		b.drainListener(c.l)
	}
	return true
}

// untrack forgets c, which has ended, and takes it off its target. b.mu is
// held.
func (b *Balancer) untrack(c *conn) {
	l := c.l
	delete(l.conns, c)
	b.conns--
	if l.retired && len(l.conns) == 0 {
		b.stopTimer(&l.timer)
		delete(b.draining, l)
	}
	b.leave(c)
}

// pick makes the try-th target from start in the listener's current
// configuration c's target and returns it, or nil once every target has
// been tried or when c was killed. Picking under the lock that Set holds to
// replace configurations means the target cannot be removed between the
// pick and the join, so Drain always sees the connection. b.mu is held.
func (b *Balancer) pick(c *conn, start, try uint32) (t *target, cfg *config, killed bool) {
	cfg = c.l.cfg.Load()
	if c.killed.Load() {
		return nil, cfg, true
	}
	n := uint32(len(cfg.targets))
	if try >= n {
		return nil, cfg, false
	}
	t = cfg.targets[(start+try)%n]
	c.t = t
	t.conns[c] = struct{}{}
	return t, cfg, false
}

// leave takes c off its target, forgetting a removed target it was the last
// connection of. b.mu is held.
func (b *Balancer) leave(c *conn) {
	t := c.t
	if t == nil {
		return
	}
	c.t = nil
	delete(t.conns, c)
	if t.refs == 0 && len(t.conns) == 0 {
		b.forget(t)
	}
}

// logNoTarget says why a connection reached no target: none was routed, or
// every one tried refused it (last is the last refusal).
func (b *Balancer) logNoTarget(l *listener, cfg *config, tries uint32, last error) {
	if tries == 0 {
		b.log.Debug("no target for a connection: the service has no healthy process",
			"app", l.app, "balancer", cfg.name, "service", cfg.service, "port", l.port)
		return
	}
	b.log.Warn("no target accepted a connection", "app", l.app, "balancer", cfg.name,
		"service", cfg.service, "port", l.port, "tries", tries, "err", last)
}
