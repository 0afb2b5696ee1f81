package router

import (
	"bytes"
	"strconv"
)

// The event loops parse only what they can vouch for: a request or response
// head that net/http would parse to the same thing. Anything else makes the
// parser give up (errHandOff), and the exchange goes to net/http, which
// parses it properly, answering 400 or 431 if need be.

// Limits of what a loop proxies itself.
const (
	loopMaxHead = 32 << 10 // request or response head; larger goes to net/http
	loopMaxBody = 64 << 10 // request body, held whole before it is sent
)

// headStatus is how far a head parse got.
type headStatus int

const (
	headIncomplete headStatus = iota // more bytes are needed
	headOK
	headHandOff // not for the loop: give it to net/http
)

var crlfcrlf = []byte("\r\n\r\n")

// loopRequest is a request head a loop proxies.
type loopRequest struct {
	method  []byte
	host    []byte // the Host header's value
	path    []byte // the request target
	headLen int    // bytes of the head, through its empty line
	bodyLen int    // Content-Length
	close   bool   // Connection: close
}

// parseRequest parses the request head at the start of b.
func parseRequest(b []byte) (req loopRequest, st headStatus) {
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		// net/http takes a bare LF for a line end, and may have a whole
		// head here.
		if len(b) > loopMaxHead || bareLF(b) {
			return req, headHandOff
		}
		return req, headIncomplete
	}
	if end+4 > loopMaxHead {
		return req, headHandOff
	}
	head := b[:end+2] // each line with its CRLF
	req.headLen = end + 4

	line, rest, ok := nextLine(head)
	if !ok {
		return req, headHandOff
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return req, headHandOff
	}
	req.method = line[:sp1]
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return req, headHandOff
	}
	req.path = line[sp1+1 : sp1+1+sp2]
	if string(line[sp1+1+sp2+1:]) != "HTTP/1.1" || !isToken(req.method) || string(req.method) == "CONNECT" ||
		req.path[0] != '/' || !cleanTarget(req.path) {
		return req, headHandOff
	}

	hosts, lengths := 0, 0
	for len(rest) > 0 {
		line, rest, ok = nextLine(rest)
		colon := bytes.IndexByte(line, ':')
		if !ok || colon <= 0 || !isToken(line[:colon]) || !cleanValue(line[colon+1:]) {
			return req, headHandOff
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		switch requestField(name) {
		case fieldHost:
			hosts++
			req.host = value
		case fieldLength:
			lengths++
			n, ok := parseLength(value)
			if !ok || n > loopMaxBody {
				return req, headHandOff
			}
			req.bodyLen = int(n)
		case fieldConnection:
			close, ok := connectionTokens(value)
			if !ok {
				return req, headHandOff
			}
			req.close = req.close || close
		case fieldRefused:
			return req, headHandOff
		}
	}
	if hosts != 1 || lengths > 1 || !validHost(req.host) {
		return req, headHandOff
	}
	return req, headOK
}

// writeRequest appends to out the request as the process gets it: the
// client's header but for the fields dropRequestHeader drops, then the
// router's forwarding fields, then the body. head is the request head
// req was parsed from; proto is "http" or "https".
func writeRequest(out []byte, head []byte, req *loopRequest, clientIP, proto, port string) []byte {
	out = append(out, req.method...)
	out = append(out, ' ')
	out = append(out, req.path...)
	out = append(out, " HTTP/1.1\r\nHost: "...)
	out = append(out, req.host...)
	out = append(out, "\r\n"...)
	_, rest, _ := nextLine(head[:req.headLen-2])
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = nextLine(rest)
		colon := bytes.IndexByte(line, ':')
		// A field named by the Connection field is hop-by-hop too.
		if requestField(line[:colon]) != fieldOther || req.close && eqFold(line[:colon], "close") {
			continue
		}
		out = append(out, line...)
		out = append(out, "\r\n"...)
	}
	out = append(out, "X-Forwarded-For: "...)
	out = append(out, clientIP...)
	out = append(out, "\r\nX-Forwarded-Host: "...)
	out = append(out, req.host...)
	out = append(out, "\r\nX-Forwarded-Proto: "...)
	out = append(out, proto...)
	out = append(out, "\r\n"...)
	if port != "" {
		out = append(out, "X-Forwarded-Port: "...)
		out = append(out, port...)
		out = append(out, "\r\n"...)
	}
	switch m := string(req.method); {
	case req.bodyLen > 0:
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, int64(req.bodyLen), 10)
		out = append(out, "\r\n"...)
	case m == "POST" || m == "PUT" || m == "PATCH":
		out = append(out, "Content-Length: 0\r\n"...)
	}
	out = append(out, "\r\n"...)
	return out
}

