package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/singlehost/convox/bench/internal/procfs"
)

// target is one way to reach a suite's backend.
type target struct {
	name string // in the tables
	kind string // "direct", "haproxy" or "balancer"
	addr string
	pids func() []int // the proxy's processes; nil for direct
}

// result is one run against one target.
type result struct {
	target          *target
	kind            string // "throughput" or "conns"
	round, attempts int
	rate            float64 // payload bytes/s one way, or connections/s
	count           int64   // payload bytes one way, or connections
	errors          int64   // failed connections
	firstErr        string
	p50, p99        time.Duration // connect, write, read, close (connections/s runs)
	cpu             usage
}

const gib = 1 << 30

// per is CPU seconds per GiB (throughput) or per connection.
func (r *result) per(cpuSeconds float64) float64 {
	if r.count == 0 {
		return 0
	}
	if r.kind == "throughput" {
		return cpuSeconds / (float64(r.count) / gib)
	}
	return cpuSeconds / float64(r.count)
}

func (r *result) line() string {
	c := r.cpu
	if r.kind == "throughput" {
		s := fmt.Sprintf("%6.0f MiB/s   CPU-s/GiB: all %.2f = load %.2f + proxy %.2f + backend %.2f + softirq %.2f   busy %3.0f%%  other %2.0f%%",
			r.rate/(1<<20), r.per(c.ours()), r.per(c.client), r.per(c.proxy), r.per(c.backend), r.per(c.softirq), 100*c.busy/c.total, 100*c.otherShare())
		if r.errors > 0 {
			s += fmt.Sprintf("   %d failed (%s)", r.errors, r.firstErr)
		}
		return s
	}
	s := fmt.Sprintf("%6.0f conn/s  p50 %s p99 %s   CPU/conn: all %s = load %s + proxy %s + backend %s + softirq %s   busy %3.0f%%  other %2.0f%%",
		r.rate, ms(r.p50), ms(r.p99), us(r.per(c.ours())), us(r.per(c.client)), us(r.per(c.proxy)), us(r.per(c.backend)), us(r.per(c.softirq)),
		100*c.busy/c.total, 100*c.otherShare())
	if r.errors > 0 {
		s += fmt.Sprintf("   %d errors (%s)", r.errors, r.firstErr)
	}
	return s
}

// runThroughput opens streams connections to t at once, each sending size
// bytes and reading them back with the bye. A connection that fails counts
// as failed, with the bytes it had echoed until then.
func runThroughput(ctx context.Context, t *target, s *suite, streams int, size int64) (*result, error) {
	type outcome struct {
		got int64
		err error
	}
	before := snapshot(t, s)
	start := time.Now()
	done := make(chan outcome, streams)
	for range streams {
		go func() {
			got, err := transfer(ctx, t.addr, size)
			done <- outcome{got, err}
		}()
	}
	r := &result{target: t, kind: "throughput"}
	for range streams {
		o := <-done
		r.count += min(o.got, size)
		if o.err != nil {
			r.errors++
			if r.firstErr == "" {
				r.firstErr = o.err.Error()
			}
		}
	}
	wall := time.Since(start)
	r.cpu = snapshot(t, s).since(before)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if r.count == 0 {
		return nil, fmt.Errorf("no byte came back: %s", r.firstErr)
	}
	r.rate = float64(r.count) / wall.Seconds()
	return r, nil
}

// transfer sends size zero bytes to addr and half-closes, while reading
// the echo and the bye back until the other side closes. It returns how
// many bytes came back.
func transfer(ctx context.Context, addr string, size int64) (int64, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	c := nc.(*net.TCPConn)
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	// Generous: 30 s plus 20 ms per MiB (50 MiB/s).
	c.SetDeadline(time.Now().Add(30*time.Second + time.Duration(size>>20)*20*time.Millisecond))
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		for left := size; left > 0; {
			n, err := c.Write(buf[:min(left, int64(len(buf)))])
			left -= int64(n)
			if err != nil {
				werr <- fmt.Errorf("writing: %w", err)
				return
			}
		}
		werr <- c.CloseWrite()
	}()
	buf := make([]byte, 256<<10)
	var got int64
	var tail []byte // what came after the echoed zeros
	for {
		n, err := c.Read(buf)
		if over := got + int64(n) - size; over > 0 {
			tail = append(tail, buf[n-int(min(over, int64(n))):n]...)
		}
		got += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return got, fmt.Errorf("reading after %d of %d bytes: %w", got, size, err)
		}
	}
	if err := <-werr; err != nil {
		return got, err
	}
	if got < size || !bytes.HasPrefix(tail, []byte("bye from ")) || bytes.IndexByte(tail, 0) >= 0 {
		return got, fmt.Errorf("read %d bytes ending %q, want the %d bytes sent and a bye", got, tail, size)
	}
	return got, nil
}

