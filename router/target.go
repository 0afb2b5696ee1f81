package router

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"
)

// target is one process behind the router. A target outlives the tables that
// name it: its in-flight count must cover requests that started on an older
// table, or Drain could return while one of them still runs.
type target struct {
	addr netip.AddrPort
	host string // addr.String(), for request URLs

	inflight atomic.Int64
	// removed is set once no route names the target, after the table
	// without it was stored.
	removed atomic.Bool

	// pool keeps connections to the process for the direct path, while
	// the target is routed.
	pool pool
}

// acquire counts a request to t, unless t has been removed.
//
// A request may read a table, lose the CPU while SetRoutes stores a table
// without t and Drain finds nothing in flight, and only then count itself:
// it would reach a process being stopped. Counting first and checking
// removed second closes that window: SetRoutes stores the new table before
// setting removed, and Drain reads inflight after removed is set, so either
// Drain sees this request or this request sees removed and goes back to the
// new table. (Go's atomics are sequentially consistent.)
func (t *target) acquire() bool {
	t.inflight.Add(1)
	if t.removed.Load() {
		t.inflight.Add(-1)
		return false
	}
	return true
}

func (t *target) release() {
	t.inflight.Add(-1)
}

// drainPoll is how often Drain looks at a target's in-flight count. Drains
// happen a few times per deploy, so polling costs nothing and spares every
// request a notification.
const drainPoll = 10 * time.Millisecond

// Drain waits until no request is in flight to addr, so that the process
// there can be stopped without failing any. Call it after SetRoutes has taken
// addr out of every route: from then on no new request goes there.
//
// It returns nil at once when nothing is in flight, and an error when addr is
// still (or again) routed. A websocket or a stream stays in flight until it
// ends, so bound ctx, e.g. by the service's termination grace; when ctx ends
// first, Drain returns an error wrapping ctx's, and stopping the process
// fails the requests left.
func (rt *Router) Drain(ctx context.Context, addr netip.AddrPort) error {
	rt.mu.Lock()
	t := rt.targets[addr]
	rt.mu.Unlock()
	if t == nil {
		return nil
	}
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		if !t.removed.Load() {
			return fmt.Errorf("draining %s: it is still routed", addr)
		}
		n := t.inflight.Load()
		if n == 0 {
			rt.forget(t)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("draining %s: %d requests still in flight: %w", addr, n, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// forget drops a drained target from the registry, unless it has been routed
// again meanwhile, and closes its idle connections: the process is about to
// be stopped.
func (rt *Router) forget(t *target) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if t.removed.Load() {
		t.closeIdle()
	}
	if rt.targets[t.addr] == t && t.removed.Load() && t.inflight.Load() == 0 {
		delete(rt.targets, t.addr)
	}
}
