//go:build race

package balancer

// largeTransfer is smaller under the race detector, which slows the
// checksumming test side down more than tenfold.
const largeTransfer = 32 << 20
