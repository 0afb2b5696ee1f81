package balancer

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// target is one process behind the balancer. A target outlives the
// configurations that name it: its connections must be counted until they
// end, or Drain could return while one of them still runs.
//
// Its fields are guarded by Balancer.mu. A connection picks its target from
// the listener's configuration and joins it under that lock, and Set
// replaces configurations under the same lock: so a connection never joins a
// removed target, and Drain sees every connection that joined. Once removed
// and drained, a target is forgotten; routing its address again makes a new
// one.
type target struct {
	addr  netip.AddrPort
	host  string // addr.String(), for dialing
	refs  int    // listener configurations that name it
	conns map[*conn]struct{}
	timer *time.Timer // closes conns when the drain grace passes
}

// acquireTarget returns the target at addr with one more reference. b.mu is
// held.
func (b *Balancer) acquireTarget(addr netip.AddrPort) *target {
	t := b.targets[addr]
	if t == nil {
		t = &target{addr: addr, host: addr.String(), conns: map[*conn]struct{}{}}
		b.targets[addr] = t
	}
	if t.refs == 0 {
		// Routed again while draining: its connections may stay.
		b.stopTimer(&t.timer)
	}
	t.refs++
	return t
}

// releaseTarget drops a reference on t. The last one starts t's drain: no
// new connection goes there, and the open ones get the drain grace. b.mu is
// held.
func (b *Balancer) releaseTarget(t *target) {
	t.refs--
	if t.refs > 0 {
		return
	}
	if len(t.conns) == 0 {
		b.forget(t)
		return
	}
	var tm *time.Timer
	tm = b.afterGrace(func() {
		if t.timer != tm {
			return // drained or routed again meanwhile
		}
		t.timer = nil
		b.log.Info("drain grace passed: closing connections to a removed target",
			"target", t.addr.String(), "connections", len(t.conns))
		for c := range t.conns {
			c.kill()
		}
	})
	t.timer = tm
}

// forget drops a removed target without connections. b.mu is held.
func (b *Balancer) forget(t *target) {
	b.stopTimer(&t.timer)
	if b.targets[t.addr] == t {
		delete(b.targets, t.addr)
	}
}

// drainPoll is how often Drain and Shutdown look at connection counts. They
// run a few times per deploy, so polling costs nothing and spares every
// connection a notification.
const drainPoll = 10 * time.Millisecond

// Drain waits until no connection is open to addr, so that the process there
// can be stopped without cutting any. Call it after Set has taken addr out of
// every listener: from then on no new connection goes there.
//
// It returns nil at once when nothing is open to addr, and an error when addr
// is still (or again) a target. Connections to a removed target are closed
// by the balancer when DrainGrace passes, so Drain returns by then; when ctx
// ends first (bound it by the process's termination grace), it returns an
// error wrapping ctx's and leaves the connections open: stopping the process
// will end them.
func (b *Balancer) Drain(ctx context.Context, addr netip.AddrPort) error {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		b.mu.Lock()
		t := b.targets[addr]
		var refs, n int
		if t != nil {
			refs, n = t.refs, len(t.conns)
		}
		b.mu.Unlock()
		switch {
		case refs > 0:
			return fmt.Errorf("balancer: draining %s: it is still a target", addr)
		case n == 0:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("balancer: draining %s: %d connections still open: %w", addr, n, context.Cause(ctx))
		case <-tick.C:
		}
	}
}
