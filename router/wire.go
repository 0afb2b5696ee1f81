package router

import (
	"io"
	"net"
	"os"
	"syscall"
)

// wire is a connection to a process as its buffers see it. It can hold
// back the last write of a request and make it from the first read of the
// response, under the socket's read lock, before waiting for the answer.
//
// In the usual order, write then read, the read almost always comes before
// the answer: Go's poller has just cleared the socket's readiness, so the
// read is one system call that finds nothing (EAGAIN) before the goroutine
// parks. Writing from the read's callback, after that clearing, lets the
// read wait at once, and an answer that comes after the write still wakes
// it. On a VM, where system calls are dear, that is a few per cent of the
// router's CPU per request (BENCHMARKS.md, Router).
type wire struct {
	net.Conn
	raw syscall.RawConn // nil when the connection has no file descriptor

	// hold is set while the buffer is flushed by sendAndWait: its bytes
	// are kept in held, not written, until the next Read.
	hold bool
	held []byte
}

func newWire(nc net.Conn) *wire {
	w := &wire{Conn: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			w.raw = raw
		}
	}
	return w
}

// Write holds p back while hold is set. p is the bufio.Writer's buffer,
// which keeps its bytes until the next write to the buffer: the response
// is read before that.
func (w *wire) Write(p []byte) (int, error) {
	if w.hold {
		w.held = p
		return len(p), nil
	}
	return w.Conn.Write(p)
}

// Read writes held bytes, if any, then reads, waiting for the socket to be
// readable rather than trying it first.
func (w *wire) Read(p []byte) (int, error) {
	if w.held == nil {
		return w.Conn.Read(p)
	}
	var (
		n    int
		rerr error
		werr error
	)
	err := w.raw.Read(func(fd uintptr) bool {
		if held := w.held; held != nil {
			w.held = nil
			// A write that does not go out at once waits in the poller
			// for the write side; the read side's lock, held here, is
			// another one.
			if _, werr = w.Conn.Write(held); werr != nil {
				return true
			}
			return false
		}
		for {
			n, rerr = syscall.Read(int(fd), p)
			if rerr != syscall.EINTR {
				break
			}
		}
		return rerr != syscall.EAGAIN
	})
	switch {
	case werr != nil:
		return 0, werr
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: w.LocalAddr(), Addr: w.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}
