package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/singlehost/convox/api"
	"github.com/singlehost/convox/store"
)

// errCancelled is the cause a rollout's context carries when a user cancels it.
var errCancelled = errors.New("cancelled by convox apps cancel")

// ReleasePromote starts a rolling deploy of release id and returns once it
// is recorded; the rollout itself runs in the background (spec §4.2). The
// app is updating until every service of the release is healthy, or, if a
// process crashes or stays unhealthy past the deadline, until the previous
// release serves again.
func (e *Engine) ReleasePromote(ctx context.Context, app, id string, opts api.ReleasePromoteOptions) error {
	timeout := e.promoteTimeout
	if opts.Timeout > 0 {
		timeout = time.Duration(opts.Timeout) * time.Second
	}
	err := e.store.Update(ctx, func(tx *store.Tx) error {
		a, err := getApp(tx, app)
		if err != nil {
			return err
		}
		prev, inFlight := a.Release, false
		if p, err := tx.Promotion(app); err == nil && p.State != store.PromotionDone {
			prev, inFlight = p.Previous, true
		}
		if a.Status != api.StatusRunning && !opts.Force || inFlight && !opts.Force {
			return api.Errorf(api.ErrForbidden, "app is currently updating")
		}
		rel, err := getRelease(tx, app, id)
		if err != nil {
			return err
		}
		if rel.Build == "" || rel.Manifest == "" {
			return api.Errorf(api.ErrInvalid, "can not promote a release with an empty manifest")
		}
		if a.Release != "" && a.Release != id {
			if active, err := tx.Release(app, a.Release); err == nil && rel.Created.Before(active.Created) {
				return api.Errorf(api.ErrInvalid, "can not promote an older release, try rollback")
			}
		}
		// A release that cannot run is refused now, not after a rollout:
		// its balancers' ports are bound before anything changes.
		pl, err := e.planTx(tx, app, rel)
		if err != nil {
			return err
		}
		if err := e.checkHosts(tx, app, pl); err != nil {
			return err
		}
		if e.balancers != nil {
			if err := e.balancers.Set(ctx, app, e.listeners(app, pl)); err != nil {
				return api.Errorf(api.ErrConflict, "%v", err)
			}
		}
		now := time.Now().UTC()
		if err := tx.PutPromotion(&store.Promotion{
			ID: deployID(now), App: app, Release: id, Previous: prev,
			State: store.PromotionUpdating, Started: now, Deadline: now.Add(timeout),
		}); err != nil {
			return err
		}
		a.Status, a.Release = api.StatusUpdating, id
		return tx.PutApp(a)
	})
	if err != nil {
		return err
	}
	e.cancelRollout(app, errCancelled) // a forced promote replaces one in flight
	e.event(app, "promote", "Promoting release %s", id)
	return e.background(func(ctx context.Context) { e.rollout(ctx, app) })
}

// deployID labels the processes of one rollout.
func deployID(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 36) }

