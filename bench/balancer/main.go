// Command balancer benchmarks the rack's TCP balancer (package balancer)
// against haproxy in TCP mode and against no proxy at all, on loopback, to
// the same backend:
//
//	bash bench/balancer/run.sh [-rounds 3] [-mib 1024] [-streams 4] [-c 32] [-d 5s] [-rack-d 1s] [-rack=true] [-haproxy-splice auto] [-short] [-v]
//
// run.sh installs haproxy (Debian package) when it is missing and runs this
// program. Every party is a process of its own, so that each one's CPU time
// is its own and none shares a Go runtime with another: the load generator
// is this program; the backend, and in the first suite our balancer, are
// this program's binary again, started with a hidden subcommand; haproxy is
// a child process with a configuration of its own in a temporary directory.
//
// Two suites, each measuring three targets:
//
//   - pure: the backend is a small Go TCP echo on loopback (the sample app's
//     echo, without Docker), and our side is the balancer package in a
//     process of its own, forwarding a port to it as the rack does. This is
//     the proxy against the proxy, nothing else in the path.
//   - rack (-rack, on by default): `convox rack start` on a temporary home,
//     the sample app (testdata/apps/server) deployed with one process,
//     ECHO_PORT=7000 and a balancer to it; haproxy and the direct runs go to
//     the process's published loopback port, the very target the rack's
//     balancer forwards to. This is the product as a user runs it.
//
// The targets: direct (the backend's port), haproxy (`mode tcp`, `option
// splice-auto`, maxconn 4000, one thread per CPU) and the balancer. The
// backend echoes what it reads and, once the client has half-closed, writes
// "bye from <host>" and closes. Two measurements:
//
//   - throughput: -streams connections at once, each sending -mib MiB and
//     reading them back (the echo) before the bye; the figure is payload
//     bytes per second one way (each byte crosses the proxy twice, once per
//     direction).
//   - connections/s: -c workers for -d, each in a loop: connect, write 1
//     byte, read 1 byte, close. Through the rack the runs last -rack-d and
//     each waits until fewer than 4000 connections to the container's port
//     are in TIME_WAIT: docker-proxy's connections to the container are not
//     on loopback, so their ports are not reused early, and a run that found
//     the ephemeral range nearly spent would measure docker-proxy's search
//     for a free port (BENCHMARKS.md, "Docker's port budget").
//
// Every target gets an untimed warm-up of each first. Each round runs every
// target once, throughput first, in an order rotating from round to round
// so that drift on the machine spreads evenly; a run during which processes
// other than ours used more than 15% of the machine's CPU time, or a
// throughput run in which a transfer failed (haproxy 2.6 splicing in front
// of docker-proxy now and then stalls one), is measured again (up to
// twice; the report lists failed transfers). The CPU time of every process involved (and of the
// kernel's softirq work, where loopback packets are delivered) is read from
// /proc around each run, which gives CPU time per GiB and per connection.
// The report (stdout, Markdown) gives per suite and target the medians over
// rounds and the figures against the targets of the issue: balancer ≥ 0.9×
// direct throughput, and at least haproxy's connections/s. A miss is
// reported as FAIL but is not an error: the exit status only says whether
// the benchmark ran.
//
// It always cleans up: the child processes, haproxy and the rack are
// stopped and everything labelled convox.rack=<name> (containers, networks,
// volumes) and the rack's images are removed. CONVOX_HOME and CONVOX_CONFIG
// point into the temporary directory, so the user's own rack and settings
// are never touched.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/singlehost/convox/bench/internal/rackbench"
)

// Targets of the issue.
const (
	minThroughputRatio = 0.9 // balancer / direct, bytes/s
	minConnRatio       = 1.0 // balancer / haproxy, connections/s
)

// maxOther is the share of the machine's CPU time other processes may use
// during a run before it is measured again.
const maxOther = 0.15

type options struct {
	rounds, streams, workers int
	mib                      int64
	duration, rackDuration   time.Duration
	rack, verbose            bool
	splice                   string // haproxy's splice options: auto, always, off
	retries                  int
	noPortWait               bool // -short: no wait for Docker's port budget
	warmMiB                  int64
	warmDuration             time.Duration
	loops                    int // the balancer's event loops; 0: its default
}

