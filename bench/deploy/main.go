// Command deploy benchmarks `convox deploy` of a cached sample app against
// the same work done with plain Docker, in the same run:
//
//	go run ./bench/deploy [-n 5] [-short] [-v] [-poll=false]
//
// It builds convox and the sample server (testdata/apps/server) into a
// temporary directory, starts `convox rack start` on a temporary home with
// free ports, creates an app and deploys testdata/apps/web once to fill
// Docker's build cache. Then, n times, alternating:
//
//   - ours: `convox deploy <dir> -a bench` of the same source (so the
//     image build is fully cached), timed from start to exit (the command
//     prints OK only once the new release's processes are healthy and the
//     old ones are gone); its output lines are timestamped as they arrive to
//     split the time into phases, and the new release's processes are
//     polled concurrently (GET / on their published ports) to see when they
//     actually serve;
//   - baseline: `docker build -t bench/plain:<i> <dir>` (cached), two
//     `docker run -d -p 127.0.0.1::5000 -e PORT=5000 …` (the sample runs two
//     processes), GET / polled on both published ports until both answer
//     200, then `docker rm -f` of the previous pair: the same "replace"
//     work with nothing but the docker CLI.
//
// It prints Markdown tables (medians, min/max, the ratio ours/baseline and
// the phase medians) and always cleans up: the rack is stopped, its
// containers, networks, volumes and images (label convox.rack=<name>) and
// the bench/plain images and containers are removed. It never touches the
// user's Convox settings: CONVOX_HOME and CONVOX_CONFIG point into the
// temporary directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// baseImage is what the sample app's Dockerfile builds FROM; it is made
// locally by testdata/images/build (no registry is reachable).
const baseImage = "convoxtest/debian:bookworm"

// app is the name of the benchmark's app on its own rack.
const app = "bench"

// plainRepo is the repository of the baseline's images.
const plainRepo = "bench/plain"

func main() {
	n := flag.Int("n", 5, "measured deploys of each kind")
	short := flag.Bool("short", false, "CI mode: n=2, a quick sanity run (under a minute in all)")
	verbose := flag.Bool("v", false, "print each run's timeline as it is measured")
	poll := flag.Bool("poll", true, "poll the new processes during each deploy (the serving and old-gone rows); -poll=false shows what the poll itself costs")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/deploy [-n 5] [-short] [-v] [-poll=false]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *short {
		*n = 2
	}
	if *n < 1 {
		fmt.Fprintln(os.Stderr, "bench/deploy: -n must be at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *n, *verbose, *poll)
	if err != nil && ctx.Err() != nil {
		err = errors.New("interrupted")
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/deploy:", err)
		os.Exit(1)
	}
}

// logf reports progress on stderr; the report itself goes to stdout.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func run(ctx context.Context, n int, verbose, poll bool) (err error) {
	began := time.Now()
	root, err := repoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "convox-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// Everything this run creates in Docker is removed on the way out,
	// whatever happened (a failure, Ctrl-C).
	name := fmt.Sprintf("bench%06d", rand.IntN(1000000))
	r := &rack{name: name, dir: tmp, poll: poll}
	defer func() {
		logf("cleaning up")
		r.stop()
		cleanupDocker(name)
	}()

	logf("building convox and the sample server")
	r.binary = filepath.Join(tmp, "convox")
	if err := runCmd(ctx, root, nil, "go", "build", "-o", r.binary, "."); err != nil {
		return fmt.Errorf("building convox: %w", err)
	}
	src, err := sampleApp(ctx, root, tmp)
	if err != nil {
		return err
	}
	if err := ensureBaseImage(ctx, root); err != nil {
		return err
	}
	machine := describeMachine(ctx)

	logf("starting rack %s", name)
	if err := r.start(ctx); err != nil {
		return err
	}
	if out, err := r.convox(ctx, "apps", "create", app); err != nil {
		return fmt.Errorf("convox apps create: %w\n%s", err, out)
	}

	// Warm-up, untimed: the first deploy fills Docker's build cache (and
	// gives the measured deploys a previous release to replace); the first
	// plain build and pair of containers do the same for the baseline.
	logf("warm-up deploy")
	warm, err := r.deploy(ctx, src, verbose)
	if err != nil {
		return fmt.Errorf("warm-up deploy: %w", err)
	}
	if err := confirmServing(ctx, name, warm.release); err != nil {
		return fmt.Errorf("warm-up deploy: %w", err)
	}
	logf("warm-up deploy: %s in %s", warm.release, secs(warm.total))
	pl := &plain{dir: src, label: "convox.bench=" + name}
	if _, err := pl.replace(ctx, 0); err != nil {
		return fmt.Errorf("warm-up plain docker: %w", err)
	}

	var ours []*deployRun
	var base []*plainRun
	for i := 1; i <= n; i++ {
		d, err := r.deploy(ctx, src, verbose)
		if err != nil {
			return fmt.Errorf("deploy %d: %w", i, err)
		}
		if !d.cached {
			return fmt.Errorf("deploy %d: the image build was not fully cached:\n%s", i, d.output())
		}
		if err := confirmServing(ctx, name, d.release); err != nil {
			return fmt.Errorf("deploy %d: %w", i, err)
		}
		ours = append(ours, d)
		p, err := pl.replace(ctx, i)
		if err != nil {
			return fmt.Errorf("plain docker %d: %w", i, err)
		}
		base = append(base, p)
		logf("run %d/%d: convox deploy %s (serving at %s), plain docker %s", i, n,
			secs(d.total), secs(d.serving), secs(p.total))
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	report(os.Stdout, n, machine, ours, base, time.Since(began))
	return nil
}

// repoRoot finds the module's directory from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/singlehost/convox\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run it from the convox repository (go run ./bench/deploy)")
		}
		dir = parent
	}
}

// sampleApp copies testdata/apps/web into tmp/src and builds the sample
// server into it, as the end-to-end tests do.
func sampleApp(ctx context.Context, root, tmp string) (string, error) {
	dir := filepath.Join(tmp, "src")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, f := range []string{"Dockerfile", "convox.yml", ".dockerignore"} {
		data, err := os.ReadFile(filepath.Join(root, "testdata", "apps", "web", f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			return "", err
		}
	}
	err := runCmd(ctx, root, []string{"CGO_ENABLED=0"}, "go", "build", "-o", filepath.Join(dir, "server"), "./testdata/apps/server")
	if err != nil {
		return "", fmt.Errorf("building the sample server: %w", err)
	}
	return dir, nil
}

// ensureBaseImage builds the sample's base image when the host lacks it.
func ensureBaseImage(ctx context.Context, root string) error {
	if dockerQuiet(ctx, "image", "inspect", baseImage) == nil {
		return nil
	}
	logf("%s is missing: running testdata/images/build debian", baseImage)
	if err := runCmd(ctx, root, nil, filepath.Join(root, "testdata", "images", "build"), "debian"); err != nil {
		return fmt.Errorf("building %s: %w", baseImage, err)
	}
	return nil
}
