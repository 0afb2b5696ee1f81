package e2e

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDockerGoesAway: when the Docker engine stops answering a running rack,
// commands say so and what to do (503, not an internal error), the apps keep
// serving through the router, and the rack carries on once the engine
// answers again. The rack reaches Docker through a socket of the test's,
// which the test closes: the machine's engine keeps running for the other
// tests.
func TestDockerGoesAway(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	fwd := forwardDocker(t, sock)
	r := newRack(t)
	r.spawn(nil, "DOCKER_HOST=unix://"+sock)
	r.t.Cleanup(func() { r.stop() })
	r.waitUp()
	dir := sampleApp(t, `services:
  web:
    build: .
    port: 5000
    health: /health
`)
	r.convox("apps", "create", "app").expect(t, "Creating app... OK\n", "", 0)
	if _, res := r.deploy(t, "app", dir); res.code != 0 {
		t.Fatalf("deploy: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	c, url := r.routerClient(t, "web.app.localhost", true)

	fwd.stop()
	before := len(r.stderr.String())
	r.convox("ps", "-a", "app").expect(t, "",
		"ERROR: listing processes: Cannot connect to the Docker daemon at unix://"+sock+". Is the docker daemon running? Start it, then retry.\n", 1)
	res, err := r.request("GET", "/apps/app/processes", r.password())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 {
		t.Errorf("GET /apps/app/processes with Docker gone: status %d, want 503", res.StatusCode)
	}
	// The app's processes still run; the router keeps sending them
	// requests, though the rack cannot see them for now. 11 s: the
	// periodic converge (every 10 s) runs at least once meanwhile.
	for range 11 {
		if code, got := body(t, c, url+"/"); code != 200 || !strings.HasPrefix(got, "hello from app/web") {
			t.Errorf("GET %s/ with the rack's Docker gone: got %d %q, want 200 and the app's greeting", url, code, got)
		}
		time.Sleep(time.Second)
	}
	// Its retries back off: 1, 2, 4 s… rather than one a second.
	down := r.stderr.String()[before:]
	if n := strings.Count(down, "docker events stopped; resubscribing"); n < 1 || n > 5 {
		t.Errorf("the daemon tried the event stream again %d times in about 11 s without Docker: want 1 to 5 (backing off)", n)
	}
	// The converge says Docker is gone once, not once per app every 10 s.
	if n := strings.Count(down, "docker is not answering"); n != 1 || strings.Contains(down, "msg=converge") {
		t.Errorf("the daemon's log while Docker was gone: %d lines saying so (want 1), converge failures: %v (want none)\n%s",
			n, strings.Contains(down, "msg=converge"), down)
	}

	forwardDocker(t, sock)
	eventually(t, 20*time.Second, "convox ps answering again", func() bool {
		return r.convox("ps", "-a", "app").code == 0
	})
	if code, got := body(t, c, url+"/"); code != 200 {
		t.Errorf("GET %s/ once Docker answers again: got %d %q", url, code, got)
	}
	eventually(t, 15*time.Second, "the daemon logging Docker's return", func() bool {
		return strings.Contains(r.stderr.String()[before:], "docker answers again")
	})
}

// dockerForwarder relays a unix socket to the machine's Docker socket, so
// that a test can cut one rack off its engine.
type dockerForwarder struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func forwardDocker(t *testing.T, sock string) *dockerForwarder {
	t.Helper()
	target := "/var/run/docker.sock"
	if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
		target = h
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &dockerForwarder{ln: ln, conns: map[net.Conn]bool{}}
	t.Cleanup(f.stop)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.relay(c, target)
		}
	}()
	return f
}

func (f *dockerForwarder) relay(c net.Conn, target string) {
	d, err := net.Dial("unix", target)
	if err != nil {
		c.Close()
		return
	}
	if !f.track(c, d) {
		return
	}
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(d, c)
	go cp(c, d)
	<-done
	c.Close()
	d.Close()
}

// track remembers both ends of a relayed connection, unless the forwarder
// was stopped meanwhile.
func (f *dockerForwarder) track(cs ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		f.conns[c] = true
	}
	return true
}

// stop closes the socket and every relayed connection (the rack's event
// stream among them): to the rack, the engine is gone.
func (f *dockerForwarder) stop() {
	f.mu.Lock()
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	f.ln.Close() // a second stop finds it closed, and no connections
	for c := range conns {
		c.Close()
	}
}
