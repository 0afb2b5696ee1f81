package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsGrace is the termination grace of wsManifest's web service: how long
// the rack waits for a websocket to a process it replaces before stopping
// the process anyway.
const wsGrace = 20 * time.Second

// wsManifest is the sample app with plain HTTP served rather than
// redirected, so websockets work on both router listeners.
var wsManifest = fmt.Sprintf(`environment:
  - GREETING=hello
services:
  web:
    build: .
    port: 5000
    health: /health
    scale:
      count: 2
    termination:
      grace: %d
    tls:
      redirect: false
`, int(wsGrace/time.Second))

// dialWebsocket opens a websocket to the sample server's /ws at host
// through the rack's router: wss trusting only the rack's CA, or ws.
func (r *rack) dialWebsocket(t *testing.T, host string, https bool) *websocket.Conn {
	t.Helper()
	addr, scheme := r.routerHTTP, "ws"
	d := &websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	if https {
		res := r.convox("rack", "ca")
		pool := x509.NewCertPool()
		if res.code != 0 || !pool.AppendCertsFromPEM([]byte(res.stdout)) {
			t.Fatalf("convox rack ca: exit %d\n%s%s", res.code, res.stdout, res.stderr)
		}
		addr, scheme = r.routerHTTPS, "wss"
		d.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: host}
	}
	c, res, err := d.Dial(scheme+"://"+host+"/ws", nil)
	if err != nil {
		status := "no response"
		if res != nil {
			status = res.Status
		}
		t.Fatalf("websocket to %s over %s: %v (%s)", host, scheme, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// wsSend writes msg as one message of type typ.
func wsSend(t *testing.T, c *websocket.Conn, typ int, msg string) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(typ, []byte(msg)); err != nil {
		t.Fatalf("websocket: sending %q: %v", msg, err)
	}
}

// wsReceive reads the echo of msg, of type typ, and returns the hostname
// of the process that answered.
func wsReceive(t *testing.T, c *websocket.Conn, typ int, msg string) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	gotTyp, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("websocket: echo of %q: %v", msg, err)
	}
	host, echoed, ok := strings.Cut(string(got), ": ")
	if gotTyp != typ || !ok || echoed != msg {
		t.Fatalf("websocket: sent %q (type %d), got %q (type %d), want \"<hostname>: %s\"", msg, typ, got, gotTyp, msg)
	}
	return host
}

// wsEcho sends msg as text and returns who echoed it.
func wsEcho(t *testing.T, c *websocket.Conn, msg string) string {
	t.Helper()
	wsSend(t, c, websocket.TextMessage, msg)
	return wsReceive(t, c, websocket.TextMessage, msg)
}

// wsClose closes c as a client should: a close frame, then the server's
// close frame in return.
func wsClose(t *testing.T, c *websocket.Conn) {
	t.Helper()
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(5*time.Second)); err != nil {
		t.Fatalf("websocket: sending close: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("websocket: after our close, got %v, want the server's normal close", err)
	}
	c.Close()
}

// routedHosts returns the hostnames that n requests to /hostname through
// the router reach, sorted and without repeats.
func routedHosts(t *testing.T, c *http.Client, base string, n int) []string {
	t.Helper()
	var hosts []string
	for range n {
		code, b := body(t, c, base+"/hostname")
		if code != 200 {
			t.Fatalf("GET /hostname through the router: %d %s", code, b)
		}
		if !slices.Contains(hosts, b) {
			hosts = append(hosts, b)
		}
	}
	slices.Sort(hosts)
	return hosts
}

