// Package balancer is the rack's TCP front door: each balancer of an app's
// manifest (`balancers:`, spec/convox.md §1.8) listens on host ports and
// forwards every connection to one of the healthy processes of its service,
// round robin, over loopback.
//
// The engine owns every decision and pushes the result here: Set replaces
// all listeners of one app at once, and Drain waits for the connections still
// open to a process the engine has taken out of every listener, so it can
// stop the process without cutting them. The balancer knows nothing of apps
// beyond their names, and it imports nothing of the rack.
//
// Lifecycle, as the rack uses it:
//
//  1. New.
//  2. The engine calls Set for an app on promote (a port that is taken or
//     invalid fails it, and the app keeps its previous listeners) and again
//     whenever the app's healthy processes change: a change of targets only
//     costs no system call. Before it stops a process it took out of Set, it
//     calls Drain.
//  3. On shutdown, Shutdown (or Close): every goroutine the balancer started
//     has ended when it returns.
//
// On Linux, event loops forward the connections (loop_linux.go): each on a
// locked thread over an edge-triggered epoll of raw descriptors, as haproxy
// does, with no goroutine per connection. Each direction copies its first
// bytes through a small buffer and the rest with splice(2) through a pipe, so
// that a bulk transfer's bytes never enter user space while a short
// connection spares splice's extra system calls. Elsewhere two goroutines per
// connection do the same with io.Copy (forward_other.go). A connection that
// ends one direction (shutdown(SHUT_WR), FIN) has it ended on the other side
// too while the other direction keeps flowing: half-closed protocols work
// through the balancer.
package balancer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Options configure a Balancer. The zero value is usable: listeners on all
// interfaces, the default drain grace, silent.
type Options struct {
	// Log receives connections that reached no target, accept failures and
	// drains cut short. Nil means silent.
	Log *slog.Logger
	// DrainGrace is how long the connections of a removed listener or to a
	// removed target may go on before the balancer closes them. Zero means
	// DefaultDrainGrace; negative means they are closed at once.
	DrainGrace time.Duration
	// BindAddr is the host address listeners bind to: "" means every
	// interface (IPv4 and IPv6); tests use "127.0.0.1".
	BindAddr string
	// Loops is how many event loops forward connections on Linux; zero
	// means one per two Ps.
	Loops int
}

// DefaultDrainGrace is the drain grace when Options leave it unset.
const DefaultDrainGrace = 30 * time.Second

// dialTimeout bounds connecting to a target. Targets are on loopback, where a
// connect either succeeds or is refused at once; only a target whose accept
// queue is full makes the kernel retry the SYN, and then trying the next
// target beats waiting.
const dialTimeout = 3 * time.Second

// Keep-alive probes start after keepAliveIdle without traffic and declare
// the peer gone after keepAliveCount unanswered probes, keepAliveInterval
// apart: Go's defaults, about two and a half minutes in all. They end the
// connections of clients that vanished without a FIN or a reset.
const (
	keepAliveIdle     = 15 * time.Second
	keepAliveInterval = 15 * time.Second
	keepAliveCount    = 9
)

var keepAliveConfig = net.KeepAliveConfig{
	Enable:   true,
	Idle:     keepAliveIdle,
	Interval: keepAliveInterval,
	Count:    keepAliveCount,
}

// ErrClosed is returned by Set once Close or Shutdown has been called.
var ErrClosed = errors.New("balancer: closed")

// Balancer forwards TCP connections from host ports to targets. Its methods
// are safe for concurrent use.
type Balancer struct {
	log    *slog.Logger
	grace  time.Duration
	bind   string
	lc     net.ListenConfig
	dialer net.Dialer // elsewhere than on Linux
	fwd    forwarding
	loops  int // Options.Loops

	// wg counts the goroutines the balancer starts (drain timers, and
	// elsewhere than on Linux accept loops and connections; fwd counts the
	// event loops), so that Close can wait for them.
	wg sync.WaitGroup

	// mu guards everything below and the mutable fields of listener, target
	// and conn. It is held for bookkeeping only, never across a dial or a
	// copy: a short critical section at each end of a connection (and one
	// per target that refuses it).
	mu       sync.Mutex
	closed   bool
	apps     map[string]map[int]*listener // app → port → accepting listener
	draining map[*listener]struct{}       // removed listeners with open connections
	targets  map[netip.AddrPort]*target   // targets in a listener or with open connections
	conns    int                          // open connections, for Shutdown
}

