//go:build !linux

package balancer

import (
	"io"
	"net"
	"os"
	"syscall"
)

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
