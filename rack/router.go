package rack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/singlehost/convox/balancer"
	"github.com/singlehost/convox/engine"
	"github.com/singlehost/convox/router"
)

// Router defaults and the loopback ports used instead when a default cannot
// be bound (ports below 1024 need root or CAP_NET_BIND_SERVICE, and a
// laptop may already run a web server).
const (
	defaultRouterHTTP   = ":80"
	defaultRouterHTTPS  = ":443"
	fallbackRouterHTTP  = "127.0.0.1:8080"
	fallbackRouterHTTPS = "127.0.0.1:8443"
)

// listenRouter binds addr; when addr is the default and cannot be bound it
// falls back, saying so in one log line. A port the user chose must bind.
func listenRouter(log *slog.Logger, addr, def, fallback, flag string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if addr != def || !(errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EADDRINUSE)) {
		return nil, fmt.Errorf("router cannot listen on %s: %w (choose another address with %s)", addr, errors.Unwrap(err), flag)
	}
	fb, ferr := net.Listen("tcp", fallback)
	if ferr != nil {
		return nil, fmt.Errorf("router cannot listen on %s (%v) nor on %s (%v): choose an address with %s", addr, errors.Unwrap(err), fallback, errors.Unwrap(ferr), flag)
	}
	log.Warn(fmt.Sprintf("router: cannot listen on %s (%v); serving on %s instead (set %s to choose; ports below 1024 need root or CAP_NET_BIND_SERVICE)", addr, errors.Unwrap(err), fallback, flag))
	return fb, nil
}

// acmeOptions turns the --acme-* flags into the router's ACME options, nil
// when --acme-directory is empty. Certificates are kept in <home>/acme.
func acmeOptions(cfg Config) (*router.ACMEOptions, error) {
	dir := cfg.ACMEDirectory
	switch dir {
	case "":
		if cfg.ACMEEmail != "" || cfg.ACMECAFile != "" {
			return nil, errors.New("--acme-email and --acme-ca-file need --acme-directory")
		}
		return nil, nil
	case "letsencrypt":
		dir = router.LetsEncryptDirectory
	case "letsencrypt-staging":
		dir = router.LetsEncryptStagingDirectory
	}
	if u, err := url.Parse(dir); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("invalid --acme-directory %q: want an http(s) URL, letsencrypt or letsencrypt-staging", cfg.ACMEDirectory)
	}
	opts := &router.ACMEOptions{DirectoryURL: dir, Email: cfg.ACMEEmail, CacheDir: filepath.Join(cfg.Home, "acme")}
	if cfg.ACMECAFile != "" {
		pem, err := os.ReadFile(cfg.ACMECAFile)
		if err != nil {
			return nil, fmt.Errorf("reading --acme-ca-file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--acme-ca-file %s holds no PEM certificate", cfg.ACMECAFile)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		opts.HTTPClient = &http.Client{Transport: tr}
	}
	return opts, nil
}

// routes adapts the router to the engine's Routes interface: the engine
// cannot import router, nor router the engine.
type routes struct{ r *router.Router }

func (a routes) SetRoutes(app string, rs []engine.Route) {
	out := make([]router.Route, len(rs))
	for i, r := range rs {
		out[i] = router.Route{
			Service:   r.Service,
			Hosts:     r.Hosts,
			Targets:   r.Targets,
			Scheme:    r.Scheme,
			Sticky:    r.Sticky,
			Timeout:   r.Timeout,
			Redirect:  r.Redirect,
			Whitelist: r.Whitelist,
		}
	}
	a.r.SetRoutes(app, out)
}

func (a routes) Drain(ctx context.Context, target netip.AddrPort) error {
	return a.r.Drain(ctx, target)
}

// routerServers serves rt on the HTTP and HTTPS listeners until shutdown.
type routerServers struct {
	// The fronts serve the listeners, through http and https for what
	// their loops hand over.
	front, frontTLS *router.Front
	http, https     *http.Server
}

func serveRouter(log *slog.Logger, rt *router.Router, httpLn, httpsLn net.Listener, loops int) *routerServers {
	// No read or write timeouts: they would cut streams and websockets;
	// the router bounds what it waits for per route.
	mk := func() *http.Server {
		return &http.Server{
			Handler:           rt,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		}
	}
	s := &routerServers{http: mk(), https: mk()}
	s.https.TLSConfig = rt.TLSConfig()
	s.front = router.NewFront(rt, httpLn, s.http)
	s.frontTLS = router.NewFront(rt, httpsLn, s.https)
	s.front.Loops, s.frontTLS.Loops = loops, loops
	go func() { _ = s.front.Serve() }()
	go func() { _ = s.frontTLS.Serve() }()
	return s
}

func (s *routerServers) shutdown(ctx context.Context) {
	_ = s.front.Shutdown(ctx) // and s.http
	_ = s.frontTLS.Shutdown(ctx)
}

func listenerPort(ln net.Listener) int {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}

// balancers adapts the balancer to the engine's Balancers interface.
type balancers struct{ b *balancer.Balancer }

func (a balancers) Set(ctx context.Context, app string, ls []engine.Listener) error {
	out := make([]balancer.Listener, len(ls))
	for i, l := range ls {
		out[i] = balancer.Listener{Name: l.Name, Service: l.Service, Port: l.Port, Targets: l.Targets, Whitelist: l.Whitelist}
	}
	return a.b.Set(ctx, app, out)
}

func (a balancers) Drain(ctx context.Context, target netip.AddrPort) error {
	return a.b.Drain(ctx, target)
}
