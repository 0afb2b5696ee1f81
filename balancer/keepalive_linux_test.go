package balancer

import (
	"net/netip"
	"syscall"
	"testing"
)

// TestBalancer_KeepAlive checks that accepted connections inherit the
// listener's keep-alive settings and that dialed ones have none, and that
// both have Nagle off.
func TestBalancer_KeepAlive(t *testing.T) {
	a := startBackend(t, named("a"))
	b := newBalancer(t, Options{})
	port := freePort(t)
	set(t, b, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{a.addr}})
	c := dialLines(t, port)
	c.ask(t, "hi") // the connection is tracked and its target dialed

	b.mu.Lock()
	var conns []*conn
	for c := range b.apps["app"][port].conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	if len(conns) != 1 {
		t.Fatalf("open connections: got %d, want 1", len(conns))
	}
	client := map[string][3]int{
		"SO_KEEPALIVE":  {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		"TCP_KEEPIDLE":  {syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, 15},
		"TCP_KEEPINTVL": {syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, 15},
		"TCP_KEEPCNT":   {syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
		"TCP_NODELAY":   {syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
	}
	backend := map[string][3]int{
		"SO_KEEPALIVE": {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 0},
		"TCP_NODELAY":  {syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
	}
	for _, side := range []struct {
		name string
		raw  syscall.Conn
		want map[string][3]int
	}{{"client", conns[0].client, client}, {"backend", conns[0].backend, backend}} {
		rc, err := side.raw.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		for name, o := range side.want {
			var got int
			var gerr error
			rc.Control(func(fd uintptr) { got, gerr = syscall.GetsockoptInt(int(fd), o[0], o[1]) })
			if gerr != nil || got != o[2] {
				t.Errorf("%s %s: got %d, %v; want %d", side.name, name, got, gerr, o[2])
			}
		}
	}
}
