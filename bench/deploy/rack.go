package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/singlehost/convox/bench/internal/rackbench"
)

// line is one line of a command's output and when it arrived, counted from
// the command's start.
type line struct {
	at   time.Duration
	text string
}

// deployRun is one timed `convox deploy`.
type deployRun struct {
	total   time.Duration // start to exit
	serving time.Duration // start to both new processes answering GET /; -1 if never seen
	oldGone time.Duration // start to no process of an older release left; -1 if never seen
	release string
	cached  bool // every build step came from Docker's cache
	lines   []line
}

func (d *deployRun) output() string {
	var b strings.Builder
	for _, l := range d.lines {
		fmt.Fprintf(&b, "%8.3fs  %s\n", l.at.Seconds(), l.text)
	}
	return b.String()
}

var releaseLine = regexp.MustCompile(`^Release: +(R[A-Z]{10})$`)

// deploy runs `convox deploy` of src, timestamping its output lines as
// they arrive; once the release id is printed, with poll, the new
// processes are polled concurrently to see when they serve.
func deploy(ctx context.Context, r *rackbench.Rack, src string, poll, verbose bool) (*deployRun, error) {
	cmd := r.Command(ctx, "deploy", src, "-a", app)
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	d := &deployRun{serving: -1, oldGone: -1}
	pctx, cancelPoll := context.WithCancel(ctx)
	defer cancelPoll()
	var polling sync.WaitGroup
	started := false

	start := time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	pw.Close()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		l := line{at: time.Since(start), text: sc.Text()}
		d.lines = append(d.lines, l)
		if verbose {
			fmt.Fprintf(os.Stderr, "%8.3fs  %s\n", l.at.Seconds(), l.text)
		}
		if m := releaseLine.FindStringSubmatch(l.text); m != nil && !started && poll {
			started = true
			polling.Add(1)
			go func() {
				defer polling.Done()
				d.serving, d.oldGone = pollServing(pctx, r.Name, m[1], start)
			}()
		}
	}
	pr.Close()
	err = cmd.Wait()
	d.total = time.Since(start)
	if err != nil {
		return d, fmt.Errorf("%w\n%s", err, d.output())
	}
	for _, l := range d.lines {
		if m := releaseLine.FindStringSubmatch(l.text); m != nil {
			d.release = m[1]
			break
		}
	}
	if d.release == "" {
		return d, fmt.Errorf("no Release: line in the output:\n%s", d.output())
	}
	// The poll has the processes' start-up and the old ones' removal to
	// see; after the command's exit both must come promptly.
	go func() {
		select {
		case <-time.After(30 * time.Second):
		case <-pctx.Done():
		}
		cancelPoll()
	}()
	polling.Wait()
	if poll && (d.serving < 0 || d.oldGone < 0) {
		return d, fmt.Errorf("release %s: its processes were not all serving with the old ones gone within 30s of the deploy's end\n%s", d.release, d.output())
	}
	d.cached = isCached(d.lines)
	return d, nil
}

// isCached tells whether a classic-builder build output shows every step
// that runs something as taken from the cache.
func isCached(lines []line) bool {
	steps, cached := 0, 0
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l.text, "Step ") && !strings.Contains(l.text, " : FROM "):
			steps++
		case strings.TrimSpace(l.text) == "---> Using cache":
			cached++
		}
	}
	return steps > 0 && cached == steps
}

// confirmServing checks, after a deploy, what a user would: the app's
// running processes, as `docker ps` lists them, answer GET / on the
// 127.0.0.1 port `docker port` gives, naming the new release.
func confirmServing(ctx context.Context, r *rackbench.Rack, release string) error {
	ids, err := r.Containers(ctx, app, "web")
	if err != nil {
		return err
	}
	if len(ids) != 2 {
		return fmt.Errorf("%d web processes run after the deploy of %s, want 2", len(ids), release)
	}
	for _, id := range ids {
		port, err := rackbench.PublishedPort(ctx, id, "5000/tcp")
		if err != nil {
			return err
		}
		body, err := httpGet(ctx, "http://127.0.0.1:"+port+"/")
		if err != nil {
			return fmt.Errorf("process %s: %w", id, err)
		}
		if !strings.Contains(body, "release "+release) {
			return fmt.Errorf("process %s answers %q, want release %s", id, strings.TrimSpace(body), release)
		}
	}
	return nil
}

// httpClient polls the processes: a fresh connection per request, as a
// wait-for-port script would make.
var httpClient = &http.Client{
	Timeout:   time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// httpGet returns the body of a 200 answer to GET url.
func httpGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return "", err
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	if res.StatusCode != 200 {
		return string(b), errors.New(res.Status)
	}
	return string(b), nil
}
