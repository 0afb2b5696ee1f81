package router

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The direct path forwards a plain HTTP/1.1 request to a process on the
// handler's own goroutine, over a keep-alive connection from the target's
// pool: write the request, read the response, copy it to the client, put
// the connection back. It skips what httputil.ReverseProxy and
// http.Transport cost per request (a request clone, two goroutines per
// connection and the channel hand-offs between them), which is most of the
// router's CPU (BENCHMARKS.md, Router). ReverseProxy keeps the rest:
// upgrades such as websockets, https and gRPC targets, and requests out of
// the ordinary (see direct).

// inlineBody is the largest request body written on the handler's goroutine
// before the response is read. It fits in the socket buffers even when the
// process answers without reading it; a larger body, or one of unknown
// length, is written by a goroutine of its own while the response is read.
const inlineBody = 64 << 10

// direct reports whether r may take the direct path to a target of rte.
func direct(rte *route, r *http.Request) bool {
	return rte.direct &&
		r.Method != http.MethodConnect &&
		r.Header["Upgrade"] == nil &&
		r.Trailer == nil && // declared request trailers
		(strings.HasPrefix(r.RequestURI, "/") || r.RequestURI == "*") &&
		cleanQuery(r.URL.RawQuery)
}

// cleanQuery reports whether ReverseProxy would pass query on unchanged: it
// re-encodes queries with semicolons, bad escapes or very many parameters.
func cleanQuery(query string) bool {
	if strings.Count(query, "&") >= 10000 {
		return false
	}
	for i := 0; i < len(query); i++ {
		switch query[i] {
		case ';':
			return false
		case '%':
			if i+2 >= len(query) || !isHex(query[i+1]) || !isHex(query[i+2]) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// watchAfter is how long a request waits for its response before the router
// watches for the client going away (exchange.watch). Most answers come
// sooner, and watching costs a registration with the request's context.
const watchAfter = 10 * time.Millisecond

// exchange is one request and response on a connection to a process.
type exchange struct {
	c   *conn
	ctx context.Context // the request's
	res *http.Response
	// stop ends the watch, if any, that closes c when the client goes
	// away; it reports false when that has happened.
	stop func() bool
	// received is set once any byte of a response arrived.
	received bool

	// written delivers the result of the goroutine writing the request
	// body (nil when the body was written inline), and bodyRead is set by
	// that goroutine once it has read the client's body to the end.
	written  chan error
	bodyRead atomic.Bool
	// headMu orders the deadline that writeBody sets, once the body is
	// out, and the clearing of deadlines once the response head is in:
	// the head's deadline must not cut the body of the response.
	headMu sync.Mutex
	headIn bool
	// broken is set when the connection cannot be reused.
	broken bool
}

// forward proxies r to p's target on the direct path.
func (rt *Router) forward(w http.ResponseWriter, r *http.Request, p *pick) {
	x, err := rt.send(w, r, p)
	if err != nil {
		rt.fail(w, r, p, err)
		return
	}
	rt.respond(w, p, x)
}

// respond passes x's response, whose head is in, on to w.
func (rt *Router) respond(w http.ResponseWriter, p *pick, x *exchange) {
	complete := false
	defer func() { x.finish(w, p.target, complete) }()

	res := x.res
	h := w.Header()
	listed := res.Header["Connection"]
	for k, vv := range res.Header {
		if !hopByHop(k) && (listed == nil || !hasToken(listed, k)) {
			h[k] = vv
		}
	}
	if p.route.sticky && !p.fromCookie {
		h.Add("Set-Cookie", rt.stickyCookie(p))
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(res.StatusCode)
	if err := x.copyBody(w); err != nil {
		// The status line is out: all that is left is to cut the
		// response short, as ReverseProxy does.
		rt.log.Debug("copying the response failed", "app", p.route.app, "service", p.route.service,
			"target", p.target.host, "error", err)
		panic(http.ErrAbortHandler)
	}
	if len(res.Trailer) > 0 {
		// Flushing before the handler returns makes the server send a
		// chunked body, the only one that can carry trailers.
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		// Trailers the head did not announce need the server's prefix.
		prefix := len(res.Trailer) != announced
		for k, vv := range res.Trailer {
			if prefix {
				k = http.TrailerPrefix + k
			}
			h[k] = vv
		}
	}
	complete = true
}

// send writes r to a connection to p's target and reads the response head.
//
// When connecting fails, it moves p to another target once (see retrier).
// When a pooled connection turns out closed before any byte of a response
// came back, it sends the request again on a new connection if that is
// safe: the method is idempotent and there is no body, so nothing was lost
// and the process may see the request twice. A request that cannot be sent
// again only gets a pooled connection that looks open (alive).
func (rt *Router) send(w http.ResponseWriter, r *http.Request, p *pick) (*exchange, error) {
	ctx := r.Context()
	replayable := r.ContentLength == 0 && idempotent(r)
	fresh := false
	for {
		c, err := p.target.conn(ctx, p.route.timeout, fresh, !replayable)
		if err != nil {
			if !p.retried && dialFailed(err) && rt.repick(p) {
				p.retried = true
				rt.log.Debug("retrying on another process", "app", p.route.app, "service", p.route.service,
					"target", p.target.host, "error", err)
				continue
			}
			return nil, err
		}
		x := &exchange{c: c, ctx: ctx}
		err = rt.roundTrip(w, r, p, x)
		if err == nil {
			return x, nil
		}
		x.unwatch()
		if werr := x.join(w); werr != nil && isClientError(werr) {
			err = werr
		}
		c.Close()
		if replayable && c.reused && !x.received && ctx.Err() == nil && !isTimeout(err) {
			fresh = true
			rt.log.Debug("the process closed a pooled connection; sending again on a new one", "app", p.route.app,
				"service", p.route.service, "target", p.target.host, "error", err)
			continue
		}
		return nil, err
	}
}

// conn returns a pooled connection to t, or a new one when fresh or when
// the pool is empty. With check, pooled connections that the process has
// closed are skipped.
func (t *target) conn(ctx context.Context, timeout time.Duration, fresh, check bool) (*conn, error) {
	for !fresh {
		c := t.get()
		if c == nil {
			break
		}
		if check && !alive(c.Conn) {
			c.Close()
			continue
		}
		return c, nil
	}
	return t.dial(ctx, timeout)
}

// idempotent reports whether r may be sent twice, by the rule of
// http.Transport.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return r.Header["Idempotency-Key"] != nil || r.Header["X-Idempotency-Key"] != nil
}

// roundTrip sends r on x.c and reads the head of the response into x.res,
// forwarding informational (1xx) responses to w.
func (rt *Router) roundTrip(w http.ResponseWriter, r *http.Request, p *pick, x *exchange) error {
	c := x.c
	rt.writeHead(c, r)
	switch n := r.ContentLength; {
	case n == 0:
		if err := c.sendAndWait(); err != nil {
			return err
		}
	case n > 0 && n <= inlineBody:
		body := &clientBody{r: r.Body}
		if _, err := io.CopyN(c.bw, body, n); err != nil {
			return cmpOr(body.err, err)
		}
		if err := c.sendAndWait(); err != nil {
			return err
		}
	default:
		x.watch()
		x.written = make(chan error, 1)
		go func() {
			err := x.writeBody(r, p.route.timeout)
			x.written <- err
			if err != nil {
				// Ends the wait for a response that cannot come, once
				// join can tell why.
				c.Close()
			}
		}()
	}

	// The response must start within the route's timeout of the end of
	// the request, as with http.Transport's ResponseHeaderTimeout: a
	// large body is given all the time it takes, and writeBody sets the
	// deadline. Otherwise the first watchAfter is waited for without
	// watching the client.
	extended := true
	var deadline time.Time
	if x.written == nil {
		now := time.Now()
		deadline = now.Add(p.route.timeout)
		first := min(p.route.timeout, watchAfter)
		c.SetReadDeadline(now.Add(first))
		extended = first == p.route.timeout
	}
	return rt.readHead(w, r, x, extended, deadline)
}

// readHead reads the head of the response to r into x.res, forwarding
// informational (1xx) responses to w. Unless extended, the read deadline
// set is a first one, after which the client is watched and deadline set.
func (rt *Router) readHead(w http.ResponseWriter, r *http.Request, x *exchange, extended bool, deadline time.Time) error {
	c := x.c
	for {
		if _, err := c.br.Peek(1); err != nil {
			if !extended && isTimeout(err) {
				extended = true
				x.watch()
				c.SetReadDeadline(deadline)
				continue
			}
			return err
		}
		x.received = true
		res, err := http.ReadResponse(c.br, r)
		if err != nil {
			return err
		}
		switch code := res.StatusCode; {
		case code < 100 || code > 999:
			return errors.New("malformed status code " + strconv.Itoa(code))
		case code == http.StatusSwitchingProtocols:
			return errors.New("the process switched protocols unasked")
		case code >= 200:
			x.headMu.Lock()
			x.headIn = true
			c.SetReadDeadline(time.Time{})
			x.headMu.Unlock()
			x.res = res
			return nil
		case code == http.StatusContinue:
			// An answer to an Expect that was not forwarded: the client
			// got its own from the server.
		default:
			h := w.Header()
			for k, vv := range res.Header {
				h[k] = vv
			}
			w.WriteHeader(code)
			clear(h) // WriteHeader keeps the header of a 1xx answer
		}
	}
}

// writeBody writes r's body after its head, from a goroutine of its own,
// flushing each chunk of a body of unknown length as it comes (a stream).
func (x *exchange) writeBody(r *http.Request, timeout time.Duration) (err error) {
	c := x.c
	body := &clientBody{r: r.Body}
	defer func() { err = cmpOr(body.err, err) }()
	if err := c.bw.Flush(); err != nil {
		return err
	}
	if r.ContentLength > 0 {
		if _, err := io.CopyN(c.bw, body, r.ContentLength); err != nil {
			return err
		}
	} else {
		buf := copyBuffers.get()
		defer copyBuffers.put(buf)
		cw := httputil.NewChunkedWriter(flushWriter{c})
		if _, err := io.CopyBuffer(cw, body, *buf); err != nil {
			return err
		}
		if err := cw.Close(); err != nil {
			return err
		}
		if _, err := c.bw.WriteString("\r\n"); err != nil { // no trailers
			return err
		}
	}
	x.bodyRead.Store(true)
	if err := c.bw.Flush(); err != nil {
		return err
	}
	x.headMu.Lock()
	if !x.headIn {
		c.SetReadDeadline(time.Now().Add(timeout))
	}
	x.headMu.Unlock()
	return nil
}

// flushWriter writes each chunk of a request body through to the process.
type flushWriter struct{ c *conn }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.c.bw.Write(p)
	if err == nil {
		err = f.c.bw.Flush()
	}
	return n, err
}

// clientBody records the errors of reading a client's body, to tell them
// from those of writing it to the process.
type clientBody struct {
	r   io.Reader
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = clientError{err}
	}
	return n, err
}

// clientError is a failure to read the client's request body: its limit
// (413), or the client going away.
type clientError struct{ error }

func (e clientError) Unwrap() error { return e.error }

func isClientError(err error) bool {
	var ce clientError
	return errors.As(err, &ce)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// watch closes x's connection when the client goes away, until unwatch: a
// request waiting on its process must not outlive its client, nor hold off
// a Drain.
func (x *exchange) watch() {
	if x.stop == nil {
		c := x.c
		x.stop = context.AfterFunc(x.ctx, func() { c.Close() })
	}
}

// unwatch ends the watch; it reports false when the watch closed the
// connection.
func (x *exchange) unwatch() bool {
	return x.stop == nil || x.stop()
}

// join waits for the goroutine writing the request body, if there is one,
// and returns its error. If that goroutine is still at work, the response
// came first: closing the connection stops its writes, and if it still
// waits on a client that holds back the rest of its body, so does ending
// the reading of the client's connection.
func (x *exchange) join(w http.ResponseWriter) error {
	if x.written == nil {
		return nil
	}
	select {
	case err := <-x.written:
		x.written = nil
		return err
	default:
	}
	x.broken = true
	x.c.Close()
	if !x.bodyRead.Load() {
		grace := time.NewTimer(bodyGrace)
		select {
		case <-x.written:
			grace.Stop()
			x.written = nil
			return errBodyCut
		case <-grace.C:
		}
		http.NewResponseController(w).SetReadDeadline(time.Now())
	}
	<-x.written // an error of our making
	x.written = nil
	return errBodyCut
}

// bodyGrace is how long join lets a client go on sending a body the process
// did not wait for, before it stops reading it.
const bodyGrace = 100 * time.Millisecond

// errBodyCut is the result of a request body that join stopped writing.
var errBodyCut = errors.New("the request body was cut short: the process answered before it was sent")

// finish ends x: its connection goes back to t's pool if the response was
// read to its end and the connection can carry another, else it is closed.
func (x *exchange) finish(w http.ResponseWriter, t *target, complete bool) {
	werr := x.join(w)
	open := x.unwatch()
	if complete && werr == nil && open && !x.broken && !x.res.Close && x.c.br.Buffered() == 0 {
		t.put(x.c)
		return
	}
	x.c.Close()
}

// copyBody copies the response body to w. A stream (a body of unknown
// length, or server-sent events) is flushed to the client whenever nothing
// more is at hand, so that each event goes out as it comes.
func (x *exchange) copyBody(w http.ResponseWriter) error {
	res, br := x.res, x.c.br
	flusher, _ := w.(http.Flusher)
	stream := flusher != nil && (res.ContentLength < 0 || isEventStream(res.Header["Content-Type"]))
	if stream && br.Buffered() == 0 {
		flusher.Flush() // the head, before waiting for the body
	}
	if res.Body == http.NoBody {
		return nil
	}
	if res.ContentLength > 0 {
		// Straight from the connection's buffer.
		for n := res.ContentLength; n > 0; {
			if br.Buffered() == 0 {
				x.watch()
				if _, err := br.Peek(1); err != nil {
					return cmpOr(noEOF(err), io.ErrUnexpectedEOF)
				}
			}
			b, _ := br.Peek(int(min(int64(br.Buffered()), n)))
			if _, err := w.Write(b); err != nil {
				return err
			}
			br.Discard(len(b))
			n -= int64(len(b))
			if stream && br.Buffered() == 0 {
				flusher.Flush()
			}
		}
		return nil
	}
	x.watch() // a stream can wait long between events
	buf := copyBuffers.get()
	defer copyBuffers.put(buf)
	for {
		n, err := res.Body.Read(*buf)
		if n > 0 {
			if _, werr := w.Write((*buf)[:n]); werr != nil {
				return werr
			}
			if stream && br.Buffered() == 0 {
				flusher.Flush()
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func noEOF(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// isEventStream reports whether a Content-Type is text/event-stream.
func isEventStream(ct []string) bool {
	const es = "text/event-stream"
	if len(ct) == 0 || len(ct[0]) < len(es) || !strings.EqualFold(ct[0][:len(es)], es) {
		return false
	}
	rest := ct[0][len(es):]
	return rest == "" || rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t'
}

// writeHead writes the request line and header of r to c, as ReverseProxy
// would send them: hop-by-hop headers dropped, the client's forwarding
// headers replaced by ours, the Host kept.
func (rt *Router) writeHead(c *conn, r *http.Request) {
	bw := c.bw
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(r.RequestURI)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	listed := r.Header["Connection"]
	for k, vv := range r.Header {
		if dropRequestHeader(k) || (listed != nil && hasToken(listed, k)) {
			continue
		}
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
	if te := r.Header["Te"]; te != nil && hasToken(te, "trailers") {
		writeField(bw, "Te", "trailers")
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		writeField(bw, "X-Forwarded-For", ip)
	}
	writeField(bw, "X-Forwarded-Host", r.Host)
	if r.TLS == nil {
		writeField(bw, "X-Forwarded-Proto", "http")
	} else {
		writeField(bw, "X-Forwarded-Proto", "https")
	}
	if port := rt.localPort(r); port != "" {
		writeField(bw, "X-Forwarded-Port", port)
	}
	switch n := r.ContentLength; {
	case n > 0:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), n, 10))
		bw.WriteString("\r\n")
	case n < 0:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH":
		// As http.Transport does: some servers want a length for these.
		bw.WriteString("Content-Length: 0\r\n")
	}
	bw.WriteString("\r\n")
}

func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// dropRequestHeader reports whether the request header k is not forwarded
// as it came: hop-by-hop headers, the framing (rewritten for the process),
// Expect (the server answers the client's 100-continue itself), and the
// client's forwarding headers (the router is the edge).
func dropRequestHeader(k string) bool {
	switch k {
	case "Content-Length", "Expect", "Host",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port":
		return true
	}
	return hopByHop(k)
}

// hopByHop reports whether the header k describes a connection rather than
// the message (RFC 9110 §7.6.1, and the older ones ReverseProxy drops).
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// hasToken reports whether the comma-separated values hold token, in any
// case.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// localPort is the port of the listener that accepted r, for
// X-Forwarded-Port. The decimal form of the last two ports seen is kept,
// which spares an allocation per request.
func (rt *Router) localPort(r *http.Request) string {
	addr, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if addr == nil {
		return ""
	}
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		_, port, _ := net.SplitHostPort(addr.String())
		return port
	}
	slot := &rt.ports[ta.Port&1]
	if ps := slot.Load(); ps != nil && ps.port == ta.Port {
		return ps.s
	}
	ps := &portString{ta.Port, strconv.Itoa(ta.Port)}
	slot.Store(ps)
	return ps.s
}

// portString is a port and its decimal form.
type portString struct {
	port int
	s    string
}
