package balancer

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func startHAProxy(b *testing.B, target string) int {
	port := freePort(b)
	cfg := fmt.Sprintf(`global
  maxconn 8000
  nbthread 2
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:%d
  default_backend be
backend be
  server s1 %s
`, port, target)
	path := filepath.Join(b.TempDir(), "h.cfg")
	os.WriteFile(path, []byte(cfg), 0o644)
	cmd := exec.Command("haproxy", "-f", path, "-db")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(b, "haproxy", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return port
}

func BenchmarkTmpCompare(b *testing.B) {
	echoBe := startBackend(b, echo)
	sink := startBackend(b, func(c *net.TCPConn) {
		buf := make([]byte, 1<<20)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	})
	cports := benchPorts(b, echoBe)
	cports["haproxy"] = startHAProxy(b, echoBe.addr.String())
	tports := benchPorts(b, sink)
	tports["haproxy"] = startHAProxy(b, sink.addr.String())
	time.Sleep(100 * time.Millisecond)
	for _, name := range []string{"direct", "balancer", "haproxy"} {
		b.Run("conns/"+name, func(b *testing.B) {
			addr := "127.0.0.1:" + strconv.Itoa(cports[name])
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
	const size = 64 << 20
	chunk := make([]byte, 1<<20)
	for _, name := range []string{"direct", "balancer", "haproxy"} {
		b.Run("tput/"+name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				c := dial(b, tports[name])
				for sent := 0; sent < size; sent += len(chunk) {
					if _, err := c.Write(chunk); err != nil {
						b.Fatal(err)
					}
				}
				c.CloseWrite()
				io.Copy(io.Discard, c)
				c.Close()
			}
		})
	}
}
