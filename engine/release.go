package engine

import (
	"context"
	"errors"
	"time"

	"github.com/singlehost/convox/api"
	"github.com/singlehost/convox/store"
)

func releaseNotFound(id string) error {
	return api.Errorf(api.ErrNotFound, "release not found: %s", id)
}

func getRelease(tx *store.Tx, app, id string) (*api.Release, error) {
	r, err := tx.Release(app, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, releaseNotFound(id)
	}
	return r, err
}

// latestRelease is app's newest release, or nil.
func latestRelease(tx *store.Tx, app string) (*api.Release, error) {
	rs, err := tx.Releases(app)
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	return &rs[0], nil
}

// ReleaseCreate creates a release from the parent (the latest release
// unless ParentRelease names one), overriding its build and env as given
// (spec §2.6). It is not promoted.
func (e *Engine) ReleaseCreate(ctx context.Context, app string, opts api.ReleaseCreateOptions) (*api.Release, error) {
	var rel *api.Release
	err := e.store.Update(ctx, func(tx *store.Tx) error {
		var err error
		rel, err = createRelease(tx, app, opts, time.Now().UTC())
		return err
	})
	if err != nil {
		return nil, err
	}
	e.event(app, "release", "Created release %s (%s)", rel.Id, rel.Description)
	return rel, nil
}

// createRelease is ReleaseCreate inside a transaction, for callers that must
// create a release atomically with other records (a build completing).
func createRelease(tx *store.Tx, app string, opts api.ReleaseCreateOptions, now time.Time) (*api.Release, error) {
	if _, err := getApp(tx, app); err != nil {
		return nil, err
	}
	var parent *api.Release
	var err error
	if opts.ParentRelease != nil && *opts.ParentRelease != "" {
		parent, err = getRelease(tx, app, *opts.ParentRelease)
	} else {
		parent, err = latestRelease(tx, app)
	}
	if err != nil {
		return nil, err
	}
	rel := &api.Release{Id: newID("R"), App: app, Created: now}
	if parent != nil {
		rel.Build, rel.Env, rel.Manifest, rel.Description = parent.Build, parent.Env, parent.Manifest, parent.Description
	}
	if opts.Build != nil && *opts.Build != "" {
		b, err := tx.Build(app, *opts.Build)
		if errors.Is(err, store.ErrNotFound) {
			return nil, api.Errorf(api.ErrNotFound, "build not found: %s", *opts.Build)
		} else if err != nil {
			return nil, err
		}
		if b.Status != api.BuildComplete {
			return nil, api.Errorf(api.ErrInvalid, "build %s is %s, not complete", b.Id, b.Status)
		}
		rel.Build, rel.Manifest, rel.Description = b.Id, b.Manifest, b.Description
	}
	if opts.Env != nil {
		old := parseEnv(rel.Env)
		env := parseEnv(*opts.Env)
		rel.Env = formatEnv(env)
		rel.Description = envDescription(old, env)
	}
	if opts.Description != nil {
		rel.Description = *opts.Description
	}
	if err := tx.PutRelease(rel); err != nil {
		return nil, err
	}
	return rel, nil
}

// ReleaseGet returns one release.
func (e *Engine) ReleaseGet(ctx context.Context, app, id string) (*api.Release, error) {
	var rel *api.Release
	err := e.store.View(ctx, func(tx *store.Tx) error {
		if _, err := getApp(tx, app); err != nil {
			return err
		}
		var err error
		rel, err = getRelease(tx, app, id)
		return err
	})
	return rel, err
}

// ReleaseList returns app's releases, newest first, at most limit.
func (e *Engine) ReleaseList(ctx context.Context, app string, limit int) ([]api.Release, error) {
	var rs []api.Release
	err := e.store.View(ctx, func(tx *store.Tx) error {
		if _, err := getApp(tx, app); err != nil {
			return err
		}
		var err error
		rs, err = tx.Releases(app)
		return err
	})
	if limit > 0 && len(rs) > limit {
		rs = rs[:limit]
	}
	return rs, err
}
