//go:build linux

package balancer

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux connections are forwarded by event loops, built as haproxy's
// are: each loop runs over an edge-triggered epoll of raw descriptors, and
// owns its connections from accept to close. A loop is a plain goroutine,
// not one locked to its thread: a busy loop never parks, so the runtime
// preempts it every 10 ms, and a locked goroutine's preemption hands its P
// to another thread and back (futex wake-ups, a stalled loop), which cost a
// fifth of the connections per second (BENCHMARKS.md). A connection
// costs about twenty system calls and no goroutine, where two goroutines per
// connection parked and woke four times and went through net's dial and
// accept bookkeeping (BENCHMARKS.md, "Connections/s").
//
// The loops share the balancer's bookkeeping (Balancer.mu: one critical
// section when a connection starts, one when it ends) and the listening
// sockets, which every loop polls with EPOLLEXCLUSIVE. Nothing outside a loop
// touches its connections' descriptors but kill, which shuts the client's
// socket down with b.mu held: the loop sees the shutdown, finds the
// connection killed, and closes it. The loop closes descriptors only after
// untracking the connection under the same lock, so kill never reaches a
// descriptor number reused meanwhile.

// Tunables of the loops.
const (
	loopEvents = 128
	// acceptBatch bounds the connections one wake-up accepts from a
	// listener before the loop serves the rest.
	acceptBatch = 64
	// pumpRounds bounds the rounds a connection moves bytes in a turn (up to
	// a pipe's worth each way per round) before the loop serves the others.
	pumpRounds = 8
	// pipeSize is what a splicing direction asks for its pipe (Go's splice
	// asks the same; fs.pipe-max-size allows no more by default).
	pipeSize = 1 << 20
	// maxIdlePipes bounds each loop's pool of empty pipes.
	maxIdlePipes = 16
	// loopTick is how often a loop with connections still dialing, or
	// listeners paused, looks at them.
	loopTick = 100 * time.Millisecond
)

// wire is what a conn moves its bytes with: its two sockets, ends[0] the
// client's and ends[1] the target's, and its two directions, dirs[0] from
// the client to the target and dirs[1] back. Only its loop touches it, but
// for cfd, which kill reads with b.mu held.
type wire struct {
	ends    [2]end
	dirs    [2]direction
	start   uint32 // the round robin position of the first target tried
	tries   uint32 // targets tried before the current one
	last    error  // why the last target tried did not take the connection
	dialing bool   // connecting to the target
	polled  bool   // the client's socket is in the loop's poll set
	queued  bool   // in the loop's ready list
	closed  bool
	dialBy  time.Time
}

// end is one socket of a connection and what epoll last said of it.
type end struct {
	fd       int
	seq      int32 // tells its events from a former socket's with the same number
	readable bool
	writable bool
	hup      bool // the peer has closed its side: read until EOF
	fin      bool // its FIN came in order, with no error: a short read reaches it
}

// direction is one way through a connection.
type direction struct {
	moved int // bytes read from the source
	held  *[bufSize]byte
	from  int // held[from:to] is read and not yet written
	to    int
	pipe  *pipe // once spliceAfter bytes have moved
	piped int   // bytes in the pipe
	eof   bool  // the source's EOF was read
	done  bool  // eof, and everything before it written
}

type pipe struct{ r, w, size int }

// kill ends c now, whatever it is doing: its loop closes it on the wake-up
// the shutdown makes. b.mu is held.
func (c *conn) kill() {
	if c.killed.Swap(true) {
		return
	}
	unix.Shutdown(c.ends[0].fd, unix.SHUT_RDWR)
}

// lsock is a listener's socket, polled by every loop.
type lsock struct {
	fd   int
	refs atomic.Int32  // loops still polling fd; the last to let go closes it
	gone chan struct{} // closed once fd is
}

func (s *lsock) close() { unix.Close(s.fd) }

// forwarding is the Balancer's loops, started with its first listener.
// Guarded by Balancer.mu.
type forwarding struct {
	loops []*loop
	done  sync.WaitGroup
	stop  sync.Once
}

// adopt makes ln a listener's socket, starting the loops first if need be.
// The loops get a duplicate descriptor and ln is closed: Go's poller would
// otherwise be woken by every connection nobody accepts there. b.mu is held.
func (b *Balancer) adopt(ln *net.TCPListener) (*lsock, error) {
	defer ln.Close()
	if err := b.fwd.start(b); err != nil {
		return nil, err
	}
	raw, err := ln.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, os.NewSyscallError("fcntl", dupErr)
	}
	return &lsock{fd: fd, gone: make(chan struct{})}, nil
}

