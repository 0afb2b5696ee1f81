//go:build !linux

package balancer

import "net"

// listenConfig returns how listeners are made: elsewhere than on Linux,
// accepted connections get their keep-alive settings one by one.
func listenConfig() net.ListenConfig {
	return net.ListenConfig{KeepAliveConfig: keepAliveConfig}
}
