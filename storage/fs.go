// Package storage keeps Objects: blobs the apps and the rack store, such as
// build sources and build logs. FS keeps them in a directory; every key is
// validated here, once, against escaping it.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Errors returned by the drivers. They wrap the io/fs sentinels so that
// consumers can recognise them without importing this package.
var (
	// ErrNotFound is returned for a key that holds no object.
	ErrNotFound = fmt.Errorf("object %w", fs.ErrNotExist)
	// ErrInvalidKey is returned for a key that is empty, absolute or
	// climbs out of the store with "..".
	ErrInvalidKey = fmt.Errorf("object key %w", fs.ErrInvalid)
)

// FS stores objects as files under a directory.
type FS struct {
	dir string
}

// NewFS returns a store rooted at dir, creating it (0700).
func NewFS(dir string) (*FS, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating object store: %w", err)
	}
	return &FS{dir: dir}, nil
}

// CleanKey validates key and returns its canonical form.
func CleanKey(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		return "", fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == ".." {
			return "", fmt.Errorf("%w: %q", ErrInvalidKey, key)
		}
	}
	return path.Clean(key), nil
}

func (f *FS) path(key string) (string, error) {
	k, err := CleanKey(key)
	if err != nil {
		return "", err
	}
	return filepath.Join(f.dir, filepath.FromSlash(k)), nil
}

// Put stores r under key, replacing any object there. The object appears
// whole or not at all: it is written to a temporary file and renamed.
func (f *FS) Put(ctx context.Context, key string, r io.Reader) error {
	p, err := f.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, contextReader{ctx, r}); err != nil {
		tmp.Close()
		return fmt.Errorf("storing %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	return nil
}

// Get opens the object at key.
func (f *FS) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := f.path(key)
	if err != nil {
		return nil, err
	}
	file, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	return file, nil
}

// Delete removes the object at key, or every object under key when it
// names a prefix; a missing key is not an error.
func (f *FS) Delete(ctx context.Context, key string) error {
	p, err := f.path(key)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	return nil
}

// List returns the keys under prefix, sorted.
func (f *FS) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	err := filepath.WalkDir(f.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(f.dir, p)
		if err != nil {
			return err
		}
		if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing objects: %w", err)
	}
	sort.Strings(keys)
	return keys, nil
}

// contextReader stops a long copy when its context ends.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
