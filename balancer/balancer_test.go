package balancer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestBalancer_Echo(t *testing.T) {
	be := startBackend(t, echo)
	b := newBalancer(t, Options{})
	port := freePort(t)
	set(t, b, "app", Listener{Name: "lb", Service: "web", Port: port, Targets: []netip.AddrPort{be.addr}})

	c := dial(t, port)
	msg := []byte("hello through the balancer")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("echo: got %q, want %q", got, msg)
	}
}

func TestBalancer_RoundRobin(t *testing.T) {
	var targets []netip.AddrPort
	for i := range 3 {
		targets = append(targets, startBackend(t, named(strconv.Itoa(i))).addr)
	}
	b := newBalancer(t, Options{})
	port := freePort(t)
	set(t, b, "app", Listener{Name: "lb", Port: port, Targets: targets})

	var got []string
	for range 9 {
		got = append(got, askOnce(t, port, "x"))
	}
	want := strings.Fields(strings.Repeat("0:x 1:x 2:x ", 3))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("targets in turn: got %v, want %v", got, want)
	}
}

func TestBalancer_HalfClose(t *testing.T) {
	t.Run("client closes first", func(t *testing.T) {
		// The backend answers only once it has read the whole request: a
		// join that closes both sides on the client's EOF loses the answer.
		be := startBackend(t, func(c *net.TCPConn) {
			body, err := io.ReadAll(c)
			if err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond) // the answer comes well after the EOF
			fmt.Fprintf(c, "%d bytes, sha256 %x", len(body), sha256.Sum256(body))
		})
		b := newBalancer(t, Options{})
		port := freePort(t)
		set(t, b, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{be.addr}})

		body := bytes.Repeat([]byte("request "), 128<<10) // 1 MiB
		c := dial(t, port)
		if _, err := c.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("reading the reply: %v", err)
		}
		want := fmt.Sprintf("%d bytes, sha256 %x", len(body), sha256.Sum256(body))
		if string(got) != want {
			t.Errorf("reply: got %q, want %q", got, want)
		}
	})

	t.Run("backend closes first", func(t *testing.T) {
		received := make(chan string, 1)
		be := startBackend(t, func(c *net.TCPConn) {
			io.WriteString(c, "greeting")
			c.CloseWrite()
			body, _ := io.ReadAll(c)
			received <- string(body)
		})
		b := newBalancer(t, Options{})
		port := freePort(t)
		set(t, b, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{be.addr}})

		c := dial(t, port)
		greeting, err := io.ReadAll(c)
		if err != nil || string(greeting) != "greeting" {
			t.Fatalf("reading until the backend's EOF: got %q, %v; want %q", greeting, err, "greeting")
		}
		if _, err := io.WriteString(c, "data after the backend's EOF"); err != nil {
			t.Fatal(err)
		}
		c.CloseWrite()
		select {
		case got := <-received:
			if got != "data after the backend's EOF" {
				t.Errorf("backend received %q", got)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the backend never saw the client's EOF")
		}
	})
}

func TestBalancer_Whitelist(t *testing.T) {
	tests := []struct {
		name      string
		whitelist []string
		allowed   bool
	}{
		{"none", nil, true},
		{"loopback", []string{"127.0.0.0/8"}, true},
		{"one of several", []string{"10.0.0.0/8", "127.0.0.1/32"}, true},
		{"mapped IPv6 form", []string{"::ffff:127.0.0.1/128"}, true},
		{"elsewhere", []string{"10.0.0.0/8", "192.168.0.0/16"}, false},
		{"IPv6 only", []string{"::1/128"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := startBackend(t, echo)
			var wl []netip.Prefix
			for _, s := range tt.whitelist {
				wl = append(wl, netip.MustParsePrefix(s))
			}
			b := newBalancer(t, Options{})
			port := freePort(t)
			l := Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{be.addr}, Whitelist: wl}
			set(t, b, "app", l)

			c := dial(t, port)
			if tt.allowed {
				io.WriteString(c, "ping")
				got := make([]byte, 4)
				if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
					t.Fatalf("allowed client: got %q, %v; want the echo", got, err)
				}
				return
			}
			expectClosed(t, c)
			// Lift the whitelist and go through once: the backend must have
			// seen that connection only.
			l.Whitelist = nil
			set(t, b, "app", l)
			c = dial(t, port)
			io.WriteString(c, "ping")
			if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
				t.Fatal(err)
			}
			if got := be.accepted.Load(); got != 1 {
				t.Errorf("backend connections: got %d, want 1 (the refused client must not be forwarded)", got)
			}
		})
	}
}

