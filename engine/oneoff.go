package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/singlehost/convox/api"
	"github.com/singlehost/convox/logs"
	"github.com/singlehost/convox/manifest"
)

// ProcessRun starts a one-off process of a service: the service's image,
// environment and network, with its own command (`convox run`). It is
// removed once it exits and its output is collected.
func (e *Engine) ProcessRun(ctx context.Context, app, service string, opts api.ProcessRunOptions) (*api.Process, error) {
	a, err := e.AppGet(ctx, app)
	if err != nil {
		return nil, err
	}
	release := opts.Release
	if release == "" {
		release = a.Release
	}
	if release == "" {
		return nil, api.Errorf(api.ErrInvalid, "app %s has no release yet: deploy it first", app)
	}
	pl, err := e.plan(ctx, app, release)
	if err != nil {
		return nil, err
	}
	s, ok := pl.service(service)
	if !ok {
		return nil, api.Errorf(api.ErrNotFound, "service not found: %s", service)
	}
	if err := e.runtime.NetworkEnsure(ctx, e.networkName(app), e.appLabels(app)); err != nil {
		return nil, fmt.Errorf("creating the app network: %w", err)
	}
	env := map[string]string{}
	for k, v := range s.Env {
		env[k] = v
	}
	for k, v := range opts.Environment {
		env[k] = v
	}
	pid := newProcessID(service)
	labels := e.appLabels(app)
	labels[LabelType] = "run"
	labels[LabelService] = service
	labels[LabelRelease] = release
	labels[LabelProcess] = pid
	var command []string
	if opts.Command != "" {
		command = []string{"sh", "-c", opts.Command}
	}
	proc, err := e.runtime.ProcessStart(ctx, ProcessSpec{
		Name:       e.rack + "-" + app + "-" + pid,
		Hostname:   pid,
		Image:      s.Image,
		Command:    command,
		Env:        env,
		Labels:     labels,
		Network:    e.networkName(app),
		CPU:        s.CPU,
		CPULimit:   s.CPULimit,
		Memory:     s.Memory,
		Init:       s.Init,
		Privileged: s.Privileged,
		Mounts:     s.Volumes,
		StopGrace:  s.Grace,
	})
	if err != nil {
		return nil, fmt.Errorf("starting a process of %s: %w", service, err)
	}
	e.collect(proc)
	e.event(app, "run", "Started one-off process %s: %s", pid, strings.Join(proc.Command, " "))
	ap := apiProcess(proc)
	return &ap, nil
}

// ProcessExec runs command inside a running process of app, with rw as its
// terminal. The command runs through sh -c unless Entrypoint asks for the
// image's ENTRYPOINT to run it.
func (e *Engine) ProcessExec(ctx context.Context, app, pid, command string, rw io.ReadWriter, opts api.ProcessExecOptions) (int, error) {
	if _, err := e.AppGet(ctx, app); err != nil {
		return 0, err
	}
	p, err := e.findProcess(ctx, app, pid)
	if err != nil {
		return 0, err
	}
	if !p.Running() {
		return 0, api.Errorf(api.ErrInvalid, "process %s is not running", pid)
	}
	args := []string{"sh", "-c", command}
	if opts.Entrypoint {
		img, err := e.runtime.ImageInspect(ctx, p.Image)
		if err != nil {
			return 0, fmt.Errorf("reading the image of %s: %w", pid, err)
		}
		if len(img.Entrypoint) > 0 {
			words, err := manifest.SplitWords(command)
			if err != nil {
				return 0, api.Errorf(api.ErrInvalid, "%v", err)
			}
			args = append(append([]string{}, img.Entrypoint...), words...)
		}
	}
	var out io.Writer = rw
	if p.Labels[LabelType] == "run" && e.logs != nil {
		// `convox run` executes its command in a waiting process, so the
		// command's output is the exec session's: it belongs in the
		// app's log like any process's.
		lw := &lineLog{store: e.logs, app: app, stream: "service/" + p.Labels[LabelService] + "/" + pid}
		defer lw.flush()
		out = io.MultiWriter(rw, lw)
	}
	eo := ExecOptions{Command: args, Tty: opts.Tty, Height: opts.Height, Width: opts.Width, Stdout: out, Stderr: out}
	if !opts.DisableStdin {
		eo.Stdin = rw
	}
	code, err := e.runtime.ProcessExec(ctx, p.ID, eo)
	if errors.Is(err, ErrNotFound) {
		return 0, api.Errorf(api.ErrNotFound, "process not found: %s", pid)
	}
	return code, err
}

// ProcessLogs streams the log of one process.
func (e *Engine) ProcessLogs(ctx context.Context, app, pid string, opts api.LogsOptions) (io.ReadCloser, error) {
	if _, err := e.AppGet(ctx, app); err != nil {
		return nil, err
	}
	p, err := e.findProcess(ctx, app, pid)
	if err != nil {
		return nil, err
	}
	return e.readLogs(ctx, app, "service/"+p.Labels[LabelService]+"/"+pid, opts)
}

// ServiceLogs streams the log of every process of one service.
func (e *Engine) ServiceLogs(ctx context.Context, app, service string, opts api.LogsOptions) (io.ReadCloser, error) {
	if _, err := e.AppGet(ctx, app); err != nil {
		return nil, err
	}
	return e.readLogs(ctx, app, "service/"+service+"/", opts)
}

// SystemLogs streams the rack's own log.
func (e *Engine) SystemLogs(ctx context.Context, opts api.LogsOptions) (io.ReadCloser, error) {
	return e.readLogs(ctx, logs.System, "", opts)
}

// SystemCA returns the router CA's certificate.
func (e *Engine) SystemCA(ctx context.Context) ([]byte, error) {
	if e.ca == "" {
		return nil, api.Errorf(api.ErrNotFound, "this rack has no router CA")
	}
	return []byte(e.ca), nil
}

// lineLog appends what is written to it to an app's log, a line at a time.
// The runtime writes stdout and stderr from two goroutines, hence the lock.
type lineLog struct {
	mu     sync.Mutex
	store  *logs.Store
	app    string
	stream string
	buf    []byte
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.append(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.append(string(l.buf))
		l.buf = nil
	}
}

func (l *lineLog) append(line string) {
	_ = l.store.Append(l.app, logs.Entry{Time: time.Now().UTC(), Stream: l.stream, Message: strings.TrimRight(line, "\r")})
}
