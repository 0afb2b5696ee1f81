package e2e

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/singlehost/convox/internal/porttest"
)

// balancerRack starts a rack whose balancers listen on loopback only, so
// that the tests open no port on the machine's other interfaces.
func balancerRack(t *testing.T) *rack {
	t.Helper()
	r := newRack(t)
	r.spawn([]string{"--balancer-bind", "127.0.0.1"})
	r.t.Cleanup(func() { r.stop() })
	r.waitUp()
	return r
}

// balancerManifest is the sample app with two web processes that also
// serve the TCP echo on 7000, behind balancer echo on listen; extra is
// appended to the balancer's definition (a whitelist, say), and more after
// the whole manifest (another balancer). The termination grace is long
// enough for the drain test to hold a connection through a deploy.
func balancerManifest(listen int, extra, more string) string {
	return fmt.Sprintf(`environment:
  - GREETING=hello
services:
  web:
    build: .
    port: 5000
    health: /health
    environment:
      - ECHO_PORT=7000
    scale:
      count: 2
    termination:
      grace: 20
balancers:
  echo:
    service: web
    ports:
      %d: 7000
%s%s`, listen, extra, more)
}

// writeManifest replaces the app's convox.yml.
func writeManifest(t *testing.T, dir, manifest string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "convox.yml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
}

var byeLine = regexp.MustCompile(`^hello\nbye from (web-[a-z0-9]{5})\n$`)

