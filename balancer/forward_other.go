//go:build !linux

package balancer

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// Elsewhere than on Linux, each connection runs on two goroutines, one per
// direction: the one accept started, which dials and then copies the
// client's bytes, and one it starts for the backend's. Whichever ends last
// closes both connections and forgets the connection.

// wire is what a conn moves its bytes with.
type wire struct {
	client *net.TCPConn
	ended  atomic.Int32 // directions that reached their source's EOF
	done   atomic.Int32 // directions that have finished

	// Guarded by Balancer.mu.
	backend *net.TCPConn
	cancel  context.CancelFunc // aborts the dial in progress, if any
}

// kill closes c now, whatever it is doing. b.mu is held.
func (c *conn) kill() {
	if c.killed.Swap(true) {
		return
	}
	if c.cancel != nil {
		c.cancel()
	}
	c.client.Close()
	if c.backend != nil {
		c.backend.Close()
	}
}

// forwarding needs no state of its own here: every goroutine is in b.wg.
type forwarding struct{}

// lsock is a listener's socket.
type lsock struct {
	ln   *net.TCPListener
	stop chan struct{} // closed when the listener is retired, to end an accept back-off
	gone chan struct{} // closed once ln is
}

// adopt makes ln a listener's socket. b.mu is held.
func (b *Balancer) adopt(ln *net.TCPListener) (*lsock, error) {
	return &lsock{ln: ln, stop: make(chan struct{}), gone: make(chan struct{})}, nil
}

// close closes a socket no listener has taken.
func (s *lsock) close() { s.ln.Close() }

// serve starts accepting on l. b.mu is held.
func (b *Balancer) serve(l *listener) {
	b.wg.Add(1)
	go b.accept(l)
}

// unserve stops accepting on l. b.mu is held.
func (b *Balancer) unserve(l *listener) {
	close(l.sock.stop)
	// Closing the socket ends the accept loop; connections still in the
	// kernel's accept queue are refused, as on any listener that goes away.
	l.sock.ln.Close()
	close(l.sock.gone)
}

// stopForwarding has nothing to stop: Close waits for the goroutines.
func (b *Balancer) stopForwarding() {}

// accept runs l's accept loop until l is retired.
func (b *Balancer) accept(l *listener) {
	defer b.wg.Done()
	var delay time.Duration
	for {
		c, err := l.sock.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http
			// does instead of spinning, and keep the port.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			b.log.Warn("balancer accept failed", "app", l.app, "port", l.port, "retry_in", delay, "err", err)
			select {
			case <-l.sock.stop:
				return
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		cfg := l.cfg.Load()
		if !cfg.allows(c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()) {
			b.log.Debug("connection refused by whitelist", "app", l.app, "balancer", cfg.name, "port", l.port, "client", c.RemoteAddr().String())
			c.Close()
			continue
		}
		b.wg.Add(1)
		go b.handle(l, c)
	}
}

// handle forwards client to a target of l. It runs on a goroutine of its
// own, counted in b.wg.
func (b *Balancer) handle(l *listener, client *net.TCPConn) {
	c := &conn{l: l, wire: wire{client: client}}
	b.mu.Lock()
	ok := b.track(c)
	b.mu.Unlock()
	if !ok {
		client.Close()
		b.wg.Done()
		return
	}
	backend := b.connect(c)
	if backend == nil {
		client.Close()
		b.mu.Lock()
		b.untrack(c)
		b.mu.Unlock()
		b.wg.Done()
		return
	}
	// Two goroutines per connection: blocking reads need one per direction.
	// Neither waits for the other; the last one out cleans up.
	b.wg.Add(1)
	go b.forward(c, client, backend)
	b.forward(c, backend, client)
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
		b.mu.Lock()
		t, cfg, killed := b.pick(c, start, try)
		if t != nil {
			c.cancel = cancel
		}
		b.mu.Unlock()
		if t == nil {
			cancel()
			if !killed {
				b.logNoTarget(c.l, cfg, try, last)
			}
			return nil
		}
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
		// full. The next one may do; pick says if c was killed meanwhile.
		b.mu.Lock()
		c.cancel = nil
		b.leave(c)
		b.mu.Unlock()
		last = err
	}
}

// attach records c's connection to its target, so that kill closes it too.
func (b *Balancer) attach(c *conn, backend *net.TCPConn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c.cancel = nil
	if c.killed.Load() {
		return false
	}
	c.backend = backend
	return true
}

// forward copies src to dst until src's EOF, then shuts down dst's writing
// side so that dst's peer sees the EOF too, and leaves the other direction
// running: a client that sends a request and shuts down its writing side
// still gets the whole reply. The direction that ends second skips the
// shutdown: it closes both connections at once, which sends the same FIN for
// one system call less.
//
// A failure (a reset, a write to a peer that is gone, a kill) ends both
// directions: both connections are closed, which also stops the other
// direction's copy.
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
		b.mu.Lock()
		b.untrack(c)
		b.mu.Unlock()
	}
	b.wg.Done()
}
