package router

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestWire sends a request through a held write and reads the answer, as
// roundTrip does, against a peer that answers, one that closed the
// connection while it was idle, and one that never answers.
func TestWire(t *testing.T) {
	tests := []struct {
		name string
		peer func(c net.Conn) // after accepting
		// closedFirst makes the peer close before the request is sent.
		closedFirst bool
		want        string
		wantErr     func(error) bool
	}{
		{
			name: "answered",
			peer: func(c net.Conn) {
				line, _ := bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, "got "+line)
			},
			want: "got ping\n",
		},
		{
			name:        "closed while idle",
			peer:        func(c net.Conn) { c.Close() },
			closedFirst: true,
			wantErr:     func(err error) bool { return err != nil && !isTimeout(err) },
		},
		{
			name:    "no answer",
			peer:    func(c net.Conn) { time.Sleep(time.Second) },
			wantErr: isTimeout,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan struct{})
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				if tt.closedFirst {
					tt.peer(c)
					close(accepted)
					return
				}
				close(accepted)
				tt.peer(c)
			}()
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			<-accepted
			if tt.closedFirst {
				time.Sleep(20 * time.Millisecond) // the FIN reaches our side
			}
			w := newWire(nc)
			c := &conn{Conn: nc, w: w, br: bufio.NewReader(w), bw: bufio.NewWriter(w)}
			c.bw.WriteString("ping\n")
			if err := c.sendAndWait(); err != nil {
				t.Fatal(err)
			}
			if w.held == nil {
				t.Fatal("the request was written by Flush, not held for the read")
			}
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			began := time.Now()
			got, err := c.br.ReadString('\n')
			if tt.wantErr != nil {
				if !tt.wantErr(err) {
					t.Fatalf("got %q, %v; want an error of another kind", got, err)
				}
				if !isTimeout(err) && time.Since(began) > 100*time.Millisecond {
					t.Errorf("the error took %v to come", time.Since(began))
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
			if w.held != nil {
				t.Error("the held request is still held after the answer")
			}
		})
	}
}

// TestWireWriteError: a held write that fails is the read's error.
func TestWireWriteError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.(*net.TCPConn).CloseWrite() // writes fail with EPIPE
	w := newWire(nc)
	c := &conn{Conn: nc, w: w, br: bufio.NewReader(w), bw: bufio.NewWriter(w)}
	c.bw.WriteString("ping\n")
	if err := c.sendAndWait(); err != nil {
		t.Fatalf("Flush: %v; want the write held", err)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, err = c.br.ReadString('\n')
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "write" {
		t.Fatalf("got %v, want the held write's error", err)
	}
}