// runConns runs workers loops for d: connect to t, write a byte, read it
// back, close.
func runConns(ctx context.Context, t *target, s *suite, workers int, d time.Duration) (*result, error) {
	type tally struct {
		ok, failed int64
		lat        []time.Duration
		err        error
	}
	tallies := make([]tally, workers)
	before := snapshot(t, s)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tl := &tallies[w]
			tl.lat = make([]time.Duration, 0, 1<<14)
			dialer := net.Dialer{Timeout: 5 * time.Second, KeepAlive: -1}
			one := []byte{'x'}
			got := make([]byte, 1)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				c, err := dialer.DialContext(ctx, "tcp", t.addr)
				if err == nil {
					c.SetDeadline(t0.Add(5 * time.Second))
					if _, err = c.Write(one); err == nil {
						_, err = io.ReadFull(c, got)
					}
					c.Close()
					if err == nil && got[0] != 'x' {
						err = fmt.Errorf("read %q, want the byte sent", got)
					}
				}
				if err != nil {
					tl.failed++
					if tl.err == nil {
						tl.err = err
					}
					time.Sleep(time.Millisecond)
					continue
				}
				tl.ok++
				tl.lat = append(tl.lat, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	after := snapshot(t, s)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r := &result{target: t, kind: "conns", cpu: after.since(before)}
	var lat []time.Duration
	for _, tl := range tallies {
		r.count += tl.ok
		r.errors += tl.failed
		if tl.err != nil && r.firstErr == "" {
			r.firstErr = tl.err.Error()
		}
		lat = append(lat, tl.lat...)
	}
	if r.count == 0 {
		return nil, fmt.Errorf("no connection succeeded: %s", r.firstErr)
	}
	slices.Sort(lat)
	r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	r.rate = float64(r.count) / wall.Seconds()
	return r, nil
}

// waitEcho retries one echo exchange with addr until it works.
func waitEcho(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := transfer(ctx, addr, 6)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// usage is the CPU time spent during a run, in seconds.
type usage struct {
	total   float64 // all CPUs' time (wall time × CPUs)
	busy    float64 // not idle
	softirq float64 // interrupts and softirqs, where loopback packets are received, and ksoftirqd
	client  float64 // this program: the load
	proxy   float64
	backend float64
}

// ours is the CPU time of the work under test: load, proxy, backend and
// the kernel's packet delivery.
func (u usage) ours() float64 { return u.client + u.proxy + u.backend + u.softirq }

// otherShare is the share of the machine's time other processes used.
func (u usage) otherShare() float64 {
	if u.total == 0 {
		return 0
	}
	return max(0, u.busy-u.ours()) / u.total
}

type cpuSnap struct {
	stat                           [8]float64 // user nice system idle iowait irq softirq steal
	client, proxy, backend, ksirqd float64
}

func (a cpuSnap) since(b cpuSnap) usage {
	var d [8]float64
	var total float64
	for i := range d {
		d[i] = a.stat[i] - b.stat[i]
		total += d[i]
	}
	return usage{
		total:   total,
		busy:    d[0] + d[1] + d[2] + d[5] + d[6],
		softirq: d[5] + d[6] + a.ksirqd - b.ksirqd,
		client:  a.client - b.client,
		proxy:   a.proxy - b.proxy,
		backend: a.backend - b.backend,
	}
}

func snapshot(t *target, s *suite) cpuSnap {
	var c cpuSnap
	h := procfs.Host()
	for i, v := range []int64{h.User, h.Nice, h.System, h.Idle, h.IOWait, h.IRQ, h.SoftIRQ, h.Steal} {
		c.stat[i] = float64(v) * procfs.Tick().Seconds()
	}
	c.client = cpuOf([]int{os.Getpid()})
	if t.pids != nil {
		c.proxy = cpuOf(t.pids())
	}
	if s.backendPids != nil {
		c.backend = cpuOf(s.backendPids())
	}
	c.ksirqd = cpuOf(ksoftirqd())
	return c
}

// cpuOf is the user and system CPU seconds of processes so far.
func cpuOf(pids []int) float64 { return procfs.CPUTimes(pids).Seconds() }

// ksoftirqd lists the kernel's softirq threads: under load, loopback
// packets are delivered there.
var ksoftirqd = sync.OnceValue(func() []int {
	var pids []int
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, c := range comms {
		data, err := os.ReadFile(c)
		if err == nil && strings.HasPrefix(string(data), "ksoftirqd/") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(c)))
			pids = append(pids, pid)
		}
	}
	return pids
})

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func us(seconds float64) string {
	return fmt.Sprintf("%.0f µs", seconds*1e6)
}
