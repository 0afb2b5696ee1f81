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
		fd := peerOf(t, c.conn.LocalAddr().(*net.TCPAddr))
		if got, err := syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY); err != nil || got != 1 {
			t.Errorf("%s connection: TCP_NODELAY of the accepted socket: got %d, %v; want 1", c.name, got, err)
		}
	}
}

// peerOf returns the descriptor of this process's socket whose peer is
// client: the loops own it, so it is found among them all.
func peerOf(t *testing.T, client *net.TCPAddr) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		peer, err := syscall.Getpeername(fd)
		if p, ok := peer.(*syscall.SockaddrInet4); err == nil && ok && p.Port == client.Port {
			return fd
		}
	}
	t.Fatalf("no socket of the router's has %s for peer", client)
	return -1
}
