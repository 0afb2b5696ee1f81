// Package docker is the engine's Runtime over the Docker Engine API. It is
// the only package that imports the Docker client. Every call is bounded by
// its own timeout so that a stuck engine cannot stall the rack, and only API
// 1.41 features are used (Debian's docker.io 20.10 must work).
package docker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/singlehost/convox/engine"
)

// callTimeout bounds a single short Docker API call (list, inspect, remove).
// Builds, pulls, saves, loads, log and event streams are bounded only by the
// caller's ctx: they last as long as their data does.
const callTimeout = 30 * time.Second

// Runtime implements engine.Runtime with a Docker engine. It is safe for
// concurrent use.
type Runtime struct {
	c *client.Client
	// netMu serialises NetworkEnsure: Docker 20.10 lets concurrent creates
	// of one name all succeed (CheckDuplicate is not atomic), so within
	// this process they take turns.
	netMu sync.Mutex
}

var _ engine.Runtime = (*Runtime)(nil)

// New connects to the Docker engine named by the environment (DOCKER_HOST
// and friends, else the default socket). It does not contact the engine;
// call Ping for that.
func New() (*Runtime, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Runtime{c: c}, nil
}

// Close releases the client's connections.
func (r *Runtime) Close() error { return r.c.Close() }

// Ping checks that the engine answers.
func (r *Runtime) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := r.c.Ping(ctx); err != nil {
		return fmt.Errorf("docker engine at %s does not answer: %w", r.c.DaemonHost(), err)
	}
	return nil
}

// short bounds one short API call.
func short(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, callTimeout)
}

// dockerError is a failed Docker call: op names what we were doing, err is
// the client's error. It unwraps to engine.ErrNotFound too when Docker said
// the object does not exist, so that no Docker error type needs to be known
// above this package.
type dockerError struct {
	op  string
	err error
}

func (e *dockerError) Error() string {
	if e.down() {
		// Docker's own words ("Cannot connect to the Docker daemon at ….
		// Is the docker daemon running?") say what, not what to do.
		return e.op + ": " + e.err.Error() + " Start it, then retry."
	}
	// The client prefixes every engine error with this; Docker's own words
	// read better after our op.
	return e.op + ": " + strings.TrimPrefix(e.err.Error(), "Error response from daemon: ")
}

func (e *dockerError) Unwrap() []error {
	switch {
	case cerrdefs.IsNotFound(e.err):
		return []error{engine.ErrNotFound, e.err}
	case e.down():
		return []error{engine.ErrUnavailable, e.err}
	}
	return []error{e.err}
}

// down reports whether the engine did not answer at all.
func (e *dockerError) down() bool { return client.IsErrConnectionFailed(e.err) }

// wrap adds op to a Docker error; nil stays nil.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &dockerError{op: fmt.Sprintf(format, args...), err: err}
}

func labelFilter(sel engine.Labels) filters.Args {
	f := filters.NewArgs()
	for k, v := range sel {
		f.Add("label", k+"="+v)
	}
	return f
}

// shortID is the 12-character form Docker prints.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Purge removes the containers, networks and volumes matching sel.
// Containers go first: Docker refuses to remove a network or volume in use.
// An object that vanishes meanwhile is not an error.
func (r *Runtime) Purge(ctx context.Context, sel engine.Labels) error {
	f := labelFilter(sel)
	lctx, cancel := short(ctx)
	cs, err := r.c.ContainerList(lctx, container.ListOptions{All: true, Filters: f})
	cancel()
	if err != nil {
		return wrap(err, "listing containers")
	}
	for _, c := range cs {
		cctx, cancel := short(ctx)
		err := r.c.ContainerRemove(cctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		cancel()
		if err != nil && !cerrdefs.IsNotFound(err) {
			return wrap(err, "removing container %s", shortID(c.ID))
		}
	}
	lctx, cancel = short(ctx)
	ns, err := r.c.NetworkList(lctx, network.ListOptions{Filters: f})
	cancel()
	if err != nil {
		return wrap(err, "listing networks")
	}
	for _, n := range ns {
		cctx, cancel := short(ctx)
		err := r.c.NetworkRemove(cctx, n.ID)
		cancel()
		if err != nil && !cerrdefs.IsNotFound(err) {
			return wrap(err, "removing network %s", n.Name)
		}
	}
	lctx, cancel = short(ctx)
	vs, err := r.c.VolumeList(lctx, volume.ListOptions{Filters: f})
	cancel()
	if err != nil {
		return wrap(err, "listing volumes")
	}
	for _, v := range vs.Volumes {
		cctx, cancel := short(ctx)
		err := r.c.VolumeRemove(cctx, v.Name, true)
		cancel()
		if err != nil && !cerrdefs.IsNotFound(err) {
			return wrap(err, "removing volume %s", v.Name)
		}
	}
	return nil
}
