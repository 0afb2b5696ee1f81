package engine

import (
	"context"
	"time"

	"github.com/singlehost/convox/api"
	"github.com/singlehost/convox/store"
)

// resume picks up what a previous daemon left unfinished: rollouts still
// recorded as updating or rolling back are run again (they adopt the
// processes already started), and builds that were running are marked
// failed, since their build process died with the daemon.
func (e *Engine) resume(ctx context.Context, spawn func(func(context.Context))) {
	apps, err := e.AppList(ctx)
	if err != nil {
		e.log.Error("resume", "error", err)
		return
	}
	for _, a := range apps {
		p, err := e.promotion(ctx, a.Name)
		if err == nil && p.State != store.PromotionDone {
			e.event(a.Name, "promote", "Resuming the rollout of release %s (%s) after a rack restart", p.Release, p.State)
			app := a.Name
			spawn(func(ctx context.Context) { e.rollout(ctx, app) })
		}
		var stale []api.Build
		err = e.store.Update(ctx, func(tx *store.Tx) error {
			bs, err := tx.Builds(a.Name)
			if err != nil {
				return err
			}
			for _, b := range bs {
				if b.Status == api.BuildCreated || b.Status == api.BuildRunning {
					b.Status, b.Reason, b.Ended = api.BuildFailed, "interrupted by a rack restart", time.Now().UTC()
					if err := tx.PutBuild(&b); err != nil {
						return err
					}
					stale = append(stale, b)
				}
			}
			return nil
		})
		if err != nil {
			e.log.Error("resume", "app", a.Name, "error", err)
		}
		for _, b := range stale {
			e.event(a.Name, "build", "Build %s failed: interrupted by a rack restart", b.Id)
		}
	}
}
