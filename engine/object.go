package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/singlehost/convox/api"
)

// Objects stores blobs by key: build sources, build logs, exports. Keys are
// validated by the implementation (no "..", not absolute).
type Objects interface {
	Put(ctx context.Context, key string, r io.Reader) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Delete(ctx context.Context, key string) error
}

// objectURL is the address Convox gives an app's object.
func objectURL(app, key string) string { return "object://" + app + "/" + key }

// parseObjectURL splits object://<app>/<key>.
func parseObjectURL(u string) (app, key string, err error) {
	rest, ok := strings.CutPrefix(u, "object://")
	if !ok {
		return "", "", api.Errorf(api.ErrInvalid, "invalid object url: %s", u)
	}
	app, key, ok = strings.Cut(rest, "/")
	if !ok || app == "" || key == "" {
		return "", "", api.Errorf(api.ErrInvalid, "invalid object url: %s", u)
	}
	return app, key, nil
}

// ObjectStore stores an app's object; an empty key gets a fresh tmp/ name.
func (e *Engine) ObjectStore(ctx context.Context, app, key string, r io.Reader) (*api.Object, error) {
	if _, err := e.AppGet(ctx, app); err != nil {
		return nil, err
	}
	if key == "" {
		var b [15]byte
		_, _ = rand.Read(b[:])
		key = "tmp/" + hex.EncodeToString(b[:])
	}
	if err := e.objects.Put(ctx, app+"/"+key, r); err != nil {
		return nil, objectError(err, key)
	}
	return &api.Object{Url: objectURL(app, key)}, nil
}

// ObjectFetch opens an app's object.
func (e *Engine) ObjectFetch(ctx context.Context, app, key string) (io.ReadCloser, error) {
	if _, err := e.AppGet(ctx, app); err != nil {
		return nil, err
	}
	rc, err := e.objects.Get(ctx, app+"/"+key)
	if err != nil {
		return nil, objectError(err, key)
	}
	return rc, nil
}

// objectError translates an Objects error. Implementations report a missing
// object with fs.ErrNotExist and a bad key with fs.ErrInvalid (wrapped), so
// that the engine need not import them.
func objectError(err error, key string) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return api.Errorf(api.ErrNotFound, "object not found: %s", key)
	case errors.Is(err, fs.ErrInvalid):
		return api.Errorf(api.ErrInvalid, "invalid object key: %s", key)
	}
	return fmt.Errorf("object %s: %w", key, err)
}