// serve has every loop poll l's socket. b.mu is held.
func (b *Balancer) serve(l *listener) {
	l.sock.refs.Store(int32(len(b.fwd.loops)))
	for _, lp := range b.fwd.loops {
		lp.post(op{l: l, add: true})
	}
}

// unserve has every loop stop polling l's socket; the last one closes it.
// Connections still in the kernel's accept queue are refused then, as on any
// listener that goes away. b.mu is held.
func (b *Balancer) unserve(l *listener) {
	for _, lp := range b.fwd.loops {
		lp.post(op{l: l})
	}
}

// stopForwarding ends the loops, which close what they still hold. Close
// calls it once every listener is retired and every connection killed.
func (b *Balancer) stopForwarding() {
	f := &b.fwd
	f.stop.Do(func() {
		b.mu.Lock()
		loops := f.loops
		b.mu.Unlock()
		for _, lp := range loops {
			lp.stopping.Store(true)
			lp.wake()
		}
		f.done.Wait()
		// Only now: a wake after a loop ended must not write to a
		// descriptor number reused meanwhile.
		for _, lp := range loops {
			lp.closeFds()
		}
	})
}

// start starts the loops, unless they run. b.mu is held.
func (f *forwarding) start(b *Balancer) error {
	if f.loops != nil {
		return nil
	}
	// Half the CPUs, as the router's loops: the processes behind the
	// balancer run on the same host and need the others.
	n := b.loops
	if n <= 0 {
		n = max(1, runtime.GOMAXPROCS(0)/2)
	}
	for range n {
		lp, err := newLoop(b)
		if err != nil {
			for _, lp := range f.loops {
				lp.closeFds()
			}
			f.loops = nil
			return fmt.Errorf("starting the balancer's event loops: %w", err)
		}
		f.loops = append(f.loops, lp)
	}
	for _, lp := range f.loops {
		f.done.Add(1)
		go lp.run(&f.done)
	}
	return nil
}

// op is a change to a loop's listeners, posted by Set.
type op struct {
	l   *listener
	add bool // else remove
}

type loop struct {
	b   *Balancer
	ep  int
	efd int // eventfd that wakes the loop for ops and stop

	lns     map[int]*listener
	conns   map[int]*conn // by either socket
	dialing map[*conn]struct{}
	paused  []*listener // accept failed: polled again at the next tick
	ready   []*conn     // with bytes left to move after their turn
	seq     int32
	buf     []byte
	pipes   []*pipe
	ticked  time.Time

	mu       sync.Mutex
	ops      []op
	stopping atomic.Bool
}

func newLoop(b *Balancer) (*loop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil, os.NewSyscallError("eventfd", err)
	}
	lp := &loop{
		b: b, ep: ep, efd: efd,
		lns: map[int]*listener{}, conns: map[int]*conn{}, dialing: map[*conn]struct{}{},
		buf: make([]byte, bufSize),
	}
	if err := lp.poll(unix.EPOLL_CTL_ADD, efd, unix.EPOLLIN, 0); err != nil {
		lp.closeFds()
		return nil, err
	}
	return lp, nil
}

func (lp *loop) closeFds() {
	unix.Close(lp.efd)
	unix.Close(lp.ep)
}

