package balancer

import "sync"

// A direction copies its first spliceAfter bytes through a buffer of bufSize
// bytes, then splices: on Linux the rest moves with splice(2) through a pipe
// and never enters user space (elsewhere io.Copy does what it can).
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

// buffers holds the buffers of the copies before the hand-over, and on
// Linux what a direction read and could not write yet. A direction holds
// one only while it has bytes in hand, so an idle connection holds none.
var buffers = sync.Pool{New: func() any { return new([bufSize]byte) }}
