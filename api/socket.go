package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Streams (logs, later exec) travel over websockets as Convox frames them
// (spec §2.2): data in text frames, an empty binary frame for end of stream.

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 32 << 10,
	// Every socket route sits behind basic auth, and the official CLI sends
	// an Origin naming the rack URL it was given, which need not match the
	// Host we see (proxies, loopback aliases).
	CheckOrigin: func(*http.Request) bool { return true },
}

// serveStream opens a stream and copies it to the client over a websocket.
// An error from open is answered as plain HTTP before the upgrade, so that a
// client learns the status (404 for an unknown app) rather than an empty
// stream.
func serveStream(w http.ResponseWriter, r *http.Request, open func(ctx context.Context) (io.ReadCloser, error)) error {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stream, err := open(ctx)
	if err != nil {
		return err
	}
	defer stream.Close()
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has already answered the client.
		return nil
	}
	defer conn.Close()

	// The client's frames are read only to notice when it goes away.
	go func() {
		defer cancel()
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := stream.Read(buf)
		if n > 0 {
			if werr := conn.WriteMessage(websocket.TextMessage, buf[:n]); werr != nil {
				return nil
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				_ = conn.WriteMessage(websocket.TextMessage, []byte("ERROR: "+err.Error()+"\n"))
			}
			break
		}
	}
	_ = conn.WriteMessage(websocket.BinaryMessage, nil)
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return nil
}

// logsOptions reads LogsOptions from request headers.
func logsOptions(r *http.Request) (LogsOptions, error) {
	var opts LogsOptions
	opts.Filter = r.Header.Get("Filter")
	if v := r.Header.Get("Follow"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return opts, Errorf(ErrInvalid, "Follow must be true or false, got %q", v)
		}
		opts.Follow = &b
	}
	if v := r.Header.Get("Prefix"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return opts, Errorf(ErrInvalid, "Prefix must be true or false, got %q", v)
		}
		opts.Prefix = &b
	}
	if v := r.Header.Get("Since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return opts, Errorf(ErrInvalid, "Since must be a duration such as 2m, got %q", v)
		}
		opts.Since = &d
	}
	if v := r.Header.Get("Tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return opts, Errorf(ErrInvalid, "Tail must be a number, got %q", v)
		}
		opts.Tail = &n
	}
	return opts, nil
}

func (o LogsOptions) headers() http.Header {
	h := http.Header{}
	if o.Filter != "" {
		h.Set("Filter", o.Filter)
	}
	if o.Follow != nil {
		h.Set("Follow", strconv.FormatBool(*o.Follow))
	}
	if o.Prefix != nil {
		h.Set("Prefix", strconv.FormatBool(*o.Prefix))
	}
	if o.Since != nil {
		h.Set("Since", o.Since.String())
	}
	if o.Tail != nil {
		h.Set("Tail", strconv.Itoa(*o.Tail))
	}
	return h
}

// stream dials a socket route and returns its data as a reader that ends at
// the server's end-of-stream frame.
func (c *Client) stream(ctx context.Context, path string, h http.Header) (io.ReadCloser, error) {
	conn, err := c.dial(ctx, path, h)
	if err != nil {
		return nil, err
	}
	s := &socketReader{wsConn: &wsConn{conn: conn}}
	// Closing the connection is how a blocked Read is interrupted.
	s.stop = context.AfterFunc(ctx, func() { s.Close() })
	return s, nil
}

// dial opens a websocket to a socket route with the rack's credentials.
func (c *Client) dial(ctx context.Context, path string, h http.Header) (*websocket.Conn, error) {
	u := *c.base
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path += path
	h = h.Clone()
	req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	req.SetBasicAuth(c.user, c.password)
	h.Set("Authorization", req.Header.Get("Authorization"))
	h.Set("Version", Version)
	h.Set("Origin", c.base.String())
	d := websocket.Dialer{
		TLSClientConfig:  c.tls(),
		HandshakeTimeout: 30 * time.Second,
		Proxy:            http.ProxyFromEnvironment,
	}
	conn, res, err := d.DialContext(ctx, u.String(), h)
	if err != nil {
		if res != nil {
			defer res.Body.Close()
			if res.StatusCode >= 400 {
				return nil, responseError(res)
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &ConnError{URL: c.URL(), Err: err}
	}
	return conn, nil
}

// socketReader is the client's end of a stream: the socket's data until
// the server's end-of-stream frame.
type socketReader struct {
	*wsConn
	stop    func() bool
	closeMu sync.Once
}

func (s *socketReader) Read(p []byte) (int, error) {
	n, err := s.wsConn.Read(p)
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("reading stream: %w", err)
	}
	return n, err
}

func (s *socketReader) Close() error {
	var err error
	s.closeMu.Do(func() {
		if s.stop != nil {
			s.stop()
		}
		err = s.conn.Close()
	})
	return err
}

func (c *Client) tls() *tls.Config {
	if t, ok := c.http.Transport.(*http.Transport); ok {
		return t.TLSClientConfig
	}
	return nil
}
