package api

import (
	"bytes"
	"context"
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

// wsConn adapts a websocket to io.ReadWriter with Convox's framing: data in
// text frames, an empty binary frame for end of input. Writes are
// serialised (a command's stdout and stderr arrive from two goroutines).
type wsConn struct {
	conn *websocket.Conn
	wmu  sync.Mutex
	cur  io.Reader
	eof  bool
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.conn.WriteMessage(websocket.TextMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// closeWrite sends the end-of-input frame.
func (c *wsConn) closeWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.conn.WriteMessage(websocket.BinaryMessage, nil)
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.eof {
			return 0, io.EOF
		}
		if c.cur != nil {
			n, err := c.cur.Read(p)
			if err == io.EOF {
				c.cur = nil
				if n > 0 {
					return n, nil
				}
				continue
			}
			return n, err
		}
		kind, r, err := c.conn.NextReader()
		if err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				return 0, io.EOF
			}
			return 0, err
		}
		if kind == websocket.BinaryMessage {
			// An empty binary frame ends the input; a non-empty one is
			// data from a peer that frames it so.
			data, err := io.ReadAll(r)
			if err != nil {
				return 0, err
			}
			if len(data) == 0 {
				c.eof = true
				return 0, io.EOF
			}
			c.cur = strings.NewReader(string(data))
			continue
		}
		c.cur = r
	}
}

func execOptions(r *http.Request) (string, ProcessExecOptions, error) {
	var opts ProcessExecOptions
	h := r.Header
	cmd := h.Get("Command")
	if cmd == "" {
		return "", opts, Errorf(ErrInvalid, "no command given")
	}
	opts.Tty = true // Convox's default (spec §2.3)
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"Entrypoint", &opts.Entrypoint}, {"Tty", &opts.Tty}, {"Disable-Stdin", &opts.DisableStdin}} {
		if v := h.Get(b.name); v != "" {
			x, err := strconv.ParseBool(v)
			if err != nil {
				return "", opts, Errorf(ErrInvalid, "%s must be true or false, got %q", b.name, v)
			}
			*b.dst = x
		}
	}
	for _, n := range []struct {
		name string
		dst  *int
	}{{"Height", &opts.Height}, {"Width", &opts.Width}} {
		if v := h.Get(n.name); v != "" {
			x, err := strconv.Atoi(v)
			if err != nil {
				return "", opts, Errorf(ErrInvalid, "%s must be a number, got %q", n.name, v)
			}
			*n.dst = x
		}
	}
	return cmd, opts, nil
}

func (s *Server) processExec(w http.ResponseWriter, r *http.Request) error {
	app, pid := r.PathValue("app"), r.PathValue("pid")
	cmd, opts, err := execOptions(r)
	if err != nil {
		return err
	}
	// Unknown apps and processes are answered before the upgrade, with
	// their status.
	if _, err := s.rack.ProcessGet(r.Context(), app, pid); err != nil {
		return err
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return nil
	}
	defer conn.Close()
	ws := &wsConn{conn: conn}
	code, err := s.rack.ProcessExec(r.Context(), app, pid, cmd, ws, opts)
	if err != nil {
		_, _ = ws.Write([]byte("ERROR: " + err.Error() + "\n"))
		code = 1
	}
	_, _ = ws.Write([]byte(fmt.Sprintf("%s:%d\n", ExitMarker, code)))
	_ = ws.closeWrite()
	ws.wmu.Lock()
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	ws.wmu.Unlock()
	return nil
}

// ProcessExec runs command in process pid over the exec socket, copying
// rw's input to it and its output to rw, and returns its exit code.
func (c *Client) ProcessExec(ctx context.Context, app, pid, command string, rw io.ReadWriter, opts ProcessExecOptions) (int, error) {
	h := http.Header{}
	h.Set("Command", command)
	h.Set("Entrypoint", strconv.FormatBool(opts.Entrypoint))
	h.Set("Tty", strconv.FormatBool(opts.Tty))
	h.Set("Disable-Stdin", strconv.FormatBool(opts.DisableStdin))
	if opts.Height > 0 {
		h.Set("Height", strconv.Itoa(opts.Height))
	}
	if opts.Width > 0 {
		h.Set("Width", strconv.Itoa(opts.Width))
	}
	conn, err := c.dial(ctx, appPath(app, "processes", pid, "exec"), h)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ws := &wsConn{conn: conn}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if !opts.DisableStdin {
		go func() {
			if _, err := io.Copy(ws, rw); err == nil {
				_ = ws.closeWrite()
			}
		}()
	}
	marker := []byte(ExitMarker + ":")
	buf := make([]byte, 32<<10)
	var pending []byte // output that may hold the start of the marker
	for {
		n, err := ws.Read(buf)
		pending = append(pending, buf[:n]...)
		if i := strings.Index(string(pending), string(marker)); i >= 0 {
			if _, werr := rw.Write(pending[:i]); werr != nil {
				return 0, werr
			}
			rest := strings.TrimSpace(string(pending[i+len(marker):]))
			if j := strings.IndexAny(rest, "\r\n"); j >= 0 {
				rest = rest[:j]
			}
			code, cerr := strconv.Atoi(rest)
			if cerr != nil {
				return 0, fmt.Errorf("invalid exit code from the rack: %q", rest)
			}
			return code, nil
		}
		// Keep back only a tail that could be the marker's beginning, so
		// output flows as it comes.
		keep := 0
		for k := min(len(pending), len(marker)-1); k > 0; k-- {
			if bytes.HasSuffix(pending, marker[:k]) {
				keep = k
				break
			}
		}
		if _, werr := rw.Write(pending[:len(pending)-keep]); werr != nil {
			return 0, werr
		}
		pending = append([]byte(nil), pending[len(pending)-keep:]...)
		if err != nil {
			_, _ = rw.Write(pending)
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return 0, errors.New("the rack closed the session without an exit code")
			}
			return 0, fmt.Errorf("exec session: %w", err)
		}
	}
}