// echoVia sends "hello\n" to the balancer on port, half-closes, and returns
// everything read back until the other side closes.
func echoVia(port int) (string, error) {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		return "", err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// hostVia makes one echo exchange through port and returns the hostname of
// the process that answered, or an error saying what came back instead.
func hostVia(port int) (string, error) {
	got, err := echoVia(port)
	if err != nil {
		return "", fmt.Errorf("%w (after %q)", err, got)
	}
	m := byeLine.FindStringSubmatch(got)
	if m == nil {
		return "", fmt.Errorf("got %q, want hello and a bye", got)
	}
	return m[1], nil
}

// hostsVia makes n echo exchanges through port and returns the distinct
// hosts that answered, sorted; any failed exchange is an error.
func hostsVia(port, n int) ([]string, error) {
	var hosts []string
	for range n {
		h, err := hostVia(port)
		if err != nil {
			return hosts, err
		}
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	return hosts, nil
}

// webPids is the sorted pids of app's running web processes.
func (r *rack) webPids(t *testing.T, app string) []string {
	t.Helper()
	var pids []string
	for pid := range r.webProcesses(t, app) {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}

// servesEcho waits until connections through port reach exactly app's two
// running web processes, and returns their hostnames.
func (r *rack) servesEcho(t *testing.T, app string, port int) []string {
	t.Helper()
	var hosts, pids []string
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		pids = r.webPids(t, app)
		hosts, err = hostsVia(port, 8)
		if err == nil && len(pids) == 2 && slices.Equal(hosts, pids) {
			return hosts
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("balancer port %d of %s: reached %v (error %v), want both running web processes %v", port, app, hosts, err, pids)
	return nil
}

// TestBalancer: a TCP echo through an app's balancer, with half-close, to
// both processes; `convox balancers` and the API; a rolling deploy changes
// the processes behind the port while a connection opened before it keeps
// working until its client closes it.
func TestBalancer(t *testing.T) {
	r := balancerRack(t)
	port := porttest.Free(t)
	dir := sampleApp(t, balancerManifest(port, "", ""))
	r.convox("apps", "create", "app").expect(t, "Creating app... OK\n", "", 0)
	r1, res := r.deploy(t, "app", dir)
	if res.code != 0 || r1 == "" {
		t.Fatalf("deploy: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}

	r.convox("balancers", "-a", "app").expect(t,
		"BALANCER  SERVICE  ENDPOINT\n"+
			fmt.Sprintf("echo      web      localhost:%d\n", port), "", 0)
	r.convox("api", "get", "/apps/app/balancers").expect(t, fmt.Sprintf(`[
  {
    "endpoint": "localhost",
    "name": "echo",
    "ports": [
      {
        "protocol": "tcp",
        "source": %d,
        "target": 7000
      }
    ],
    "service": "web"
  }
]
`, port), "", 0)
	// An app without balancers lists none.
	r.convox("apps", "create", "plain").expect(t, "Creating plain... OK\n", "", 0)
	r.convox("balancers", "-a", "plain").expect(t, "BALANCER  SERVICE  ENDPOINT\n", "", 0)
	r.convox("api", "get", "/apps/plain/balancers").expect(t, "[]\n", "", 0)

	// Echo with half-close, round robin over both processes.
	old := r.servesEcho(t, "app", port)
	t.Logf("balancer port %d reaches %v", port, old)

	// The balancer listens on loopback only, as --balancer-bind says.
	if got := listening(t, port); !slices.Equal(got, []string{"127.0.0.1"}) {
		t.Errorf("port %d is listened on at %v, want 127.0.0.1 only", port, got)
	}

	// A long-lived connection, opened before a rolling deploy.
	long, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	exchange := func(msg string) {
		t.Helper()
		long.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(long, msg); err != nil {
			t.Fatalf("long-lived connection: writing %q: %v", msg, err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(long, buf); err != nil || string(buf) != msg {
			t.Fatalf("long-lived connection: echo of %q: got %q, %v", msg, buf, err)
		}
	}
	exchange("before the deploy\n")

	done := make(chan result, 1)
	go func() { done <- r.convox("env", "set", "GREETING=bonjour", "-a", "app", "--promote") }()

	// New connections reach both new processes once they are healthy (and
	// an old one may take some until the rollout takes both out of the
	// balancer). None fails meanwhile.
	var fresh []string
	eventually(t, 60*time.Second, "the balancer reaching both new processes", func() bool {
		hosts, err := hostsVia(port, 12)
		if err != nil {
			t.Fatalf("a connection during the deploy: %v", err)
		}
		fresh = nil
		for _, h := range hosts {
			if !slices.Contains(old, h) {
				fresh = append(fresh, h)
			}
		}
		return len(fresh) == 2
	})
	t.Logf("during the deploy the balancer reaches %v", fresh)

	// The deploy waits for the connection to the old process to end.
	select {
	case res := <-done:
		t.Fatalf("the deploy ended while a connection to an old process was open: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	default:
	}
	exchange("during the deploy\n")
	time.Sleep(2 * time.Second)
	exchange("still there\n")

	// The client ends it: the old process says goodbye, and the deploy can
	// stop it.
	if err := long.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	long.SetDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(long)
	m := regexp.MustCompile(`^bye from (web-[a-z0-9]{5})\n$`).FindStringSubmatch(string(rest))
	if err != nil || m == nil || !slices.Contains(old, m[1]) {
		t.Errorf("long-lived connection: after the half-close got %q (%v), want a bye from one of the old processes %v", rest, err, old)
	}
	closed := time.Now()
	select {
	case res := <-done:
		r2 := releaseLine.FindStringSubmatch(res.stdout)
		if res.code != 0 || r2 == nil {
			t.Fatalf("env set --promote: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
		}
		// Drained when the client closed, not when the grace (20 s) ran out.
		if d := time.Since(closed); d > 10*time.Second {
			t.Errorf("the deploy ended %s after the last connection to an old process closed", d.Round(time.Millisecond))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the deploy did not end within 60s of the long-lived connection's close")
	}
	if got := r.servesEcho(t, "app", port); !slices.Equal(got, fresh) {
		t.Errorf("after the deploy the balancer reaches %v, want %v", got, fresh)
	}

	// A restarted daemon listens again, to the processes it adopted; here
	// on three event loops for the balancers and each router listener,
	// where CI's two CPUs would give one.
	r.stop()
	r.spawn([]string{"--balancer-bind", "127.0.0.1", "--proxy-loops", "3"})
	r.waitUp()
	if got := r.servesEcho(t, "app", port); !slices.Equal(got, fresh) {
		t.Errorf("after a daemon restart the balancer reaches %v, want the same processes %v", got, fresh)
	}
	c, url := r.routerClient(t, "web.app.localhost", true)
	for range 4 {
		if code, got := body(t, c, url+"/"); code != 200 || !strings.HasPrefix(got, "bonjour from app/web") {
			t.Errorf("GET %s/ through the router on three loops: got %d %q, want 200 and the new release's greeting", url, code, got)
		}
	}
}

// TestBalancerWhitelist: a client outside the whitelist is closed without a
// byte, and one inside is served, on the same port.
func TestBalancerWhitelist(t *testing.T) {
	r := balancerRack(t)
	port := porttest.Free(t)
	dir := sampleApp(t, balancerManifest(port, "    whitelist: 10.0.0.0/8\n", ""))
	r.convox("apps", "create", "walled").expect(t, "Creating walled... OK\n", "", 0)
	if _, res := r.deploy(t, "walled", dir); res.code != 0 {
		t.Fatalf("deploy: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	for i := range 4 {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 3*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v (the port should accept, then close)", i, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		// The write may fail already: the balancer may have closed.
		io.WriteString(c, "hello\n")
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		c.Close()
		var ne net.Error
		if len(got) != 0 || errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("connection %d from 127.0.0.1 outside whitelist 10.0.0.0/8: read %q, %v; want EOF or a reset, no data", i, got, err)
		}
	}

	// The same port, with 127.0.0.1 let in.
	writeManifest(t, dir, balancerManifest(port, "    whitelist:\n      - 10.0.0.0/8\n      - 127.0.0.1/32\n", ""))
	if _, res := r.deploy(t, "walled", dir); res.code != 0 {
		t.Fatalf("deploy: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	r.servesEcho(t, "walled", port)
}

// TestBalancerPortConflicts: a release whose balancer port is taken (by
// another app's balancer or another program) or invalid fails to promote
// with an error that names the port, and the app keeps serving its previous
// release on its previous port.
func TestBalancerPortConflicts(t *testing.T) {
	r := balancerRack(t)
	taken := porttest.Free(t)
	first := sampleApp(t, balancerManifest(taken, "", ""))
	r.convox("apps", "create", "first").expect(t, "Creating first... OK\n", "", 0)
	if _, res := r.deploy(t, "first", first); res.code != 0 {
		t.Fatalf("deploy first: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	firstHosts := r.servesEcho(t, "first", taken)

	port := porttest.Free(t)
	dir := sampleApp(t, balancerManifest(port, "", ""))
	r.convox("apps", "create", "second").expect(t, "Creating second... OK\n", "", 0)
	r1, res := r.deploy(t, "second", dir)
	if res.code != 0 {
		t.Fatalf("deploy second: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	hosts := r.servesEcho(t, "second", port)
	table := fmt.Sprintf("BALANCER  SERVICE  ENDPOINT\necho      web      localhost:%d\n", port)

	// A program's listener, held for the rest of the test.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	program := ln.Addr().(*net.TCPAddr).Port

	unused := porttest.Free(t)
	for _, tt := range []struct {
		name     string
		manifest string
		want     []string // in the error
	}{
		{"taken by another app's balancer", balancerManifest(taken, "", ""),
			[]string{fmt.Sprintf("ERROR: balancer echo: listen 127.0.0.1:%d: address already in use (by a balancer of app first)\n", taken)}},
		{"taken by another program", balancerManifest(program, "", ""),
			[]string{fmt.Sprintf("ERROR: balancer echo: listen 127.0.0.1:%d: address already in use\n", program)}},
		{"a new port and a taken one", balancerManifest(unused, "", "  other:\n    service: web\n    ports:\n      "+strconv.Itoa(program)+": 7000\n"),
			[]string{fmt.Sprintf("ERROR: balancer other: listen 127.0.0.1:%d: address already in use\n", program)}},
		{"listed twice", balancerManifest(port, "", "  twin:\n    service: web\n    ports:\n      "+strconv.Itoa(port)+": 5000\n"),
			[]string{fmt.Sprintf("ERROR: balancer twin: port %d is also listed by balancer echo\n", port)}},
		{"out of range", balancerManifest(70000, "", ""),
			[]string{"balancers.echo.ports.70000: port must be between 1 and 65535, got 70000", "ERROR: build failed\n"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			writeManifest(t, dir, tt.manifest)
			res := r.convox("deploy", dir, "-a", "second", "--wait")
			ok := res.code == 1
			for _, w := range tt.want {
				ok = ok && strings.Contains(res.stdout+res.stderr, w)
			}
			if !ok {
				t.Errorf("deploy: exit %d, want 1 with %q\nstdout:\n%s\nstderr:\n%s", res.code, tt.want, res.stdout, res.stderr)
			}
			t.Logf("deploy: exit %d: %s", res.code, strings.TrimSpace(res.stderr))
			// Nothing changed: the previous release, its processes, its port.
			if got := r.convox("apps", "info", "second").stdout; !strings.Contains(got, "Status  running\n") || !strings.Contains(got, "Release "+r1+"\n") {
				t.Errorf("after the failed deploy:\n%s", got)
			}
			r.convox("balancers", "-a", "second").expect(t, table, "", 0)
			if got := r.servesEcho(t, "second", port); !slices.Equal(got, hosts) {
				t.Errorf("after the failed deploy port %d reaches %v, want the same processes %v", port, got, hosts)
			}
			if got := r.servesEcho(t, "first", taken); !slices.Equal(got, firstHosts) {
				t.Errorf("after the failed deploy app first's port %d reaches %v, want %v", taken, got, firstHosts)
			}
			// A port bound for the failed release is let go again.
			if got := listening(t, unused); len(got) != 0 {
				t.Errorf("port %d, bound for the failed release only, is still listened on at %v", unused, got)
			}
		})
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close() // the program's listener is still its own
	} else {
		t.Errorf("the program's port: %v", err)
	}
}

// listening returns the local addresses of the sockets listening on TCP
// port, from /proc/net/tcp and tcp6 ("127.0.0.1", "0.0.0.0", "::" …).
func listening(t *testing.T, port int) []string {
	t.Helper()
	var addrs []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "0A" { // TCP_LISTEN
				continue
			}
			hexAddr, hexPort, _ := strings.Cut(fields[1], ":")
			if p, _ := strconv.ParseUint(hexPort, 16, 16); int(p) != port {
				continue
			}
			// The address is in 32-bit words of host (little-endian) order.
			raw, err := hex.DecodeString(hexAddr)
			if err != nil {
				t.Fatalf("%s: %q: %v", f, line, err)
			}
			for i := 0; i+4 <= len(raw); i += 4 {
				raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
			}
			addr, _ := netip.AddrFromSlice(raw)
			addrs = append(addrs, addr.Unmap().String())
		}
	}
	slices.Sort(addrs)
	return addrs
}

// TestBalancerDeployRetiresOldProcessesTogether: once a rolling deploy's
// new processes are healthy, the old ones leave the balancer (and the
// router) together, then drain. With a long-lived connection on each old
// process, stopping them one drain at a time would keep the second old
// process taking new connections for the whole grace of the first (here
// 20 s) although the new release is up.
func TestBalancerDeployRetiresOldProcessesTogether(t *testing.T) {
	r := balancerRack(t)
	port := porttest.Free(t)
	dir := sampleApp(t, balancerManifest(port, "", ""))
	r.convox("apps", "create", "app").expect(t, "Creating app... OK\n", "", 0)
	if _, res := r.deploy(t, "app", dir); res.code != 0 {
		t.Fatalf("deploy: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	old := r.servesEcho(t, "app", port)

	// Two connections in a row go round robin to both old processes.
	for range 2 {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "x"); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}

	done := make(chan result, 1)
	go func() { done <- r.convox("env", "set", "GREETING=bonjour", "-a", "app", "--promote") }()
	defer func() { <-done }()
	began := time.Now()
	var hosts []string
	eventually(t, 30*time.Second, "the balancer reaching both new processes", func() bool {
		var err error
		if hosts, err = hostsVia(port, 12); err != nil {
			t.Fatalf("a connection during the deploy: %v", err)
		}
		n := 0
		for _, h := range hosts {
			if !slices.Contains(old, h) {
				n++
			}
		}
		return n == 2
	})
	healthy := time.Since(began)
	// A few seconds is plenty for the rollout to take both old processes
	// out once the new ones take connections; the grace is 20 s.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if hosts, _ = hostsVia(port, 12); len(hosts) == 2 && !slices.Contains(old, hosts[0]) && !slices.Contains(old, hosts[1]) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("%s after the new processes took connections (%s into the deploy), new connections still reach %v, old processes %v among them",
		time.Since(began)-healthy, healthy.Round(time.Millisecond), hosts, old)
}
