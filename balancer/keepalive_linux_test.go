package balancer

import (
	"net/netip"
	"os"
	"strconv"
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
	c.ask(t, "hi") // the connection is accepted and its target dialed

	// The loops own the descriptors: find them among the process's sockets.
	client, backend := -1, -1
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		local, err1 := syscall.Getsockname(fd)
		peer, err2 := syscall.Getpeername(fd)
		if err1 != nil || err2 != nil {
			continue
		}
		if l, ok := local.(*syscall.SockaddrInet4); ok && l.Port == port {
			client = fd
		}
		if p, ok := peer.(*syscall.SockaddrInet4); ok && p.Port == int(a.addr.Port()) && netip.AddrFrom4(p.Addr) == a.addr.Addr() {
			backend = fd
		}
	}
	if client < 0 || backend < 0 {
		t.Fatalf("the balancer's sockets: client %d, backend %d", client, backend)
	}
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
