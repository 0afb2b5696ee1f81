package engine

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/singlehost/convox/api"
	"github.com/singlehost/convox/store"
)

// fakeRuntime records what the engine asked of it; methods it does not
// override panic through the nil embedded interface.
type fakeRuntime struct {
	Runtime
	purged   []Labels
	purgeErr error
}

func (f *fakeRuntime) Purge(ctx context.Context, sel Labels) error {
	f.purged = append(f.purged, sel)
	return f.purgeErr
}

func newEngine(t *testing.T) (*Engine, *fakeRuntime) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "rack.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rt := &fakeRuntime{}
	return New(Config{Rack: "test", Domain: "localhost", Store: st, Runtime: rt}), rt
}

func TestEngine_AppCreate_Names(t *testing.T) {
	tests := []struct {
		name string
		kind error
		msg  string
	}{
		{"myapp", nil, ""},
		{"a-1", nil, ""},
		{"", api.ErrInvalid, "app name is required"},
		{"rack", api.ErrInvalid, "app name is reserved: rack"},
		{"system", api.ErrInvalid, "app name is reserved: system"},
		{"1app", api.ErrInvalid, "invalid app name: 1app: must start with a lowercase letter and contain only lowercase letters, digits and dashes"},
		{"My_App", api.ErrInvalid, "invalid app name: My_App: must start with a lowercase letter and contain only lowercase letters, digits and dashes"},
		{"abcdefghijklmnopqrstuvwxyzabcde", api.ErrInvalid, "invalid app name: abcdefghijklmnopqrstuvwxyzabcde: must be at most 30 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEngine(t)
			a, err := e.AppCreate(context.Background(), tt.name)
			if tt.kind == nil {
				if err != nil {
					t.Fatalf("AppCreate(%q) error = %v", tt.name, err)
				}
				want := &api.App{Generation: "3", Name: tt.name, Router: "localhost", Status: "running", Parameters: map[string]string{}}
				if !reflect.DeepEqual(a, want) {
					t.Errorf("AppCreate = %+v, want %+v", a, want)
				}
				return
			}
			if !errors.Is(err, tt.kind) || err.Error() != tt.msg {
				t.Errorf("AppCreate(%q) error = %v, want %q (%v)", tt.name, err, tt.msg, tt.kind)
			}
		})
	}
}

func TestEngine_AppLifecycle(t *testing.T) {
	ctx := context.Background()
	e, rt := newEngine(t)
	mustErr := func(err error, kind error, msg string) {
		t.Helper()
		if !errors.Is(err, kind) || err.Error() != msg {
			t.Errorf("error = %v, want %q (%v)", err, msg, kind)
		}
	}

	if _, err := e.AppCreate(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.AppCreate(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	_, err := e.AppCreate(ctx, "a")
	mustErr(err, api.ErrConflict, "app already exists: a")
	_, err = e.AppGet(ctx, "zz")
	mustErr(err, api.ErrNotFound, "app not found: zz")

	apps, err := e.AppList(ctx)
	if err != nil || len(apps) != 2 || apps[0].Name != "a" || apps[1].Name != "b" {
		t.Fatalf("AppList = %v, %v; want [a b]", apps, err)
	}

	lock := true
	if err := e.AppUpdate(ctx, "a", api.AppUpdateOptions{Lock: &lock}); err != nil {
		t.Fatal(err)
	}
	mustErr(e.AppDelete(ctx, "a"), api.ErrConflict, "app is locked: a")
	if len(rt.purged) != 0 {
		t.Errorf("a locked app's containers were purged: %v", rt.purged)
	}
	mustErr(e.AppCancel(ctx, "a"), api.ErrForbidden, "app is not updating")
	mustErr(e.AppCancel(ctx, "zz"), api.ErrNotFound, "app not found: zz")
	if b, err := e.AppBudget(ctx, "a"); err != nil || b.Config != nil || b.State != nil {
		t.Errorf("AppBudget = %+v, %v; want nulls", b, err)
	}

	lock = false
	if err := e.AppUpdate(ctx, "a", api.AppUpdateOptions{Lock: &lock, Parameters: map[string]string{"BuildCpu": "512"}}); err != nil {
		t.Fatal(err)
	}
	if a, _ := e.AppGet(ctx, "a"); a.Locked || a.Parameters["BuildCpu"] != "512" {
		t.Errorf("after update: %+v", a)
	}

	// A runtime failure leaves the app, marked deleting, for a retry.
	rt.purgeErr = errors.New("docker is down")
	if err := e.AppDelete(ctx, "a"); err == nil || err.Error() != "removing the containers of app a: docker is down" {
		t.Errorf("AppDelete with a failing runtime: %v", err)
	}
	if a, err := e.AppGet(ctx, "a"); err != nil || a.Status != api.StatusDeleting {
		t.Errorf("after a failed delete: %+v, %v; want status deleting", a, err)
	}
	rt.purgeErr = nil
	if err := e.AppDelete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	_, err = e.AppGet(ctx, "a")
	mustErr(err, api.ErrNotFound, "app not found: a")
	want := Labels{LabelRack: "test", LabelApp: "a"}
	if got := rt.purged[len(rt.purged)-1]; !reflect.DeepEqual(got, want) {
		t.Errorf("purged %v, want %v", got, want)
	}
}

func TestEngine_ResourceImage(t *testing.T) {
	e := New(Config{ResourceImages: map[string]string{"postgres": "convoxtest/postgres:latest"}})
	tests := []struct {
		kind, want string
		ok         bool
	}{
		{"postgres", "convoxtest/postgres:latest", true},
		{"redis", "redis:4.0.10", true},
		{"oracle", "", false},
	}
	for _, tt := range tests {
		if got, ok := e.ResourceImage(tt.kind); got != tt.want || ok != tt.ok {
			t.Errorf("ResourceImage(%q) = %q, %v; want %q, %v", tt.kind, got, ok, tt.want, tt.ok)
		}
	}
}

func TestEngine_SystemGet(t *testing.T) {
	e, _ := newEngine(t)
	s, err := e.SystemGet(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "test" || s.Provider != "local" || s.Status != "running" || s.Version != api.Version || s.Domain != "localhost" {
		t.Errorf("SystemGet = %+v", s)
	}
}
