//go:build !race

package balancer

// largeTransfer is how many bytes TestBalancer_LargeTransfer sends through
// the balancer and back.
const largeTransfer = 256 << 20
