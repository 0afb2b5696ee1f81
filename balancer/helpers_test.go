package balancer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is a TCP server on loopback standing in for a process.
type backend struct {
	addr     netip.AddrPort
	accepted atomic.Int64

	ln    *net.TCPListener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[*net.TCPConn]struct{}
}

// startBackend serves handle on a new loopback port until the test ends.
func startBackend(t testing.TB, handle func(*net.TCPConn)) *backend {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	be := &backend{addr: ln.Addr().(*net.TCPAddr).AddrPort(), ln: ln, conns: map[*net.TCPConn]struct{}{}}
	be.wg.Add(1)
	go func() {
		defer be.wg.Done()
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			be.accepted.Add(1)
			be.mu.Lock()
			be.conns[c] = struct{}{}
			be.mu.Unlock()
			be.wg.Add(1)
			go func() {
				defer be.wg.Done()
				defer func() {
					be.mu.Lock()
					delete(be.conns, c)
					be.mu.Unlock()
					c.Close()
				}()
				handle(c)
			}()
		}
	}()
	t.Cleanup(be.stop)
	return be
}

// stop closes the backend and its connections and waits for its goroutines.
func (be *backend) stop() {
	be.ln.Close()
	be.mu.Lock()
	for c := range be.conns {
		c.Close()
	}
	be.mu.Unlock()
	be.wg.Wait()
}

// echo copies everything back, then half-closes.
func echo(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// named answers each line with "name:line".
func named(name string) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		s := bufio.NewScanner(c)
		for s.Scan() {
			if _, err := fmt.Fprintf(c, "%s:%s\n", name, s.Text()); err != nil {
				return
			}
		}
	}
}

// newBalancer returns a Balancer on loopback, closed when the test ends.
func newBalancer(t testing.TB, opts Options) *Balancer {
	t.Helper()
	if opts.BindAddr == "" {
		opts.BindAddr = "127.0.0.1"
	}
	// BALANCER_TEST_LOOPS runs the suite on that many event loops (the
	// Makefile's third run): on CI's two CPUs there is otherwise one, and
	// nothing a listener shared between loops does would be tested.
	if n, err := strconv.Atoi(os.Getenv("BALANCER_TEST_LOOPS")); err == nil && opts.Loops == 0 {
		opts.Loops = n
	}
	b := New(opts)
	t.Cleanup(func() { b.Close() })
	return b
}

// freePort returns a loopback port nothing listens on (for now).
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// set calls b.Set and fails the test on error.
func set(t testing.TB, b *Balancer, app string, ls ...Listener) {
	t.Helper()
	if err := b.Set(context.Background(), app, ls); err != nil {
		t.Fatalf("Set(%s): %v", app, err)
	}
}

// dial connects to port on loopback.
func dial(t testing.TB, port int) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn)
}

// lineConn talks to a named backend through a connection.
type lineConn struct {
	*net.TCPConn
	r *bufio.Reader
}

func dialLines(t testing.TB, port int) *lineConn {
	t.Helper()
	c := dial(t, port)
	return &lineConn{TCPConn: c, r: bufio.NewReader(c)}
}

// ask sends line and returns the answer without its newline.
func (c *lineConn) ask(t testing.TB, line string) string {
	t.Helper()
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		t.Fatalf("sending %q: %v", line, err)
	}
	got, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the answer to %q: got %q, %v", line, got, err)
	}
	return got[:len(got)-1]
}

// askOnce dials port, sends one line and returns the answer.
func askOnce(t testing.TB, port int, line string) string {
	t.Helper()
	c := dialLines(t, port)
	defer c.Close()
	return c.ask(t, line)
}

// expectClosed checks that the peer of c closes it without sending anything.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Fatalf("reading: got %d bytes, %v; want the connection closed", n, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
