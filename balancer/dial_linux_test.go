package balancer

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// stuckTarget returns a loopback address whose accept queue is full: the
// kernel drops the SYNs of new connections there, which stay connecting.
func stuckTarget(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*syscall.SockaddrInet4).Port))
	// With a backlog of 0 the queue holds one connection: this one.
	filler, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	return addr
}

// TestBalancer_DialStuck checks that a connection to a target that does not
// answer moves on to the next one after dialTimeout, and that Close ends a
// connection still dialing at once.
func TestBalancer_DialStuck(t *testing.T) {
	stuck := stuckTarget(t)
	good := startBackend(t, named("good"))
	b := newBalancer(t, Options{})
	port := freePort(t)
	// The first connection tries the first target.
	set(t, b, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{stuck, good.addr}})
	start := time.Now()
	if got := askOnce(t, port, "x"); got != "good:x" {
		t.Fatalf("got %q, want %q", got, "good:x")
	}
	if d := time.Since(start); d < dialTimeout-time.Second {
		t.Errorf("the connection reached the good target after %v: it cannot have tried the stuck one for dialTimeout (%v)", d, dialTimeout)
	}

	b2 := New(Options{BindAddr: "127.0.0.1"})
	port2 := freePort(t)
	set(t, b2, "app", Listener{Name: "lb", Port: port2, Targets: []netip.AddrPort{stuck}})
	c := dial(t, port2)
	time.Sleep(100 * time.Millisecond) // accepted, dialing
	start = time.Now()
	b2.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v with a connection dialing", d)
	}
	expectClosed(t, c)
}
