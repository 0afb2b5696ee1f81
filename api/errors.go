package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Error kinds. Every error that crosses the API carries one of them, so the
// server can choose a status code and the client can give the same kind back
// to its caller. Match them with errors.Is.
var (
	// ErrInvalid is bad input: a malformed name, a missing field (400).
	ErrInvalid = errors.New("invalid")
	// ErrUnauthorized is a missing or wrong rack password (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden is a request the current state does not allow, such as
	// cancelling an app that is not updating (403).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound is an unknown app, build, release or process (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict is a request that collides with existing state: a
	// duplicate name, a locked app (409).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable is a dependency that does not answer, such as the
	// Docker engine (503).
	ErrUnavailable = errors.New("unavailable")
)

// Error is an error of a given kind whose message is exactly what Convox
// prints, e.g. "app not found: myapp".
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

// Errorf returns an *Error of the given kind.
func Errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

var statusOfKind = []struct {
	kind   error
	status int
}{
	{ErrInvalid, http.StatusBadRequest},
	{ErrUnauthorized, http.StatusUnauthorized},
	{ErrForbidden, http.StatusForbidden},
	{ErrNotFound, http.StatusNotFound},
	{ErrConflict, http.StatusConflict},
	{ErrUnavailable, http.StatusServiceUnavailable},
}

// StatusCode is the HTTP status for err: the status of its kind, else 500.
func StatusCode(err error) int {
	for _, s := range statusOfKind {
		if errors.Is(err, s.kind) {
			return s.status
		}
	}
	return http.StatusInternalServerError
}

// kindOfStatus is the inverse of StatusCode, used by the client.
func kindOfStatus(status int) error {
	for _, s := range statusOfKind {
		if s.status == status {
			return s.kind
		}
	}
	return nil
}
