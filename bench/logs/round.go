package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/singlehost/convox/bench/internal/rackbench"
)

// bench holds what every round needs.
type bench struct {
	rack    *rackbench.Rack
	dockerd int // pid of dockerd; 0 if not found (its CPU is then not reported)
	// cliPromote promotes with `convox env set … --promote` (whose own
	// log stream the daemon then serves too) instead of the API call.
	cliPromote bool
	image      string // the chatty app's image, for the plain rounds
	// idleBusy is the host's busy CPU share in the last idle window.
	idleBusy float64
}

// idleWindow is how long the daemon's and dockerd's idle CPU rate is
// measured before each round.
const idleWindow = 3 * time.Second

// cpuSample is the CPU time used so far by the daemon and by dockerd.
type cpuSample struct {
	at              time.Time
	daemon, dockerd time.Duration
	// hostTotal and hostBusy are the host's CPU ticks (all CPUs).
	hostTotal, hostBusy int64
}

func (b *bench) sample() cpuSample {
	s := cpuSample{at: time.Now(), daemon: cpuTime(b.rack.PID()), dockerd: cpuTime(b.dockerd)}
	s.hostTotal, s.hostBusy = hostCPU()
	return s
}

// busy is the share of the host's CPU time that was busy between two
// samples: the measured processes and anything else running.
func busy(a, b cpuSample) float64 {
	if b.hostTotal <= a.hostTotal {
		return math.NaN()
	}
	return float64(b.hostBusy-a.hostBusy) / float64(b.hostTotal-a.hostTotal)
}

// idleRate is CPU time per wall time (a ratio), at rest.
type idleRate struct{ daemon, dockerd float64 }

func (b *bench) idle(ctx context.Context) (idleRate, error) {
	s0 := b.sample()
	if err := sleep(ctx, idleWindow); err != nil {
		return idleRate{}, err
	}
	s1 := b.sample()
	b.idleBusy = busy(s0, s1)
	ratio := func(a, b time.Duration) float64 {
		if a == unknown || b == unknown {
			return 0
		}
		return float64(b-a) / float64(s1.at.Sub(s0.at))
	}
	return idleRate{daemon: ratio(s0.daemon, s1.daemon), dockerd: ratio(s0.dockerd, s1.dockerd)}, nil
}

// used is the CPU time between two samples, minus the idle rate over the
// same wall time.
func used(from, to time.Duration, rate float64, wall time.Duration) time.Duration {
	if from == unknown || to == unknown {
		return unknown
	}
	return to - from - time.Duration(rate*float64(wall))
}