func TestBalancer_Set_Errors(t *testing.T) {
	a := startBackend(t, named("a"))
	other := startBackend(t, named("other"))
	b := newBalancer(t, Options{})
	port := freePort(t)
	set(t, b, "app", Listener{Name: "web-lb", Port: port, Targets: []netip.AddrPort{a.addr}})
	otherPort := freePort(t)
	set(t, b, "other", Listener{Name: "other-lb", Port: otherPort, Targets: []netip.AddrPort{other.addr}})

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port

	newPort := freePort(t)

	tests := []struct {
		name      string
		listeners []Listener
		want      string // in the error
		is        error  // matched with errors.Is, if not nil
	}{
		{
			name:      "port taken by another program",
			listeners: []Listener{{Name: "web-lb", Port: port}, {Name: "new-lb", Port: newPort}, {Name: "tcp-lb", Port: takenPort}},
			want:      fmt.Sprintf("balancer tcp-lb: listen 127.0.0.1:%d: address already in use", takenPort),
			is:        syscall.EADDRINUSE,
		},
		{
			name:      "port taken by another app",
			listeners: []Listener{{Name: "web-lb", Port: port}, {Name: "tcp-lb", Port: otherPort}},
			want:      fmt.Sprintf("balancer tcp-lb: listen 127.0.0.1:%d: address already in use (by a balancer of app other)", otherPort),
			is:        syscall.EADDRINUSE,
		},
		{
			name:      "port zero",
			listeners: []Listener{{Name: "web-lb", Port: port}, {Name: "tcp-lb", Port: 0}},
			want:      "balancer tcp-lb: invalid port 0: must be 1 to 65535",
		},
		{
			name:      "port too large",
			listeners: []Listener{{Name: "tcp-lb", Port: 65536}},
			want:      "balancer tcp-lb: invalid port 65536: must be 1 to 65535",
		},
		{
			name:      "port listed twice",
			listeners: []Listener{{Name: "web-lb", Port: port}, {Name: "tcp-lb", Port: port}},
			want:      fmt.Sprintf("balancer tcp-lb: port %d is also listed by balancer web-lb", port),
		},
		{
			name:      "invalid target",
			listeners: []Listener{{Name: "web-lb", Port: port, Targets: []netip.AddrPort{{}}}},
			want:      "balancer web-lb: port " + strconv.Itoa(port) + ": invalid target",
		},
		{
			name:      "invalid whitelist",
			listeners: []Listener{{Name: "web-lb", Port: port, Whitelist: []netip.Prefix{{}}}},
			want:      "balancer web-lb: invalid whitelist entry",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every failing Set also asks for a new target on the kept port:
			// it must not take effect.
			moved := startBackend(t, named("moved"))
			for i := range tt.listeners {
				if tt.listeners[i].Port == port && len(tt.listeners[i].Targets) == 0 {
					tt.listeners[i].Targets = []netip.AddrPort{moved.addr}
				}
			}
			err := b.Set(context.Background(), "app", tt.listeners)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Set: got error %v, want one containing %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Set: got error %v, want errors.Is %v", err, tt.is)
			}
			if got := askOnce(t, port, "still"); got != "a:still" {
				t.Errorf("previous listener after the failed Set: got %q, want %q", got, "a:still")
			}
			if got := askOnce(t, otherPort, "still"); got != "other:still" {
				t.Errorf("other app after the failed Set: got %q, want %q", got, "other:still")
			}
		})
	}
	// The port the failed Set bound before it met the taken one is free
	// again.
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(newPort))
	if err != nil {
		t.Fatalf("port bound by a failed Set: %v", err)
	}
	ln.Close()
}

func TestBalancer_Set_KeepsListener(t *testing.T) {
	a := startBackend(t, echo)
	c := startBackend(t, echo)
	b := newBalancer(t, Options{})
	port := freePort(t)
	l := Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{a.addr}}
	set(t, b, "app", l)

	// Clients connect without pause while the targets change: a rebind
	// would refuse some of them, and a target picked from a stale
	// configuration would fail others.
	var done atomic.Int64
	progress := make(chan struct{}, 1)
	stop := make(chan struct{})
	stopClients := sync.OnceFunc(func() { close(stop) })
	defer stopClients()
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				errs <- fmt.Errorf("connection %d: %w", n, err)
				return
			}
			_, err = conn.Write([]byte{1})
			if err == nil {
				_, err = io.ReadFull(conn, make([]byte, 1))
			}
			conn.Close()
			if err != nil {
				errs <- fmt.Errorf("connection %d: %w", n, err)
				return
			}
			done.Add(1)
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	}()
	// A few Sets per connection, paced by the clients so that a single
	// GOMAXPROCS cannot starve them.
	const want = 200
	timeout := time.After(20 * time.Second)
	for i := 0; done.Load() < want; i++ {
		l.Targets = []netip.AddrPort{[]netip.AddrPort{a.addr, c.addr}[i%2]}
		set(t, b, "app", l)
		if i%3 != 2 {
			continue
		}
		select {
		case <-progress:
		case <-timeout:
			t.Fatalf("only %d connections in 20s", done.Load())
		}
	}
	stopClients()
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

