package engine

import (
	"context"
	"strconv"
	"time"

	"github.com/singlehost/convox/api"
	"github.com/singlehost/convox/store"
)

// activeService is a service of app's active release, if any.
func (e *Engine) activeService(ctx context.Context, app, name string) (serviceSpec, bool) {
	a, err := e.AppGet(ctx, app)
	if err != nil || a.Release == "" {
		return serviceSpec{}, false
	}
	pl, err := e.plan(ctx, app, a.Release)
	if err != nil {
		return serviceSpec{}, false
	}
	return pl.service(name)
}

// ServiceList returns the services of app's active release.
func (e *Engine) ServiceList(ctx context.Context, app string) ([]api.Service, error) {
	a, err := e.AppGet(ctx, app)
	if err != nil {
		return nil, err
	}
	out := []api.Service{}
	if a.Release == "" {
		return out, nil
	}
	pl, err := e.plan(ctx, app, a.Release)
	if err != nil {
		return nil, err
	}
	for _, s := range pl.Services {
		svc := api.Service{Name: s.Name, Count: s.Count, Cpu: s.CPU, Memory: s.Memory, Ports: []api.ServicePort{}}
		if s.Port > 0 {
			p := api.ServicePort{Container: s.Port}
			if !s.Internal {
				svc.Domain = s.Name + "." + app + "." + e.domain
				p.Balancer = 443
			}
			svc.Ports = append(svc.Ports, p)
		}
		for _, port := range s.Ports {
			svc.Ports = append(svc.Ports, api.ServicePort{Container: port})
		}
		out = append(out, svc)
	}
	return out, nil
}

// ServiceUpdate scales a service in place. The scale outlives later
// promotes. A count change is a rollout of its own: the app is updating
// until the new processes are healthy (or the surplus ones drained), and
// if they fail their health check the count goes back to what it was. A
// cpu or memory change replaces the processes with a rolling restart.
func (e *Engine) ServiceUpdate(ctx context.Context, app, name string, opts api.ServiceUpdateOptions) error {
	for _, v := range []struct {
		name string
		v    *int
	}{{"count", opts.Count}, {"cpu", opts.Cpu}, {"memory", opts.Memory}} {
		if v.v != nil && *v.v < 0 {
			return api.Errorf(api.ErrInvalid, "%s must not be negative", v.name)
		}
	}
	var rollout *store.Promotion
	err := e.store.Update(ctx, func(tx *store.Tx) error {
		a, err := getApp(tx, app)
		if err != nil {
			return err
		}
		if err := e.requireService(tx, a, name); err != nil {
			return err
		}
		sc, err := tx.Scale(app, name)
		if err != nil {
			return err
		}
		restart, scaled, before := false, false, sc.Count
		if opts.Count != nil && (sc.Count == nil || *sc.Count != *opts.Count) {
			sc.Count, scaled = opts.Count, true
		}
		if opts.Cpu != nil && *opts.Cpu != sc.Cpu {
			sc.Cpu, restart = *opts.Cpu, true
		}
		if opts.Memory != nil && *opts.Memory != sc.Memory {
			sc.Memory, restart = *opts.Memory, true
		}
		if (restart || scaled) && a.Release != "" {
			now := time.Now().UTC()
			rollout = &store.Promotion{
				ID: deployID(now), App: app, Release: a.Release, Previous: a.Release,
				State: store.PromotionUpdating, Started: now, Deadline: now.Add(e.promoteTimeout),
				Service: name, Restart: restart,
			}
			if !restart {
				rollout.Scale, rollout.CountBefore = true, before
			}
			if err := beginRollout(tx, a, rollout); err != nil {
				return err
			}
		}
		return tx.PutScale(sc)
	})
	if err != nil {
		return err
	}
	e.event(app, "scale", "Scaling %s%s", name, describeScale(opts))
	if rollout == nil {
		return nil
	}
	return e.background(func(ctx context.Context) { e.rollout(ctx, app) })
}

// beginRollout records p as app's rollout and marks a updating, unless a
// rollout is already in flight.
func beginRollout(tx *store.Tx, a *api.App, p *store.Promotion) error {
	if cur, err := tx.Promotion(a.Name); err == nil && cur.State != store.PromotionDone || a.Status != api.StatusRunning {
		return api.Errorf(api.ErrForbidden, "app is currently updating")
	}
	if err := tx.PutPromotion(p); err != nil {
		return err
	}
	a.Status = api.StatusUpdating
	return tx.PutApp(a)
}

func describeScale(o api.ServiceUpdateOptions) string {
	s := ""
	if o.Count != nil {
		s += " count=" + strconv.Itoa(*o.Count)
	}
	if o.Cpu != nil {
		s += " cpu=" + strconv.Itoa(*o.Cpu)
	}
	if o.Memory != nil {
		s += " memory=" + strconv.Itoa(*o.Memory)
	}
	return s
}

// requireService fails unless the app's active release has the service.
func (e *Engine) requireService(tx *store.Tx, a *api.App, name string) error {
	if a.Release == "" {
		return api.Errorf(api.ErrNotFound, "service not found: %s", name)
	}
	rel, err := getRelease(tx, a.Name, a.Release)
	if err != nil {
		return err
	}
	pl, err := e.planTx(tx, a.Name, rel)
	if err != nil {
		return err
	}
	if _, ok := pl.service(name); !ok {
		return api.Errorf(api.ErrNotFound, "service not found: %s", name)
	}
	return nil
}

// ServiceRestart replaces every process of a service, one batch at a time,
// health-gated like a promote ("" restarts every service).
func (e *Engine) ServiceRestart(ctx context.Context, app, name string) error {
	err := e.store.Update(ctx, func(tx *store.Tx) error {
		a, err := getApp(tx, app)
		if err != nil {
			return err
		}
		if name != "" {
			if err := e.requireService(tx, a, name); err != nil {
				return err
			}
		} else if a.Release == "" {
			return api.Errorf(api.ErrInvalid, "app %s has no release to restart", app)
		}
		now := time.Now().UTC()
		return beginRollout(tx, a, &store.Promotion{
			ID: deployID(now), App: app, Release: a.Release, Previous: a.Release,
			State: store.PromotionUpdating, Started: now, Deadline: now.Add(e.promoteTimeout),
			Restart: true, Service: name,
		})
	})
	if err != nil {
		return err
	}
	e.event(app, "restart", "Restarting %s", nameOr(name, "every service"))
	return e.background(func(ctx context.Context) { e.rollout(ctx, app) })
}

func nameOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
