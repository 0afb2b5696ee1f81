package balancer

import (
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
)

// The benchmarks compare a connection through the balancer with the same
// connection made straight to the backend. bench/ compares with haproxy.

// benchPorts returns the port to reach backend at: the backend's own
// ("direct") or a balancer's in front of it ("balancer").
func benchPorts(b *testing.B, backend *backend) map[string]int {
	bal := newBalancer(b, Options{})
	port := freePort(b)
	set(b, bal, "bench", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{backend.addr}})
	return map[string]int{"direct": int(backend.addr.Port()), "balancer": port}
}

// BenchmarkThroughput sends 64 MiB per operation to a backend that reads it
// all, then closes.
func BenchmarkThroughput(b *testing.B) {
	const size = 64 << 20
	sink := startBackend(b, func(c *net.TCPConn) {
		buf := make([]byte, 1<<20)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	})
	ports := benchPorts(b, sink)
	chunk := make([]byte, 1<<20)
	for _, name := range []string{"direct", "balancer"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				c := dial(b, ports[name])
				for sent := 0; sent < size; sent += len(chunk) {
					if _, err := c.Write(chunk); err != nil {
						b.Fatal(err)
					}
				}
				c.CloseWrite()
				// The backend's EOF means it has read everything.
				if _, err := io.Copy(io.Discard, c); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// BenchmarkConnections opens a connection, echoes one byte and closes it,
// per operation, from several goroutines at once.
func BenchmarkConnections(b *testing.B) {
	ports := benchPorts(b, startBackend(b, echo))
	for _, name := range []string{"direct", "balancer"} {
		b.Run(name, func(b *testing.B) {
			addr := "127.0.0.1:" + strconv.Itoa(ports[name])
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				buf := []byte{42}
				for pb.Next() {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						b.Error(err)
						return
					}
					if _, err = c.Write(buf); err == nil {
						_, err = io.ReadFull(c, buf)
					}
					c.Close()
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
		})
	}
}
