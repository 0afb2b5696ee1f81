// Package socktest is test support: it finds a socket of this process by
// its addresses, so that a test can read the options of a socket an event
// loop owns (Linux only: it reads /proc/self/fd).
package socktest