// loopResponse is a response head a loop relays.
type loopResponse struct {
	headLen int   // bytes of the head, through its empty line
	bodyLen int64 // bytes of body that follow
	close   bool  // the process will close the connection
}

// parseResponse parses the response head at the start of b, the answer to
// a request (HEAD when head), and appends to out the head the client gets:
// hop-by-hop fields dropped, and Connection: close when closeClient.
func parseResponse(out, b []byte, head bool, closeClient bool) (_ []byte, res loopResponse, st headStatus) {
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		if len(b) > loopMaxHead {
			return out, res, headHandOff
		}
		return out, res, headIncomplete
	}
	if end+4 > loopMaxHead {
		return out, res, headHandOff
	}
	res.headLen = end + 4
	line, rest, ok := nextLine(b[:end+2])
	// "HTTP/1.1 200 OK": 1xx answers, other versions and odd status lines
	// are net/http's.
	if !ok || len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || len(line) > 12 && line[12] != ' ' ||
		line[9] < '2' || line[9] > '9' || !isDigit(line[10]) || !isDigit(line[11]) {
		return out, res, headHandOff
	}
	if !cleanValue(line[12:]) {
		return out, res, headHandOff
	}
	status := int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	out = append(out, line...)
	out = append(out, "\r\n"...)
	lengths := 0
	res.bodyLen = -1
	for len(rest) > 0 {
		line, rest, ok = nextLine(rest)
		colon := bytes.IndexByte(line, ':')
		if !ok || colon <= 0 || !isToken(line[:colon]) || !cleanValue(line[colon+1:]) {
			return out, res, headHandOff
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		switch responseField(name) {
		case fieldLength:
			lengths++
			n, ok := parseLength(value)
			if !ok {
				return out, res, headHandOff
			}
			res.bodyLen = n
		case fieldConnection:
			close, ok := connectionTokens(value)
			if !ok {
				return out, res, headHandOff
			}
			res.close = res.close || close
			continue
		case fieldHopByHop:
			continue
		case fieldRefused:
			return out, res, headHandOff
		}
		out = append(out, line...)
		out = append(out, "\r\n"...)
	}
	switch {
	case lengths > 1:
		return out, res, headHandOff
	case head || status == 204 || status == 304:
		res.bodyLen = 0
	case res.bodyLen < 0: // until close: net/http frames it for the client
		return out, res, headHandOff
	}
	if closeClient {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	return out, res, headOK
}

// field is what a loop does with a header field.
type field int

const (
	fieldOther      field = iota // passed on as it is
	fieldHost                    // request: rewritten
	fieldLength                  // Content-Length: parsed, rewritten in requests
	fieldConnection              // parsed, dropped
	fieldHopByHop                // dropped
	fieldRefused                 // the exchange goes to net/http
)

// known names the header fields the loops treat specially; the field
// tables below say how, for requests and for responses.
type known int

const (
	knownOther known = iota
	knownHost
	knownLength
	knownConnection
	knownKeepAlive
	knownProxyConnection
	knownProxyAuthenticate
	knownProxyAuthorization
	knownTE
	knownTrailer
	knownUpgrade
	knownTransferEncoding
	knownExpect
	knownForwarding // Forwarded, X-Forwarded-For/-Host/-Port/-Proto
)

var knownNames = map[string]known{
	"host":                knownHost,
	"content-length":      knownLength,
	"connection":          knownConnection,
	"keep-alive":          knownKeepAlive,
	"proxy-connection":    knownProxyConnection,
	"proxy-authenticate":  knownProxyAuthenticate,
	"proxy-authorization": knownProxyAuthorization,
	"te":                  knownTE,
	"trailer":             knownTrailer,
	"upgrade":             knownUpgrade,
	"transfer-encoding":   knownTransferEncoding,
	"expect":              knownExpect,
	"forwarded":           knownForwarding,
	"x-forwarded-for":     knownForwarding,
	"x-forwarded-host":    knownForwarding,
	"x-forwarded-port":    knownForwarding,
	"x-forwarded-proto":   knownForwarding,
}

// lookupField names a header field, in any case.
func lookupField(name []byte) known {
	if len(name) < 2 || len(name) > len("proxy-authorization") {
		return knownOther
	}
	var lower [len("proxy-authorization")]byte
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	return knownNames[string(lower[:len(name)])] // no allocation
}

// requestFields is what the loops do with request fields, as
// dropRequestHeader and direct do on the direct path: Te and Trailer ask
// for trailers, Expect for 100-continue, Upgrade for another protocol, and
// Transfer-Encoding for a chunked body, all the direct path's.
var requestFields = [...]field{
	knownOther:              fieldOther,
	knownHost:               fieldHost,
	knownLength:             fieldLength,
	knownConnection:         fieldConnection,
	knownKeepAlive:          fieldHopByHop,
	knownProxyConnection:    fieldHopByHop,
	knownProxyAuthenticate:  fieldHopByHop,
	knownProxyAuthorization: fieldHopByHop,
	knownTE:                 fieldRefused,
	knownTrailer:            fieldRefused,
	knownUpgrade:            fieldRefused,
	knownTransferEncoding:   fieldRefused,
	knownExpect:             fieldRefused,
	knownForwarding:         fieldHopByHop, // the router's own replace them
}

// responseFields is what the loops do with response fields: announced
// trailers mean a chunked body (or a lie), and Upgrade an answer to an
// upgrade the loops never forward.
var responseFields = [...]field{
	knownOther:              fieldOther,
	knownHost:               fieldOther,
	knownLength:             fieldLength,
	knownConnection:         fieldConnection,
	knownKeepAlive:          fieldHopByHop,
	knownProxyConnection:    fieldHopByHop,
	knownProxyAuthenticate:  fieldHopByHop,
	knownProxyAuthorization: fieldHopByHop,
	knownTE:                 fieldHopByHop,
	knownTrailer:            fieldRefused,
	knownUpgrade:            fieldRefused,
	knownTransferEncoding:   fieldRefused,
	knownExpect:             fieldOther,
	knownForwarding:         fieldOther,
}

// requestField classifies a request header field by name (any case).
func requestField(name []byte) field { return requestFields[lookupField(name)] }

// responseField classifies a response header field by name (any case).
func responseField(name []byte) field { return responseFields[lookupField(name)] }

// connectionTokens reads a Connection field: ok only when it lists nothing
// but close and keep-alive, since other tokens name fields to drop.
func connectionTokens(v []byte) (close, ok bool) {
	for len(v) > 0 {
		var t []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, nil
		}
		t = trimOWS(t)
		switch {
		case eqFold(t, "close"):
			close = true
		case eqFold(t, "keep-alive"), len(t) == 0:
		default:
			return false, false
		}
	}
	return close, true
}

