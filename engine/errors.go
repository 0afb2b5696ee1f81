package engine

import "errors"

// ErrNotFound is wrapped by Runtime implementations when the object asked
// for does not exist.
var ErrNotFound = errors.New("not found")
