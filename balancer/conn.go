package balancer

import (
	"context"
	"io"
	"net"
	"sync/atomic"
)

// conn is one forwarded connection. It runs on two goroutines, one per
// direction, and ends when both directions have.
type conn struct {
	l      *listener
	client *net.TCPConn
	cancel context.CancelFunc // aborts the dial

	// Guarded by Balancer.mu.
	t       *target
	backend *net.TCPConn
	killed  bool
}

// kill closes c now, whatever it is doing. b.mu is held.
func (c *conn) kill() {
	if c.killed {
		return
	}
	c.killed = true
	c.cancel()
	c.client.Close()
	if c.backend != nil {
		c.backend.Close()
	}
}

// serve forwards client to a target of l.
func (b *Balancer) serve(l *listener, client *net.TCPConn) {
	defer b.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &conn{l: l, client: client, cancel: cancel}
	if !b.track(c) {
		client.Close()
		return
	}
	defer b.untrack(c)
	backend := b.connect(ctx, c)
	if backend == nil {
		client.Close()
		return
	}
	pipe(client, backend)
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
func (b *Balancer) connect(ctx context.Context, c *conn) *net.TCPConn {
	start := c.l.next.Add(1) - 1
	var last error
	for try := uint32(0); ; try++ {
		t, cfg, killed := b.join(c, start, try)
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
		if err == nil {
			backend := nc.(*net.TCPConn)
			if b.attach(c, backend) {
				return backend
			}
			backend.Close()
			return nil
		}
		b.mu.Lock()
		b.leave(c)
		b.mu.Unlock()
		if ctx.Err() != nil {
			return nil // killed while dialing
		}
		// Refused, most likely: the process is stopping, or crashed and is
		// not out of the listener yet. The next one may do.
		last = err
	}
}

// join makes the try-th target from start in the listener's current
// configuration c's target, and returns it, or nil once every target has
// been tried. Picking under the lock that Set holds to replace
// configurations means the target cannot be removed between the pick and
// the join, so Drain always sees the connection.
func (b *Balancer) join(c *conn, start, try uint32) (t *target, cfg *config, killed bool) {
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
	t.conns[c] = struct{}{}
	return t, cfg, false
}

// attach records c's connection to its target, so that kill closes it too.
func (b *Balancer) attach(c *conn, backend *net.TCPConn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
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

// pipe copies both directions between client and backend until both have
// ended, then closes both.
//
// Unlike a join that closes both connections when the first direction ends
// (fatedier/golib's Join), an EOF only half-closes the other side: a client
// that sends a request and shuts down its writing side still gets the whole
// reply. The copies run on the *net.TCPConn values themselves, never on a
// wrapper, so that io.Copy finds ReadFrom and WriteTo and Linux splices.
func pipe(client, backend *net.TCPConn) {
	var ended atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		forward(backend, client, &ended)
	}()
	forward(client, backend, &ended)
	<-done
	client.Close()
	backend.Close()
}

// forward copies src to dst until src's EOF, then shuts down dst's writing
// side so that dst's peer sees the EOF too, and leaves the other direction
// running. ended counts the directions that reached EOF: the second one
// skips the shutdown, since pipe closes both connections at once, which
// sends the same FIN for one system call less.
//
// A failure (a reset, a write to a peer that is gone, a kill) ends both
// directions: both connections are closed, which also stops the other
// direction's copy. The close is a plain one, not a forced reset, so that
// bytes already forwarded still reach their peer; the kernel resets a
// connection whose incoming bytes were left unread anyway.
func forward(dst, src *net.TCPConn, ended *atomic.Int32) {
	_, err := io.Copy(dst, src)
	if err == nil && ended.Add(1) == 1 {
		err = dst.CloseWrite()
	}
	if err != nil {
		src.Close()
		dst.Close()
	}
}
