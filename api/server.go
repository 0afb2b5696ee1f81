package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// Server serves the Convox rack API for any Rack over HTTP. Every route
// requires HTTP basic auth with the rack password; the user name is ignored,
// as Convox ignores it (spec §2.1).
type Server struct {
	rack     Rack
	password string
	log      *slog.Logger
	mux      *http.ServeMux
}

// NewServer returns a Server for rack, guarded by password. log receives one
// line per failed request; nil discards them.
func NewServer(rack Rack, password string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{rack: rack, password: password, log: log, mux: http.NewServeMux()}
	s.routes()
	return s
}

// handlerFunc is an http.HandlerFunc that returns its error instead of
// writing it, so that every failure is reported the same way.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.log.Info("request failed", "method", r.Method, "path", r.URL.Path, "status", StatusCode(err), "error", err)
			writeError(w, r, err)
		}
	})
}

// ServeHTTP authenticates the request, then dispatches it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Request-Id", requestID())
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	if !s.authorized(r) {
		h.Set("WWW-Authenticate", `Basic realm="convox"`)
		writeError(w, r, Errorf(ErrUnauthorized, "invalid authentication"))
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	// "jwt" users carry role tokens minted by POST /system/jwt/token, which
	// this rack does not issue.
	if !ok || user == "jwt" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(pass), []byte(s.password)) == 1
}

func requestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeError writes err as Convox does: a plain-text body with the right
// status, or {"error": …} when the client asks for JSON.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := StatusCode(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		var e *Error
		if !errors.As(err, &e) {
			msg = "internal error: " + msg
		}
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	http.Error(w, msg, status)
}

// writeJSON writes v indented, as Convox's stdapi does.
func writeJSON(w http.ResponseWriter, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(append(data, '\n'))
	return err
}

// writeOK is the body of every route that returns no content.
func writeOK(w http.ResponseWriter) error {
	_, err := w.Write([]byte("ok\n"))
	return err
}

// formBool reads an optional boolean form field.
func formBool(r *http.Request, name string) (*bool, error) {
	v := r.FormValue(name)
	if v == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return nil, Errorf(ErrInvalid, "%s must be true or false, got %q", name, v)
	}
	return &b, nil
}

// formInt reads an optional integer form field; absent is 0.
func formInt(r *http.Request, name string) (int, error) {
	v := r.FormValue(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, Errorf(ErrInvalid, "%s must be a number, got %q", name, v)
	}
	return n, nil
}
