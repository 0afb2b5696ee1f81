//go:build linux

// Command evloop is an experiment, not part of the product: the least a Go
// HTTP/1.1 reverse proxy costs on this machine, for bench/router -evloop
// to set beside nginx and the rack's router (BENCHMARKS.md, Router).
//
// It waits the way nginx does: one event loop per CPU, each on a locked
// thread with a listener of its own (SO_REUSEPORT), level-triggered epoll
// over raw descriptors, reads only of sockets epoll reported, a keep-alive
// pool to the backend per loop, and raw system calls for everything that
// cannot block. It does only what the benchmark's
// requests need: GET without a body, answers with a Content-Length,
// X-Forwarded-For/-Host/-Proto added; no routing table, timeouts, drain,
// streaming, back-pressure or error pages. Anything else closes the
// connection.
//
//	evloop LISTEN BACKEND    (each ip:port)
package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

type evConn struct {
	fd   int
	up   bool
	in   []byte
	peer *evConn
	need int // upstream: bytes of the answer in all; -1 until its head is in
	ip   string
}

type loop struct {
	ep      int
	ln      int
	conns   map[int]*evConn
	idle    []*evConn
	backend syscall.SockaddrInet4
	buf     []byte
	out     []byte
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: evloop LISTEN BACKEND (ip:port each)")
		os.Exit(2)
	}
	la := netip.MustParseAddrPort(os.Args[1])
	ba := netip.MustParseAddrPort(os.Args[2])
	for i := 0; i < runtime.NumCPU(); i++ {
		l, err := newLoop(la, ba)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go l.run()
	}
	select {}
}

func newLoop(la, ba netip.AddrPort) (*loop, error) {
	ln, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	syscall.SetsockoptInt(ln, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	syscall.SetsockoptInt(ln, syscall.SOL_SOCKET, soReusePort, 1)
	if err := syscall.Bind(ln, &syscall.SockaddrInet4{Port: int(la.Port()), Addr: la.Addr().As4()}); err != nil {
		return nil, err
	}
	if err := syscall.Listen(ln, 4096); err != nil {
		return nil, err
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	l := &loop{ep: ep, ln: ln, conns: map[int]*evConn{}, buf: make([]byte, 64<<10),
		backend: syscall.SockaddrInet4{Port: int(ba.Port()), Addr: ba.Addr().As4()}}
	if err := l.watch(ln); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *loop) watch(fd int) error {
	return syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)})
}

func (l *loop) run() {
	runtime.LockOSThread()
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := pollNow(l.ep, events)
		if err == nil && n == 0 {
			n, err = syscall.EpollWait(l.ep, events, -1)
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			panic(err)
		}
		for i := 0; i < n; i++ {
			fd := int(events[i].Fd)
			if fd == l.ln {
				l.accept()
				continue
			}
			if c := l.conns[fd]; c != nil {
				l.readable(c)
			}
		}
	}
}

func (l *loop) accept() {
	for {
		fd, sa, err := syscall.Accept4(l.ln, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		ip := ""
		if a, ok := sa.(*syscall.SockaddrInet4); ok {
			ip = netip.AddrFrom4(a.Addr).String()
		}
		c := &evConn{fd: fd, ip: ip}
		l.conns[fd] = c
		l.watch(fd)
	}
}

func (l *loop) close(c *evConn) {
	if c == nil || l.conns[c.fd] != c {
		return
	}
	delete(l.conns, c.fd)
	if c.up {
		for i, u := range l.idle {
			if u == c {
				l.idle = append(l.idle[:i], l.idle[i+1:]...)
				break
			}
		}
	}
	syscall.Close(c.fd) // also leaves the epoll set
	if p := c.peer; p != nil {
		c.peer, p.peer = nil, nil
		l.close(p)
	}
}

func (l *loop) readable(c *evConn) {
	n, err := rawRead(c.fd, l.buf)
	if err == syscall.EAGAIN {
		return
	}
	if n <= 0 {
		l.close(c)
		return
	}
	c.in = append(c.in, l.buf[:n]...)
	if c.up {
		l.answer(c)
	} else {
		l.request(c)
	}
}

var crlf2 = []byte("\r\n\r\n")

// request forwards the client's next request, if it is all in.
func (l *loop) request(c *evConn) {
	if c.peer != nil {
		return
	}
	i := bytes.Index(c.in, crlf2)
	if i < 0 {
		return
	}
	head := c.in[:i+2] // through the last header's CRLF
	host := header(head, "host")
	if host == "" {
		l.close(c)
		return
	}
	up := l.upstream()
	if up == nil {
		l.close(c)
		return
	}
	out := append(l.out[:0], head...)
	out = append(out, "X-Forwarded-For: "...)
	out = append(out, c.ip...)
	out = append(out, "\r\nX-Forwarded-Host: "...)
	out = append(out, host...)
	out = append(out, "\r\nX-Forwarded-Proto: http\r\n\r\n"...)
	l.out = out
	c.in = c.in[:copy(c.in, c.in[i+4:])]
	if n, err := rawWrite(up.fd, out); err != nil || n != len(out) {
		l.close(up)
		l.close(c)
		return
	}
	up.peer, c.peer = c, up
	up.need = -1
}

// answer passes a complete answer back to its client.
func (l *loop) answer(up *evConn) {
	c := up.peer
	if c == nil {
		l.close(up) // unasked
		return
	}
	if up.need < 0 {
		i := bytes.Index(up.in, crlf2)
		if i < 0 {
			return
		}
		cl, err := strconv.Atoi(header(up.in[:i+2], "content-length"))
		if err != nil {
			l.close(up)
			return
		}
		up.need = i + 4 + cl
	}
	if len(up.in) < up.need {
		return
	}
	if n, err := rawWrite(c.fd, up.in[:up.need]); err != nil || n != up.need {
		l.close(up)
		return
	}
	up.in = up.in[:copy(up.in, up.in[up.need:])]
	up.peer, c.peer = nil, nil
	l.idle = append(l.idle, up)
	if len(c.in) > 0 {
		l.request(c)
	}
}

func (l *loop) upstream() *evConn {
	if n := len(l.idle); n > 0 {
		up := l.idle[n-1]
		l.idle = l.idle[:n-1]
		return up
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	if err := syscall.Connect(fd, &l.backend); err != nil {
		syscall.Close(fd)
		return nil
	}
	syscall.SetNonblock(fd, true)
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	up := &evConn{fd: fd, up: true}
	l.conns[fd] = up
	l.watch(fd)
	return up
}

// header is the value of the first header named name (lower case) in head.
func header(head []byte, name string) string {
	for len(head) > 0 {
		j := bytes.IndexByte(head, '\n')
		if j < 0 {
			return ""
		}
		line := head[:j]
		head = head[j+1:]
		k := bytes.IndexByte(line, ':')
		if k != len(name) {
			continue
		}
		if bytes.EqualFold(line[:k], []byte(name)) {
			return string(bytes.TrimSpace(line[k+1:]))
		}
	}
	return ""
}

const soReusePort = 0xf // SO_REUSEPORT on Linux; not in package syscall

// The loop's own descriptors never block: raw system calls spare the
// runtime's bookkeeping (entersyscall/exitsyscall), so sysmon never sees the
// thread in a system call and never hands its P to another thread. Only the
// blocking epoll_wait goes through syscall.
func rawRead(fd int, p []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

func pollNow(ep int, events []syscall.EpollEvent) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_WAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		if e == syscall.EINTR {
			return 0, nil
		}
		return -1, e
	}
	return int(n), nil
}
