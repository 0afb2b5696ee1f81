package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// rack is the `convox rack start` process the benchmark deploys to.
type rack struct {
	name, dir, binary string
	listen            string
	poll              bool // poll the new processes during deploys
	cmd               *exec.Cmd
	stderr            *syncBuffer
	done              chan struct{}
}

func (r *rack) home() string   { return filepath.Join(r.dir, "home") }
func (r *rack) config() string { return filepath.Join(r.dir, "convox-config") }

// env is the environment of the rack and of every CLI command: this run's
// home and settings directory, never the user's.
func (r *rack) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "RACK_URL", "CONVOX_HOME", "CONVOX_CONFIG", "CONVOX_LISTEN", "CONVOX_RACK_NAME",
			"CONVOX_ROUTER_HTTP", "CONVOX_ROUTER_HTTPS":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "CONVOX_HOME="+r.home(), "CONVOX_CONFIG="+r.config())
}

// start starts the daemon on free ports and waits until its API answers.
func (r *rack) start(ctx context.Context) error {
	addrs := make([]string, 3)
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			return err
		}
		addrs[i] = a
	}
	r.listen = addrs[0]
	// Not CommandContext: the daemon is stopped with SIGTERM by stop, so
	// that it exits cleanly even when the benchmark is interrupted.
	r.cmd = exec.Command(r.binary, "rack", "start", "--listen", r.listen, "--name", r.name,
		"--router-http", addrs[1], "--router-https", addrs[2])
	r.cmd.Env = r.env()
	r.stderr = &syncBuffer{}
	r.cmd.Stdout, r.cmd.Stderr = r.stderr, r.stderr
	// Its own process group: Ctrl-C reaches the benchmark, which stops
	// the rack itself.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.done = make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(r.done) }()

	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			return fmt.Errorf("rack exited: %s\n%s", r.cmd.ProcessState, r.stderr)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if pw, err := os.ReadFile(filepath.Join(r.home(), "password")); err == nil {
			req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+r.listen+"/system", nil)
			req.SetBasicAuth("convox", strings.TrimSpace(string(pw)))
			if res, err := client.Do(req); err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					return nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("rack did not answer within 20s:\n%s", r.stderr)
}

// stop sends SIGTERM and waits for the daemon to exit (killing it after 15s).
func (r *rack) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		logf("rack did not stop within 15s of SIGTERM; killing it")
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// convox runs a CLI command against the rack and returns its output.
func (r *rack) convox(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, r.binary, args...)
	cmd.Env = r.env()
	cmd.Dir = r.dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

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
// they arrive; once the release id is printed, the new processes are polled
// concurrently to see when they serve.
func (r *rack) deploy(ctx context.Context, src string, verbose bool) (*deployRun, error) {
	cmd := exec.CommandContext(ctx, r.binary, "deploy", src, "-a", app)
	cmd.Env = r.env()
	cmd.Dir = r.dir
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	d := &deployRun{serving: -1, oldGone: -1}
	pctx, cancelPoll := context.WithCancel(ctx)
	defer cancelPoll()
	var poll sync.WaitGroup
	polling := false

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
		if m := releaseLine.FindStringSubmatch(l.text); m != nil && !polling && r.poll {
			polling = true
			poll.Add(1)
			go func() {
				defer poll.Done()
				d.serving, d.oldGone = pollServing(pctx, r.name, m[1], start)
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
	poll.Wait()
	if r.poll && (d.serving < 0 || d.oldGone < 0) {
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
func confirmServing(ctx context.Context, rackName, release string) error {
	out, err := dockerOut(ctx, "ps", "-q", "--filter", "label=convox.rack="+rackName,
		"--filter", "label=convox.app="+app, "--filter", "label=convox.service=web")
	if err != nil {
		return err
	}
	ids := strings.Fields(out)
	if len(ids) != 2 {
		return fmt.Errorf("%d web processes run after the deploy of %s, want 2", len(ids), release)
	}
	for _, id := range ids {
		out, err := dockerOut(ctx, "port", id, "5000/tcp")
		if err != nil {
			return err
		}
		var port string
		for _, l := range strings.Split(out, "\n") {
			if p, ok := strings.CutPrefix(strings.TrimSpace(l), "127.0.0.1:"); ok {
				port = p
			}
		}
		if port == "" {
			return fmt.Errorf("process %s publishes no 127.0.0.1 port: %q", id, out)
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

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runCmd runs a command in dir with extra environment, its output shown
// only when it fails.
func runCmd(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
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