// AppCancel stops an app's rollout in progress and rolls it back.
func (e *Engine) AppCancel(ctx context.Context, name string) error {
	var p *store.Promotion
	err := e.store.View(ctx, func(tx *store.Tx) error {
		a, err := getApp(tx, name)
		if err != nil {
			return err
		}
		if p, err = tx.Promotion(name); err != nil || a.Status != api.StatusUpdating || p.State != store.PromotionUpdating {
			return api.Errorf(api.ErrForbidden, "app is not updating")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !e.cancelRollout(name, errCancelled) {
		// The rollout is between steps (or its daemon just restarted);
		// record the cancellation for it to find.
		return e.fail(ctx, name, p.ID, errCancelled.Error())
	}
	return nil
}

func (e *Engine) cancelRollout(app string, cause error) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	cancel, ok := e.cancels[app]
	if ok {
		cancel(cause)
	}
	return ok
}

// rollout drives app's promotion record to done: it rolls the release out,
// or, when that fails, rolls back to the previous release. It is safe to run
// again on the same record after a crash: processes already started by the
// rollout are adopted, not restarted.
func (e *Engine) rollout(parent context.Context, app string) {
	lock := e.appLock(app)
	lock.Lock()
	defer lock.Unlock()

	p, err := e.promotion(parent, app)
	if err != nil || p.State == store.PromotionDone {
		return
	}
	if p.State == store.PromotionUpdating {
		ctx, cancel := context.WithCancelCause(parent)
		e.mu.Lock()
		e.cancels[app] = cancel
		e.mu.Unlock()
		dctx, dcancel := context.WithDeadline(ctx, p.Deadline)
		err := e.rolloutRelease(dctx, p)
		dcancel()
		e.mu.Lock()
		delete(e.cancels, app)
		e.mu.Unlock()
		cancel(nil)

		if parent.Err() != nil {
			return // the daemon is stopping: the next start resumes
		}
		if err == nil {
			e.finish(parent, p)
			return
		}
		reason := err.Error()
		if c := context.Cause(ctx); errors.Is(c, errCancelled) {
			reason = c.Error()
		}
		if err := e.fail(parent, app, p.ID, reason); err != nil {
			e.log.Error("recording a failed rollout", "app", app, "error", err)
			return
		}
		if p, err = e.promotion(parent, app); err != nil {
			return
		}
	}
	if p.State == store.PromotionRollback {
		e.rollback(parent, p)
	}
}

func (e *Engine) promotion(ctx context.Context, app string) (*store.Promotion, error) {
	var p *store.Promotion
	err := e.store.View(ctx, func(tx *store.Tx) error {
		var err error
		p, err = tx.Promotion(app)
		return err
	})
	return p, err
}

// finish records a successful rollout.
func (e *Engine) finish(ctx context.Context, p *store.Promotion) {
	err := e.store.Update(ctx, func(tx *store.Tx) error {
		a, err := getApp(tx, p.App)
		if err != nil {
			return err
		}
		cur, err := tx.Promotion(p.App)
		if err != nil || cur.ID != p.ID {
			return err // superseded by a newer promote
		}
		cur.State = store.PromotionDone
		a.Status, a.Release = api.StatusRunning, p.Release
		if err := tx.PutPromotion(cur); err != nil {
			return err
		}
		return tx.PutApp(a)
	})
	if err != nil {
		e.log.Error("recording a finished rollout", "app", p.App, "error", err)
		return
	}
	e.publishRoutes(ctx, p.App)
	switch {
	case p.Scale:
		e.event(p.App, "promote", "Scaled %s", p.Service)
	case p.Restart:
		e.event(p.App, "promote", "Restarted release %s", p.Release)
	default:
		e.event(p.App, "promote", "Promoted release %s", p.Release)
	}
}

// fail records that rollout id must be rolled back, and why.
func (e *Engine) fail(ctx context.Context, app, id, reason string) error {
	err := e.store.Update(ctx, func(tx *store.Tx) error {
		a, err := getApp(tx, app)
		if err != nil {
			return err
		}
		p, err := tx.Promotion(app)
		if err != nil || p.ID != id || p.State != store.PromotionUpdating {
			return err
		}
		p.State, p.Reason = store.PromotionRollback, reason
		a.Status, a.Release = api.StatusRollback, p.Previous
		if err := tx.PutPromotion(p); err != nil {
			return err
		}
		return tx.PutApp(a)
	})
	if err != nil {
		return err
	}
	for i, line := range strings.Split(reason, "\n") {
		if i == 0 {
			e.event(app, "promote", "Rolling back: %s", line)
		} else {
			e.event(app, "promote", "%s", line)
		}
	}
	return nil
}

// rollback removes what a failed rollout started and converges the app back
// to the previous release.
func (e *Engine) rollback(ctx context.Context, p *store.Promotion) {
	ps, err := e.processes(ctx, p.App, "service")
	if err != nil {
		e.log.Error("rollback", "app", p.App, "error", err)
		return
	}
	var failed []Process
	for _, proc := range ps {
		if proc.Labels[LabelDeploy] == p.ID && (!p.Restart || proc.Labels[LabelRelease] == p.Release) ||
			!p.Restart && proc.Labels[LabelRelease] == p.Release && p.Release != p.Previous {
			failed = append(failed, proc)
		}
	}
	if err := e.stopProcesses(ctx, failed, 5*time.Second, "rollback"); err != nil {
		e.log.Error("rollback", "app", p.App, "error", err)
	}
	if p.Scale {
		err := e.store.Update(ctx, func(tx *store.Tx) error {
			sc, err := tx.Scale(p.App, p.Service)
			if err != nil {
				return err
			}
			sc.Count = p.CountBefore
			return tx.PutScale(sc)
		})
		if err != nil {
			e.log.Error("restoring the scale", "app", p.App, "service", p.Service, "error", err)
		}
	}
	if err := e.convergeLocked(ctx, p.App, true); err != nil {
		e.log.Error("rollback", "app", p.App, "error", err)
	}
	err = e.store.Update(ctx, func(tx *store.Tx) error {
		a, err := getApp(tx, p.App)
		if err != nil {
			return err
		}
		cur, err := tx.Promotion(p.App)
		if err != nil || cur.ID != p.ID {
			return err
		}
		cur.State = store.PromotionDone
		a.Status = api.StatusRunning
		if err := tx.PutPromotion(cur); err != nil {
			return err
		}
		return tx.PutApp(a)
	})
	if err != nil {
		e.log.Error("recording a rollback", "app", p.App, "error", err)
		return
	}
	e.publishRoutes(ctx, p.App)
	switch {
	case p.Scale:
		e.event(p.App, "promote", "Rolled back the scale of %s", p.Service)
	case p.Previous != "":
		e.event(p.App, "promote", "Rolled back to release %s", p.Previous)
	default:
		e.event(p.App, "promote", "Rolled back: the app has no previous release")
	}
}

// rolloutRelease rolls every service of p's release out, then removes the
// processes that belong to no service of it.
func (e *Engine) rolloutRelease(ctx context.Context, p *store.Promotion) error {
	pl, err := e.plan(ctx, p.App, p.Release)
	if err != nil {
		return err
	}
	for _, s := range pl.Services {
		if p.Service != "" && s.Name != p.Service {
			continue
		}
		if err := e.rolloutService(ctx, pl, s, p); err != nil {
			return err
		}
	}
	ps, err := e.processes(ctx, p.App, "service")
	if err != nil {
		return err
	}
	var strays []Process
	for _, proc := range ps {
		_, known := pl.service(proc.Labels[LabelService])
		if proc.Labels[LabelRelease] != p.Release || !known {
			strays = append(strays, proc)
		}
	}
	return e.stopProcesses(ctx, strays, 30*time.Second, "replaced by release "+p.Release)
}

// rolloutService replaces the processes of one service with processes of
// the plan's release, never exceeding deployment.maximum nor dropping below
// deployment.minimum healthy processes (see serviceSpec.surge).
func (e *Engine) rolloutService(ctx context.Context, pl *plan, s serviceSpec, p *store.Promotion) error {
	all, err := e.runtime.ProcessList(ctx, Labels{LabelRack: e.rack, LabelApp: pl.App, LabelType: "service", LabelService: s.Name})
	if err != nil {
		return err
	}
	var cur, old []Process
	for _, proc := range all {
		mine := proc.Labels[LabelRelease] == pl.Release && (!p.Restart || proc.Labels[LabelDeploy] == p.ID)
		switch {
		case !proc.Running():
			if err := e.removeProcess(ctx, proc); err != nil {
				return err
			}
		case mine:
			cur = append(cur, proc)
		default:
			old = append(old, proc)
		}
	}
	// Adopt what an interrupted run of this rollout already started (a
	// scale keeps the processes it found, already healthy).
	var unproven []Process
	e.mu.Lock()
	for _, proc := range cur {
		if _, ok := e.healthy[proc.ID]; !ok {
			unproven = append(unproven, proc)
		}
	}
	e.mu.Unlock()
	if err := e.waitAllHealthy(ctx, pl.App, s, unproven); err != nil {
		return err
	}
	if len(cur) > s.Count {
		// Oldest first, so scaling down keeps the processes that have
		// proven themselves.
		sort.Slice(cur, func(i, j int) bool { return cur[i].Created.Before(cur[j].Created) })
		if err := e.stopProcesses(ctx, cur[s.Count:], s.Grace, "scaled down"); err != nil {
			return err
		}
		cur = cur[:s.Count]
	}
	surge, unavailable := s.surge()
	for len(cur) < s.Count {
		room := s.Count + surge - len(cur) - len(old)
		if room <= 0 {
			n := min(max(unavailable, 1), len(old))
			if n == 0 {
				return fmt.Errorf("service %s: cannot make room for new processes", s.Name)
			}
			if err := e.stopProcesses(ctx, old[:n], s.Grace, "replaced by release "+pl.Release); err != nil {
				return err
			}
			old = old[n:]
			continue
		}
		batch, err := e.startBatch(ctx, pl, s, p.ID, min(room, s.Count-len(cur)))
		if err != nil {
			return err
		}
		if err := e.waitAllHealthy(ctx, pl.App, s, batch); err != nil {
			return err
		}
		cur = append(cur, batch...)
		// The batch is healthy: as many old processes leave, together.
		n := min(len(cur)+len(old)-s.Count, len(old))
		if n > 0 {
			if err := e.stopProcesses(ctx, old[:n], s.Grace, "replaced by release "+pl.Release); err != nil {
				return err
			}
			old = old[n:]
		}
	}
	return e.stopProcesses(ctx, old, s.Grace, "replaced by release "+pl.Release)
}

func withPid(pid string, err error) error {
	if pid == "" {
		return err
	}
	return fmt.Errorf("%s: %w", pid, err)
}

// waitAllHealthy waits, in parallel, until every process is healthy; the
// first failure wins.
func (e *Engine) waitAllHealthy(ctx context.Context, app string, s serviceSpec, ps []Process) error {
	if len(ps) == 0 {
		return nil
	}
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.waitHealthy(ctx, app, s, p)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// waitHealthy waits until process p passes its readiness check: a service
// with a port must answer its health check (spec §4.2.4); one without is
// ready once it has kept running for a second. It fails at once when the
// process exits, with the process's last output in the error. A process
// still failing its check once its grace is over is reported, then every
// healthNoteEvery, so that a long wait shows why it lasts.
func (e *Engine) waitHealthy(ctx context.Context, app string, s serviceSpec, p Process) error {
	pid := p.Labels[LabelProcess]
	start := time.Now()
	noteAt := start.Add(s.Health.Grace)
	wait := 12500 * time.Microsecond
	var last error
	for {
		cur, err := e.runtime.ProcessInspect(ctx, p.ID)
		if err != nil {
			if ctx.Err() != nil {
				return e.unhealthy(ctx, p, last)
			}
			return fmt.Errorf("process %s: %w", pid, err)
		}
		if !cur.Running() {
			return e.crashed(ctx, app, cur)
		}
		if s.Port == 0 {
			if time.Since(start) >= time.Second {
				e.markHealthy(ctx, s, cur)
				return nil
			}
		} else if addr, ok := cur.Ports[s.HealthPort]; !ok {
			last = fmt.Errorf("port %d is not published", s.HealthPort)
		} else if last = s.Health.check(ctx, addr); last == nil {
			e.event(app, "process", "Process %s is healthy", pid)
			e.markHealthy(ctx, s, cur)
			return nil
		}
		if now := time.Now(); last != nil && !now.Before(noteAt) {
			e.event(app, "process", "Process %s is not healthy yet after %s: %v", pid, now.Sub(start).Round(time.Second), last)
			noteAt = now.Add(healthNoteEvery)
		}
		// Poll briskly during the grace period, from 25 ms doubling to
		// 250 ms, so a fast process is ready fast; after it, every
		// interval as the manifest says.
		wait = min(wait*2, 250*time.Millisecond)
		if time.Since(start) > s.Health.Grace && s.Health.Interval > wait {
			wait = s.Health.Interval
		}
		select {
		case <-ctx.Done():
			return e.unhealthy(ctx, p, last)
		case <-time.After(wait):
		}
	}
}

// healthNoteEvery is how often waitHealthy reports a process that is still
// failing its health check.
const healthNoteEvery = 30 * time.Second

// unhealthy describes a process that was not healthy when ctx ended, with
// its last lines of output.
func (e *Engine) unhealthy(ctx context.Context, p Process, last error) error {
	if c := context.Cause(ctx); errors.Is(c, errCancelled) {
		return c
	}
	msg := fmt.Sprintf("process %s did not become healthy before the deadline", p.Labels[LabelProcess])
	if last != nil {
		msg += ": " + last.Error()
	}
	// ctx is over; the output is read with a context of its own.
	if tail := e.lastOutput(context.Background(), p.ID, 10); tail != "" {
		msg += "; its last output:\n" + tail
	}
	return errors.New(msg)
}

// crashed describes a process that exited during a rollout, with its last
// lines of output.
func (e *Engine) crashed(ctx context.Context, app string, p Process) error {
	pid := p.Labels[LabelProcess]
	msg := fmt.Sprintf("process %s exited with code %d", pid, p.ExitCode)
	if p.OOMKilled {
		msg += " (out of memory)"
	}
	if tail := e.lastOutput(ctx, p.ID, 10); tail != "" {
		msg += "; its last output:\n" + tail
	}
	return errors.New(msg)
}

// startBatch starts n processes of s at once; if one fails to start, the
// others are stopped and the error returned.
func (e *Engine) startBatch(ctx context.Context, pl *plan, s serviceSpec, deploy string, n int) ([]Process, error) {
	procs := make([]Process, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			proc, pid, err := e.startService(ctx, pl, s, deploy)
			if err != nil {
				err = fmt.Errorf("starting a process of %s: %w", s.Name, withPid(pid, err))
			}
			procs[i], errs[i] = proc, err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		var started []Process
		for i, p := range procs {
			if errs[i] == nil {
				started = append(started, p)
			}
		}
		_ = e.stopProcesses(ctx, started, time.Second, "rollout failed")
		return nil, err
	}
	return procs, nil
}
