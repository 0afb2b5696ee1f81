package balancer

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"
)

// randomBytes returns n bytes that differ from one call to the next, so that
// a chunk forwarded twice or out of order shows.
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// throughBalancer returns a connection to a balancer forwarding to a
// backend running handle.
func throughBalancer(t *testing.T, handle func(*net.TCPConn)) *net.TCPConn {
	t.Helper()
	be := startBackend(t, handle)
	b := newBalancer(t, Options{})
	port := freePort(t)
	set(t, b, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{be.addr}})
	c := dial(t, port)
	c.SetDeadline(time.Now().Add(time.Minute))
	return c
}

// TestRelay_Echo sends sizes on either side of the hand-over from the
// buffer to splice, and checks that every byte comes back, in order.
func TestRelay_Echo(t *testing.T) {
	tests := []struct {
		name string
		size int
	}{
		{"one byte", 1},
		{"one buffer", bufSize},
		{"just under the hand-over", spliceAfter - 1},
		{"the hand-over", spliceAfter},
		{"just over the hand-over", spliceAfter + 1},
		{"large", 8 << 20},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := throughBalancer(t, echo)
			sent := randomBytes(uint64(i), tt.size)
			errs := make(chan error, 1)
			go func() {
				_, err := c.Write(sent)
				if err == nil {
					err = c.CloseWrite()
				}
				errs <- err
			}()
			got, err := io.ReadAll(c)
			if err := <-errs; err != nil {
				t.Fatalf("sending: %v", err)
			}
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			if !bytes.Equal(got, sent) {
				t.Fatalf("got %d bytes back, want the %d sent (first difference at %d)", len(got), len(sent), firstDiff(got, sent))
			}
		})
	}
}

// TestRelay_Turns talks on one connection in turns that grow from a byte to
// megabytes, so that each direction hands over to splice in the middle of
// the conversation, with bytes of the same turn on either side of it.
func TestRelay_Turns(t *testing.T) {
	c := throughBalancer(t, echo)
	total := 0
	for i, size := range []int{1, 10, 1000, bufSize - 1, bufSize + 1, 3 * bufSize, spliceAfter, 1 << 20, 4 << 20} {
		sent := randomBytes(uint64(100+i), size)
		errs := make(chan error, 1)
		go func() {
			_, err := c.Write(sent)
			errs <- err
		}()
		got := make([]byte, size)
		_, err := io.ReadFull(c, got)
		if err := <-errs; err != nil {
			t.Fatalf("turn %d (%d bytes after %d): sending: %v", i, size, total, err)
		}
		if err != nil {
			t.Fatalf("turn %d (%d bytes after %d): reading: %v", i, size, total, err)
		}
		if !bytes.Equal(got, sent) {
			t.Fatalf("turn %d (%d bytes after %d): bytes differ at %d", i, size, total, firstDiff(got, sent))
		}
		total += size
	}
	c.CloseWrite()
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Errorf("after the last turn: got %d more bytes, %v; want EOF", len(rest), err)
	}
}

// TestRelay_HalfClose ends one direction first, then sends the other way,
// for sizes on either side of the hand-over: each side must get every byte
// the other sent after its own EOF.
func TestRelay_HalfClose(t *testing.T) {
	sizes := []int{1, spliceAfter - 1, spliceAfter + 1, 2 << 20}
	for _, first := range []string{"client", "backend"} {
		for i, size := range sizes {
			t.Run(fmt.Sprintf("%s closes first, %d bytes", first, size), func(t *testing.T) {
				toBackend := randomBytes(uint64(200+i), size)
				toClient := randomBytes(uint64(300+i), size+7)
				received := make(chan []byte, 1)
				handle := func(c *net.TCPConn) {
					if first == "backend" {
						c.Write(toClient)
						c.CloseWrite()
						got, _ := io.ReadAll(c)
						received <- got
						return
					}
					got, _ := io.ReadAll(c)
					received <- got
					c.Write(toClient)
				}
				c := throughBalancer(t, handle)
				var got []byte
				var err error
				if first == "backend" {
					if got, err = io.ReadAll(c); err != nil {
						t.Fatalf("reading until the backend's EOF: %v", err)
					}
					if _, err := c.Write(toBackend); err != nil {
						t.Fatalf("writing after the backend's EOF: %v", err)
					}
					c.CloseWrite()
				} else {
					if _, err := c.Write(toBackend); err != nil {
						t.Fatal(err)
					}
					c.CloseWrite()
					if got, err = io.ReadAll(c); err != nil {
						t.Fatalf("reading the reply after the client's EOF: %v", err)
					}
				}
				if !bytes.Equal(got, toClient) {
					t.Errorf("client got %d bytes, want the %d the backend sent (first difference at %d)", len(got), len(toClient), firstDiff(got, toClient))
				}
				select {
				case back := <-received:
					if !bytes.Equal(back, toBackend) {
						t.Errorf("backend got %d bytes, want the %d the client sent (first difference at %d)", len(back), len(toBackend), firstDiff(back, toBackend))
					}
				case <-time.After(time.Minute):
					t.Fatal("the backend never saw the client's EOF")
				}
			})
		}
	}
}

// firstDiff returns the index of the first byte where a and b differ.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestRelay_ManyAtOnce runs connections of every size at once on one
// balancer, so that one loop (or many goroutines) interleaves buffered and
// spliced directions, connections that must wait their turn, and pipes
// handed from one connection to the next.
func TestRelay_ManyAtOnce(t *testing.T) {
	be := startBackend(t, echo)
	b := newBalancer(t, Options{})
	port := freePort(t)
	set(t, b, "app", Listener{Name: "lb", Port: port, Targets: []netip.AddrPort{be.addr}})

	const conns = 64
	errs := make(chan error, conns)
	for i := range conns {
		go func() {
			size := []int{1, bufSize + 3, spliceAfter + 5, 3 << 20}[i%4]
			sent := randomBytes(uint64(400+i), size)
			c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute))
			go func() {
				c.Write(sent)
				c.CloseWrite()
			}()
			got, err := io.ReadAll(c)
			switch {
			case err != nil:
				errs <- fmt.Errorf("connection %d: %w", i, err)
			case !bytes.Equal(got, sent):
				errs <- fmt.Errorf("connection %d: got %d bytes back, want the %d sent (first difference at %d)", i, len(got), len(sent), firstDiff(got, sent))
			default:
				errs <- nil
			}
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestRelay_BackendReset checks that a process resetting its connection in
// the middle of a transfer ends the client's connection too, instead of
// leaving it open.
func TestRelay_BackendReset(t *testing.T) {
	c := throughBalancer(t, func(c *net.TCPConn) {
		io.ReadFull(c, make([]byte, 100<<10))
		c.SetLinger(0) // close sends a reset
	})
	go c.Write(randomBytes(7, 1<<20))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadAll(c)
	if isTimeout(err) {
		t.Fatal("the client's connection stayed open after the backend reset its own")
	}
}
