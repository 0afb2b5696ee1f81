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
	"os"
	"time"

	"github.com/singlehost/convox/bench/internal/rackbench"
)

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
	rackbench.Main("bench/deploy", func(ctx context.Context) error { return run(ctx, *n, *verbose, *poll) })
}

func run(ctx context.Context, n int, verbose, poll bool) (err error) {
	began := time.Now()
	root, err := rackbench.RepoRoot("go run ./bench/deploy")
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
	r := rackbench.New(tmp)
	name := r.Name
	defer func() {
		rackbench.Logf("cleaning up")
		r.Stop()
		rackbench.CleanupDocker(name, plainRepo)
	}()

	rackbench.Logf("building convox and the sample server")
	if err := r.Build(ctx, root); err != nil {
		return err
	}
	src, err := rackbench.SampleApp(ctx, root, tmp, "")
	if err != nil {
		return err
	}
	if err := rackbench.EnsureBaseImage(ctx, root); err != nil {
		return err
	}
	machine := describeMachine(ctx)

	rackbench.Logf("starting rack %s", name)
	if err := r.Start(ctx); err != nil {
		return err
	}
	if out, err := r.Convox(ctx, "apps", "create", app); err != nil {
		return fmt.Errorf("convox apps create: %w\n%s", err, out)
	}

	// Warm-up, untimed: the first deploy fills Docker's build cache (and
	// gives the measured deploys a previous release to replace); the first
	// plain build and pair of containers do the same for the baseline.
	rackbench.Logf("warm-up deploy")
	warm, err := deploy(ctx, r, src, poll, verbose)
	if err != nil {
		return fmt.Errorf("warm-up deploy: %w", err)
	}
	if err := confirmServing(ctx, r, warm.release); err != nil {
		return fmt.Errorf("warm-up deploy: %w", err)
	}
	rackbench.Logf("warm-up deploy: %s in %s", warm.release, secs(warm.total))
	pl := &plain{dir: src, label: rackbench.BenchLabel + "=" + name}
	if _, err := pl.replace(ctx, 0); err != nil {
		return fmt.Errorf("warm-up plain docker: %w", err)
	}

	var ours []*deployRun
	var base []*plainRun
	for i := 1; i <= n; i++ {
		d, err := deploy(ctx, r, src, poll, verbose)
		if err != nil {
			return fmt.Errorf("deploy %d: %w", i, err)
		}
		if !d.cached {
			return fmt.Errorf("deploy %d: the image build was not fully cached:\n%s", i, d.output())
		}
		if err := confirmServing(ctx, r, d.release); err != nil {
			return fmt.Errorf("deploy %d: %w", i, err)
		}
		ours = append(ours, d)
		p, err := pl.replace(ctx, i)
		if err != nil {
			return fmt.Errorf("plain docker %d: %w", i, err)
		}
		base = append(base, p)
		rackbench.Logf("run %d/%d: convox deploy %s (serving at %s), plain docker %s", i, n,
			secs(d.total), secs(d.serving), secs(p.total))
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	report(os.Stdout, n, machine, ours, base, time.Since(began))
	return nil
}