func main() {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "_") {
		os.Exit(child(os.Args[1:]))
	}
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "measured rounds (each runs every target once per measurement)")
	flag.Int64Var(&o.mib, "mib", 1024, "MiB each throughput connection sends (and reads back)")
	flag.IntVar(&o.streams, "streams", 4, "concurrent connections of a throughput run")
	flag.IntVar(&o.workers, "c", 32, "concurrent workers of a connections/s run")
	flag.DurationVar(&o.duration, "d", 5*time.Second, "duration of each connections/s run")
	flag.DurationVar(&o.rackDuration, "rack-d", time.Second, "duration of each connections/s run through the rack (see BENCHMARKS.md: Docker's port budget)")
	flag.BoolVar(&o.rack, "rack", true, "also measure through a real rack (Docker, the sample app)")
	flag.StringVar(&o.splice, "haproxy-splice", "auto", "haproxy's splicing: auto (`option splice-auto`), always (splice-request and splice-response) or off")
	flag.IntVar(&o.loops, "loops", 0, "the balancer's event loops, as the rack's --proxy-loops (0: its default, one per two CPUs)")
	short := flag.Bool("short", false, "CI mode: one round, 256 MiB per connection, 2 s connection runs; under 45 s")
	flag.BoolVar(&o.verbose, "v", false, "print every run's figures")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: bash bench/balancer/run.sh [flags]   (or go run ./bench/balancer [flags])\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	o.retries, o.warmMiB, o.warmDuration = 2, 128, time.Second
	if *short {
		o.rounds, o.mib, o.duration, o.rackDuration = 1, 256, 2*time.Second, 500*time.Millisecond
		o.retries, o.warmMiB, o.warmDuration, o.noPortWait = 0, 32, 200*time.Millisecond, true
	}
	if o.rounds < 1 || o.mib < 1 || o.streams < 1 || o.workers < 1 || o.duration < 100*time.Millisecond || o.rackDuration < 100*time.Millisecond {
		fmt.Fprintln(os.Stderr, "bench/balancer: need -rounds ≥ 1, -mib ≥ 1, -streams ≥ 1, -c ≥ 1, -d and -rack-d ≥ 100ms")
		os.Exit(2)
	}
	if _, ok := spliceOptions[o.splice]; !ok {
		fmt.Fprintln(os.Stderr, "bench/balancer: -haproxy-splice is auto, always or off")
		os.Exit(2)
	}
	rackbench.Main("bench/balancer", func(ctx context.Context) error { return run(ctx, o) })
}

// suite is a backend and the three ways to reach it.
type suite struct {
	name, title string
	backend     string // what the backend is, for the report
	note        string // said under the suite's tables
	backendPids func() []int
	// connDuration, when set, replaces -d for connections/s runs, and
	// beforeConns runs before each of them.
	connDuration time.Duration
	beforeConns  func(context.Context) error
	targets      []*target
	results      []*result
	failures     []*result // throughput runs with a failed transfer, kept or measured again
}

func run(ctx context.Context, o options) error {
	began := time.Now()
	if _, err := haproxyBinary(); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "convox-bench-balancer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	m := rackbench.DescribeMachine(ctx)

	// Everything this run starts is stopped on the way out, whatever
	// happened (a failure, Ctrl-C).
	var procs []*proc
	var r *rackbench.Rack
	defer func() {
		rackbench.Logf("cleaning up")
		for _, p := range slices.Backward(procs) {
			p.stop()
		}
		if r != nil {
			r.Stop()
			rackbench.CleanupDocker(r.Name)
		}
	}()
	start := func(p *proc, err error) (*proc, error) {
		if p != nil {
			procs = append(procs, p)
		}
		return p, err
	}

	// The pure suite: our processes only.
	rackbench.Logf("pure suite: starting the backend, the balancer and haproxy")
	backend, err := start(startChild(ctx, self, "backend", "_backend"))
	if err != nil {
		return err
	}
	pure := &suite{name: "pure", title: "Pure proxies: a Go echo backend on loopback, no Docker",
		backend:     "a Go TCP echo (`io.Copy` per connection, as the sample app's), in a process of its own",
		backendPids: backend.pids}
	if err := addTargets(ctx, o, tmp, self, pure, backend.addr, nil, start); err != nil {
		return err
	}
	if err := measure(ctx, o, pure); err != nil {
		return err
	}
	// The pure suite's processes idle from here on; stop them anyway, so
	// that the rack suite has the machine to itself.
	for _, p := range slices.Backward(procs) {
		p.stop()
	}
	procs = nil
	suites := []*suite{pure}

	if o.rack {
		root, err := rackbench.RepoRoot("bash bench/balancer/run.sh")
		if err != nil {
			return err
		}
		r = rackbench.New(tmp)
		rackbench.Logf("rack suite: building convox and the sample server")
		rs, backendAddr, bal, err := rackSuite(ctx, root, r, o.rackDuration, !o.noPortWait, o.loops)
		if err != nil {
			return err
		}
		if err := addTargets(ctx, o, tmp, self, rs, backendAddr, bal, start); err != nil {
			return err
		}
		if err := measure(ctx, o, rs); err != nil {
			return err
		}
		suites = append(suites, rs)
	}

	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	report(os.Stdout, o, m, suites, time.Since(began))
	return nil
}

