package balancer

import (
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

func BenchmarkTmpSeq(b *testing.B) {
	ports := benchPorts(b, startBackend(b, echo))
	for _, name := range []string{"direct", "balancer"} {
		b.Run(name, func(b *testing.B) {
			addr := "127.0.0.1:" + strconv.Itoa(ports[name])
			var dialT, rtT time.Duration
			buf := []byte{42}
			for b.Loop() {
				t0 := time.Now()
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				c.Write(buf)
				io.ReadFull(c, buf)
				rtT += time.Since(t1)
				dialT += t1.Sub(t0)
				c.Close()
			}
			b.ReportMetric(float64(dialT.Microseconds())/float64(b.N), "dial-us")
			b.ReportMetric(float64(rtT.Microseconds())/float64(b.N), "rt-us")
		})
	}
}
