package engine

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/singlehost/convox/api"
	"github.com/singlehost/convox/store"
)

// nameRule is Convox's rule for app, service, resource and timer names. The
// length cap keeps derived Docker names (networks, volumes, hostnames)
// within Docker's and DNS's limits.
var nameRule = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

const maxAppName = 30

// reservedApps are names the rack uses for itself (spec §2.6).
var reservedApps = map[string]bool{"rack": true, "system": true}

func validateAppName(name string) error {
	switch {
	case name == "":
		return api.Errorf(api.ErrInvalid, "app name is required")
	case reservedApps[name]:
		return api.Errorf(api.ErrInvalid, "app name is reserved: %s", name)
	case !nameRule.MatchString(name):
		return api.Errorf(api.ErrInvalid, "invalid app name: %s: must start with a lowercase letter and contain only lowercase letters, digits and dashes", name)
	case len(name) > maxAppName:
		return api.Errorf(api.ErrInvalid, "invalid app name: %s: must be at most %d characters", name, maxAppName)
	}
	return nil
}

func appNotFound(name string) error {
	return api.Errorf(api.ErrNotFound, "app not found: %s", name)
}

// getApp reads an app inside tx, translating a missing record.
func getApp(tx *store.Tx, name string) (*api.App, error) {
	a, err := tx.App(name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, appNotFound(name)
	}
	return a, err
}

// AppCreate creates an app. An app needs no containers until its first
// release is promoted, so it is running at once, with no release (as Convox
// promotes an empty release on create, spec §2.6).
func (e *Engine) AppCreate(ctx context.Context, name string) (*api.App, error) {
	if err := validateAppName(name); err != nil {
		return nil, err
	}
	a := &api.App{
		Generation: "3",
		Name:       name,
		Router:     e.domain,
		Status:     api.StatusRunning,
		Parameters: map[string]string{},
	}
	err := e.store.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.App(name); err == nil {
			return api.Errorf(api.ErrConflict, "app already exists: %s", name)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return tx.PutApp(a)
	})
	if err != nil {
		return nil, err
	}
	e.log.Info("app created", "app", name)
	return a, nil
}

// AppGet returns one app.
func (e *Engine) AppGet(ctx context.Context, name string) (*api.App, error) {
	var a *api.App
	err := e.store.View(ctx, func(tx *store.Tx) error {
		var err error
		a, err = getApp(tx, name)
		return err
	})
	return a, err
}

// AppList returns every app, sorted by name.
func (e *Engine) AppList(ctx context.Context) ([]api.App, error) {
	var apps []api.App
	err := e.store.View(ctx, func(tx *store.Tx) error {
		var err error
		apps, err = tx.Apps()
		return err
	})
	return apps, err
}

// AppUpdate changes an app's lock or parameters.
func (e *Engine) AppUpdate(ctx context.Context, name string, opts api.AppUpdateOptions) error {
	return e.store.Update(ctx, func(tx *store.Tx) error {
		a, err := getApp(tx, name)
		if err != nil {
			return err
		}
		if opts.Lock != nil {
			a.Locked = *opts.Lock
		}
		if a.Parameters == nil {
			a.Parameters = map[string]string{}
		}
		for k, v := range opts.Parameters {
			a.Parameters[k] = v
		}
		return tx.PutApp(a)
	})
}

// AppDelete removes an app: first everything the runtime holds for it
// (processes, networks, volumes), then its records. If the runtime fails the
// app stays, marked deleting, so that deleting it again finishes the job.
func (e *Engine) AppDelete(ctx context.Context, name string) error {
	err := e.store.Update(ctx, func(tx *store.Tx) error {
		a, err := getApp(tx, name)
		if err != nil {
			return err
		}
		if a.Locked {
			return api.Errorf(api.ErrConflict, "app is locked: %s", name)
		}
		a.Status = api.StatusDeleting
		return tx.PutApp(a)
	})
	if err != nil {
		return err
	}
	if e.routes != nil {
		e.routes.SetRoutes(name, nil)
	}
	if e.balancers != nil {
		if err := e.balancers.Set(ctx, name, nil); err != nil {
			e.log.Warn("closing the balancers of a deleted app", "app", name, "error", err)
		}
	}
	e.mu.Lock()
	for id, h := range e.healthy {
		if h.app == name {
			delete(e.healthy, id)
		}
	}
	e.mu.Unlock()
	if err := e.runtime.Purge(ctx, Labels{LabelRack: e.rack, LabelApp: name}); err != nil {
		return fmt.Errorf("removing the containers of app %s: %w", name, err)
	}
	if e.objects != nil {
		if err := e.objects.Delete(ctx, name); err != nil {
			return fmt.Errorf("removing the objects of app %s: %w", name, err)
		}
	}
	if e.logs != nil {
		if err := e.logs.Delete(name); err != nil {
			return fmt.Errorf("removing the logs of app %s: %w", name, err)
		}
	}
	if err := e.store.Update(ctx, func(tx *store.Tx) error { return tx.DeleteApp(name) }); err != nil {
		return err
	}
	e.log.Info("app deleted", "app", name)
	return nil
}

// AppBudget returns the app's cost budget; a single host has none.
func (e *Engine) AppBudget(ctx context.Context, name string) (*api.Budget, error) {
	if _, err := e.AppGet(ctx, name); err != nil {
		return nil, err
	}
	return &api.Budget{}, nil
}