func (lp *loop) poll(op, fd int, events uint32, seq int32) error {
	if err := unix.EpollCtl(lp.ep, op, fd, &unix.EpollEvent{Events: events, Fd: int32(fd), Pad: seq}); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

func (lp *loop) wake() {
	one := [8]byte{1}
	unix.Write(lp.efd, one[:])
}

// post queues o for the loop. b.mu is held.
func (lp *loop) post(o op) {
	lp.mu.Lock()
	lp.ops = append(lp.ops, o)
	lp.mu.Unlock()
	lp.wake()
}

func (lp *loop) run(done *sync.WaitGroup) {
	defer done.Done()
	events := make([]unix.EpollEvent, loopEvents)
	for !lp.stopping.Load() {
		n := lp.wait(events)
		for i := range n {
			lp.event(events[i])
		}
		lp.serveReady()
		if len(lp.dialing) > 0 || len(lp.paused) > 0 {
			lp.tick()
		}
	}
	lp.finish()
}

// wait returns the next events, without entering the runtime's system call
// bookkeeping when some are ready already.
func (lp *loop) wait(events []unix.EpollEvent) int {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(lp.ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		n = 0
	}
	if n > 0 || len(lp.ready) > 0 {
		return int(n)
	}
	timeout := -1
	if len(lp.dialing) > 0 || len(lp.paused) > 0 {
		timeout = int(loopTick / time.Millisecond)
	}
	m, err := unix.EpollWait(lp.ep, events, timeout)
	if err != nil {
		return 0 // EINTR
	}
	return m
}

func (lp *loop) event(ev unix.EpollEvent) {
	fd := int(ev.Fd)
	if fd == lp.efd {
		var b [8]byte
		unix.Read(lp.efd, b[:])
		lp.takeOps()
		return
	}
	if l := lp.lns[fd]; l != nil {
		lp.accept(l)
		return
	}
	c := lp.conns[fd]
	if c == nil {
		return
	}
	side := 0
	if fd == c.ends[1].fd {
		side = 1
	}
	if c.ends[side].seq != ev.Pad {
		return // for a socket closed earlier in this batch
	}
	if c.killed.Load() {
		lp.close(c)
		return
	}
	if side == 1 && c.dialing {
		lp.dialed(c, ev.Events)
		return
	}
	c.ends[side].note(ev.Events)
	lp.pump(c)
}

// note records what epoll said of e.
func (e *end) note(events uint32) {
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		e.readable = true
	}
	if events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		e.hup = true
	}
	if events&(unix.EPOLLRDHUP|unix.EPOLLERR) == unix.EPOLLRDHUP {
		e.fin = true
	}
	if events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		e.writable = true // a write says what went wrong, if anything did
	}
}

// takeOps applies the changes Set posted.
func (lp *loop) takeOps() {
	lp.mu.Lock()
	ops := lp.ops
	lp.ops = nil
	lp.mu.Unlock()
	for _, o := range ops {
		fd := o.l.sock.fd
		if o.add {
			if err := lp.poll(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, 0); err != nil {
				lp.b.log.Error("balancer loop cannot poll a listener", "app", o.l.app, "port", o.l.port, "err", err)
				lp.letGo(o.l)
				continue
			}
			lp.lns[fd] = o.l
			continue
		}
		if lp.lns[fd] == o.l {
			delete(lp.lns, fd)
			lp.poll(unix.EPOLL_CTL_DEL, fd, 0, 0)
			lp.letGo(o.l)
		}
		// A paused listener is out of the poll set already.
		for i, p := range lp.paused {
			if p == o.l {
				lp.paused = append(lp.paused[:i], lp.paused[i+1:]...)
				lp.letGo(o.l)
				break
			}
		}
	}
}

// letGo drops the loop's hold on l's socket; the last loop closes it.
func (lp *loop) letGo(l *listener) {
	if l.sock.refs.Add(-1) == 0 {
		l.sock.close()
		close(l.sock.gone)
	}
}

// finish closes everything the loop holds, as it stops.
func (lp *loop) finish() {
	lp.takeOps()
	for _, c := range lp.conns {
		lp.close(c)
	}
	for fd, l := range lp.lns {
		delete(lp.lns, fd)
		lp.poll(unix.EPOLL_CTL_DEL, fd, 0, 0)
		lp.letGo(l)
	}
	for _, l := range lp.paused {
		lp.letGo(l)
	}
	lp.paused = nil
	for _, p := range lp.pipes {
		p.close()
	}
	lp.pipes = nil
}

func (lp *loop) accept(l *listener) {
	for range acceptBatch {
		fd, addr, err := rawAccept(l.sock.fd)
		switch err {
		case nil:
		case unix.EINTR, unix.ECONNABORTED:
			continue
		case unix.EAGAIN:
			return
		default:
			// Out of descriptors, say: leave the listener alone until the
			// next tick rather than spin on it, and keep the port.
			lp.b.log.Warn("balancer accept failed", "app", l.app, "port", l.port, "retry_in", loopTick, "err", err)
			delete(lp.lns, l.sock.fd)
			lp.poll(unix.EPOLL_CTL_DEL, l.sock.fd, 0, 0)
			lp.paused = append(lp.paused, l)
			return
		}
		cfg := l.cfg.Load()
		if !cfg.allows(addr) {
			lp.b.log.Debug("connection refused by whitelist", "app", l.app, "balancer", cfg.name, "port", l.port, "client", addr.Unmap().String())
			unix.Close(fd)
			continue
		}
		lp.open(l, fd)
	}
}