// quiesce waits, at most a minute, until neither the daemon nor dockerd
// has used more than two clock ticks of CPU in half a second, and the
// host is less than a quarter busy: the work a round leaves behind (a late
// stream, a removal) must not count in the next one's idle rate, nor
// escape the read-back, and other load on a shared machine should pass.
func (b *bench) quiesce(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	prev := b.sample()
	for {
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
		cur := b.sample()
		quiet := cur.daemon-prev.daemon <= 2*clockTick && cur.dockerd-prev.dockerd <= 2*clockTick
		host := busy(prev, cur)
		if quiet && !(host >= 0.25) {
			return nil
		}
		if time.Now().After(deadline) {
			rackbench.Logf("not quiet after a minute (daemon and dockerd quiet: %t, host %s busy); going on", quiet, pct(host))
			return nil
		}
		prev = cur
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// check is how a reader's copy of "line 1".."line N" came out.
type check struct {
	n        int
	got      int // lines "line K", 1 ≤ K ≤ N, counted with repeats
	missing  int // K never seen
	dups     int // lines seen more than once (each extra copy)
	disorder int // lines with a K lower than the one before
	stray    int // lines "line K" with K outside 1..N
	seen     []uint8
	prev     int
}

func newCheck(n int) *check { return &check{n: n, seen: make([]uint8, n+1)} }

// add counts msg if it is "line K"; it returns K, or 0.
func (c *check) add(msg []byte) int {
	msg = bytes.TrimRight(msg, "\r\n")
	digits, ok := bytes.CutPrefix(msg, []byte("line "))
	if !ok {
		return 0
	}
	k, err := strconv.Atoi(string(digits))
	if err != nil {
		return 0
	}
	if k < 1 || k > c.n {
		c.stray++
		return 0
	}
	c.got++
	if c.seen[k] > 0 {
		c.dups++
	}
	if c.seen[k] < 255 {
		c.seen[k]++
	}
	if k < c.prev {
		c.disorder++
	}
	c.prev = k
	return k
}

// finish counts the lines never seen.
func (c *check) finish() *check {
	c.missing = 0
	for k := 1; k <= c.n; k++ {
		if c.seen[k] == 0 {
			c.missing++
		}
	}
	return c
}

func (c *check) ok() bool {
	return c.missing == 0 && c.dups == 0 && c.disorder == 0 && c.stray == 0
}

func (c *check) String() string {
	s := fmt.Sprintf("%d of %d lines", c.got-c.dups, c.n)
	if c.ok() {
		return s + ", each once, in order"
	}
	return fmt.Sprintf("%s: %d missing, %d duplicated, %d out of order, %d stray", s, c.missing, c.dups, c.disorder, c.stray)
}

// firstMissing lists up to max K never seen, as ranges.
func (c *check) firstMissing(max int) string {
	var out []string
	for k := 1; k <= c.n && len(out) < max; k++ {
		if c.seen[k] != 0 {
			continue
		}
		j := k
		for j < c.n && c.seen[j+1] == 0 {
			j++
		}
		if j == k {
			out = append(out, strconv.Itoa(k))
		} else {
			out = append(out, fmt.Sprintf("%d–%d", k, j))
		}
		k = j
	}
	return strings.Join(out, ", ")
}

// stallAfter is how long a reader may go without progress, once the
// process has started, before the round calls it stalled: Docker's
// json-file follower can stop for good at a log rotation (see
// BENCHMARKS.md, "Log ingest").
const stallAfter = 10 * time.Second

// dockerLogs is a `docker logs -f --timestamps` process reading a
// container until it has printed "line N".
type dockerLogs struct {
	cmd      *exec.Cmd
	done     chan struct{}
	progress atomic.Int64  // Unix nanoseconds of its last output line
	at       time.Time     // when "line N" reached the benchmark; zero if never
	cpu      time.Duration // the docker CLI's utime+stime then
	check    *check
	err      error
	stderr   rackbench.SyncBuffer
}

func followDocker(ctx context.Context, id string, n int) (*dockerLogs, error) {
	d := &dockerLogs{done: make(chan struct{}), check: newCheck(n)}
	d.cmd = exec.CommandContext(ctx, "docker", "logs", "-f", "--timestamps", id)
	d.cmd.Stderr = &d.stderr
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	d.progress.Store(time.Now().UnixNano())
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(d.done)
		br := bufio.NewReaderSize(out, 1<<20)
		for {
			line, err := br.ReadSlice('\n')
			d.progress.Store(time.Now().UnixNano())
			// "<RFC 3339 time> line K"
			if _, msg, ok := bytes.Cut(line, []byte(" ")); ok && d.check.add(msg) == n {
				d.at = time.Now()
				d.cpu = cpuTime(d.cmd.Process.Pid)
				break
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				d.err = fmt.Errorf("docker logs -f ended before line %d: %v %s", n, err, strings.TrimSpace(d.stderr.String()))
				break
			}
		}
		d.check.finish()
		_ = d.cmd.Process.Kill()
		_, _ = io.Copy(io.Discard, out)
		_ = d.cmd.Wait()
	}()
	return d, nil
}

// idleFor is how long the reader has printed nothing.
func (d *dockerLogs) idleFor() time.Duration {
	return time.Since(time.Unix(0, d.progress.Load()))
}

// stop ends the reader (if it still runs) and waits for it.
func (d *dockerLogs) stop() {
	_ = d.cmd.Process.Kill()
	<-d.done
}

// storeBytes is the size of the app's log on disk (the rack's home
// holds it under logs/<app>/): it grows while the collector stores lines,
// which the benchmark watches without asking the daemon.
func storeBytes(r *rackbench.Rack) int64 {
	var n int64
	entries, _ := os.ReadDir(filepath.Join(r.Home(), "logs", app))
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}

// stamped is an output line and when it reached the benchmark.
type stamped struct {
	at   time.Time
	text string
}

// follower is `convox logs` following the app's log with a filter.
type follower struct {
	cmd    *exec.Cmd
	lines  chan stamped
	stderr bytes.Buffer
}

func follow(ctx context.Context, r *rackbench.Rack, filter string) (*follower, error) {
	// --since 1h: should the follower reach the daemon only after the
	// line was stored, its history still has it.
	f := &follower{lines: make(chan stamped, 64)}
	f.cmd = r.Command(ctx, "logs", "-a", app, "--since", "1h", "--filter", filter)
	f.cmd.Stderr = &f.stderr
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := f.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(f.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f.lines <- stamped{time.Now(), sc.Text()}
		}
		_ = f.cmd.Wait()
	}()
	return f, nil
}

