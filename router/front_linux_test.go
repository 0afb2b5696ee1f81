package router

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"

	"github.com/singlehost/convox/internal/socktest"
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
		// The loop owns the router's end: find it among the process's sockets.
		client, server := c.conn.LocalAddr().(*net.TCPAddr), c.conn.RemoteAddr().(*net.TCPAddr)
		fd := socktest.Find(t, func(local, peer *syscall.SockaddrInet4) bool {
			return local.Port == server.Port && peer.Port == client.Port
		})
		if got, err := syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY); err != nil || got != 1 {
			t.Errorf("%s connection: TCP_NODELAY of the accepted socket: got %d, %v; want 1", c.name, got, err)
		}
	}
}
