//go:build linux

package router

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The loops wait the way nginx does: level-triggered epoll over raw
// descriptors, reads only of sockets epoll reported, and raw system calls
// (no entersyscall, so sysmon never hands the thread's P away) for
// everything that cannot block. A loop is a plain goroutine, not locked to
// its thread: a busy loop never parks, so the runtime preempts it every
// 10 ms, and preempting a locked goroutine hands its P to another thread
// and back (BENCHMARKS.md, the balancer's loops). A loop owns its
// clients, its connections to processes and its idle pools; the only state
// it shares is the Router's (the table, the targets' in-flight counts) and
// the listening socket, which every loop polls with EPOLLEXCLUSIVE.

// Tunables of the loops.
const (
	loopReadBuffer = 64 << 10
	// loopMaxIdle bounds each loop's idle connections to one target.
	loopMaxIdle = 128
	// loopMaxPipelined bounds what a client may send ahead while a
	// response is in flight; more closes the connection.
	loopMaxPipelined = 1 << 20
	// loopTick is how often a loop with requests awaiting a response looks
	// at their deadlines; loopSweep, how often it looks at idle
	// connections' when none are.
	loopTick  = 50 * time.Millisecond
	loopSweep = time.Second
	// loopIdleUpstream closes a pooled connection to a process unused
	// that long, as the direct path's pool does (idleSweep).
	loopIdleUpstream = 90 * time.Second
)

type frontLoops struct {
	f     *Front
	loops []*loop
	lnfd  int
	done  sync.WaitGroup
	once  sync.Once
}

