package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/singlehost/convox/api"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rack.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestStore_Apps(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	for _, name := range []string{"zeta", "alpha", "mid"} {
		err := s.Update(ctx, func(tx *Tx) error { return tx.PutApp(&api.App{Name: name, Status: "running"}) })
		if err != nil {
			t.Fatal(err)
		}
	}
	err := s.View(ctx, func(tx *Tx) error {
		apps, err := tx.Apps()
		if err != nil {
			return err
		}
		var names []string
		for _, a := range apps {
			names = append(names, a.Name)
		}
		if got := names; len(got) != 3 || got[0] != "alpha" || got[1] != "mid" || got[2] != "zeta" {
			t.Errorf("Apps() = %v, want [alpha mid zeta]", got)
		}
		if _, err := tx.App("nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("App(nope) error = %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A failing transaction changes nothing.
	boom := errors.New("boom")
	err = s.Update(ctx, func(tx *Tx) error {
		if err := tx.DeleteApp("mid"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want boom", err)
	}

	// Records survive closing and reopening.
	s.Close()
	s2, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	err = s2.View(ctx, func(tx *Tx) error {
		a, err := tx.App("mid")
		if err != nil {
			return err
		}
		if a.Status != "running" {
			t.Errorf("reopened app status = %q", a.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpen_Locked(t *testing.T) {
	_, path := openTemp(t)
	start := time.Now()
	_, err := Open(path, 200*time.Millisecond)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open error = %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v: it must give up after its timeout", d)
	}
}

func TestStore_CancelledContext(t *testing.T) {
	s, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := s.Update(ctx, func(tx *Tx) error { called = true; return nil })
	if !errors.Is(err, context.Canceled) || called {
		t.Errorf("Update with a cancelled context: err %v, fn called %v", err, called)
	}
}