// stored reads back, with `convox logs --no-follow`, what the rack stored
// of process pid's "line K" lines, and any line of the system/logs stream
// (the store's own notices: history incomplete, reader cut off).
func stored(ctx context.Context, r *rackbench.Rack, pid string, n int, since time.Duration) (*check, []string, error) {
	since = since.Round(time.Second) + time.Minute
	cmd := r.Command(ctx, "logs", "-a", app, "--no-follow", "--since", since.String(), "--filter", "line ")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	c := newCheck(n)
	var notes []string
	stream := []byte(streamOf(pid))
	br := bufio.NewReaderSize(out, 1<<20)
	for {
		line, err := br.ReadSlice('\n')
		// "<time> <stream> <message>"
		if _, rest, ok := bytes.Cut(line, []byte(" ")); ok {
			s, msg, _ := bytes.Cut(rest, []byte(" "))
			switch {
			case bytes.Equal(s, stream):
				c.add(msg)
			case bytes.HasPrefix(s, []byte("system/logs")):
				notes = append(notes, string(bytes.TrimSpace(line)))
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		return nil, nil, fmt.Errorf("convox logs --no-follow: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return c.finish(), notes, nil
}

func streamOf(pid string) string { return "service/" + service + "/" + pid }

var releaseLine = regexp.MustCompile(`(?m)^Release: +(R[A-Z]{10})\s*$`)

// rackRun is one round on the rack: a new process of the chatty app prints
// N lines at its start, which the rack's collector and a `docker logs -f`
// started on the container's start event read at the same time.
type rackRun struct {
	n   int
	pid string // the process, as the rack names it
	// From the container's start (Docker's StartedAt):
	ingest   time.Duration // until the rack's store had "line N" (a filtered follower saw it)
	docker   time.Duration // until `docker logs -f` printed "line N"
	promoted time.Duration // until the old process was removed (the promote's last step)
	// CPU, each minus its idle rate over the same wall time:
	daemon    time.Duration // the daemon, from before the promote to the later of ingest and promoted
	dockerd   time.Duration // dockerd, from before the promote to the end of all three
	dockerCLI time.Duration // the `docker logs -f` process, when it printed "line N"
	shim      time.Duration // the container's containerd shim, its whole life; unknown if not found
	stored    *check        // what `convox logs --no-follow` gives back
	printed   *check        // what `docker logs -f` printed
	notes     []string      // system/logs lines in the store
	logFiles  int           // files of Docker's log of the container (1 + rotations); 0 if unknown
	// hostBusy and idleBusy are the host's busy CPU share during the
	// round and during the idle window before it (other load shows here).
	hostBusy, idleBusy float64
	// rackStalled and dockerStalled: that reader made no progress for
	// stallAfter before it had line N (its time and CPU are then unknown).
	rackStalled, dockerStalled bool
	// promoteOut is the output of `convox env set --promote` (-promote=cli).
	promoteOut string
}

// rackRound creates a release whose process prints n lines, promotes it,
// and measures how the rack and `docker logs -f` read that output.
func (b *bench) rackRound(ctx context.Context, round, n int, timeout time.Duration) (*rackRun, error) {
	r := b.rack
	if err := waitRunning(ctx, r, app, time.Minute); err != nil {
		return nil, err
	}
	set := []string{"env", "set", fmt.Sprintf("COUNT_TO=%d", n), "START_DELAY=3600", fmt.Sprintf("ROUND=%d", round), "-a", app}
	var release string
	if !b.cliPromote {
		out, err := r.Convox(ctx, set...)
		if err != nil {
			return nil, fmt.Errorf("convox env set: %w\n%s", err, out)
		}
		m := releaseLine.FindStringSubmatch(out)
		if m == nil {
			return nil, fmt.Errorf("convox env set printed no release:\n%s", out)
		}
		release = m[1]
	}

	fctx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	want := fmt.Sprintf("line %d", n)
	f, err := follow(fctx, r, want)
	if err != nil {
		return nil, err
	}
	// The follower reads the history (an hour of the app's log) first:
	// done before the idle window starts.
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return nil, err
	}
	if err := b.quiesce(ctx); err != nil {
		return nil, err
	}
	idle, err := b.idle(ctx)
	if err != nil {
		return nil, err
	}

	ectx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	before := b.sample()
	evs := events(ectx, "convox.rack="+r.Name, before.at)
	var promoteCmd *exec.Cmd
	var promoteOut rackbench.SyncBuffer
	promoted := make(chan error, 1)
	if b.cliPromote {
		promoteCmd = r.Command(ctx, append(set, "--promote")...)
		promoteCmd.Stdout, promoteCmd.Stderr = &promoteOut, &promoteOut
		if err := promoteCmd.Start(); err != nil {
			return nil, err
		}
		go func() { promoted <- promoteCmd.Wait() }()
	} else {
		if err := r.API(ctx, "POST", "/apps/"+app+"/releases/"+release+"/promote", nil); err != nil {
			return nil, err
		}
		promoted <- nil
	}

	run := &rackRun{n: n, shim: unknown, ingest: -1, docker: -1, promoted: -1,
		daemon: unknown, dockerd: unknown, dockerCLI: unknown}
	var (
		newID, stream    string
		dl               *dockerLogs
		dlDone           <-chan struct{}
		tRack, tPromoted time.Time
		sRack, sPromoted cpuSample
		pending          []stamped
		shim             int
		rackDone         bool // line N seen, or stalled
		dockerDone       bool // line N printed, or stalled
		storeSize        = storeBytes(r)
		storeGrew        = time.Now()
		tick             = time.NewTicker(time.Second)
		deadline         = time.NewTimer(timeout)
		isLineN          = func(l stamped) bool { return strings.HasSuffix(l.text, " "+stream+" "+want) }
		followerLines    = f.lines
		eventsOpen       = evs
	)
	defer tick.Stop()
	defer deadline.Stop()
	defer func() {
		if dl != nil {
			dl.stop()
		}
	}()
	sawLineN := func(l stamped) {
		tRack, sRack, rackDone = l.at, b.sample(), true
	}
	for !rackDone || tPromoted.IsZero() || !dockerDone {
		select {
		case ev, ok := <-eventsOpen:
			if !ok {
				return nil, errors.New("docker's event stream ended")
			}
			a := ev.Actor.Attributes
			if a["convox.app"] != app || a["convox.type"] != "service" {
				continue
			}
			switch {
			case ev.Action == "start" && newID == "":
				newID, run.pid = ev.Actor.ID, a["convox.process"]
				stream = streamOf(run.pid)
				if dl, err = followDocker(ctx, newID, n); err != nil {
					return nil, err
				}
				dlDone = dl.done
				shim = shimOf(newID)
				storeGrew = time.Now()
				for _, l := range pending {
					if !rackDone && isLineN(l) {
						sawLineN(l)
					}
				}
			case ev.Action == "destroy" && ev.Actor.ID != newID && tPromoted.IsZero():
				tPromoted, sPromoted = time.Now(), b.sample()
			}
		case l, ok := <-followerLines:
			if !ok {
				followerLines = nil
				if !rackDone {
					return nil, fmt.Errorf("convox logs (following) exited: %s", strings.TrimSpace(f.stderr.String()))
				}
				continue
			}
			if stream == "" {
				pending = append(pending, l)
			} else if !rackDone && isLineN(l) {
				sawLineN(l)
			}
		case <-dlDone:
			dlDone, dockerDone = nil, true
			if dl.err != nil {
				return nil, dl.err
			}
		case <-tick.C:
			if newID == "" {
				continue
			}
			if !dockerDone && dl.idleFor() > stallAfter {
				rackbench.Logf("round %d: docker logs -f printed nothing for %s, at %s: stalled", round, stallAfter, dl.check)
				dlDone, dockerDone, run.dockerStalled = nil, true, true
				dl.stop()
			}
			if !rackDone {
				if size := storeBytes(r); size != storeSize {
					storeSize, storeGrew = size, time.Now()
				} else if time.Since(storeGrew) > stallAfter {
					rackbench.Logf("round %d: the rack's log store did not grow for %s, without line %d: stalled", round, stallAfter, n)
					rackDone, run.rackStalled = true, true
				}
			}
		case <-deadline.C:
			state := fmt.Sprintf("container started: %t, rack stored line %d: %t, old process removed: %t, docker logs -f printed line %d: %t",
				newID != "", n, !tRack.IsZero(), !tPromoted.IsZero(), n, !dl.at.IsZero())
			return nil, fmt.Errorf("round %d: not done within %s (%s)", round, timeout, state)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	final := b.sample()
	run.hostBusy, run.idleBusy = busy(before, final), b.idleBusy

	c, err := inspect(ctx, newID)
	if err != nil {
		return nil, err
	}
	t0 := c.State.StartedAt
	run.promoted = tPromoted.Sub(t0)
	if !run.rackStalled {
		run.ingest = tRack.Sub(t0)
		end := sRack
		if sPromoted.at.After(end.at) {
			end = sPromoted
		}
		run.daemon = used(before.daemon, end.daemon, idle.daemon, end.at.Sub(before.at))
	}
	if !run.dockerStalled {
		run.docker = dl.at.Sub(t0)
		run.dockerCLI = dl.cpu
	}
	if !run.rackStalled && !run.dockerStalled {
		run.dockerd = used(before.dockerd, final.dockerd, idle.dockerd, final.at.Sub(before.at))
	}
	if shim != 0 {
		run.shim = cpuTime(shim)
	}
	dl.stop()
	run.printed = dl.check

	if promoteCmd != nil {
		select {
		case err := <-promoted:
			run.promoteOut = promoteOut.String()
			if err != nil {
				return nil, fmt.Errorf("convox env set --promote: %w\n%s", err, run.promoteOut)
			}
		case <-time.After(time.Minute):
			return nil, fmt.Errorf("convox env set --promote did not finish within a minute of the process's start:\n%s", promoteOut.String())
		}
	}
	stopFollow()
	// Lines Docker sends again after the last one (see BENCHMARKS.md)
	// are stored by then too.
	if err := b.quiesce(ctx); err != nil {
		return nil, err
	}
	run.logFiles = logFiles(c.LogPath)
	run.stored, run.notes, err = stored(ctx, r, run.pid, n, time.Since(before.at))
	if err != nil {
		return nil, err
	}
	if b.image == "" {
		b.image = c.Config.Image
	}
	return run, nil
}

// plainLabel marks the plain rounds' containers, with the rack's name, so
// that the clean-up removes them.
const plainLabel = rackbench.BenchLabel

// plainRun is one round without the rack: a plain container of the same
// image printing n lines (`docker create`, `docker start`), read by
// `docker logs -f` alone.
type plainRun struct {
	n         int
	docker    time.Duration // container start → `docker logs -f` printed line N
	dockerd   time.Duration // before `docker create` → line N printed, minus idle
	dockerCLI time.Duration
	shim      time.Duration
	printed   *check
	logFiles  int
	hostBusy  float64
	stalled   bool // `docker logs -f` made no progress for stallAfter before line N
}

func (b *bench) plainRound(ctx context.Context, n int, timeout time.Duration) (*plainRun, error) {
	if b.image == "" {
		return nil, errors.New("no image for the plain round")
	}
	if err := b.quiesce(ctx); err != nil {
		return nil, err
	}
	idle, err := b.idle(ctx)
	if err != nil {
		return nil, err
	}
	before := b.sample()
	out, err := rackbench.Docker(ctx, "create", "--label", plainLabel+"="+b.rack.Name,
		"-e", fmt.Sprintf("COUNT_TO=%d", n), "-e", "START_DELAY=3600", b.image)
	if err != nil {
		return nil, err
	}
	id := strings.TrimSpace(out)
	defer func() { _, _ = rackbench.Docker(context.Background(), "rm", "-f", id) }()
	// As in the rack round, `docker logs -f` starts on Docker's start
	// event, so both read the output while it is written.
	ectx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	evs := events(ectx, plainLabel+"="+b.rack.Name, before.at)
	started := make(chan error, 1)
	go func() {
		_, err := rackbench.Docker(ctx, "start", id)
		started <- err
	}()
	var dl *dockerLogs
	for dl == nil {
		select {
		case ev, ok := <-evs:
			if !ok {
				return nil, errors.New("docker's event stream ended")
			}
			if ev.Action == "start" && ev.Actor.ID == id {
				if dl, err = followDocker(ctx, id, n); err != nil {
					return nil, err
				}
			}
		case err := <-started:
			if err != nil {
				return nil, err
			}
			started = nil
		case <-time.After(30 * time.Second):
			return nil, errors.New("plain round: no start event within 30s")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer dl.stop()
	shim := shimOf(id)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	stalled := false
	for done := false; !done; {
		select {
		case <-dl.done:
			done = true
		case <-tick.C:
			if dl.idleFor() > stallAfter {
				rackbench.Logf("plain round: docker logs -f printed nothing for %s, at %s: stalled", stallAfter, dl.check)
				dl.stop()
				done, stalled = true, true
			}
		case <-deadline.C:
			return nil, fmt.Errorf("plain round: docker logs -f did not print line %d within %s", n, timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if dl.err != nil && !stalled {
		return nil, dl.err
	}
	final := b.sample()
	c, err := inspect(ctx, id)
	if err != nil {
		return nil, err
	}
	run := &plainRun{n: n, shim: unknown, printed: dl.check, docker: -1, dockerCLI: unknown, dockerd: unknown,
		logFiles: logFiles(c.LogPath), stalled: stalled, hostBusy: busy(before, final)}
	if !stalled {
		run.docker = dl.at.Sub(c.State.StartedAt)
		run.dockerCLI = dl.cpu
		run.dockerd = used(before.dockerd, final.dockerd, idle.dockerd, final.at.Sub(before.at))
	}
	if shim != 0 {
		run.shim = cpuTime(shim)
	}
	return run, nil
}
