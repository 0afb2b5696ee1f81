package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/singlehost/convox/api"
	"github.com/singlehost/convox/store"
)

// backoff spaces out the restarts of a crash-looping service.
type backoff struct {
	failures int
	until    time.Time
}

// Crash-loop back-off: 1 s after the first crash, doubling to a minute; a
// service that stays up for stableAfter is forgiven.
const (
	maxBackoff  = time.Minute
	stableAfter = time.Minute
)

// recordCrash counts a crash of a service and returns its back-off.
func (e *Engine) recordCrash(app, service string) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := app + "/" + service
	b, ok := e.crashes[key]
	if !ok {
		b = &backoff{}
		e.crashes[key] = b
	}
	b.failures++
	d := min(time.Second<<min(b.failures-1, 10), maxBackoff)
	b.until = time.Now().Add(d)
	return d
}

func (e *Engine) backingOff(app, service string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := e.crashes[app+"/"+service]
	return ok && time.Now().Before(b.until)
}

// firstSeen reports whether this is the first time converge sees the exited
// process id, so that each crash is reported once.
func (e *Engine) firstSeen(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.reported[id] {
		return false
	}
	e.reported[id] = true
	return true
}

func (e *Engine) forget(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.reported, id)
}

func (e *Engine) forgive(app, service string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.crashes, app+"/"+service)
}

// convergeAll converges every app, then removes containers of this rack
// that belong to no app. While Docker does not answer it does nothing, and
// logs only the change: once when Docker goes, once when it is back.
func (e *Engine) convergeAll(ctx context.Context) {
	ps, err := e.runtime.ProcessList(ctx, Labels{LabelRack: e.rack})
	if ctx.Err() != nil {
		return // stopping: the failure says nothing of Docker
	}
	e.noteDocker(err)
	if err != nil {
		if !errors.Is(err, ErrUnavailable) {
			e.log.Error("converge", "error", err)
		}
		return
	}
	apps, err := e.AppList(ctx)
	if err != nil {
		e.log.Error("converge", "error", err)
		return
	}
	known := map[string]bool{}
	for _, a := range apps {
		known[a.Name] = true
		e.convergeApp(ctx, a.Name)
	}
	for _, p := range ps {
		// Builds run inside the daemon; no container of ours is legitimately
		// without an app.
		if app := p.Labels[LabelApp]; !known[app] && time.Since(p.Created) > strayGrace {
			e.log.Info("removing a stray container", "container", p.Name, "app", app)
			if err := e.runtime.ProcessRemove(ctx, p.ID); err != nil && !errors.Is(err, ErrNotFound) {
				e.log.Warn("removing a stray container", "container", p.Name, "error", err)
			}
		}
	}
}

// noteDocker records whether Docker answered a call that returned err (an
// error of Docker's own is an answer too), logging when that changes.
func (e *Engine) noteDocker(err error) {
	down := errors.Is(err, ErrUnavailable)
	e.mu.Lock()
	was := e.dockerDown
	e.dockerDown = down
	e.mu.Unlock()
	switch {
	case down && !was:
		e.log.Warn("docker is not answering; apps converge again once it does", "error", err)
	case !down && was:
		e.log.Info("docker answers again; converging every app")
	}
}

// strayGrace keeps converge away from containers so young that the request
// creating them may still be writing their records (nomad's reconciler does
// the same).
const strayGrace = 5 * time.Second

// convergeApp converges app unless a rollout holds it (the rollout then
// converges it itself).
func (e *Engine) convergeApp(ctx context.Context, app string) {
	lock := e.appLock(app)
	if !lock.TryLock() {
		return
	}
	defer lock.Unlock()
	if err := e.convergeLocked(ctx, app, false); err != nil && ctx.Err() == nil {
		e.log.Warn("converge", "app", app, "error", err)
	}
}

