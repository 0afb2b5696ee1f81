//go:build linux

package router

import (
	"crypto/tls"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// Over HTTPS, a goroutine does the TLS handshake on a net.Conn, as net/http
// would; a connection that settled on HTTP/1.1 then comes back to the loop,
// which goes on with the same tls.Conn over a tlsWire. HTTP/2 and the rest
// stay with net/http from the handshake on.

// tlsWire is what a tls.Conn of a loop's client reads from and writes to.
// In the loop, it holds the ciphertext the loop read for the tls.Conn to
// decrypt, and writes without blocking, keeping what the socket does not
// take; Read finding nothing says so with a temporary error, which the
// tls.Conn passes on without failing the connection. Handed to a goroutine
// (block), it reads and writes through a net.Conn, what it held first.
type tlsWire struct {
	nc  net.Conn // once blocking; nil in the loop
	fd  int      // in the loop
	in  []byte   // read, not yet decrypted
	out []byte   // encrypted, not yet written

	laddr, raddr net.Addr
}

// errWouldBlock is a tlsWire's Read finding nothing in the loop.
var errWouldBlock error = temporary("no data yet")

func (w *tlsWire) Read(p []byte) (int, error) {
	if len(w.in) > 0 {
		n := copy(p, w.in)
		w.in = w.in[n:]
		if len(w.in) == 0 {
			w.in = w.in[:0:0]
		}
		return n, nil
	}
	if w.nc != nil {
		return w.nc.Read(p)
	}
	return 0, errWouldBlock
}

func (w *tlsWire) Write(p []byte) (int, error) {
	if w.nc != nil {
		if err := w.flush(); err != nil {
			return 0, err
		}
		return w.nc.Write(p)
	}
	if len(w.out) > 0 {
		w.out = append(w.out, p...)
		return len(p), nil
	}
	n, err := rawWrite(w.fd, p)
	switch {
	case err == unix.EAGAIN:
		n = 0
	case err != nil:
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: err}
	}
	if n < len(p) {
		w.out = append(w.out, p[n:]...)
	}
	return len(p), nil
}

// block hands w over to nc, a net.Conn of its socket.
func (w *tlsWire) block(nc net.Conn) { w.nc = nc }

// flush writes what the loop's socket did not take; blocking only.
func (w *tlsWire) flush() error {
	if len(w.out) == 0 || w.nc == nil {
		return nil
	}
	_, err := w.nc.Write(w.out)
	w.out = nil
	return err
}

func (w *tlsWire) Close() error {
	if w.nc != nil {
		return w.nc.Close()
	}
	return nil // the loop closes its descriptor
}

func (w *tlsWire) LocalAddr() net.Addr  { return w.laddr }
func (w *tlsWire) RemoteAddr() net.Addr { return w.raddr }

func (w *tlsWire) SetDeadline(t time.Time) error {
	if w.nc != nil {
		return w.nc.SetDeadline(t)
	}
	return nil
}

func (w *tlsWire) SetReadDeadline(t time.Time) error {
	if w.nc != nil {
		return w.nc.SetReadDeadline(t)
	}
	return nil
}

func (w *tlsWire) SetWriteDeadline(t time.Time) error {
	if w.nc != nil {
		return w.nc.SetWriteDeadline(t)
	}
	return nil
}

// handshake does the TLS handshake of the client at fd on a goroutine, and
// gives the connection back to l (HTTP/1.1) or to net/http (the rest).
func (l *loop) handshake(fd int, c *client) {
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return
	}
	nc, err := fdConn(d)
	if err != nil {
		unix.Close(fd)
		return
	}
	l.f.relays.Add(1)
	go func() {
		defer l.f.relays.Done()
		tw := &tlsWire{nc: nc, fd: fd, laddr: nc.LocalAddr(), raddr: nc.RemoteAddr()}
		tc := tls.Server(tw, l.f.tls)
		timeout := l.headerTimeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			l.rt.log.Debug("TLS handshake failed", "client", c.ip, "error", err)
			nc.Close()
			unix.Close(fd)
			return
		}
		tc.SetDeadline(time.Time{})
		switch tc.ConnectionState().NegotiatedProtocol {
		case "", "http/1.1":
			nc.Close() // out of Go's poller; fd stays open
			tw.nc = nil
			c.tc, c.tw = tc, tw
			l.adopt(c)
		default: // h2, and ACME's tls-alpn-01 validation
			unix.Close(fd)
			l.f.handoff.give(tc)
		}
	}()
}

// adopt queues c, whose handshake is done, for the loop to serve.
func (l *loop) adopt(c *client) {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		unix.Close(c.fd)
		return
	}
	l.adopted = append(l.adopted, c)
	// Under mu: once closing is set, the loop may end and its eventfd be
	// closed, and its number reused.
	l.wake()
	l.mu.Unlock()
}

// takeAdopted polls the clients whose handshakes are done, and serves what
// their tls.Conns hold already.
func (l *loop) takeAdopted() {
	l.mu.Lock()
	cs := l.adopted
	l.adopted = nil
	l.mu.Unlock()
	for _, c := range cs {
		if err := l.poll(unix.EPOLL_CTL_ADD, c.fd, unix.EPOLLIN|unix.EPOLLRDHUP); err != nil {
			unix.Close(c.fd)
			continue
		}
		l.clients[c.fd] = c
		c.reading = true
		if l.headerTimeout > 0 {
			c.deadline = l.now.Add(l.headerTimeout)
		}
		l.decrypt(c)
	}
}

// closeAdoption makes adopt close what comes from now on, and closes what
// is queued.
func (l *loop) closeAdoption() {
	l.mu.Lock()
	l.closing = true
	cs := l.adopted
	l.adopted = nil
	l.mu.Unlock()
	for _, c := range cs {
		unix.Close(c.fd)
	}
}

// decrypt moves what c's tls.Conn can decrypt into c.in, then serves it.
func (l *loop) decrypt(c *client) {
	for {
		n, err := c.tc.Read(l.plain)
		c.in = append(c.in, l.plain[:n]...)
		if err == errWouldBlock {
			break
		}
		if err != nil {
			l.dropClient(c) // close_notify, an alert, or a bad record
			return
		}
	}
	if len(c.tw.out) > 0 {
		// A post-handshake answer the socket did not take: a client
		// this slow is net/http's.
		if c.up == nil {
			l.handOff(c, nil)
		}
		return
	}
	if c.up != nil {
		if len(c.in) > loopMaxPipelined {
			l.dropClient(c)
		}
		return
	}
	l.serve(c)
}
