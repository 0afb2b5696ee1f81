package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/singlehost/convox/api"
	"github.com/singlehost/convox/manifest"
	"github.com/singlehost/convox/store"
)

func buildNotFound(id string) error { return api.Errorf(api.ErrNotFound, "build not found: %s", id) }

// imageRef is where a build's image for a service lives on the host:
// <rack>/<app>:<service>.<build>.
func (e *Engine) imageRef(app, service, build string) string {
	return e.rack + "/" + app + ":" + service + "." + build
}

// BuildCreate starts building the source at url (object://<app>/<key>) and
// returns the build, created; its output streams from BuildLogs.
func (e *Engine) BuildCreate(ctx context.Context, app, url string, opts api.BuildCreateOptions) (*api.Build, error) {
	srcApp, key, err := parseObjectURL(url)
	if err != nil {
		return nil, err
	}
	if srcApp != app {
		return nil, api.Errorf(api.ErrInvalid, "source %s belongs to another app", url)
	}
	b := &api.Build{
		Id:          newID("B"),
		App:         app,
		Description: opts.Description,
		GitSha:      opts.GitSha,
		Status:      api.BuildCreated,
		Started:     time.Now().UTC(),
	}
	b.Logs = objectURL(app, "build/"+b.Id+"/logs")
	err = e.store.Update(ctx, func(tx *store.Tx) error {
		if _, err := getApp(tx, app); err != nil {
			return err
		}
		return tx.PutBuild(b)
	})
	if err != nil {
		return nil, err
	}
	out := newBuildOutput()
	e.mu.Lock()
	e.builds[b.Id] = out
	e.mu.Unlock()
	// The build job owns its own copy: the caller gets b as created.
	job := *b
	if err := e.background(func(ctx context.Context) { e.runBuild(ctx, &job, key, opts, out) }); err != nil {
		e.endBuild(context.Background(), &job, out, err)
		return nil, err
	}
	e.event(app, "build", "Build %s started", b.Id)
	return b, nil
}

// runBuild builds every image of the source's manifest, then creates the
// build's release.
func (e *Engine) runBuild(ctx context.Context, b *api.Build, key string, opts api.BuildCreateOptions, out *buildOutput) {
	b.Status = api.BuildRunning
	if err := e.store.Update(ctx, func(tx *store.Tx) error { return tx.PutBuild(b) }); err != nil {
		e.endBuild(ctx, b, out, err)
		return
	}
	err := e.build(ctx, b, key, opts, out)
	e.endBuild(ctx, b, out, err)
}

func (e *Engine) build(ctx context.Context, b *api.Build, key string, opts api.BuildCreateOptions, out io.Writer) error {
	source := func() (io.ReadCloser, error) { return e.objects.Get(ctx, b.App+"/"+key) }
	mfile := opts.Manifest
	if mfile == "" {
		mfile = "convox.yml"
	}
	src, err := source()
	if err != nil {
		return objectError(err, key)
	}
	raw, found, err := sourceFile(src, mfile)
	src.Close()
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("no such file: %s", mfile)
	}
	b.Manifest = string(raw)

	// Interpolation sees the latest release's env plus the build args
	// (spec §1.1).
	env := map[string]string{}
	args := map[string]string{}
	err = e.store.View(ctx, func(tx *store.Tx) error {
		rel, err := latestRelease(tx, b.App)
		if rel != nil {
			env = parseEnv(rel.Env)
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, a := range opts.BuildArgs {
		k, v, _ := strings.Cut(a, "=")
		env[k], args[k] = v, v
	}
	m, err := manifest.Load(raw, env, manifest.Name(mfile))
	if err != nil {
		return err
	}
	if err := m.RequiredEnv(env); err != nil {
		return fmt.Errorf("%w (set them with convox env set, then build again)", err)
	}
	for _, w := range m.Warnings {
		fmt.Fprintf(out, "WARNING: %s\n", w)
	}

	type buildKey struct{ path, dockerfile, args string }
	built := map[buildKey]string{} // → the first tag it got
	var entrypoint []string
	for _, s := range m.Services {
		ref := e.imageRef(b.App, s.Name, b.Id)
		if s.Image != "" {
			if err := e.pullIfMissing(ctx, s.Image, out); err != nil {
				return err
			}
			if err := e.runtime.ImageTag(ctx, s.Image, ref); err != nil {
				return fmt.Errorf("tagging %s: %w", s.Image, err)
			}
			continue
		}
		bargs := map[string]string{}
		for k, v := range args {
			bargs[k] = v
		}
		for _, a := range s.Build.Args {
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				v = env[k]
			}
			bargs[k] = v
		}
		bk := buildKey{s.Build.Path, s.Build.Manifest, formatEnv(bargs)}
		if first, ok := built[bk]; ok {
			if err := e.runtime.ImageTag(ctx, first, ref); err != nil {
				return fmt.Errorf("tagging %s: %w", ref, err)
			}
			continue
		}
		fmt.Fprintf(out, "Building: %s\n", s.Build.Path)
		if err := e.buildImage(ctx, source, s.Build.Path, s.Build.Manifest, ref, bargs, opts.NoCache, b, out); err != nil {
			return err
		}
		built[bk] = ref
		if entrypoint == nil {
			if img, err := e.runtime.ImageInspect(ctx, ref); err == nil {
				entrypoint = img.Entrypoint
			}
		}
	}
	b.Entrypoint = strings.Join(entrypoint, " ")
	return nil
}

func (e *Engine) buildImage(ctx context.Context, source func() (io.ReadCloser, error), dir, dockerfile, ref string, args map[string]string, noCache bool, b *api.Build, out io.Writer) error {
	src, err := source()
	if err != nil {
		return objectError(err, "source")
	}
	defer src.Close()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(buildContext(src, dir, pw)) }()
	defer pr.Close()
	err = e.runtime.ImageBuild(ctx, BuildSpec{
		Context:    pr,
		Dockerfile: dockerfile,
		Tag:        ref,
		Args:       args,
		NoCache:    noCache,
	}, out)
	if err != nil {
		return fmt.Errorf("building %s: %w", dir, err)
	}
	return nil
}

