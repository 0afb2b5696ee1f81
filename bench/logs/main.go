// Command logs benchmarks the rack's log ingest: how fast the output of one
// chatty process reaches the rack's durable log store, and what that costs
// the daemon in CPU, next to `docker logs -f` reading the same container in
// the same run:
//
//	go run ./bench/logs [-lines 200000] [-n 3] [-short] [-promote api|cli]
//
// As bench/deploy does, it builds convox and the sample server
// (testdata/apps/server) into a temporary directory and starts `convox rack
// start` on a temporary home with free ports. It creates an app whose one
// service has no port (command: server, scale count 1) and deploys it once.
// Then, after one control round with a single line (the fixed cost of a
// promote), n times:
//
//   - rack round: `convox env set COUNT_TO=N START_DELAY=3600 ROUND=i` makes
//     a release whose process prints "line 1".."line N" at its start and
//     then idles; it is promoted with the API call (or, with -promote=cli,
//     by `convox env set … --promote`). On Docker's start event for the new
//     container a `docker logs -f --timestamps` of it is started; a
//     `convox logs --filter "line N"` follower, started before, shows when
//     the store has the last line. Both are timed from the container's
//     start (Docker's StartedAt). The daemon's CPU (utime+stime from
//     /proc) is read before the promote and when the last line is stored
//     and the old process removed, minus its idle rate measured over 3 s
//     just before, minus the control round's; dockerd's likewise; the
//     docker CLI's when it printed the last line. Then `convox logs
//     --no-follow` reads back what the store holds of the process: every
//     "line K" exactly once, in order, or the benchmark fails.
//   - plain round: a container of the same image with the same
//     environment (`docker create`, `docker start`), read by `docker logs
//     -f --timestamps` alone, started on Docker's start event as above.
//
// It prints Markdown tables (medians, min–max) and always cleans up: the
// rack is stopped and its containers, networks, volumes and images (label
// convox.rack=<name>) and the plain containers are removed. CONVOX_HOME and
// CONVOX_CONFIG point into the temporary directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/singlehost/convox/bench/internal/procfs"
	"github.com/singlehost/convox/bench/internal/rackbench"
)

// app and service name the benchmark's app on its own rack.
const (
	app     = "bench"
	service = "chatty"
)

func main() {
	lines := flag.Int("lines", 200000, "lines the process prints at its start (N)")
	n := flag.Int("n", 3, "measured rounds")
	short := flag.Bool("short", false, "CI mode: -lines 20000 -n 1 (under a minute in all)")
	promote := flag.String("promote", "api", `how the release is promoted: "api" (the API call alone) or "cli" (convox env set --promote, whose event stream the daemon serves meanwhile)`)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/logs [-lines 200000] [-n 3] [-short] [-promote api|cli]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *short {
		*lines, *n = 20000, 1
	}
	if *n < 1 || *lines < 2 || *promote != "api" && *promote != "cli" {
		flag.Usage()
		os.Exit(2)
	}
	rackbench.Main("bench/logs", func(ctx context.Context) error { return run(ctx, *lines, *n, *promote == "cli") })
}

func run(ctx context.Context, lines, n int, cliPromote bool) (err error) {
	began := time.Now()
	root, err := rackbench.RepoRoot("go run ./bench/logs")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "convox-bench-logs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	r := rackbench.New(tmp)
	name := r.Name
	defer func() {
		rackbench.Logf("cleaning up")
		r.Stop()
		rackbench.CleanupDocker(name)
	}()

	rackbench.Logf("building convox and the sample server")
	if err := r.Build(ctx, root); err != nil {
		return err
	}
	src, err := rackbench.SampleApp(ctx, root, tmp, manifest)
	if err != nil {
		return err
	}
	if err := rackbench.EnsureBaseImage(ctx, root); err != nil {
		return err
	}
	m := describeMachine(ctx)
	b := &bench{rack: r, cliPromote: cliPromote, dockerd: procfs.Find("dockerd", "")}
	if b.dockerd == 0 {
		rackbench.Logf("dockerd's process is not found (or not one): its CPU is not reported")
	}

	rackbench.Logf("starting rack %s", name)
	if err := r.Start(ctx); err != nil {
		return err
	}
	if out, err := r.Convox(ctx, "apps", "create", app); err != nil {
		return fmt.Errorf("convox apps create: %w\n%s", err, out)
	}
	rackbench.Logf("deploying the chatty app")
	if out, err := r.Convox(ctx, "deploy", src, "-a", app); err != nil {
		return fmt.Errorf("convox deploy: %w\n%s", err, out)
	}

	timeout := time.Minute + time.Duration(lines)*time.Second/2000
	rackbench.Logf("control round: a promote whose process prints one line")
	ctl, err := b.rackRound(ctx, 0, 1, time.Minute)
	if err != nil {
		return fmt.Errorf("control round: %w", err)
	}
	plainCtl, err := b.plainRound(ctx, 1, time.Minute)
	if err != nil {
		return fmt.Errorf("control round: %w", err)
	}

	var rounds []*rackRun
	var plains []*plainRun
	var problems []error
	for i := 1; i <= n; i++ {
		rr, err := b.rackRound(ctx, i, lines, timeout)
		if err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		rackbench.Logf("round %d/%d: rack stored line %d at %s, docker logs -f printed it at %s; daemon CPU %s (gross)",
			i, n, lines, stalledOr(rr.rackStalled, secs(rr.ingest)), stalledOr(rr.dockerStalled, secs(rr.docker)), ms(rr.daemon))
		if rr.rackStalled {
			problems = append(problems, fmt.Errorf("round %d: the rack's collector stalled: no line stored for %s before line %d", i, stallAfter, lines))
		}
		if rr.dockerStalled {
			problems = append(problems, fmt.Errorf("round %d: docker logs -f stalled at %s", i, rr.printed))
		}
		if !rr.stored.ok() {
			problems = append(problems, fmt.Errorf("round %d: the rack stored %s (process %s; missing: %s)", i, rr.stored, rr.pid, rr.stored.firstMissing(10)))
		}
		if !rr.printed.ok() {
			problems = append(problems, fmt.Errorf("round %d: docker logs -f printed %s", i, rr.printed))
		}
		for _, note := range rr.notes {
			problems = append(problems, fmt.Errorf("round %d: the store says: %s", i, note))
		}
		pr, err := b.plainRound(ctx, lines, timeout)
		if err != nil {
			return fmt.Errorf("round %d (plain): %w", i, err)
		}
		rackbench.Logf("round %d/%d: plain docker logs -f printed line %d at %s", i, n, lines, stalledOr(pr.stalled, secs(pr.docker)))
		if !pr.printed.ok() {
			problems = append(problems, fmt.Errorf("round %d (plain): docker logs -f printed %s", i, pr.printed))
		}
		rounds, plains = append(rounds, rr), append(plains, pr)
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	report(os.Stdout, m, lines, ctl, plainCtl, rounds, plains, cliPromote, time.Since(began))
	return errors.Join(problems...)
}
