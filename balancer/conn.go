package balancer

import (
	"context"
	"io"
	"os"
	"strconv"
	"net"
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

// maxRepicks bounds how often a connection starts over on a newer
// configuration because the target it picked was removed meanwhile: that
// takes a Set between loading the configuration and joining the target, so
// even one retry is rare.
const maxRepicks = 3

// connect dials the targets of c's listener round robin, from the next one
// in turn, until one accepts, and returns the connection, or nil when none
// did or c was killed.
func (b *Balancer) connect(ctx context.Context, c *conn) *net.TCPConn {
	cfg := c.l.cfg.Load()
	for range maxRepicks {
		n := uint32(len(cfg.targets))
		if n == 0 {
			b.log.Debug("no target for a connection: the service has no healthy process",
				"app", c.l.app, "balancer", cfg.name, "service", cfg.service, "port", c.l.port)
			return nil
		}
		start := c.l.next.Add(1) - 1
		stale := false
		var last error
		for i := range n {
			t := cfg.targets[(start+i)%n]
			ok, killed := b.join(c, t)
			if killed {
				return nil
			}
			if !ok {
				stale = true
				break
			}
			// Dialer.DialTCP would bind a zero local address first, which
			// costs a system call and draws the port from the pool shared by
			// every destination.
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
			// Refused, most likely: the process is stopping or not yet
			// removed after a crash. The next one may do.
			last = err
		}
		if !stale {
			b.log.Warn("no target accepted a connection", "app", c.l.app, "balancer", cfg.name,
				"service", cfg.service, "port", c.l.port, "targets", n, "err", last)
			return nil
		}
		cfg = c.l.cfg.Load()
	}
	return nil
}

// join makes t c's target. It fails when t has been removed since c loaded
// its configuration, or when c has been killed.
func (b *Balancer) join(c *conn, t *target) (ok, killed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.killed {
		return false, true
	}
	if t.refs == 0 {
		return false, false
	}
	c.t = t
	t.conns[c] = struct{}{}
	return true, false
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
	if bufSize > 0 {
		client.SetReadBuffer(bufSize)
		client.SetWriteBuffer(bufSize)
		backend.SetReadBuffer(bufSize)
		backend.SetWriteBuffer(bufSize)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		forward(backend, client)
	}()
	forward(client, backend)
	<-done
	client.Close()
	backend.Close()
}

// forward copies src to dst until src's EOF, then shuts down dst's writing
// side so that dst's peer sees the EOF too, and leaves the other direction
// running. A failure (a reset, a write to a peer that is gone, a kill)
// aborts both directions: both connections are closed with a reset, which
// also ends the other direction's copy.
func forward(dst, src *net.TCPConn) {
	_, err := io.Copy(dst, src)
	if err == nil {
		err = dst.CloseWrite()
	}
	if err != nil {
		src.SetLinger(0)
		dst.SetLinger(0)
		src.Close()
		dst.Close()
	}
}

var bufSize = 0

func init() {
	if v := os.Getenv("BUFSZ"); v != "" {
		bufSize, _ = strconv.Atoi(v)
	}
}
