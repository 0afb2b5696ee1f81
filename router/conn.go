package router

import (
	"bufio"
	"context"
	"net"
	"slices"
	"sync"
	"time"
)

// conn is a keep-alive HTTP/1.1 connection to a process, used by one request
// at a time on the direct path (forward.go).
type conn struct {
	net.Conn
	w  *wire // under br and bw
	br *bufio.Reader
	bw *bufio.Writer
	// reused is set once the connection has served a request: only then can
	// a failure be the process closing it while it sat in the pool.
	reused bool
	// stale is set by a sweep that found the connection idle, and cleared
	// when it is put back: a connection still stale at the next sweep has
	// been idle for a whole sweep period.
	stale bool
}

// Buffer sizes of a connection to a process. Small answers fit in one read;
// the request head of a browser, cookies included, in one write.
const (
	connReadBuffer  = 8 << 10
	connWriteBuffer = 4 << 10
)

// idleSweep is how often a target's idle connections are looked at: one
// idle for a whole period is closed, so none stays idle more than twice
// that. Processes may close idle connections sooner (Node.js after 5 s);
// forward copes with that.
const idleSweep = 45 * time.Second

// pool holds a target's idle connections for the direct path.
type pool struct {
	mu    sync.Mutex
	idle  []*conn // the most recently used last
	sweep *time.Timer
	armed bool // sweep will run
}

// get returns the most recently used idle connection to t, or nil.
func (t *target) get() *conn {
	t.pool.mu.Lock()
	defer t.pool.mu.Unlock()
	n := len(t.pool.idle)
	if n == 0 {
		return nil
	}
	c := t.pool.idle[n-1]
	t.pool.idle[n-1] = nil
	t.pool.idle = t.pool.idle[:n-1]
	return c
}

// dial connects to t, within timeout and as long as ctx lasts.
func (t *target) dial(ctx context.Context, timeout time.Duration) (*conn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", t.host)
	if err != nil {
		return nil, err
	}
	return newConn(nc), nil
}

func newConn(nc net.Conn) *conn {
	w := newWire(nc)
	return &conn{Conn: nc, w: w, br: bufio.NewReaderSize(w, connReadBuffer), bw: bufio.NewWriterSize(w, connWriteBuffer)}
}

// sendAndWait flushes the request held in c's buffer so that the next read
// of the response writes it first (wire.Read).
func (c *conn) sendAndWait() error {
	c.w.hold = c.w.raw != nil
	err := c.bw.Flush()
	c.w.hold = false
	return err
}

// put returns c to t's pool, or closes it when t has been removed or the
// pool is full.
//
// removed is read under the pool's lock, and removal closes the idle
// connections under it too (closeIdle): a connection of a request that was
// in flight during a Drain is closed, not left idle to a stopped process.
func (t *target) put(c *conn) {
	c.reused, c.stale = true, false
	t.pool.mu.Lock()
	if t.removed.Load() || len(t.pool.idle) >= maxIdlePerTarget {
		t.pool.mu.Unlock()
		c.Close()
		return
	}
	t.pool.idle = append(t.pool.idle, c)
	if !t.pool.armed {
		t.pool.armed = true
		if t.pool.sweep == nil {
			t.pool.sweep = time.AfterFunc(idleSweep, t.sweepIdle)
		} else {
			t.pool.sweep.Reset(idleSweep)
		}
	}
	t.pool.mu.Unlock()
}

// sweepIdle closes the connections that stayed idle since the last sweep,
// and marks the others.
func (t *target) sweepIdle() {
	t.pool.mu.Lock()
	defer t.pool.mu.Unlock()
	if !t.pool.armed {
		return // closeIdle ran since the timer fired
	}
	t.pool.idle = slices.DeleteFunc(t.pool.idle, func(c *conn) bool {
		if c.stale {
			c.Close()
			return true
		}
		c.stale = true
		return false
	})
	if len(t.pool.idle) == 0 {
		t.pool.armed = false
		return
	}
	t.pool.sweep.Reset(idleSweep)
}

// closeIdle closes t's idle connections.
func (t *target) closeIdle() {
	t.pool.mu.Lock()
	defer t.pool.mu.Unlock()
	for _, c := range t.pool.idle {
		c.Close()
	}
	t.pool.idle = nil
	if t.pool.armed {
		t.pool.sweep.Stop()
		t.pool.armed = false
	}
}