// pullIfMissing pulls an image: service's image only when the host lacks it,
// so that local images (and machines without a registry) work.
func (e *Engine) pullIfMissing(ctx context.Context, image string, out io.Writer) error {
	if _, err := e.runtime.ImageInspect(ctx, image); err == nil {
		return nil
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	fmt.Fprintf(out, "Running: docker pull %s\n", image)
	if err := e.runtime.ImagePull(ctx, image, out); err != nil {
		return fmt.Errorf("pulling %s: %w", image, err)
	}
	return nil
}

// endBuild records a build's outcome and its log; a complete build gets a
// release.
func (e *Engine) endBuild(ctx context.Context, b *api.Build, out *buildOutput, buildErr error) {
	if ctx.Err() != nil {
		// The daemon is stopping: record the build as failed with a
		// context that still works.
		ctx = context.Background()
	}
	if buildErr != nil {
		fmt.Fprintf(out, "ERROR: %v\n", buildErr)
	}
	if err := e.objects.Put(ctx, b.App+"/build/"+b.Id+"/logs", bytes.NewReader(out.Bytes())); err != nil {
		e.log.Warn("storing a build log", "app", b.App, "build", b.Id, "error", err)
	}
	b.Ended = time.Now().UTC()
	err := e.store.Update(ctx, func(tx *store.Tx) error {
		if buildErr != nil {
			b.Status, b.Reason = api.BuildFailed, buildErr.Error()
			return tx.PutBuild(b)
		}
		b.Status = api.BuildComplete
		if err := tx.PutBuild(b); err != nil {
			return err
		}
		rel, err := createRelease(tx, b.App, api.ReleaseCreateOptions{Build: &b.Id}, b.Ended)
		if err != nil {
			return err
		}
		b.Release = rel.Id
		return tx.PutBuild(b)
	})
	if err != nil {
		e.log.Error("recording a build", "app", b.App, "build", b.Id, "error", err)
	}
	out.Close()
	e.mu.Lock()
	delete(e.builds, b.Id)
	e.mu.Unlock()
	if b.Status == api.BuildComplete {
		e.event(b.App, "build", "Build %s complete: release %s", b.Id, b.Release)
	} else {
		e.event(b.App, "build", "Build %s failed: %s", b.Id, b.Reason)
	}
}

// BuildGet returns one build.
func (e *Engine) BuildGet(ctx context.Context, app, id string) (*api.Build, error) {
	var b *api.Build
	err := e.store.View(ctx, func(tx *store.Tx) error {
		if _, err := getApp(tx, app); err != nil {
			return err
		}
		var err error
		b, err = tx.Build(app, id)
		if errors.Is(err, store.ErrNotFound) {
			return buildNotFound(id)
		}
		return err
	})
	return b, err
}

// BuildList returns app's builds, newest first, at most limit.
func (e *Engine) BuildList(ctx context.Context, app string, limit int) ([]api.Build, error) {
	var bs []api.Build
	err := e.store.View(ctx, func(tx *store.Tx) error {
		if _, err := getApp(tx, app); err != nil {
			return err
		}
		var err error
		bs, err = tx.Builds(app)
		return err
	})
	if limit > 0 && len(bs) > limit {
		bs = bs[:limit]
	}
	return bs, err
}

// BuildLogs streams a build's output: live while it runs, stored after.
func (e *Engine) BuildLogs(ctx context.Context, app, id string, opts api.LogsOptions) (io.ReadCloser, error) {
	if _, err := e.BuildGet(ctx, app, id); err != nil {
		return nil, err
	}
	e.mu.Lock()
	out, running := e.builds[id]
	e.mu.Unlock()
	if running {
		return out.reader(ctx), nil
	}
	rc, err := e.objects.Get(ctx, app+"/build/"+id+"/logs")
	if err != nil {
		return nil, objectError(err, "build/"+id+"/logs")
	}
	return rc, nil
}