// addTargets gives s its targets: direct (backend), haproxy forwarding to
// it, and the balancer: bal, or, when nil, the balancer package in a child
// process of its own. Each target is probed with one echo before it counts.
func addTargets(ctx context.Context, o options, tmp, self string, s *suite, backend string, bal *target, start func(*proc, error) (*proc, error)) error {
	direct := &target{name: "direct", kind: "direct", addr: backend}
	hp, err := start(startHaproxy(ctx, filepath.Join(tmp, "haproxy-"+s.name), backend, o.splice))
	if err != nil {
		return err
	}
	haproxy := &target{name: "haproxy " + haproxyVersion(), kind: "haproxy", addr: hp.addr, pids: hp.pids}
	if bal == nil {
		bp, err := start(startChild(ctx, self, "balancer", "_balancer", backend, strconv.Itoa(o.loops)))
		if err != nil {
			return err
		}
		name := "balancer (package, own process)"
		if o.loops > 0 {
			name = fmt.Sprintf("balancer (package, own process, %d loops)", o.loops)
		}
		bal = &target{name: name, kind: "balancer", addr: bp.addr, pids: bp.pids}
	}
	s.targets = []*target{direct, haproxy, bal}
	for _, t := range s.targets {
		if err := waitEcho(ctx, t.addr, 10*time.Second); err != nil {
			if t == haproxy {
				return fmt.Errorf("%s suite: %s at %s: %w\n%s", s.name, t.name, t.addr, err, hp.stderr)
			}
			return fmt.Errorf("%s suite: %s at %s: %w", s.name, t.name, t.addr, err)
		}
	}
	rackbench.Logf("%s suite: direct %s, haproxy %s, balancer %s", s.name, direct.addr, haproxy.addr, bal.addr)
	return nil
}

// measure warms every target up, then runs the rounds.
func measure(ctx context.Context, o options, s *suite) error {
	rackbench.Logf("%s suite: warm-up", s.name)
	for _, t := range s.targets {
		if res, err := runThroughput(ctx, t, s, o.streams, o.warmMiB<<20); err != nil {
			return fmt.Errorf("warm-up of %s: %w", t.name, err)
		} else if res.errors > 0 {
			rackbench.Logf("%s suite: warm-up of %s: %d transfers failed (%s)", s.name, t.name, res.errors, res.firstErr)
		}
		if s.beforeConns != nil {
			if err := s.beforeConns(ctx); err != nil {
				return err
			}
		}
		if _, err := runConns(ctx, t, s, o.workers, o.warmDuration); err != nil {
			return fmt.Errorf("warm-up of %s: %w", t.name, err)
		}
	}
	for round := range o.rounds {
		for _, kind := range []string{"throughput", "conns"} {
			for i := range s.targets {
				t := s.targets[(i+round)%len(s.targets)]
				var res *result
				for attempt := 1; ; attempt++ {
					time.Sleep(300 * time.Millisecond) // let the last run's sockets go
					var err error
					if kind == "throughput" {
						res, err = runThroughput(ctx, t, s, o.streams, o.mib<<20)
					} else {
						d := o.duration
						if s.connDuration > 0 {
							d = s.connDuration
						}
						if s.beforeConns != nil {
							if err := s.beforeConns(ctx); err != nil {
								return err
							}
						}
						res, err = runConns(ctx, t, s, o.workers, d)
					}
					if err != nil {
						return fmt.Errorf("%s suite, round %d, %s of %s: %w", s.name, round+1, kind, t.name, err)
					}
					res.round, res.attempts = round+1, attempt
					if kind == "throughput" && res.errors > 0 {
						s.failures = append(s.failures, res)
					}
					busy := res.cpu.otherShare() > maxOther
					failed := kind == "throughput" && res.errors > 0
					if !busy && !failed || attempt > o.retries {
						break
					}
					if failed {
						rackbench.Logf("%s suite, round %d: %s of %s: %d transfers failed (%s); measuring it again",
							s.name, round+1, kind, t.name, res.errors, res.firstErr)
					} else {
						rackbench.Logf("%s suite, round %d: %s of %s: other processes used %.0f%% of the CPUs; measuring it again",
							s.name, round+1, kind, t.name, 100*res.cpu.otherShare())
					}
				}
				rackbench.Logf("%s suite, round %d/%d: %-34s %s", s.name, round+1, o.rounds, t.name, res.line())
				s.results = append(s.results, res)
			}
		}
	}
	return nil
}