// open starts forwarding the client connection fd, accepted on l.
func (lp *loop) open(l *listener, fd int) {
	c := &conn{l: l}
	c.ends[0] = end{fd: fd, writable: true}
	c.ends[1].fd = -1
	c.start = l.next.Add(1) - 1
	b := lp.b
	b.mu.Lock()
	ok := b.track(c)
	var t *target
	var cfg *config
	if ok {
		t, cfg, _ = b.pick(c, c.start, 0)
	}
	b.mu.Unlock()
	if !ok {
		unix.Close(fd)
		return
	}
	lp.dial(c, t, cfg)
}

// dial connects c to t, or to the next targets while they refuse at once;
// with none left (t nil), c ends.
func (lp *loop) dial(c *conn, t *target, cfg *config) {
	for {
		if t == nil {
			if !c.killed.Load() {
				lp.b.logNoTarget(c.l, cfg, c.tries, c.last)
			}
			lp.close(c)
			return
		}
		fd, connected, err := connect(t.addr)
		if err == nil {
			lp.seq++
			c.ends[1] = end{fd: fd, seq: lp.seq, writable: connected}
			err = lp.poll(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET, lp.seq)
			if err != nil {
				unix.Close(fd)
				c.ends[1].fd = -1
			}
		}
		if err == nil && !c.polled {
			lp.seq++
			c.ends[0].seq = lp.seq
			err = lp.poll(unix.EPOLL_CTL_ADD, c.ends[0].fd, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET, lp.seq)
			if err != nil {
				lp.close(c)
				return
			}
			c.polled = true
			lp.conns[c.ends[0].fd] = c
		}
		if err == nil {
			lp.conns[fd] = c
			if !connected {
				c.dialing = true
				c.dialBy = time.Now().Add(dialTimeout)
				lp.dialing[c] = struct{}{}
				return
			}
			lp.pump(c)
			return
		}
		t, cfg = lp.next(c, err)
	}
}

// next takes c off its target, which did not take it (err), and picks the
// next one.
func (lp *loop) next(c *conn, err error) (*target, *config) {
	c.last = err
	c.tries++
	b := lp.b
	b.mu.Lock()
	b.leave(c)
	t, cfg, _ := b.pick(c, c.start, c.tries)
	b.mu.Unlock()
	return t, cfg
}

// connect starts connecting a new socket to addr.
func connect(addr netip.AddrPort) (fd int, connected bool, err error) {
	family := unix.AF_INET
	var sa unix.Sockaddr
	if a := addr.Addr(); a.Is4() {
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
	}
	fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, false, os.NewSyscallError("socket", err)
	}
	// No keep-alive: a target is a process on this host, which resets its
	// connections when it dies. Nagle off, as Go has it: bytes go on as they
	// come.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	switch err := unix.Connect(fd, sa); err {
	case nil:
		return fd, true, nil
	case unix.EINPROGRESS:
		return fd, false, nil
	default:
		unix.Close(fd)
		return -1, false, os.NewSyscallError("connect", err)
	}
}

// dialed handles what epoll said of c's socket to its target while it was
// connecting.
func (lp *loop) dialed(c *conn, events uint32) {
	if events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		soerr, err := unix.GetsockoptInt(c.ends[1].fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil {
			err = unix.Errno(soerr)
		}
		lp.redial(c, os.NewSyscallError("connect", err))
		return
	}
	if events&unix.EPOLLOUT == 0 {
		return
	}
	c.dialing = false
	delete(lp.dialing, c)
	c.ends[1].note(events)
	lp.pump(c)
}

// redial closes c's socket to a target that did not take it and tries the
// next one.
func (lp *loop) redial(c *conn, err error) {
	fd := c.ends[1].fd
	delete(lp.conns, fd)
	unix.Close(fd)
	c.ends[1].fd = -1
	c.dialing = false
	delete(lp.dialing, c)
	t, cfg := lp.next(c, err)
	lp.dial(c, t, cfg)
}

