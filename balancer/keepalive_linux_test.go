package balancer

import (
	"net/netip"
	"syscall"
	"testing"

	"github.com/singlehost/convox/internal/socktest"
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
	c.ask(t, "hi") // the connection is accepted and its target dialed

	// The loops own the descriptors: find them among the process's sockets.
	client := socktest.Find(t, func(local, _ *syscall.SockaddrInet4) bool { return local.Port == port })
	backend := socktest.Find(t, func(_, peer *syscall.SockaddrInet4) bool {
		return peer.Port == int(a.addr.Port()) && netip.AddrFrom4(peer.Addr) == a.addr.Addr()
	})
	for _, side := range []struct {
		name string
		fd   int
		want map[string][3]int
	}{
		{"client", client, map[string][3]int{
			"SO_KEEPALIVE":  {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
			"TCP_KEEPIDLE":  {syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, 15},
			"TCP_KEEPINTVL": {syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, 15},
			"TCP_KEEPCNT":   {syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
			"TCP_NODELAY":   {syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
		}},
		{"backend", backend, map[string][3]int{
			"SO_KEEPALIVE": {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 0},
			"TCP_NODELAY":  {syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
		}},
	} {
		for name, o := range side.want {
			got, err := syscall.GetsockoptInt(side.fd, o[0], o[1])
			if err != nil || got != o[2] {
				t.Errorf("%s %s: got %d, %v; want %d", side.name, name, got, err, o[2])
			}
		}
	}
}
