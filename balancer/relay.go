package balancer

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// A direction copies its first spliceAfter bytes through a pooled buffer of
// bufSize bytes, then hands over to io.Copy, which Linux turns into
// splice(2): the bytes then never enter user space.
//
// Splicing has a fixed cost that a short connection never earns back: each
// chunk takes two splice calls (socket to pipe, pipe to socket) where a
// buffer takes a read and a write, the first read of a quiet socket returns
// EAGAIN and goes round the poller, and the pipe is held for as long as the
// copy waits. A connection that moves a few bytes each way (a request and
// its reply, a health check) is done before the hand-over; a bulk transfer
// splices after its first few reads.
const (
	spliceAfter = 64 << 10
	bufSize     = 16 << 10
)

// buffers holds the buffers of the copies before the hand-over. A copy takes
// one only once its source has bytes to read, and gives it back before it
// waits again, so an idle connection holds none.
var buffers = sync.Pool{New: func() any { return new([bufSize]byte) }}

// relay copies src to dst until src's EOF (nil) or an error.
func relay(dst, src *net.TCPConn) error {
	rc, err := src.SyscallConn()
	if err != nil {
		return err
	}
	var r chunk
	read := r.read
	for moved := 0; moved < spliceAfter; moved += r.n {
		if err := rc.Read(read); err != nil {
			return err
		}
		if r.err != nil || r.n == 0 {
			buffers.Put(r.buf)
			return r.err // nil at EOF
		}
		_, err := dst.Write(r.buf[:r.n])
		buffers.Put(r.buf)
		if err != nil {
			return err
		}
	}
	_, err = io.Copy(dst, src)
	return err
}

// chunk is what one read of relay got: n bytes in buf, or err.
type chunk struct {
	buf *[bufSize]byte
	n   int
	err error
}

// read is a syscall.RawConn read function: it reads what fd has into a
// pooled buffer and reports true, or gives the buffer back and reports
// false, for the poller to wait, when fd has nothing yet.
func (r *chunk) read(fd uintptr) bool {
	buf := buffers.Get().(*[bufSize]byte)
	for {
		n, err := syscall.Read(int(fd), buf[:])
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			buffers.Put(buf)
			return false
		case nil:
			r.buf, r.n, r.err = buf, n, nil
		default:
			r.buf, r.n, r.err = buf, 0, os.NewSyscallError("read", err)
		}
		return true
	}
}
