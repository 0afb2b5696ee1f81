package engine

import (
	"errors"

	"github.com/singlehost/convox/api"
)

// ErrNotFound is wrapped by Runtime implementations when the object asked
// for does not exist.
var ErrNotFound = errors.New("not found")

// ErrUnavailable is wrapped by Runtime implementations when the runtime does
// not answer (the Docker engine is down); the API answers 503 with the
// message.
var ErrUnavailable = api.ErrUnavailable