func TestBalancer_TargetSwap(t *testing.T) {
	a := startBackend(t, named("a"))
	bb := startBackend(t, named("b"))
	b := newBalancer(t, Options{})
	port := freePort(t)
	set(t, b, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{a.addr}})

	old := dialLines(t, port)
	if got := old.ask(t, "1"); got != "a:1" {
		t.Fatalf("first connection: got %q, want %q", got, "a:1")
	}
	set(t, b, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{bb.addr}})
	for i := range 3 {
		if got := askOnce(t, port, "new"); got != "b:new" {
			t.Errorf("new connection %d: got %q, want %q", i, got, "b:new")
		}
	}
	if got := old.ask(t, "2"); got != "a:2" {
		t.Errorf("long-lived connection after the swap: got %q, want %q", got, "a:2")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Drain(ctx, a.addr); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Drain with a connection open: got %v, want a deadline error", err)
	}
	if got := old.ask(t, "3"); got != "a:3" {
		t.Errorf("long-lived connection after a timed-out Drain: got %q, want %q", got, "a:3")
	}

	drained := make(chan error, 1)
	go func() { drained <- b.Drain(context.Background(), a.addr) }()
	old.Close()
	select {
	case err := <-drained:
		if err != nil {
			t.Errorf("Drain: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return once the connection ended")
	}

	if err := b.Drain(context.Background(), bb.addr); err == nil || !strings.Contains(err.Error(), "still a target") {
		t.Errorf("Drain of a routed target: got %v, want a still-a-target error", err)
	}
	if err := b.Drain(context.Background(), netip.MustParseAddrPort("127.0.0.1:1")); err != nil {
		t.Errorf("Drain of an unknown target: got %v, want nil", err)
	}
}

func TestBalancer_TargetDrainGrace(t *testing.T) {
	a := startBackend(t, named("a"))
	bb := startBackend(t, named("b"))
	b := newBalancer(t, Options{DrainGrace: 100 * time.Millisecond})
	port := freePort(t)
	set(t, b, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{a.addr}})

	old := dialLines(t, port)
	if got := old.ask(t, "1"); got != "a:1" {
		t.Fatalf("got %q, want %q", got, "a:1")
	}
	set(t, b, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{bb.addr}})
	start := time.Now()
	if err := b.Drain(context.Background(), a.addr); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("Drain returned after %v, before the drain grace", d)
	}
	expectClosed(t, old)
}

func TestBalancer_RemovedListener(t *testing.T) {
	a := startBackend(t, named("a"))
	bb := startBackend(t, named("b"))
	b := newBalancer(t, Options{})
	port := freePort(t)
	kept := freePort(t)
	set(t, b, "app",
		Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{a.addr}},
		Listener{Name: "kept", Port: kept, Targets: []netip.AddrPort{a.addr}})

	inflight := dialLines(t, port)
	if got := inflight.ask(t, "1"); got != "a:1" {
		t.Fatalf("got %q, want %q", got, "a:1")
	}
	set(t, b, "app", Listener{Name: "kept", Port: kept, Targets: []netip.AddrPort{a.addr}})

	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
		c.Close()
		t.Fatal("the removed port still accepts connections")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dialing the removed port: got %v, want connection refused", err)
	}
	if got := askOnce(t, kept, "k"); got != "a:k" {
		t.Errorf("kept port: got %q, want %q", got, "a:k")
	}
	// The port is free again at once, for this app or another, even with a
	// connection still open on it.
	set(t, b, "other", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{bb.addr}})
	if got := askOnce(t, port, "again"); got != "b:again" {
		t.Errorf("port reused by another app: got %q, want %q", got, "b:again")
	}
	for i := range 3 {
		if got := inflight.ask(t, strconv.Itoa(i)); got != "a:"+strconv.Itoa(i) {
			t.Errorf("in-flight connection on the removed port: got %q", got)
		}
	}
	inflight.CloseWrite()
	if rest, err := io.ReadAll(inflight.r); err != nil || len(rest) != 0 {
		t.Errorf("in-flight connection end: got %q, %v; want a clean EOF", rest, err)
	}
}

func TestBalancer_RemovedListenerDrainGrace(t *testing.T) {
	a := startBackend(t, named("a"))
	b := newBalancer(t, Options{DrainGrace: 100 * time.Millisecond})
	port := freePort(t)
	set(t, b, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{a.addr}})

	inflight := dialLines(t, port)
	if got := inflight.ask(t, "1"); got != "a:1" {
		t.Fatalf("got %q, want %q", got, "a:1")
	}
	set(t, b, "app")
	expectClosed(t, inflight)
}