func (fl *frontLoops) start(f *Front) error {
	sc, ok := f.ln.(syscall.Conn)
	if !ok {
		return errors.New("the listener has no file descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return err
	}
	if dupErr != nil {
		return fmt.Errorf("duplicating the listener: %w", dupErr)
	}
	fl.f, fl.lnfd = f, fd
	n := f.Loops
	if n <= 0 {
		// Half the CPUs: the processes behind the router run on the same
		// host and need the others, and fewer, busier loops take more
		// events per wake-up. On 2 CPUs, one loop served 0.99× nginx's
		// requests/s at 23 µs each, two 0.93× at 30 µs (BENCHMARKS.md).
		n = max(1, runtime.GOMAXPROCS(0)/2)
	}
	for range n {
		l, err := newLoop(f, fd)
		if err != nil {
			for _, l := range fl.loops {
				l.closeFds()
			}
			fl.loops = nil
			unix.Close(fd)
			return err
		}
		fl.loops = append(fl.loops, l)
	}
	// The loops have the socket now: Go's poller would only be woken by
	// connections nobody accepts there.
	f.ln.Close()
	for _, l := range fl.loops {
		fl.done.Add(1)
		go l.run(&fl.done)
	}
	return nil
}

// stop asks the loops to finish: they stop accepting, close idle clients,
// and end once their responses in flight are done, or at once when ctx
// ends.
func (fl *frontLoops) stop(ctx context.Context) error {
	if fl.loops == nil {
		return nil
	}
	var err error
	fl.once.Do(func() {
		for _, l := range fl.loops {
			l.stopping.Store(stopGraceful)
			l.wake()
		}
		done := make(chan struct{})
		go func() { fl.done.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			for _, l := range fl.loops {
				l.stopping.Store(stopNow)
				l.wake()
			}
			<-done
			err = fmt.Errorf("stopping the router's event loops: %w", context.Cause(ctx))
		}
		// Only now: a wake after a loop ended must not write to a
		// descriptor number reused meanwhile.
		for _, l := range fl.loops {
			l.closeFds()
		}
		unix.Close(fl.lnfd)
	})
	return err
}

const (
	stopGraceful = 1
	stopNow      = 2
)

type loop struct {
	f    *Front
	rt   *Router
	ep   int
	efd  int // eventfd that wakes the loop for stop
	lnfd int

	clients map[int]*client
	ups     map[int]*upstream
	idle    map[*target][]*upstream
	// waiting counts the requests sent whose response head is not in.
	waiting int

	buf      []byte
	plain    []byte // decrypted, over HTTPS
	now      time.Time
	swept    time.Time
	stopping atomic.Int32
	stopped  bool // the listener is out of the poll set

	headerTimeout, idleTimeout time.Duration

	// mu guards the clients whose TLS handshakes are done, queued for the
	// loop by their goroutines (front_tls_linux.go).
	mu      sync.Mutex
	adopted []*client
	closing bool
}

// client is a connection from a client, served by one loop.
type client struct {
	fd   int
	addr netip.Addr // unmapped, for whitelists
	ip   string     // for X-Forwarded-For
	// tc is the client's TLS connection over tw, over HTTPS; nil over
	// plain HTTP.
	tc *tls.Conn
	tw *tlsWire

	// in holds what the client sent and the loop has not finished with:
	// the request in flight (its first reqLen bytes), then anything sent
	// ahead.
	in     []byte
	reqLen int
	up     *upstream // the exchange in flight, if any

	req        []byte // the request in flight as the process gets it
	out        []byte // the response head being written
	head       bool   // the request is HEAD: its response has no body
	replayable bool   // idempotent and without body: may be sent twice
	retried    bool   // moved to another target once already
	close      bool   // close after the response

	reading  bool      // deadline is the header timeout of a request coming in
	deadline time.Time // of the request coming in, or of the idle connection
}

// upstream is a connection to a process.
type upstream struct {
	fd     int
	t      *target
	rte    *route // of the exchange in flight
	c      *client
	pooled bool // in the loop's idle pool
	reused bool // has served a request before

	connecting bool
	pollOut    bool // EPOLLOUT is in its poll set
	wrote      int  // bytes of c.req written
	received   bool // some of the response came
	in         []byte
	need       int64 // body bytes still to pass on; -1 until the head is in
	keep       bool  // may serve another request after this one
	deadline   time.Time
	idleSince  time.Time
}

func newLoop(f *Front, lnfd int) (*loop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	l := &loop{
		f: f, rt: f.rt, ep: ep, efd: efd, lnfd: lnfd,
		clients: map[int]*client{}, ups: map[int]*upstream{}, idle: map[*target][]*upstream{},
		buf:           make([]byte, loopReadBuffer),
		plain:         make([]byte, loopReadBuffer),
		headerTimeout: cmpDuration(f.srv.ReadHeaderTimeout, f.srv.ReadTimeout),
		idleTimeout:   cmpDuration(f.srv.IdleTimeout, f.srv.ReadTimeout),
	}
	if err := l.poll(unix.EPOLL_CTL_ADD, efd, unix.EPOLLIN); err != nil {
		l.closeFds()
		return nil, err
	}
	if err := l.poll(unix.EPOLL_CTL_ADD, lnfd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE); err != nil {
		l.closeFds()
		return nil, err
	}
	return l, nil
}

func cmpDuration(a, b time.Duration) time.Duration {
	if a > 0 {
		return a
	}
	return b
}

func (l *loop) closeFds() {
	unix.Close(l.efd)
	unix.Close(l.ep)
}

func (l *loop) poll(op, fd int, events uint32) error {
	if err := unix.EpollCtl(l.ep, op, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)}); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

func (l *loop) wake() {
	one := [8]byte{1}
	unix.Write(l.efd, one[:])
}

func (l *loop) run(done *sync.WaitGroup) {
	defer done.Done()
	events := make([]unix.EpollEvent, 128)
	for {
		n := l.wait(events)
		l.now = time.Now()
		for i := range n {
			l.event(events[i])
		}
		if l.now.Sub(l.swept) >= l.sweepEvery() {
			l.sweep()
		}
		if s := l.stopping.Load(); s != 0 && l.stop(s) {
			return
		}
	}
}

