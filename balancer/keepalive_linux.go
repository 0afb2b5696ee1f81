package balancer

import (
	"net"
	"syscall"
	"time"
)

// listenConfig returns how listeners are made. On Linux a connection
// accepted from a listening socket inherits the socket's keep-alive and
// Nagle settings, so they are set once on the listener instead of with five
// system calls per connection, which shows in connections per second.
func listenConfig() net.ListenConfig {
	return net.ListenConfig{
		KeepAlive: -1, // nothing to set per connection: it is inherited
		Control: func(network, address string, c syscall.RawConn) error {
			var err error
			cerr := c.Control(func(fd uintptr) {
				opts := []struct{ level, opt, value int }{
					{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(keepAliveIdle / time.Second)},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(keepAliveInterval / time.Second)},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
					{syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
				}
				for _, o := range opts {
					if err = syscall.SetsockoptInt(int(fd), o.level, o.opt, o.value); err != nil {
						err = &net.OpError{Op: "setsockopt", Net: network, Err: err}
						return
					}
				}
			})
			if cerr != nil {
				return cerr
			}
			return err
		},
	}
}
