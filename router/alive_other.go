//go:build !unix

package router

import "net"

// alive cannot peek at a connection here; a request on a connection the
// process has closed fails with 502.
func alive(net.Conn) bool { return true }
