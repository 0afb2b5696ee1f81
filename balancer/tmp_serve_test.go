package balancer

import (
	"context"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"testing"
)

func TestTmpServe(t *testing.T) {
	p := os.Getenv("SERVE_PORT")
	if p == "" {
		t.Skip()
	}
	port, _ := strconv.Atoi(p)
	b := New(Options{BindAddr: "127.0.0.1"})
	if err := b.Set(context.Background(), "x", []Listener{{Name: "lb", Port: port, Targets: []netip.AddrPort{netip.MustParseAddrPort(os.Getenv("SERVE_TARGET"))}}}); err != nil {
		t.Fatal(err)
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt)
	<-ch
	b.Close()
}