func TestBalancer_DialRefused(t *testing.T) {
	good := startBackend(t, named("good"))
	dead := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t)))
	b := newBalancer(t, Options{})
	port := freePort(t)
	set(t, b, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{dead, good.addr, dead}})
	for i := range 6 {
		if got := askOnce(t, port, "x"); got != "good:x" {
			t.Errorf("connection %d: got %q, want %q", i, got, "good:x")
		}
	}

	set(t, b, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{dead}})
	expectClosed(t, dial(t, port))
	set(t, b, "app", Listener{Name: "lb", Port: port})
	expectClosed(t, dial(t, port))
}

func TestBalancer_Shutdown(t *testing.T) {
	a := startBackend(t, named("a"))
	b := newBalancer(t, Options{})
	port := freePort(t)
	set(t, b, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{a.addr}})
	open := dialLines(t, port)
	if got := open.ask(t, "1"); got != "a:1" {
		t.Fatalf("got %q, want %q", got, "a:1")
	}

	done := make(chan error, 1)
	go func() { done <- b.Shutdown(context.Background()) }()
	waitFor(t, "the listener to close", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if got := open.ask(t, "2"); got != "a:2" {
		t.Errorf("open connection during Shutdown: got %q, want %q", got, "a:2")
	}
	open.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return once the connection ended")
	}
	if err := b.Set(context.Background(), "app", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Shutdown: got %v, want ErrClosed", err)
	}

	// A Shutdown whose ctx ends cuts what is left.
	b2 := newBalancer(t, Options{})
	set(t, b2, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{a.addr}})
	stuck := dialLines(t, port)
	stuck.ask(t, "1")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b2.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a stuck connection: got %v, want a deadline error", err)
	}
	expectClosed(t, stuck)
}

func TestBalancer_Close_NoGoroutineLeak(t *testing.T) {
	baseline := runtime.NumGoroutine()

	a := startBackend(t, named("a"))
	bb := startBackend(t, named("b"))
	b := New(Options{BindAddr: "127.0.0.1"})
	p1, p2 := freePort(t), freePort(t)
	set(t, b, "app",
		Listener{Name: "one", Port: p1, Targets: []netip.AddrPort{a.addr}},
		Listener{Name: "two", Port: p2, Targets: []netip.AddrPort{a.addr}})
	var conns []*lineConn
	for range 5 {
		for _, p := range []int{p1, p2} {
			c := dialLines(t, p)
			c.ask(t, "hi")
			conns = append(conns, c)
		}
	}
	// Leave some connections draining: on a removed port, to a removed
	// target.
	set(t, b, "app", Listener{Name: "two", Port: p2, Targets: []netip.AddrPort{bb.addr}})
	for range 3 {
		c := dialLines(t, p2)
		c.ask(t, "hi")
		conns = append(conns, c)
	}
	half := dial(t, p2)
	half.CloseWrite()

	start := time.Now()
	b.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v: it must close open connections, not wait for them", d)
	}
	b.Close() // idempotent
	for _, c := range append(conns, &lineConn{TCPConn: half}) {
		expectClosed(t, c)
	}
	a.stop()
	bb.stop()
	waitFor(t, fmt.Sprintf("goroutines back to %d", baseline), func() bool {
		return runtime.NumGoroutine() <= baseline
	})
}

func TestBalancer_LargeTransfer(t *testing.T) {
	be := startBackend(t, echo)
	b := newBalancer(t, Options{})
	port := freePort(t)
	set(t, b, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{be.addr}})

	size := int64(largeTransfer)
	c := dial(t, port)
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	var wg sync.WaitGroup
	var sent [sha256.Size]byte
	var sendErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		h := sha256.New()
		src := io.LimitReader(rand.NewChaCha8([32]byte{1}), size)
		_, sendErr = io.CopyBuffer(io.MultiWriter(c, h), src, make([]byte, 256<<10))
		if sendErr == nil {
			sendErr = c.CloseWrite()
		}
		h.Sum(sent[:0])
	}()
	h := sha256.New()
	n, err := io.CopyBuffer(h, c, make([]byte, 256<<10))
	wg.Wait()
	if sendErr != nil {
		t.Fatalf("sending: %v", sendErr)
	}
	if err != nil {
		t.Fatalf("receiving: %v", err)
	}
	if n != size {
		t.Errorf("received %d bytes, want %d", n, size)
	}
	if got := h.Sum(nil); !bytes.Equal(got, sent[:]) {
		t.Errorf("checksum: got %x, want %x", got, sent)
	}
}