// nextLine splits the first CRLF-terminated line off b; ok is false for a
// bare LF or a folded line, which net/http is left to judge.
func nextLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line, rest = b[:i-1], b[i+1:]
	if len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		return nil, nil, false
	}
	return line, rest, true
}

// isToken reports whether b is an RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// cleanValue reports whether a field value has no control characters but
// tabs, as net/http requires.
func cleanValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// cleanTarget reports whether a request target is printable ASCII with
// well-formed escapes, whose query ReverseProxy would pass on unchanged
// (cleanQuery).
func cleanTarget(b []byte) bool {
	q := -1
	for i, c := range b {
		switch {
		case c <= ' ' || c >= 0x7f:
			return false
		case c == '%':
			if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
				return false
			}
		case c == '?' && q < 0:
			q = i
		}
	}
	return q < 0 || cleanQuery(string(b[q+1:]))
}

// parseLength parses a Content-Length value: decimal digits only, as
// net/http wants them.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// bareLF reports whether b has a line feed without a carriage return
// before it.
func bareLF(b []byte) bool {
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		if i == 0 || b[i-1] != '\r' {
			return true
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// validHost reports whether a Host value is a plain name, IPv4 or
// bracketed IPv6 address, with an optional port.
func validHost(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// eqFold reports whether b equals the lower-case ASCII s, in any case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
