package router

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"syscall"
	"testing"
)

// TestFront_AcceptedSocket: connections the loops accept have Nagle off,
// whether they reached the listener before the loops started or after, and
// the process is told their peer's address.
func TestFront_AcceptedSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Connected before the Front serves: in the listen queue already.
	early, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	rt, _, addr := frontOn(t, ln, Options{}, &http.Server{}, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-For"))
	}))
	t.Cleanup(be.Close)
	rt.SetRoutes("app", webRoute(addrOf(be)))
	late, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()

	for _, c := range []struct {
		name string
		conn net.Conn
	}{{"early", early}, {"late", late}} {
		res, body := rawGet(t, c.conn, bufio.NewReader(c.conn), "web.app.localhost", "/")
		if res.StatusCode != 200 || body != "127.0.0.1" {
			t.Errorf("%s connection: GET /: %d, X-Forwarded-For %q; want 200, 127.0.0.1", c.name, res.StatusCode, body)
		}
		fd := acceptedOf(t, c.conn)
		if got, err := syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY); err != nil || got != 1 {
			t.Errorf("%s connection: TCP_NODELAY of the accepted socket: got %d, %v; want 1", c.name, got, err)
		}
	}
}

// acceptedOf returns the descriptor of the router's end of c: the loops
// own it, so it is found among all the process's sockets.
func acceptedOf(t *testing.T, c net.Conn) int {
	t.Helper()
	client, server := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		local, err1 := syscall.Getsockname(fd)
		peer, err2 := syscall.Getpeername(fd)
		l, ok1 := local.(*syscall.SockaddrInet4)
		p, ok2 := peer.(*syscall.SockaddrInet4)
		if err1 == nil && err2 == nil && ok1 && ok2 && l.Port == server.Port && p.Port == client.Port {
			return fd
		}
	}
	t.Fatalf("the router has no socket from %s to %s", server, client)
	return -1
}
