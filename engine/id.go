package engine

import "math/rand/v2"

// newID returns prefix + 10 random upper-case letters, Convox's form for
// build and release ids (BABCDEFGHIJ, RABCDEFGHIJ).
func newID(prefix string) string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, 10)
	for i := range b {
		b[i] = letters[rand.IntN(len(letters))]
	}
	return prefix + string(b)
}

// newProcessID returns a process id that starts with its service's name, as
// tools that grep `convox ps` for "web-" expect (spec §2.5): web-x8k2q.
func newProcessID(service string) string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 5)
	for i := range b {
		b[i] = chars[rand.IntN(len(chars))]
	}
	return service + "-" + string(b)
}