// TestWebsocket: websockets through the router, over HTTP and HTTPS, echo
// both ways, alongside other requests; a restart waits for an open one to
// end, and stops its process once the termination grace has passed.
func TestWebsocket(t *testing.T) {
	r := newRack(t)
	r.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rack output:\n%s", r.stderr)
		}
	})
	dir := sampleApp(t, wsManifest)
	r.convox("apps", "create", "ws").expect(t, "Creating ws... OK\n", "", 0)
	if _, res := r.deploy(t, "ws", dir); res.code != 0 {
		t.Fatalf("deploy: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	const host = "web.ws.localhost"
	hc, base := r.routerClient(t, host, true)
	var old []string
	eventually(t, 30*time.Second, "both processes routed", func() bool {
		old = r.webPids(t, "ws")
		return len(old) == 2 && slices.Equal(routedHosts(t, hc, base, 8), old)
	})

	for _, tc := range []struct {
		name  string
		https bool
	}{{"ws", false}, {"wss", true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := r.dialWebsocket(t, host, tc.https)
			who := wsEcho(t, c, "hello")
			if !slices.Contains(old, who) {
				t.Fatalf("the echo came from %q, want one of the processes %v", who, old)
			}
			// Messages in flight both ways at once: ten sent before any
			// echo is read, text and binary, come back in order.
			for i := range 10 {
				wsSend(t, c, websocket.TextMessage+i%2, fmt.Sprintf("message %d", i))
			}
			for i := range 10 {
				if got := wsReceive(t, c, websocket.TextMessage+i%2, fmt.Sprintf("message %d", i)); got != who {
					t.Fatalf("message %d echoed by %s, want %s: one websocket, one process", i, got, who)
				}
			}
			big := strings.Repeat("0123456789", 20000) // 200 kB, over the proxy's 32 kB buffers
			if got := wsEcho(t, c, big); got != who {
				t.Fatalf("the large message was echoed by %s, want %s", got, who)
			}

			// While it is open, requests and another websocket are served,
			// and it keeps working.
			if got := routedHosts(t, hc, base, 8); !slices.Equal(got, old) {
				t.Errorf("with a websocket open, requests reached %v, want both processes %v", got, old)
			}
			c2 := r.dialWebsocket(t, host, tc.https)
			for i := range 3 {
				wsEcho(t, c2, fmt.Sprintf("second %d", i))
				if got := wsEcho(t, c, fmt.Sprintf("first %d", i)); got != who {
					t.Fatalf("echoed by %s, want %s", got, who)
				}
			}
			wsClose(t, c2)
			wsClose(t, c)
		})
	}

	// A restart replaces the processes; the one holding a websocket leaves
	// the routes at once but is stopped only when its websocket ends.
	t.Run("restart waits for an open websocket", func(t *testing.T) {
		cur := r.webPids(t, "ws")
		c := r.dialWebsocket(t, host, true)
		who := wsEcho(t, c, "before the restart")
		done := make(chan result, 1)
		go func() { done <- r.convox("restart", "-a", "ws") }()
		fresh := waitReplaced(t, hc, base, cur)

		select {
		case res := <-done:
			t.Fatalf("the restart ended while a websocket to %s was open: exit %d\n%s\n%s", who, res.code, res.stdout, res.stderr)
		default:
		}
		if got := wsEcho(t, c, "during the restart"); got != who {
			t.Fatalf("echoed by %s, want %s", got, who)
		}
		time.Sleep(2 * time.Second)
		if got := wsEcho(t, c, "still there"); got != who {
			t.Fatalf("echoed by %s, want %s", got, who)
		}
		if pids := r.webPids(t, "ws"); !slices.Contains(pids, who) {
			t.Errorf("process %s was stopped while its websocket was open (running: %v)", who, pids)
		}

		wsClose(t, c)
		closed := time.Now()
		select {
		case res := <-done:
			if res.code != 0 {
				t.Fatalf("restart: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
			}
			if d := time.Since(closed); d > wsGrace/2 {
				t.Errorf("the restart ended %s after the websocket closed, want soon after (the grace is %s)", d.Round(time.Millisecond), wsGrace)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("the restart did not end within 60s of the websocket's close")
		}
		if pids := r.webPids(t, "ws"); !slices.Equal(pids, fresh) {
			t.Errorf("after the restart the processes are %v, want %v", pids, fresh)
		}
	})

	// A websocket left open does not hold a restart forever: after the
	// grace its process is stopped, which ends it.
	t.Run("restart ends a websocket after the grace", func(t *testing.T) {
		cur := r.webPids(t, "ws")
		c := r.dialWebsocket(t, host, true)
		who := wsEcho(t, c, "before the restart")
		began := time.Now()
		done := make(chan result, 1)
		go func() { done <- r.convox("restart", "-a", "ws") }()
		waitReplaced(t, hc, base, cur)
		if got := wsEcho(t, c, "draining"); got != who {
			t.Fatalf("echoed by %s, want %s", got, who)
		}

		c.SetReadDeadline(began.Add(wsGrace + 30*time.Second))
		_, msg, err := c.ReadMessage()
		cut := time.Since(began)
		var ne net.Error
		switch {
		case err == nil:
			t.Fatalf("websocket: got %q, want the connection to end", msg)
		case errors.As(err, &ne) && ne.Timeout():
			t.Fatalf("the websocket was still open %s after the restart began (grace %s)", cut.Round(time.Millisecond), wsGrace)
		case cut < wsGrace:
			t.Errorf("the websocket ended %s after the restart began, before the grace of %s: %v", cut.Round(time.Millisecond), wsGrace, err)
		}
		t.Logf("the websocket ended %s after the restart began: %v", cut.Round(time.Millisecond), err)
		select {
		case res := <-done:
			if res.code != 0 {
				t.Fatalf("restart: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the restart did not end within 30s of the websocket's end")
		}
	})
}

// waitReplaced waits until requests through the router reach two
// processes, none of them in old, and returns their hostnames.
func waitReplaced(t *testing.T, c *http.Client, base string, old []string) []string {
	t.Helper()
	var hosts []string
	eventually(t, 60*time.Second, "requests reaching the new processes only", func() bool {
		hosts = routedHosts(t, c, base, 8)
		return len(hosts) == 2 && !slices.ContainsFunc(hosts, func(h string) bool { return slices.Contains(old, h) })
	})
	return hosts
}