// wait returns the next events, without entering the runtime's system call
// bookkeeping when some are ready already.
func (l *loop) wait(events []unix.EpollEvent) int {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(l.ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e == 0 && n > 0 {
		return int(n)
	}
	timeout := -1
	switch {
	case l.waiting > 0 || l.stopping.Load() != 0:
		timeout = int(loopTick / time.Millisecond)
	case len(l.clients) > 0 || len(l.ups) > 0:
		timeout = int(loopSweep / time.Millisecond)
	}
	m, err := unix.EpollWait(l.ep, events, timeout)
	if err != nil {
		return 0 // EINTR
	}
	return m
}

func (l *loop) sweepEvery() time.Duration {
	if l.waiting > 0 {
		return loopTick
	}
	return loopSweep
}

func (l *loop) event(ev unix.EpollEvent) {
	fd := int(ev.Fd)
	switch {
	case fd == l.lnfd:
		l.accept()
	case fd == l.efd:
		var b [8]byte
		unix.Read(l.efd, b[:])
		l.takeAdopted()
	default:
		if c := l.clients[fd]; c != nil {
			l.clientEvent(c, ev.Events)
		} else if u := l.ups[fd]; u != nil {
			l.upEvent(u, ev.Events)
		}
	}
}

func (l *loop) accept() {
	for range 64 { // then let the other loops and the events in
		fd, sa, err := unix.Accept4(l.lnfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			if err != unix.EAGAIN && err != unix.EINTR && err != unix.ECONNABORTED {
				// Out of descriptors, say: stop polling the listener
				// until the next sweep rather than spin on it.
				l.rt.log.Warn("accepting a connection failed", "error", err)
				l.poll(unix.EPOLL_CTL_DEL, l.lnfd, 0)
				l.stopped = true
			}
			return
		}
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		c := &client{fd: fd, reading: true}
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			c.addr = netip.AddrFrom4(a.Addr)
		case *unix.SockaddrInet6:
			c.addr = netip.AddrFrom16(a.Addr).Unmap()
		}
		c.ip = c.addr.String()
		if l.f.tls != nil {
			l.handshake(fd, c)
			continue
		}
		if l.headerTimeout > 0 {
			c.deadline = l.now.Add(l.headerTimeout)
		}
		if err := l.poll(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN|unix.EPOLLRDHUP); err != nil {
			unix.Close(fd)
			continue
		}
		l.clients[fd] = c
	}
}

func (l *loop) clientEvent(c *client, events uint32) {
	n, err := rawRead(c.fd, l.buf)
	if err == unix.EAGAIN {
		return
	}
	if n <= 0 || events&unix.EPOLLERR != 0 {
		l.dropClient(c) // gone, or going: nobody will read an answer
		return
	}
	if c.tc != nil {
		c.tw.in = append(c.tw.in, l.buf[:n]...)
		l.decrypt(c)
		return
	}
	c.in = append(c.in, l.buf[:n]...)
	if c.up != nil {
		if len(c.in) > loopMaxPipelined {
			l.dropClient(c)
		}
		return
	}
	l.serve(c)
}

// serve starts the exchange of the request at the start of c.in, once it is
// all in.
func (l *loop) serve(c *client) {
	if c.up != nil || len(c.in) == 0 {
		return
	}
	if !c.reading {
		c.reading = true
		c.deadline = time.Time{}
		if l.headerTimeout > 0 {
			c.deadline = l.now.Add(l.headerTimeout)
		}
	}
	req, st := parseRequest(c.in)
	switch st {
	case headIncomplete:
		return
	case headHandOff:
		l.handOff(c, nil)
		return
	}
	if len(c.in) < req.headLen+req.bodyLen {
		return // the body is on its way
	}
	rt := l.rt
	rte := rt.table.Load().lookup(req.host)
	plain := c.tc == nil
	if rte == nil || !rte.direct || rte.sticky || plain && rte.redirect || len(rte.targets) == 0 ||
		!rte.allowsAddr(c.addr) ||
		plain && rt.acme != nil && bytes.HasPrefix(req.path, []byte(acmeChallengePrefix)) ||
		rt.maxBody > 0 && int64(req.bodyLen) > rt.maxBody {
		// The router's answers, and what the loop does not do.
		l.handOff(c, nil)
		return
	}
	t := rte.targets[(rte.next.Add(1)-1)%uint64(len(rte.targets))]
	if !t.acquire() {
		l.handOff(c, nil) // a stale table: net/http reads the new one
		return
	}
	c.reading, c.deadline = false, time.Time{}
	c.reqLen = req.headLen + req.bodyLen
	c.head = string(req.method) == "HEAD"
	c.replayable = req.bodyLen == 0 && isIdempotent(req.method)
	c.retried = false
	c.close = c.close || req.close
	proto := "https"
	if plain {
		proto = "http"
	}
	c.req = writeRequest(c.req[:0], c.in, &req, c.ip, proto, l.f.port)
	c.req = append(c.req, c.in[req.headLen:c.reqLen]...)
	l.send(c, rte, t, false)
}

func isIdempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// send sends c.req to t, acquired, on an idle connection unless fresh.
func (l *loop) send(c *client, rte *route, t *target, fresh bool) {
	var u *upstream
	if !fresh {
		u = l.getIdle(t, !c.replayable)
	}
	if u == nil {
		var err error
		if u, err = l.dial(t); err != nil {
			l.failed(c, rte, t, &net.OpError{Op: "dial", Net: "tcp", Err: err})
			return
		}
	}
	u.c, u.rte, c.up = c, rte, u
	u.wrote, u.received, u.need, u.in = 0, false, -1, u.in[:0]
	u.deadline = l.now.Add(rte.timeout)
	l.waiting++
	if !u.connecting {
		l.write(u)
	}
}

func (l *loop) dial(t *target) (*upstream, error) {
	family := unix.AF_INET
	var sa unix.Sockaddr
	if a := t.addr.Addr(); a.Is4() {
		sa = &unix.SockaddrInet4{Port: int(t.addr.Port()), Addr: a.As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(t.addr.Port()), Addr: a.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	u := &upstream{fd: fd, t: t}
	switch err := unix.Connect(fd, sa); err {
	case nil:
	case unix.EINPROGRESS:
		u.connecting, u.pollOut = true, true
	default:
		unix.Close(fd)
		return nil, os.NewSyscallError("connect", err)
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	events := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if u.pollOut {
		events |= unix.EPOLLOUT
	}
	if err := l.poll(unix.EPOLL_CTL_ADD, fd, events); err != nil {
		unix.Close(fd)
		return nil, err
	}
	l.ups[fd] = u
	return u, nil
}

// getIdle returns a pooled connection to t, the most recently used; with
// check, only one the process has not closed.
func (l *loop) getIdle(t *target, check bool) *upstream {
	list := l.idle[t]
	for len(list) > 0 {
		u := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		u.pooled = false
		if check && !aliveFd(u.fd) {
			l.closeUp(u)
			continue
		}
		l.idle[t] = list
		return u
	}
	delete(l.idle, t)
	return nil
}

// aliveFd reports whether the process has not closed the idle connection fd.
func aliveFd(fd int) bool {
	var b [1]byte
	_, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err == unix.EAGAIN
}

func (l *loop) upEvent(u *upstream, events uint32) {
	if u.c == nil {
		l.closeUp(u) // idle: closed by the process, or talking unasked
		return
	}
	if u.connecting {
		if events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		if e, err := unix.GetsockoptInt(u.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || e != 0 {
			if err == nil {
				err = unix.Errno(e)
			}
			l.failed(u.c, u.rte, u.t, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)})
			return
		}
		u.connecting = false
		l.write(u)
		return
	}
	if u.wrote < len(u.c.req) && events&unix.EPOLLOUT != 0 {
		l.write(u)
		if u.c == nil {
			return
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		l.readUp(u)
	}
}

// write writes what is left of the request to u.
func (l *loop) write(u *upstream) {
	req := u.c.req
	for u.wrote < len(req) {
		n, err := rawWrite(u.fd, req[u.wrote:])
		if err == unix.EAGAIN {
			if !u.pollOut {
				u.pollOut = true
				l.poll(unix.EPOLL_CTL_MOD, u.fd, unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLOUT)
			}
			return
		}
		if err != nil {
			l.failed(u.c, u.rte, u.t, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", err)})
			return
		}
		u.wrote += n
	}
	if u.pollOut {
		u.pollOut = false
		l.poll(unix.EPOLL_CTL_MOD, u.fd, unix.EPOLLIN|unix.EPOLLRDHUP)
	}
}

// readUp reads the response to the request in flight on u.
func (l *loop) readUp(u *upstream) {
	c := u.c
	n, err := rawRead(u.fd, l.buf)
	if err == unix.EAGAIN {
		return
	}
	if n <= 0 {
		if err == nil {
			err = io.EOF
		}
		if u.need < 0 {
			l.failed(c, u.rte, u.t, &net.OpError{Op: "read", Net: "tcp", Err: err})
			return
		}
		// The body was cut short: so is the client's response.
		l.rt.log.Debug("copying the response failed", "app", u.rte.app, "service", u.rte.service,
			"target", u.t.host, "error", err)
		l.dropClient(c)
		return
	}
	u.received = true
	if u.need >= 0 {
		b := l.buf[:n]
		if int64(n) > u.need {
			u.keep, b = false, b[:u.need] // more than it announced
		}
		u.need -= int64(len(b))
		l.toClient(u, b)
		return
	}
	u.in = append(u.in, l.buf[:n]...)
	out, res, st := parseResponse(c.out[:0], u.in, c.head, c.close)
	c.out = out
	switch st {
	case headIncomplete:
		return
	case headHandOff:
		l.handOffExchange(u)
		return
	}
	l.waiting--
	// An answer before the whole request went out (a 413, say) leaves the
	// connection in the middle of a request.
	u.keep = !res.close && u.wrote == len(c.req)
	body := u.in[res.headLen:]
	if int64(len(body)) > res.bodyLen {
		u.keep, body = false, body[:res.bodyLen]
	}
	c.out = append(c.out, body...)
	u.need = res.bodyLen - int64(len(body))
	u.in = u.in[:0]
	l.toClient(u, c.out)
}

// toClient writes b, part of the response in flight on u, to its client;
// a client that does not take it all at once is left to a relay.
func (l *loop) toClient(u *upstream, b []byte) {
	c := u.c
	n, err := l.writeClient(c, b)
	switch {
	case err != nil:
		l.dropClient(c)
		return
	case n < len(b) || c.tw != nil && len(c.tw.out) > 0:
		l.relay(u, b[n:])
		return
	}
	if u.need == 0 {
		l.done(u)
	}
}

// writeClient writes b to c as far as its socket takes it without
// blocking. Over TLS, all of b is taken, and what the socket did not take
// waits in c.tw.out.
func (l *loop) writeClient(c *client, b []byte) (int, error) {
	if c.tc != nil {
		return c.tc.Write(b)
	}
	w := 0
	for w < len(b) {
		n, err := rawWrite(c.fd, b[w:])
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			return w, err
		}
		w += n
	}
	return w, nil
}

// done ends the exchange on u, whose response went out whole.
func (l *loop) done(u *upstream) {
	c, t := u.c, u.t
	u.c, u.rte, c.up = nil, nil, nil
	t.release()
	if u.keep && len(u.in) == 0 && !t.removed.Load() && len(l.idle[t]) < loopMaxIdle && l.stopping.Load() == 0 {
		u.reused, u.pooled, u.idleSince = true, true, l.now
		l.idle[t] = append(l.idle[t], u)
	} else {
		l.closeUp(u)
	}
	l.next(c)
}

// next readies c for its next request, or closes it.
func (l *loop) next(c *client) {
	c.in = c.in[:copy(c.in, c.in[c.reqLen:])]
	c.reqLen = 0
	if c.close || l.stopping.Load() != 0 {
		l.closeClient(c)
		return
	}
	c.reading, c.deadline = false, time.Time{}
	if l.idleTimeout > 0 {
		c.deadline = l.now.Add(l.idleTimeout)
	}
	l.serve(c)
}

// failed ends an exchange that got no response head from t: it sends the
// request again where the direct path would (send), or answers 502 or 504.
func (l *loop) failed(c *client, rte *route, t *target, err error) {
	u := c.up
	if u != nil {
		l.waiting--
		c.up, u.c = nil, nil
		l.closeUp(u)
	}
	log := l.rt.log.With("app", rte.app, "service", rte.service, "target", t.host, "error", err)
	if dialFailed(err) && !c.retried {
		if t2 := l.repick(rte, t); t2 != nil {
			c.retried = true
			log.Debug("retrying on another process")
			l.send(c, rte, t2, false)
			return
		}
	}
	if u != nil && u.reused && !u.received && c.replayable && !isTimeout(err) {
		log.Debug("the process closed a pooled connection; sending again on a new one")
		l.send(c, rte, t, true)
		return
	}
	t.release()
	code, msg := http.StatusBadGateway, rte.name()+" could not be reached"
	if isTimeout(err) {
		code, msg = http.StatusGatewayTimeout, fmt.Sprintf("%s did not answer within %s", rte.name(), rte.timeout)
		log.Info("process timed out", "timeout", rte.timeout)
	} else {
		log.Warn("proxying failed")
	}
	page := routerPage(c.out[:0], code, msg, c.head, c.close)
	c.out = page
	if n, err := l.writeClient(c, page); err != nil || n < len(page) || c.tw != nil && len(c.tw.out) > 0 {
		l.dropClient(c) // a page this small goes out at once, or the client is gone
		return
	}
	l.next(c)
}

// repick acquires another target of rte than t and releases t, if there is
// one.
func (l *loop) repick(rte *route, t *target) *target {
	n := uint64(len(rte.targets))
	start := rte.next.Add(1) - 1
	for i := range n {
		t2 := rte.targets[(start+i)%n]
		if t2 != t && t2.acquire() {
			t.release()
			return t2
		}
	}
	return nil
}

// errLoopTimeout is the failure of a process that did not answer in time.
var errLoopTimeout error = temporary("the process did not answer in time")

// temporary is an error that net.Error calls a timeout: one the direct path
// and crypto/tls treat as such.
type temporary string

func (e temporary) Error() string { return string(e) }
func (temporary) Timeout() bool   { return true }
func (temporary) Temporary() bool { return true }

// routerPage appends to out a response of the router itself, as
// routerError writes it.
func routerPage(out []byte, code int, msg string, head, close bool) []byte {
	body := fmt.Sprintf("%d %s: %s (convox router)\n", code, http.StatusText(code), msg)
	out = fmt.Appendf(out, "HTTP/1.1 %d %s\r\nCache-Control: no-store\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"X-Content-Type-Options: nosniff\r\nDate: %s\r\nContent-Length: %d\r\n",
		code, http.StatusText(code), time.Now().UTC().Format(http.TimeFormat), len(body))
	if close {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	if head {
		return out
	}
	return append(out, body...)
}

// sweep enforces deadlines: responses not started in time (504), clients
// idle or slow to send a request, pooled connections idle too long or to
// targets no longer routed.
func (l *loop) sweep() {
	l.swept = l.now
	if l.stopped && l.stopping.Load() == 0 {
		if l.poll(unix.EPOLL_CTL_ADD, l.lnfd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE) == nil {
			l.stopped = false
		}
	}
	for _, u := range l.ups {
		if c := u.c; c != nil && u.need < 0 && l.now.After(u.deadline) {
			l.failed(c, u.rte, u.t, errLoopTimeout)
		}
	}
	for _, c := range l.clients {
		if c.up == nil && !c.deadline.IsZero() && l.now.After(c.deadline) {
			l.closeClient(c)
		}
	}
	for t, list := range l.idle {
		if t.removed.Load() {
			for _, u := range list {
				u.pooled = false
				l.closeUp(u)
			}
			delete(l.idle, t)
			continue
		}
		for len(list) > 0 && l.now.Sub(list[0].idleSince) > loopIdleUpstream {
			list[0].pooled = false
			l.closeUp(list[0])
			list = list[1:]
		}
		l.idle[t] = list
	}
}

// stop works towards the loop's end, and reports when it has come.
func (l *loop) stop(s int32) bool {
	l.closeAdoption()
	if !l.stopped {
		l.poll(unix.EPOLL_CTL_DEL, l.lnfd, 0)
		l.stopped = true
	}
	for _, c := range l.clients {
		if s == stopNow || c.up == nil {
			l.dropClient(c)
		}
	}
	if len(l.clients) > 0 {
		return false
	}
	for _, u := range l.ups {
		l.closeUp(u)
	}
	l.idle = nil
	return true
}

// handOff gives c to net/http, with what it sent and pd, the exchange in
// flight, if any.
func (l *loop) handOff(c *client, pd *pending) {
	l.forget(c.fd)
	delete(l.clients, c.fd)
	nc, err := l.clientConn(c)
	if err != nil {
		l.rt.log.Warn("handing a connection to net/http failed", "error", err)
		if pd != nil {
			pd.abandon()
		}
		return
	}
	l.f.handoff.give(&handoffConn{Conn: nc, unread: c.in, pending: pd})
}

// clientConn makes a net.Conn of c, which the loop has forgotten: its
// tls.Conn over HTTPS, now blocking.
func (l *loop) clientConn(c *client) (net.Conn, error) {
	nc, err := fdConn(c.fd)
	if err != nil || c.tc == nil {
		return nc, err
	}
	c.tw.block(nc)
	return c.tc, nil
}

// handOffExchange gives u's client to net/http with the exchange in flight:
// its response is one the loop does not relay.
func (l *loop) handOffExchange(u *upstream) {
	c := u.c
	l.waiting--
	c.up, u.c = nil, nil
	l.forget(u.fd)
	delete(l.ups, u.fd)
	nc, err := fdConn(u.fd)
	if err != nil {
		l.rt.log.Warn("handing a connection to net/http failed", "error", err)
		u.t.release()
		l.dropClient(c)
		return
	}
	pd := &pending{route: u.rte, target: u.t, nc: nc, read: u.in, deadline: u.deadline}
	l.handOff(c, pd)
}

// relay finishes the response in flight on u from a goroutine of its own,
// for a client that does not take it as fast as it comes: rest first, then
// the rest of the body. Then the client goes to net/http, and the
// connection to the process to the direct path's pool.
func (l *loop) relay(u *upstream, rest []byte) {
	c := u.c
	c.up, u.c = nil, nil
	rest = bytes.Clone(rest)
	unread := c.in[c.reqLen:]
	l.forget(c.fd)
	delete(l.clients, c.fd)
	l.forget(u.fd)
	delete(l.ups, u.fd)
	t, need, keep, closeAfter := u.t, u.need, u.keep && len(u.in) == 0, c.close
	cnc, err := l.clientConn(c)
	unc, err2 := fdConn(u.fd)
	tw := c.tw
	if err = errors.Join(err, err2); err != nil {
		l.rt.log.Warn("relaying a response failed", "error", err)
		for _, nc := range []net.Conn{cnc, unc} {
			if nc != nil {
				nc.Close()
			}
		}
		t.release()
		return
	}
	l.f.relays.Add(1)
	go func() {
		defer l.f.relays.Done()
		defer t.release()
		var err error
		if tw != nil {
			err = tw.flush()
		}
		if err == nil && len(rest) > 0 {
			_, err = cnc.Write(rest)
		}
		if err == nil && need > 0 {
			_, err = io.CopyN(cnc, unc, need)
		}
		if err != nil {
			cnc.Close()
			unc.Close()
			return
		}
		if keep {
			t.put(newConn(unc))
		} else {
			unc.Close()
		}
		if closeAfter {
			cnc.Close()
			return
		}
		l.f.handoff.give(&handoffConn{Conn: cnc, unread: unread})
	}()
}

// forget takes fd out of the poll set. Closing fd would do that too, but
// not when the descriptor has been duplicated (fdConn).
func (l *loop) forget(fd int) {
	l.poll(unix.EPOLL_CTL_DEL, fd, 0)
}

// fdConn makes a net.Conn of fd, which it takes over.
func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "")
	nc, err := net.FileConn(f)
	f.Close()
	return nc, err
}

// dropClient closes c, and the exchange in flight if any: nobody will read
// its response.
func (l *loop) dropClient(c *client) {
	if u := c.up; u != nil {
		if u.need < 0 {
			l.waiting--
		}
		c.up, u.c = nil, nil
		u.t.release()
		l.closeUp(u)
	}
	l.closeClient(c)
}

func (l *loop) closeClient(c *client) {
	delete(l.clients, c.fd)
	unix.Close(c.fd)
}

// closeUp closes u, which is idle or whose exchange has been dealt with.
func (l *loop) closeUp(u *upstream) {
	if u.pooled {
		list := l.idle[u.t]
		for i, v := range list {
			if v == u {
				l.idle[u.t] = append(list[:i], list[i+1:]...)
				break
			}
		}
		u.pooled = false
	}
	delete(l.ups, u.fd)
	unix.Close(u.fd)
}

// A loop's own descriptors never block: raw system calls spare the
// runtime's bookkeeping (entersyscall/exitsyscall).
func rawRead(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}