// tick gives up on dials that took too long and polls paused listeners
// again.
func (lp *loop) tick() {
	now := time.Now()
	if now.Sub(lp.ticked) < loopTick {
		return
	}
	lp.ticked = now
	for c := range lp.dialing {
		if now.After(c.dialBy) {
			// Its accept queue is full, most likely: the next one may do.
			lp.redial(c, os.NewSyscallError("connect", unix.ETIMEDOUT))
		}
	}
	for _, l := range lp.paused {
		if err := lp.poll(unix.EPOLL_CTL_ADD, l.sock.fd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, 0); err == nil {
			lp.lns[l.sock.fd] = l
		} else {
			lp.letGo(l)
		}
	}
	lp.paused = nil
}

// serveReady gives the connections that had bytes left another turn.
func (lp *loop) serveReady() {
	ready := lp.ready
	lp.ready = nil
	for _, c := range ready {
		c.queued = false
		if c.closed {
			continue
		}
		if c.killed.Load() {
			lp.close(c)
			continue
		}
		lp.pump(c)
	}
	clear(ready)
	if lp.ready == nil {
		lp.ready = ready[:0]
	}
}

// pump moves c's bytes both ways as far as its sockets let it, for at most
// pumpRounds rounds.
//
// A direction that reads its source's EOF, once it has written what it
// read, shuts down its destination's writing side, so that the peer there
// sees the EOF too, and the other direction goes on: a client that sends a
// request and shuts down its side still gets the whole reply. Once both
// directions are done, both sockets are closed (the second direction skips
// the shutdown: the close sends the same FIN). A failure (a reset, a write
// to a peer that is gone) ends both at once. The close is a plain one, not a
// forced reset, so that bytes already forwarded still reach their peer.
func (lp *loop) pump(c *conn) {
	if c.dialing || c.closed {
		return
	}
	for range pumpRounds {
		moved := false
		for i := range c.dirs {
			m, err := lp.move(c, i)
			if err != nil {
				lp.close(c)
				return
			}
			moved = moved || m
		}
		if c.dirs[0].done && c.dirs[1].done {
			lp.close(c)
			return
		}
		if !moved {
			return
		}
	}
	if !c.queued {
		c.queued = true
		lp.ready = append(lp.ready, c)
	}
}

// move moves what it can of direction i of c in one step, and reports
// whether it moved anything.
func (lp *loop) move(c *conn, i int) (bool, error) {
	d := &c.dirs[i]
	if d.done {
		return false, nil
	}
	src, dst := &c.ends[i], &c.ends[1-i]
	if d.to > d.from || d.piped > 0 {
		if !dst.writable {
			return false, nil
		}
		return lp.flush(d, dst)
	}
	if d.eof {
		d.done = true
		lp.dropHeld(d)
		if !c.dirs[1-i].done {
			if err := unix.Shutdown(dst.fd, unix.SHUT_WR); err != nil {
				return true, os.NewSyscallError("shutdown", err)
			}
		}
		return true, nil
	}
	if !src.readable || !dst.writable {
		return false, nil
	}
	if d.moved < spliceAfter {
		return lp.readWrite(d, src, dst)
	}
	return lp.spliceIn(d, src, dst)
}

// readWrite reads once from src and writes what it read to dst; what dst
// does not take is held until it does.
func (lp *loop) readWrite(d *direction, src, dst *end) (bool, error) {
	n, err := rawRead(src.fd, lp.buf)
	switch {
	case err == unix.EAGAIN:
		src.readable = false
		return false, nil
	case err != nil:
		return false, os.NewSyscallError("read", err)
	case n == 0:
		d.eof = true
		return true, nil
	}
	if n < len(lp.buf) {
		// A short read emptied the socket: epoll reports the next bytes
		// as a new edge. Past the peer's FIN there is none, and nothing
		// more to read: the EOF is here, without a read returning 0 (a
		// system call saved per connection that ends with its last
		// bytes). After an error, read on to learn it.
		switch {
		case src.fin:
			d.eof = true
		case !src.hup:
			src.readable = false
		}
	}
	d.moved += n
	w, err := rawWrite(dst.fd, lp.buf[:n])
	switch {
	case err == unix.EAGAIN:
		w = 0
	case err != nil:
		return true, os.NewSyscallError("write", err)
	}
	if w < n {
		dst.writable = false
		d.held = buffers.Get().(*[bufSize]byte)
		d.from, d.to = 0, copy(d.held[:], lp.buf[w:n])
	}
	return true, nil
}

