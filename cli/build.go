package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/singlehost/convox/api"
)

const (
	// buildPollInterval is how often a build's status is read once its log
	// has ended.
	buildPollInterval = time.Second
	// buildLimit bounds the wait for a build, as Convox's 60 minutes do.
	buildLimit = time.Hour
)

// buildOptions are the flags that build and deploy share.
type buildOptions struct {
	app string
	// dir is the source directory, already resolved against the working
	// directory.
	dir       string
	buildArgs []string
	// description is used when described is set; otherwise git's is.
	description string
	described   bool
	manifest    string
	noCache     bool
	// id sends progress to stderr and only the release id to stdout.
	id bool
}

// addBuildFlags adds the flags of a build to cmd. --development, --external
// and --wildcard-domain are accepted for Convox scripts and do nothing here:
// a single host has no development target, no external builder and one
// domain.
func addBuildFlags(cmd *cobra.Command, o *buildOptions) {
	fs := cmd.Flags()
	fs.StringArrayVar(&o.buildArgs, "build-args", nil, "build argument KEY=VALUE (repeatable)")
	fs.StringVarP(&o.description, "description", "d", "", "description of the build (default: git's last commit, if the tree is clean)")
	fs.StringVarP(&o.manifest, "manifest", "m", "convox.yml", "manifest file, relative to the source")
	fs.BoolVar(&o.noCache, "no-cache", false, "build without Docker's layer cache")
	fs.BoolVar(&o.id, "id", false, "print only the release id on stdout, progress on stderr")
	fs.Bool("development", false, "no-op, for Convox compatibility")
	fs.Bool("external", false, "no-op, for Convox compatibility")
	fs.String("wildcard-domain", "", "no-op, for Convox compatibility")
	for _, name := range []string{"development", "external", "wildcard-domain"} {
		_ = fs.MarkHidden(name)
	}
}

// resolve completes o from the command line: the app, the source directory
// (default ".") and whether a description was given.
func (o *buildOptions) resolve(env *Env, cmd *cobra.Command, flags *appFlags, args []string) error {
	app, err := env.app(nil, flags.app)
	if err != nil {
		return err
	}
	o.app = app
	o.dir = env.Dir
	if len(args) > 0 {
		o.dir = env.path(args[0])
	}
	o.described = cmd.Flags().Changed("description")
	return nil
}

func newBuildCommand(env *Env) *cobra.Command {
	var flags appFlags
	var opts buildOptions
	cmd := &cobra.Command{
		Use:   "build [dir]",
		Short: "Build an app's source into a new release",
		Long: `Build packages the source directory (default ".", without what .dockerignore
excludes), uploads it to the rack and builds the services of its convox.yml
into a release, which "convox releases promote" deploys.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.resolve(env, cmd, &flags, args); err != nil {
				return err
			}
			return runBuild(cmd.Context(), env, opts)
		},
	}
	addAppFlags(cmd, &flags)
	addBuildFlags(cmd, &opts)
	return cmd
}

func runBuild(ctx context.Context, env *Env, opts buildOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	b, err := build(ctx, r, progress(env, opts.id), opts)
	if err != nil {
		return err
	}
	printID(env, opts.id, b.Release)
	return nil
}

// build packages, uploads and builds the source (spec §4.1), streaming the
// build's log to w, and returns the completed build:
//
//	Packaging source... OK
//	Uploading source... OK
//	Starting build... OK
//	<the build's log>
//	Build:   BABCDEFGHI
//	Release: RABCDEFGHI
//
// A failed build is the error "build failed"; its log has said why.
func build(ctx context.Context, r api.Rack, w io.Writer, opts buildOptions) (*api.Build, error) {
	description, sha := gitInfo(ctx, opts.dir)
	if opts.described {
		description = opts.description
	}

	startf(w, "Packaging source")
	src, err := os.CreateTemp("", "convox-source-*.tgz")
	if err != nil {
		return nil, err
	}
	defer os.Remove(src.Name())
	defer src.Close()
	if err := packageSource(opts.dir, src); err != nil {
		return nil, err
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	ok(w)

	startf(w, "Uploading source")
	key, err := sourceKey()
	if err != nil {
		return nil, err
	}
	o, err := r.ObjectStore(ctx, opts.app, key, src)
	if err != nil {
		return nil, err
	}
	ok(w)

	startf(w, "Starting build")
	b, err := r.BuildCreate(ctx, opts.app, o.Url, api.BuildCreateOptions{
		Description: description,
		GitSha:      sha,
		Manifest:    opts.manifest,
		NoCache:     opts.noCache,
		BuildArgs:   opts.buildArgs,
	})
	if err != nil {
		return nil, err
	}
	ok(w)

	if err := copyBuildLogs(ctx, r, w, opts.app, b.Id); err != nil {
		return nil, err
	}
	if b, err = waitBuild(ctx, r, opts.app, b.Id); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "Build:   %s\nRelease: %s\n", b.Id, b.Release)
	return b, nil
}

// sourceKey is the object key of an upload: tmp/<30 hex characters>.tgz,
// as Convox names them.
func sourceKey() (string, error) {
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "tmp/" + hex.EncodeToString(b[:]) + ".tgz", nil
}

// copyBuildLogs copies a build's log to w until the rack ends it, and ends
// the last line if the log did not. A stream that breaks is not an error:
// the build's status still says how it went.
func copyBuildLogs(ctx context.Context, r api.Rack, w io.Writer, app, id string) error {
	logs, err := r.BuildLogs(ctx, app, id, api.LogsOptions{})
	if err != nil {
		return err
	}
	defer logs.Close()
	lw := &lastByteWriter{w: w}
	_, _ = io.Copy(lw, logs)
	if err := ctx.Err(); err != nil {
		return err
	}
	if lw.last != 0 && lw.last != '\n' {
		_, err = io.WriteString(w, "\n")
	}
	return err
}

// lastByteWriter remembers the last byte written through it.
type lastByteWriter struct {
	w    io.Writer
	last byte
}

func (l *lastByteWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if n > 0 {
		l.last = p[n-1]
	}
	return n, err
}

// waitBuild polls a build until it is complete, which it returns, or
// failed, which is an error.
func waitBuild(ctx context.Context, r api.Rack, app, id string) (*api.Build, error) {
	deadline := time.Now().Add(buildLimit)
	for {
		b, err := r.BuildGet(ctx, app, id)
		if err != nil {
			return nil, err
		}
		switch b.Status {
		case api.BuildComplete:
			return b, nil
		case api.BuildFailed:
			return nil, errors.New("build failed")
		case api.BuildCreated, api.BuildRunning:
		default:
			return nil, fmt.Errorf("unexpected build status: %s", b.Status)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("build %s is still %s after %s", id, b.Status, buildLimit)
		}
		t := time.NewTimer(buildPollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
