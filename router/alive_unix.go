//go:build unix

package router

import (
	"net"
	"syscall"
)

// alive reports whether an idle connection to a process is still open and
// quiet: the process has neither closed it nor sent anything unasked. It
// peeks without blocking, one syscall, and is used before sending a request
// that could not be retried on another connection.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read is the one good answer: otherwise the stream
		// has ended, failed, or holds an answer to no request.
		open = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && open
}