// convergeLocked makes app's service processes match its active release:
// processes of other releases or unknown services are removed, exited ones
// replaced (with back-off when they crash), the count of each service met.
// It leaves an app alone while its promotion is in flight, unless called by
// that promotion's rollback (duringRollback).
func (e *Engine) convergeLocked(ctx context.Context, app string, duringRollback bool) error {
	var a *api.App
	var p *store.Promotion
	err := e.store.View(ctx, func(tx *store.Tx) error {
		var err error
		if a, err = getApp(tx, app); err != nil {
			return err
		}
		p, err = tx.Promotion(app)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if a.Status == api.StatusDeleting || p != nil && p.State != store.PromotionDone && !duringRollback {
		return nil
	}
	if err := e.reapRuns(ctx, app); err != nil {
		return err
	}
	ps, err := e.processes(ctx, app, "service")
	if err != nil {
		return err
	}
	var pl *plan
	if a.Release != "" {
		if pl, err = e.plan(ctx, app, a.Release); err != nil {
			return fmt.Errorf("release %s: %w", a.Release, err)
		}
	} else {
		pl = &plan{App: app}
	}
	deploy := ""
	if p != nil {
		deploy = p.ID
	}

	byService := map[string][]Process{}
	for _, proc := range ps {
		s, known := pl.service(proc.Labels[LabelService])
		if proc.Labels[LabelRelease] != pl.Release || !known {
			if err := e.stopProcess(ctx, proc, s.Grace, "not in the active release"); err != nil {
				return err
			}
			continue
		}
		byService[s.Name] = append(byService[s.Name], proc)
	}
	for _, s := range pl.Services {
		var running, exited []Process
		for _, proc := range byService[s.Name] {
			// After a daemon restart this resumes each process's log.
			e.collect(proc)
			if proc.Running() {
				running = append(running, proc)
				e.watchHealth(proc, s)
				if time.Since(proc.Started) > stableAfter {
					e.forgive(app, s.Name)
				}
			} else {
				exited = append(exited, proc)
			}
		}
		for _, proc := range exited {
			e.unroute(ctx, proc, 0)
			if e.firstSeen(proc.ID) {
				d := e.recordCrash(app, s.Name)
				e.event(app, "process", "Process %s exited with code %d; replacing it in %s", proc.Labels[LabelProcess], proc.ExitCode, d)
				if tail := e.lastOutput(ctx, proc.ID, 5); tail != "" {
					e.event(app, "process", "%s", tail)
				}
				time.AfterFunc(d, func() { e.converge(app) })
			}
		}
		// A crashed process stays visible in `convox ps` while its
		// service backs off; it is removed when its replacement starts.
		if len(running) < s.Count && e.backingOff(app, s.Name) {
			continue
		}
		for _, proc := range exited {
			if err := e.removeProcess(ctx, proc); err != nil {
				return err
			}
			e.forget(proc.ID)
		}
		// Newest first, so scaling down keeps the processes that have
		// proven themselves.
		sort.Slice(running, func(i, j int) bool { return running[i].Created.After(running[j].Created) })
		if extra := len(running) - s.Count; extra > 0 {
			if err := e.stopProcesses(ctx, running[:extra], s.Grace, "scaled down"); err != nil {
				return err
			}
			running = running[extra:]
		}
		for n := len(running); n < s.Count; n++ {
			proc, pid, err := e.startService(ctx, pl, s, deploy)
			if err != nil {
				e.event(app, "process", "Could not start a process of %s: %v", s.Name, withPid(pid, err))
				return err
			}
			// Routed once healthy, not at the next converge.
			e.watchHealth(proc, s)
		}
	}
	return nil
}

// watchHealth routes a running process once it passes its health check:
// processes converge starts or adopts after a daemon restart are not
// waited for inline.
func (e *Engine) watchHealth(p Process, s serviceSpec) {
	e.mu.Lock()
	_, healthy := e.healthy[p.ID]
	if healthy || e.checking[p.ID] {
		e.mu.Unlock()
		return
	}
	e.checking[p.ID] = true
	e.mu.Unlock()
	err := e.background(func(ctx context.Context) {
		defer func() {
			e.mu.Lock()
			delete(e.checking, p.ID)
			e.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		if err := e.waitHealthy(ctx, p.Labels[LabelApp], s, p); err != nil && ctx.Err() == nil {
			e.log.Info("process not healthy", "process", p.Labels[LabelProcess], "error", err)
		}
	})
	if err != nil {
		e.mu.Lock()
		delete(e.checking, p.ID)
		e.mu.Unlock()
	}
}

// reapRuns removes one-off processes that have exited, once their output
// is collected; running ones get a collector if a restart left them without.
func (e *Engine) reapRuns(ctx context.Context, app string) error {
	runs, err := e.processes(ctx, app, "run")
	if err != nil {
		return err
	}
	for _, p := range runs {
		if p.Running() {
			e.collect(p)
			continue
		}
		e.event(app, "run", "One-off process %s exited with code %d", p.Labels[LabelProcess], p.ExitCode)
		if err := e.removeProcess(ctx, p); err != nil {
			return err
		}
	}
	return nil
}