// spliceIn moves what src has into d's pipe, and on to dst.
func (lp *loop) spliceIn(d *direction, src, dst *end) (bool, error) {
	if d.pipe == nil {
		p, err := lp.getPipe()
		if err != nil {
			return false, err
		}
		d.pipe = p
	}
	n, err := rawSplice(src.fd, d.pipe.w, d.pipe.size)
	switch {
	case err == unix.EAGAIN:
		src.readable = false
		return false, nil
	case err != nil:
		return false, os.NewSyscallError("splice", err)
	case n == 0:
		d.eof = true
		return true, nil
	}
	d.moved += n
	d.piped = n
	// Out at once, as io.Copy's splice does: bytes waiting in the pipe
	// while the loop serves others cost the transfer its pace.
	if dst.writable {
		if _, err := lp.flush(d, dst); err != nil {
			return true, err
		}
	}
	return true, nil
}

// flush writes what d holds, from its buffer or its pipe, to dst.
func (lp *loop) flush(d *direction, dst *end) (bool, error) {
	var n int
	var err error
	if d.piped > 0 {
		n, err = rawSplice(d.pipe.r, dst.fd, d.piped)
	} else {
		n, err = rawWrite(dst.fd, d.held[d.from:d.to])
	}
	switch {
	case err == unix.EAGAIN:
		dst.writable = false
		return false, nil
	case err != nil:
		return false, os.NewSyscallError("write", err)
	}
	if d.piped > 0 {
		d.piped -= n
	} else if d.from += n; d.from == d.to {
		lp.dropHeld(d)
	}
	return n > 0, nil
}

func (lp *loop) dropHeld(d *direction) {
	if d.held != nil {
		buffers.Put(d.held)
		d.held, d.from, d.to = nil, 0, 0
	}
}

func (lp *loop) getPipe() (*pipe, error) {
	if n := len(lp.pipes); n > 0 {
		p := lp.pipes[n-1]
		lp.pipes = lp.pipes[:n-1]
		return p, nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("pipe2", err)
	}
	p := &pipe{r: fds[0], w: fds[1]}
	size, err := unix.FcntlInt(uintptr(p.w), unix.F_SETPIPE_SZ, pipeSize)
	if err != nil {
		// Above fs.pipe-max-size: the default size will do.
		size, err = unix.FcntlInt(uintptr(p.w), unix.F_GETPIPE_SZ, 0)
	}
	if err != nil {
		p.close()
		return nil, os.NewSyscallError("fcntl", err)
	}
	p.size = size
	return p, nil
}

func (p *pipe) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}

// close ends c: untracked first, under b.mu, so that kill never shuts down a
// descriptor number closed here and reused meanwhile.
func (lp *loop) close(c *conn) {
	if c.closed {
		return
	}
	c.closed = true
	b := lp.b
	b.mu.Lock()
	b.untrack(c)
	b.mu.Unlock()
	for i := range c.ends {
		if fd := c.ends[i].fd; fd >= 0 {
			if lp.conns[fd] == c {
				delete(lp.conns, fd)
			}
			unix.Close(fd)
		}
	}
	if c.dialing {
		delete(lp.dialing, c)
	}
	for i := range c.dirs {
		d := &c.dirs[i]
		lp.dropHeld(d)
		if d.pipe == nil {
			continue
		}
		if d.piped == 0 && len(lp.pipes) < maxIdlePipes {
			lp.pipes = append(lp.pipes, d.pipe)
		} else {
			d.pipe.close() // bytes left in it are the closed peer's loss
		}
		d.pipe = nil
	}
}

// The system calls below cannot block (every descriptor is non-blocking),
// so they skip the runtime's bookkeeping of calls that might: sysmon then
// never hands the loop's P to another thread.

// rawAccept accepts a connection on the listening socket fd. unix.Accept4
// would ask the socket's protocol (a getsockopt per connection) to tell
// the kinds of AF_INET sockets apart, which a TCP listener does not need.
func rawAccept(fd int) (int, netip.Addr, error) {
	var rsa unix.RawSockaddrAny
	size := uint32(unix.SizeofSockaddrAny)
	n, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&size)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, netip.Addr{}, e
	}
	var addr netip.Addr
	switch rsa.Addr.Family {
	case unix.AF_INET:
		addr = netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa)).Addr)
	case unix.AF_INET6:
		addr = netip.AddrFrom16((*unix.RawSockaddrInet6)(unsafe.Pointer(&rsa)).Addr)
	}
	return int(n), addr, nil
}

func rawRead(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawSplice(in, out, n int) (int, error) {
	m, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
	if e != 0 {
		return 0, e
	}
	return int(m), nil
}
