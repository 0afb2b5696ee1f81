package balancer

import (
	"context"
	"net"
	"sync/atomic"
)

// conn is one forwarded connection. It runs on two goroutines, one per
// direction: the one accept started, which dials and then copies the
// client's bytes, and one it starts for the backend's. Whichever ends last
// closes both connections and forgets c.
type conn struct {
	l      *listener
	client *net.TCPConn
	ended  atomic.Int32 // directions that reached their source's EOF
	done   atomic.Int32 // directions that have finished

	// Guarded by Balancer.mu.
	t       *target
	backend *net.TCPConn
	cancel  context.CancelFunc // aborts the dial in progress, if any
	killed  bool
}

// kill closes c now, whatever it is doing. b.mu is held.
func (c *conn) kill() {
	if c.killed {
		return
	}
	c.killed = true
	if c.cancel != nil {
		c.cancel()
	}
	c.client.Close()
	if c.backend != nil {
		c.backend.Close()
	}
}

// serve forwards client to a target of l. It runs on a goroutine of its own,
// counted in b.wg.
func (b *Balancer) serve(l *listener, client *net.TCPConn) {
	c := &conn{l: l, client: client}
	if !b.track(c) {
		client.Close()
		b.wg.Done()
		return
	}
	backend := b.connect(c)
	if backend == nil {
		client.Close()
		b.untrack(c)
		b.wg.Done()
		return
	}
	// Two goroutines per connection: blocking reads need one per direction.
	// Neither waits for the other; the last one out cleans up.
	b.wg.Add(1)
	go b.forward(c, client, backend)
	b.forward(c, backend, client)
}

// track registers c with its listener, unless the balancer is closing or
// c's listener has been removed for longer than the drain grace.
func (b *Balancer) track(c *conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
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

// untrack forgets c once both its directions have ended.
func (b *Balancer) untrack(c *conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := c.l
	delete(l.conns, c)
	b.conns--
	if l.retired && len(l.conns) == 0 {
		b.stopTimer(&l.timer)
		delete(b.draining, l)
	}
	b.leave(c)
}

// connect dials the targets of c's listener round robin, from the next one
// in turn, until one accepts, and returns the connection, or nil when none
// did or c was killed.
func (b *Balancer) connect(c *conn) *net.TCPConn {
	start := c.l.next.Add(1) - 1
	var last error
	for try := uint32(0); ; try++ {
		// One context per attempt, both the dial's timeout and what kill
		// cancels: the Dialer would make a second one for its Timeout.
		ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
		t, cfg, killed := b.join(c, start, try, cancel)
		if killed || t == nil {
			cancel()
		}
		if killed {
			return nil
		}
		if t == nil {
			if try == 0 {
				b.log.Debug("no target for a connection: the service has no healthy process",
					"app", c.l.app, "balancer", cfg.name, "service", cfg.service, "port", c.l.port)
			} else {
				b.log.Warn("no target accepted a connection", "app", c.l.app, "balancer", cfg.name,
					"service", cfg.service, "port", c.l.port, "tries", try, "err", last)
			}
			return nil
		}
		// Dialer.DialTCP would bind a zero local address first, which costs
		// a system call and draws the port from the pool shared by every
		// destination.
		nc, err := b.dialer.DialContext(ctx, "tcp", t.host)
		cancel()
		if err == nil {
			backend := nc.(*net.TCPConn)
			if b.attach(c, backend) {
				return backend
			}
			backend.Close()
			return nil
		}
		// Refused, most likely: the process is stopping, or crashed and is
		// not out of the listener yet. Or timed out: its accept queue is
		// full. The next one may do; join says if c was killed meanwhile.
		b.mu.Lock()
		c.cancel = nil
		b.leave(c)
		b.mu.Unlock()
		last = err
	}
}

// join makes the try-th target from start in the listener's current
// configuration c's target, with cancel aborting the dial to it, and returns
// it, or nil once every target has been tried. Picking under the lock that
// Set holds to replace configurations means the target cannot be removed
// between the pick and the join, so Drain always sees the connection.
func (b *Balancer) join(c *conn, start, try uint32, cancel context.CancelFunc) (t *target, cfg *config, killed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cfg = c.l.cfg.Load()
	if c.killed {
		return nil, cfg, true
	}
	n := uint32(len(cfg.targets))
	if try >= n {
		return nil, cfg, false
	}
	t = cfg.targets[(start+try)%n]
	c.t = t
	c.cancel = cancel
	t.conns[c] = struct{}{}
	return t, cfg, false
}

// attach records c's connection to its target, so that kill closes it too.
func (b *Balancer) attach(c *conn, backend *net.TCPConn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c.cancel = nil
	if c.killed {
		return false
	}
	c.backend = backend
	return true
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

// forward copies src to dst until src's EOF, then shuts down dst's writing
// side so that dst's peer sees the EOF too, and leaves the other direction
// running: unlike a join that closes both connections when the first
// direction ends (fatedier/golib's Join), a client that sends a request and
// shuts down its writing side still gets the whole reply. The direction that
// ends second skips the shutdown: it closes both connections at once, which
// sends the same FIN for one system call less.
//
// A failure (a reset, a write to a peer that is gone, a kill) ends both
// directions: both connections are closed, which also stops the other
// direction's copy. The close is a plain one, not a forced reset, so that
// bytes already forwarded still reach their peer; the kernel resets a
// connection whose incoming bytes were left unread anyway.
func (b *Balancer) forward(c *conn, dst, src *net.TCPConn) {
	err := relay(dst, src)
	if err == nil && c.ended.Add(1) == 1 {
		err = dst.CloseWrite()
	}
	if err != nil {
		src.Close()
		dst.Close()
	}
	if c.done.Add(1) == 2 {
		src.Close()
		dst.Close()
		b.untrack(c)
	}
	b.wg.Done()
}
