// Package rack is the composition root of `convox rack start`: it reads the
// configuration, prepares the home directory and its secrets, opens the
// store, connects to Docker, wires the engine to the API server and runs
// until its context ends. It is the only package that knows all the others.
package rack

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/singlehost/convox/api"
	"github.com/singlehost/convox/balancer"
	"github.com/singlehost/convox/docker"
	"github.com/singlehost/convox/engine"
	"github.com/singlehost/convox/logs"
	"github.com/singlehost/convox/router"
	"github.com/singlehost/convox/storage"
	"github.com/singlehost/convox/store"
)

// Config is everything `convox rack start` can be told.
type Config struct {
	Home   string // data directory
	Listen string // API address, host:port
	Name   string // rack name
	Domain string // router domain
	// ResourceImages overrides the image per resource type.
	ResourceImages map[string]string
	// LogBytes bounds each app's stored logs; 0 is the log store's default.
	LogBytes int64
	// RouterHTTP and RouterHTTPS are the router's listen addresses.
	RouterHTTP, RouterHTTPS string
	// BalancerBind is the address balancers listen on ("" = all).
	BalancerBind string
	// ConvoxConfig is the official CLI's settings directory, where the rack
	// registers itself; empty means the CLI's own default.
	ConvoxConfig string
	// ACMEDirectory turns on ACME certificates for the `domain:` hosts of
	// services: an ACME directory URL, or "letsencrypt" or
	// "letsencrypt-staging"; empty means the rack CA signs every host's.
	ACMEDirectory string
	// ACMEEmail is the contact address of the ACME account.
	ACMEEmail string
	// ACMECAFile is a PEM file of CAs to trust, besides the system's, for
	// the HTTPS of the ACME directory (a test CA's).
	ACMECAFile string
	// PromoteTimeout bounds a rollout (promote, restart, scale) that does
	// not set its own; 0 is the engine's default.
	PromoteTimeout time.Duration
	// ProxyLoops is how many event loops each router listener and the
	// balancers run on Linux; 0 means one per two CPUs.
	ProxyLoops int
}

// lockTimeout is how long start waits for another rack to release the
// database before giving up: long enough to ride out a restart, short
// enough that a second daemon fails at once instead of hanging.
const lockTimeout = 2 * time.Second

// Run starts the rack and serves until ctx is cancelled. It returns an error
// whose text is a one-line reason when the rack cannot start. Containers
// keep running after it returns.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.Home, 0o700); err != nil {
		return fmt.Errorf("creating the rack home: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone; the home holds the
	// password and keys, so it must not be readable by others.
	if err := os.Chmod(cfg.Home, 0o700); err != nil {
		return fmt.Errorf("securing the rack home: %w", err)
	}

	st, err := store.Open(filepath.Join(cfg.Home, "rack.db"), lockTimeout)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("another rack is already running with home %s (stop it first, or use --home)", cfg.Home)
	}
	if err != nil {
		return err
	}
	defer st.Close()

	pw, err := password(cfg.Home)
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("invalid --listen %q: %w", cfg.Listen, err)
	}
	cert, err := certificate(cfg.Home, host)
	if err != nil {
		return err
	}
	acmeOpts, err := acmeOptions(cfg)
	if err != nil {
		return err
	}

	rt, err := docker.New()
	if err != nil {
		return err
	}
	defer rt.Close()
	if err := rt.Ping(ctx); err != nil {
		return fmt.Errorf("%w: start the Docker engine and retry", err)
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w (is another rack using that port? try --listen)", cfg.Listen, errors.Unwrap(err))
	}

	httpLn, err := listenRouter(log, cfg.RouterHTTP, defaultRouterHTTP, fallbackRouterHTTP, "--router-http")
	if err != nil {
		ln.Close()
		return err
	}
	httpsLn, err := listenRouter(log, cfg.RouterHTTPS, defaultRouterHTTPS, fallbackRouterHTTPS, "--router-https")
	if err != nil {
		ln.Close()
		httpLn.Close()
		return err
	}
	ca, err := router.LoadOrCreateCA(cfg.Home)
	if err != nil {
		ln.Close()
		httpLn.Close()
		httpsLn.Close()
		return fmt.Errorf("loading the router CA: %w", err)
	}
	rtr := router.New(router.Options{Log: log.With("component", "router"), CA: ca, HTTPSPort: listenerPort(httpsLn),
		LocalDomains: []string{cfg.Domain}, ACME: acmeOpts})

	lb := balancer.New(balancer.Options{Log: log.With("component", "balancer"), BindAddr: cfg.BalancerBind, Loops: cfg.ProxyLoops})
	defer lb.Close()

	objects, err := storage.NewFS(filepath.Join(cfg.Home, "objects"))
	if err != nil {
		ln.Close()
		return err
	}
	appLogs, err := logs.Open(filepath.Join(cfg.Home, "logs"), logs.Options{MaxBytes: cfg.LogBytes})
	if err != nil {
		ln.Close()
		return fmt.Errorf("opening the log store: %w", err)
	}
	defer appLogs.Close()
	log = slog.New(teeHandler{Handler: log.Handler(), store: appLogs})

	eng := engine.New(engine.Config{
		Rack:           cfg.Name,
		Domain:         cfg.Domain,
		ResourceImages: cfg.ResourceImages,
		PromoteTimeout: cfg.PromoteTimeout,
		Store:          st,
		Runtime:        rt,
		Objects:        objects,
		Routes:         routes{rtr},
		Balancers:      balancers{lb},
		Logs:           appLogs,
		CA:             string(ca.PEM()),
		Log:            log.With("component", "engine"),
	})
	srv := &http.Server{
		Handler:           api.NewServer(eng, pw, log.With("component", "api")),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}

	rackURL := localURL(host, port, pw)
	if err := writeFile(filepath.Join(cfg.Home, api.URLFile), rackURL+"\n"); err != nil {
		ln.Close()
		return err
	}
	if err := register(cfg.ConvoxConfig, cfg.Name, rackURL); err != nil {
		// The official CLI is optional; our own CLI reads the home.
		log.Warn("could not register the rack with the Convox CLI", "error", err)
	}

	engCtx, stopEngine := context.WithCancel(ctx)
	defer stopEngine()
	engineDone := make(chan error, 1)
	go func() { engineDone <- eng.Run(engCtx) }()

	routerSrv := serveRouter(log, rtr, httpLn, httpsLn, cfg.ProxyLoops)
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	log.Info("rack running", "name", cfg.Name, "api", api.Redact(rackURL), "home", cfg.Home,
		"router", httpLn.Addr().String(), "router-tls", httpsLn.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("serving the api: %w", err)
	case <-ctx.Done():
	}
	log.Info("rack stopping")
	// Rollouts and builds in flight stop here; their records let the next
	// start finish them. Containers keep running.
	stopEngine()
	<-engineDone
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	routerSrv.shutdown(shutdownCtx)
	rtr.CloseIdleConnections()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("stopping the api: %w", err)
	}
	return nil
}

// localURL is how clients on this machine reach the API. A wildcard listen
// address is reached through loopback.
func localURL(host, port, pw string) string {
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://convox:" + pw + "@" + net.JoinHostPort(host, port)
}

func writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
