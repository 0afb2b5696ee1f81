// Package porttest is test support: loopback ports for servers that tests
// start and must name before they listen (pebble, the rack's balancers).
package porttest

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Free is a loopback port that was free a moment ago, below the kernel's
// ephemeral range: a port in that range may be the local port of an
// outgoing connection (in TIME_WAIT, tests and benchmarks running alongside
// leave thousands), and then no listener can bind it.
func Free(t testing.TB) int {
	t.Helper()
	low := 32768
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	from := max(1024, low-12000)
	for range 100 {
		port := from + rand.IntN(low-from)
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatalf("no free port in %d-%d", from, low-1)
	return 0
}