// New returns a Balancer with no listener.
func New(opts Options) *Balancer {
	b := &Balancer{
		log:      opts.Log,
		grace:    opts.DrainGrace,
		bind:     opts.BindAddr,
		loops:    opts.Loops,
		lc:       listenConfig(),
		dialer:   net.Dialer{KeepAlive: -1}, // the timeout is connect's context
		apps:     map[string]map[int]*listener{},
		draining: map[*listener]struct{}{},
		targets:  map[netip.AddrPort]*target{},
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.grace == 0 {
		b.grace = DefaultDrainGrace
	}
	// Keep-alive is on for the client's connection (see keepAliveIdle) but
	// not for the target's: a target is a process on loopback, which resets
	// its connections when it dies, and four setsockopt calls per dial show
	// in connections per second. Go disables Nagle on every TCP connection:
	// the balancer forwards bytes as they come.
	return b
}

// Set replaces every listener of app with listeners. It is transactional:
// ports new to the app are bound before anything else changes, so a port
// that is invalid, listed twice or taken (by another app or another program)
// returns an error naming the balancer and the port, such as
//
//	balancer web-lb: listen :6000: address already in use
//
// and leaves the app's previous listeners serving as they were.
//
// On success:
//   - a port the app keeps keeps its socket (no rebind, no connection
//     refused meanwhile); its targets and whitelist are swapped atomically,
//     and connections already open stay with the target they have;
//   - a port the app no longer lists stops accepting at once; its open
//     connections go on until they end or DrainGrace passes, then are closed;
//   - a target no longer in any listener gets no new connection; the open
//     ones go on until they end or DrainGrace passes (see Drain).
//
// Set with only targets changed makes no system call, so the engine may call
// it on every health change. An empty listeners removes the app. ctx bounds
// binding the new ports.
func (b *Balancer) Set(ctx context.Context, app string, listeners []Listener) error {
	specs, err := b.check(listeners)
	if err != nil {
		return err
	}

	b.mu.Lock()
	gone, err := b.set(ctx, app, specs)
	b.mu.Unlock()
	// The sockets of removed ports are closed once nothing polls them any
	// more: wait, so that the ports are free when Set returns.
	for _, g := range gone {
		<-g
	}
	return err
}

// set does Set's work with b.mu held, and returns what tells when the
// sockets of the ports it removed are closed.
func (b *Balancer) set(ctx context.Context, app string, specs []Listener) (gone []chan struct{}, err error) {
	if b.closed {
		return nil, ErrClosed
	}
	old := b.apps[app]

	// Bind first: until every new port is ours, nothing has changed.
	bound := map[int]*lsock{}
	for _, spec := range specs {
		if old[spec.Port] != nil {
			continue
		}
		s, err := b.listen(ctx, app, spec)
		if err != nil {
			for _, s := range bound {
				s.close()
			}
			return nil, err
		}
		bound[spec.Port] = s
	}

	// From here on nothing fails. New configurations take their targets
	// before old ones let go, so a target that stays is never seen removed.
	next := make(map[int]*listener, len(specs))
	for _, spec := range specs {
		cfg := b.newConfig(spec)
		if l := old[spec.Port]; l != nil {
			b.release(l.cfg.Swap(cfg))
			next[spec.Port] = l
			continue
		}
		l := &listener{
			app:   app,
			port:  spec.Port,
			sock:  bound[spec.Port],
			conns: map[*conn]struct{}{},
		}
		l.cfg.Store(cfg)
		next[spec.Port] = l
		b.serve(l)
	}
	for port, l := range old {
		if next[port] == nil {
			b.retire(l)
			b.release(l.cfg.Load())
			gone = append(gone, l.sock.gone)
		}
	}
	if len(next) == 0 {
		delete(b.apps, app)
	} else {
		b.apps[app] = next
	}
	return gone, nil
}

// check validates listeners and returns them normalised: whitelists masked,
// targets deduplicated.
func (b *Balancer) check(listeners []Listener) ([]Listener, error) {
	specs := make([]Listener, 0, len(listeners))
	byPort := map[int]string{}
	for _, l := range listeners {
		if l.Port < 1 || l.Port > 65535 {
			return nil, fmt.Errorf("balancer %s: invalid port %d: must be 1 to 65535", l.Name, l.Port)
		}
		if other, dup := byPort[l.Port]; dup {
			return nil, fmt.Errorf("balancer %s: port %d is also listed by balancer %s", l.Name, l.Port, other)
		}
		byPort[l.Port] = l.Name
		spec := Listener{Name: l.Name, Service: l.Service, Port: l.Port}
		for _, t := range l.Targets {
			if !t.IsValid() || t.Port() == 0 {
				return nil, fmt.Errorf("balancer %s: port %d: invalid target %q", l.Name, l.Port, t)
			}
			t = netip.AddrPortFrom(t.Addr().Unmap(), t.Port())
			if !slices.Contains(spec.Targets, t) {
				spec.Targets = append(spec.Targets, t)
			}
		}
		for _, p := range l.Whitelist {
			if !p.IsValid() {
				return nil, fmt.Errorf("balancer %s: invalid whitelist entry %q", l.Name, p)
			}
			spec.Whitelist = append(spec.Whitelist, unmapPrefix(p))
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// listen binds spec's port for app. b.mu is held.
func (b *Balancer) listen(ctx context.Context, app string, spec Listener) (*lsock, error) {
	addr := net.JoinHostPort(b.bind, strconv.Itoa(spec.Port))
	ln, err := b.lc.Listen(ctx, "tcp", addr)
	if err != nil {
		// net's error reads "listen tcp :6000: bind: address already in
		// use"; keep its cause (still matching syscall.EADDRINUSE) and say
		// who else holds the port when it is one of ours.
		cause := err
		for u := errors.Unwrap(cause); u != nil; u = errors.Unwrap(cause) {
			cause = u
		}
		if owner := b.owner(spec.Port); owner != "" && owner != app {
			return nil, fmt.Errorf("balancer %s: listen %s: %w (by a balancer of app %s)", spec.Name, addr, cause, owner)
		}
		return nil, fmt.Errorf("balancer %s: listen %s: %w", spec.Name, addr, cause)
	}
	s, err := b.adopt(ln.(*net.TCPListener))
	if err != nil {
		return nil, fmt.Errorf("balancer %s: listen %s: %w", spec.Name, addr, err)
	}
	return s, nil
}

// owner returns the app whose listener holds port, if any. b.mu is held.
func (b *Balancer) owner(port int) string {
	for app, ls := range b.apps {
		if ls[port] != nil {
			return app
		}
	}
	return ""
}

// Close stops every listener and closes every connection at once, then waits
// until every goroutine of the balancer has ended. It is idempotent.
func (b *Balancer) Close() error {
	b.mu.Lock()
	b.stopAll()
	for l := range b.draining {
		b.killListener(l)
	}
	for _, t := range b.targets {
		b.stopTimer(&t.timer)
	}
	b.mu.Unlock()
	b.stopForwarding()
	b.wg.Wait()
	return nil
}

// Shutdown stops every listener at once, waits until the open connections
// end (or DrainGrace passes for them, or ctx is done), then closes what is
// left as Close does. It returns an error wrapping ctx's when it cut
// connections because ctx ended.
func (b *Balancer) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	b.stopAll()
	b.mu.Unlock()
	err := b.waitIdle(ctx)
	b.Close()
	return err
}

// waitIdle waits until no connection is open or ctx is done.
func (b *Balancer) waitIdle(ctx context.Context) error {
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		b.mu.Lock()
		n := b.conns
		b.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("balancer: shutdown: closing %d open connections: %w", n, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// stopAll marks the balancer closed and retires every listener. b.mu is
// held.
func (b *Balancer) stopAll() {
	b.closed = true
	for app, ls := range b.apps {
		for _, l := range ls {
			b.retire(l)
			b.release(l.cfg.Load())
		}
		delete(b.apps, app)
	}
}

// stopTimer stops *tm, if any, and accounts for its goroutine, which will
// not run. b.mu is held.
func (b *Balancer) stopTimer(tm **time.Timer) {
	if *tm != nil && (*tm).Stop() {
		b.wg.Done()
	}
	*tm = nil
}

// afterGrace runs f after the drain grace, as a goroutine Close waits for,
// and returns its timer for stopTimer. f runs with b.mu held.
func (b *Balancer) afterGrace(f func()) *time.Timer {
	b.wg.Add(1)
	return time.AfterFunc(max(b.grace, 0), func() {
		defer b.wg.Done()
		b.mu.Lock()
		defer b.mu.Unlock()
		f()
	})
}
