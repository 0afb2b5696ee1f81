package socktest

import (
	"os"
	"strconv"
	"syscall"
	"testing"
)

// Find returns the descriptor of this process's IPv4 socket whose local and
// peer addresses satisfy match, failing t when there is none.
func Find(t testing.TB, match func(local, peer *syscall.SockaddrInet4) bool) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		local, err1 := syscall.Getsockname(fd)
		peer, err2 := syscall.Getpeername(fd)
		l, ok1 := local.(*syscall.SockaddrInet4)
		p, ok2 := peer.(*syscall.SockaddrInet4)
		if err1 == nil && err2 == nil && ok1 && ok2 && match(l, p) {
			return fd
		}
	}
	t.Fatal("no socket of this process has the addresses looked for")
	return -1
}
