package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client speaks the rack API to a rack at a URL of the form
// https://convox:PASSWORD@host:port, the form the official Convox CLI takes
// in RACK_URL. It satisfies Rack.
type Client struct {
	base     *url.URL // without user info
	user     string
	password string
	http     *http.Client
}

var _ Rack = (*Client)(nil)

// NewClient returns a client for rackURL. tlsConfig may be nil, in which case
// the certificate is not verified, as the official CLI does not verify it
// (racks serve self-signed certificates, spec §6.2).
func NewClient(rackURL string, tlsConfig *tls.Config) (*Client, error) {
	u, err := url.Parse(rackURL)
	if err != nil {
		return nil, fmt.Errorf("invalid rack url: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("invalid rack url %q: want https://convox:PASSWORD@host:port", Redact(rackURL))
	}
	c := &Client{user: u.User.Username()}
	c.password, _ = u.User.Password()
	u.User = nil
	u.Path = strings.TrimSuffix(u.Path, "/")
	c.base = u
	if tlsConfig == nil {
		tlsConfig = &tls.Config{InsecureSkipVerify: true}
	}
	c.http = &http.Client{Transport: &http.Transport{
		// A rack that accepts connections but never answers must not
		// hang every command; streams are bounded by their context.
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig:     tlsConfig,
		Proxy:               http.ProxyFromEnvironment,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     30 * time.Second,
	}}
	return c, nil
}

// URL is the rack's address without its password, fit for messages.
func (c *Client) URL() string { return c.base.String() }

// Redact removes the password from a rack URL.
func Redact(rackURL string) string {
	u, err := url.Parse(rackURL)
	if err != nil || u.User == nil {
		return rackURL
	}
	u.User = nil
	return u.String()
}

// ConnError means the rack did not answer at all, as opposed to answering
// with an error.
type ConnError struct {
	URL string
	Err error
}

func (e *ConnError) Error() string { return fmt.Sprintf("rack not reachable at %s: %v", e.URL, e.Err) }
func (e *ConnError) Unwrap() error { return e.Err }

// Get fetches path and returns the raw body; `convox api get` uses it.
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	res, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	return io.ReadAll(res.Body)
}

// do sends a request with form fields (nil for none) and returns the response
// when its status is below 400, else the error the body describes.
func (c *Client) do(ctx context.Context, method, path string, form url.Values) (*http.Response, error) {
	if form == nil {
		return c.request(ctx, method, path, nil, "")
	}
	return c.request(ctx, method, path, strings.NewReader(form.Encode()), "application/x-www-form-urlencoded")
}

// send sends a raw body (uploads).
func (c *Client) send(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	return c.request(ctx, method, path, body, "application/octet-stream")
}

func (c *Client) request(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	return c.roundTrip(req, contentType)
}

// roundTrip sends req with the rack's credentials and headers.
func (c *Client) roundTrip(req *http.Request, contentType string) (*http.Response, error) {
	ctx := req.Context()
	req.SetBasicAuth(c.user, c.password)
	req.Header.Set("Accept", "*/*")
	req.Header.Set("Version", Version)
	req.Header.Set("User-Agent", "convox.go/"+Version)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &ConnError{URL: c.URL(), Err: err}
	}
	if res.StatusCode < 400 {
		return res, nil
	}
	defer res.Body.Close()
	return nil, responseError(res)
}

// responseError turns an error response back into an *Error of the kind its
// status code stands for, with the server's message (spec §2.1: the JSON
// "error" field if present, else the trimmed body, else the status).
func responseError(res *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	msg := strings.TrimSpace(string(data))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if msg == "" {
		msg = "response status " + strconv.Itoa(res.StatusCode)
	}
	kind := kindOfStatus(res.StatusCode)
	if kind == nil {
		return errors.New(msg)
	}
	return &Error{Kind: kind, Msg: msg}
}

// call sends a request and decodes a JSON reply into out (nil to discard).
func (c *Client) call(ctx context.Context, method, path string, form url.Values, out any) error {
	res, err := c.do(ctx, method, path, form)
	if err != nil {
		return err
	}
	return decode(res, out)
}

// decode reads a JSON reply into out (nil to discard) and closes it.
func decode(res *http.Response, out any) error {
	defer res.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding %s %s: %w", res.Request.Method, res.Request.URL.Path, err)
	}
	return nil
}

func (c *Client) SystemGet(ctx context.Context) (*System, error) {
	var s System
	return &s, c.call(ctx, http.MethodGet, "/system", nil, &s)
}

func (c *Client) AppCreate(ctx context.Context, name string) (*App, error) {
	var a App
	return &a, c.call(ctx, http.MethodPost, "/apps", url.Values{"name": {name}}, &a)
}

func (c *Client) AppGet(ctx context.Context, name string) (*App, error) {
	var a App
	return &a, c.call(ctx, http.MethodGet, "/apps/"+url.PathEscape(name), nil, &a)
}

func (c *Client) AppList(ctx context.Context) ([]App, error) {
	var as []App
	return as, c.call(ctx, http.MethodGet, "/apps", nil, &as)
}

func (c *Client) AppUpdate(ctx context.Context, name string, opts AppUpdateOptions) error {
	form := url.Values{}
	if opts.Lock != nil {
		form.Set("lock", strconv.FormatBool(*opts.Lock))
	}
	if opts.Parameters != nil {
		p := url.Values{}
		for k, v := range opts.Parameters {
			p.Set(k, v)
		}
		form.Set("parameters", p.Encode())
	}
	return c.call(ctx, http.MethodPut, "/apps/"+url.PathEscape(name), form, nil)
}

func (c *Client) AppDelete(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/apps/"+url.PathEscape(name), nil, nil)
}

func (c *Client) AppCancel(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodPost, "/apps/"+url.PathEscape(name)+"/cancel", nil, nil)
}

func (c *Client) AppBudget(ctx context.Context, name string) (*Budget, error) {
	var b Budget
	return &b, c.call(ctx, http.MethodGet, "/apps/"+url.PathEscape(name)+"/budget", nil, &b)
}
