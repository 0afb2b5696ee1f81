// Package engine makes every decision of the rack: apps, builds, releases,
// promotions (rolling, health-gated), and the convergence of each app to its
// desired state. It implements api.Rack over a store (desired state) and a
// Runtime (actual state).
package engine

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/singlehost/convox/api"
	"github.com/singlehost/convox/logs"
	"github.com/singlehost/convox/store"
)

// Config is what an Engine is built from.
type Config struct {
	// Rack is the rack's name, stamped on everything it creates.
	Rack string
	// Domain is the rack's router domain: services are reached at
	// <service>.<app>.<Domain>.
	Domain string
	// ResourceImages maps a resource type (postgres, redis, …) to the image
	// that runs it; types left out use the official image (see
	// DefaultResourceImages).
	ResourceImages map[string]string
	// CA is the PEM certificate of the CA that signs the router's
	// certificates, for users to trust (GET /system/ca).
	CA string
	// PromoteTimeout is how long new processes have to become healthy
	// when a promote does not say; default 5 minutes.
	PromoteTimeout time.Duration

	Store     *store.Store
	Runtime   Runtime
	Objects   Objects
	Routes    Routes    // nil: no HTTP routing
	Balancers Balancers // nil: no TCP balancers
	Logs      *logs.Store
	Log       *slog.Logger
}

// Engine implements api.Rack. Its background work (builds, rollouts,
// convergence) runs only while Run runs.
type Engine struct {
	rack           string
	domain         string
	resourceImages map[string]string
	promoteTimeout time.Duration
	store          *store.Store
	runtime        Runtime
	ca             string
	objects        Objects
	routes         Routes
	balancers      Balancers
	logs           *logs.Store
	log            *slog.Logger

	// jobs carries background work to Run, which gives it Run's context:
	// a build or rollout outlives the request that started it.
	jobs chan func(ctx context.Context)

	mu         sync.Mutex
	appLocks   map[string]*sync.Mutex             // serialises rollouts and converge per app
	builds     map[string]*buildOutput            // running builds' live output, by id
	crashes    map[string]*backoff                // crash-loop back-off per app/service
	healthy    map[string]healthyProcess          // processes taking traffic, by runtime id
	checking   map[string]bool                    // processes whose health is being watched
	reported   map[string]bool                    // exited processes already reported
	collecting map[string]chan struct{}           // output collectors by process, closed when done
	cancels    map[string]context.CancelCauseFunc // in-flight rollouts, by app
	kick       chan string                        // apps to converge soon
	dockerDown bool                               // the last converge found Docker not answering
}

var _ api.Rack = (*Engine)(nil)

// New returns an Engine for cfg.
func New(cfg Config) *Engine {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	images := DefaultResourceImages()
	for k, v := range cfg.ResourceImages {
		images[k] = v
	}
	timeout := cfg.PromoteTimeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	return &Engine{
		rack:           cfg.Rack,
		domain:         cfg.Domain,
		resourceImages: images,
		promoteTimeout: timeout,
		store:          cfg.Store,
		runtime:        cfg.Runtime,
		ca:             cfg.CA,
		objects:        cfg.Objects,
		routes:         cfg.Routes,
		balancers:      cfg.Balancers,
		healthy:        map[string]healthyProcess{},
		checking:       map[string]bool{},
		logs:           cfg.Logs,
		log:            log,
		jobs:           make(chan func(context.Context), 1024),
		appLocks:       map[string]*sync.Mutex{},
		builds:         map[string]*buildOutput{},
		crashes:        map[string]*backoff{},
		reported:       map[string]bool{},
		collecting:     map[string]chan struct{}{},
		cancels:        map[string]context.CancelCauseFunc{},
		kick:           make(chan string, 64),
	}
}

// SystemGet describes the rack.
func (e *Engine) SystemGet(ctx context.Context) (*api.System, error) {
	return &api.System{
		Count:    1,
		Domain:   e.domain,
		Name:     e.rack,
		Provider: "local",
		Status:   "running",
		Type:     "local",
		Version:  api.Version,
	}, nil
}

// appLock returns the mutex that serialises changes to app's processes.
func (e *Engine) appLock(app string) *sync.Mutex {
	e.mu.Lock()
	defer e.mu.Unlock()
	m, ok := e.appLocks[app]
	if !ok {
		m = &sync.Mutex{}
		e.appLocks[app] = m
	}
	return m
}

// background hands job to Run. It never blocks a request for long: if Run
// is not draining jobs the request fails instead.
func (e *Engine) background(job func(ctx context.Context)) error {
	select {
	case e.jobs <- job:
		return nil
	case <-time.After(5 * time.Second):
		return api.Errorf(api.ErrUnavailable, "the rack is too busy to start this work; retry")
	}
}

// converge asks Run to converge app soon.
func (e *Engine) converge(app string) {
	select {
	case e.kick <- app:
	default: // a converge of every app is due anyway
	}
}
