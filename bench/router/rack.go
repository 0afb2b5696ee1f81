package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// rack is the `convox rack start` process the benchmark deploys to and
// sends requests through.
type rack struct {
	name, dir, binary string
	listen            string // API
	routerHTTP        string // router, plain HTTP
	routerHTTPS       string // router, HTTPS
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
			"CONVOX_ROUTER_HTTP", "CONVOX_ROUTER_HTTPS", "CONVOX_DOMAIN":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "CONVOX_HOME="+r.home(), "CONVOX_CONFIG="+r.config())
}

// start starts the daemon on free loopback ports (API and both router
// listeners) and waits until its API answers.
func (r *rack) start(ctx context.Context) error {
	addrs := make([]string, 3)
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			return err
		}
		addrs[i] = a
	}
	r.listen, r.routerHTTP, r.routerHTTPS = addrs[0], addrs[1], addrs[2]
	// Not CommandContext: the daemon is stopped with SIGTERM by stop, so
	// that it exits cleanly even when the benchmark is interrupted.
	r.cmd = exec.Command(r.binary, "rack", "start", "--listen", r.listen, "--name", r.name,
		"--domain", domain, "--router-http", r.routerHTTP, "--router-https", r.routerHTTPS)
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

// pid is the daemon's process id, whose CPU time is the router's (the
// router runs inside the daemon).
func (r *rack) pid() int { return r.cmd.Process.Pid }

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

// caPool is the rack's CA, to check the router's certificate before the
// benchmark relies on it: what `convox rack ca` prints where the CLI has
// that command, else the public certificate in the rack's home (ca.crt).
func (r *rack) caPool(ctx context.Context) (*x509.CertPool, error) {
	pemData, err := r.convox(ctx, "rack", "ca")
	if err != nil {
		data, ferr := os.ReadFile(filepath.Join(r.home(), "ca.crt"))
		if ferr != nil {
			return nil, fmt.Errorf("the rack's CA: convox rack ca: %v (%s); %w", err, strings.TrimSpace(pemData), ferr)
		}
		pemData = string(data)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(pemData)) {
		return nil, fmt.Errorf("the rack's CA is no PEM certificate:\n%s", pemData)
	}
	return pool, nil
}

// backendAddr is the one web process's container and its published
// loopback address, as `docker port` gives it: the address the router
// proxies to, and the one nginx and the direct runs use.
func backendAddr(ctx context.Context, rackName string) (id, addr string, err error) {
	out, err := dockerOut(ctx, "ps", "-q", "--filter", "label=convox.rack="+rackName,
		"--filter", "label=convox.app="+app, "--filter", "label=convox.service=web")
	if err != nil {
		return "", "", err
	}
	ids := strings.Fields(out)
	if len(ids) != 1 {
		return "", "", fmt.Errorf("%d web processes run, want 1", len(ids))
	}
	out, err = dockerOut(ctx, "port", ids[0], "5000/tcp")
	if err != nil {
		return "", "", err
	}
	for _, l := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "127.0.0.1:"); ok {
			return ids[0], "127.0.0.1:" + p, nil
		}
	}
	return "", "", fmt.Errorf("process %s publishes no 127.0.0.1 port: %q", ids[0], out)
}

// probe sends GET / to addr with the Host header host (over TLS with
// the SNI host when pool or insecure says so) and returns the body of a
// 200 answer.
func probe(ctx context.Context, addr, host string, tlsConf *tls.Config) (string, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:   tlsConf,
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		Timeout:       2 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, "GET", scheme+"://"+host+"/", nil)
	if err != nil {
		return "", err
	}
	res, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	if res.StatusCode != 200 {
		return string(b), fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// waitProbe retries probe until it answers 200 or the timeout passes.
func waitProbe(ctx context.Context, timeout time.Duration, addr, host string, tlsConf *tls.Config) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		body, err := probe(ctx, addr, host, tlsConf)
		if err == nil {
			return body, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("%s (Host %s) did not answer 200 within %s: %w", addr, host, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dockerOut runs the docker CLI and returns its standard output.
func dockerOut(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// cleanupDocker removes everything the rack left in Docker: its
// containers, networks, volumes and images. It runs after an interrupt
// too, so it has a context of its own.
func cleanupDocker(rackName string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	list := func(args ...string) []string {
		out, err := dockerOut(ctx, args...)
		if err != nil {
			logf("clean-up: %v", err)
		}
		return strings.Fields(out)
	}
	remove := func(what []string, args ...string) {
		if len(what) == 0 {
			return
		}
		if _, err := dockerOut(ctx, append(args, what...)...); err != nil {
			logf("clean-up: %v", err)
		}
	}
	label := "label=convox.rack=" + rackName
	remove(list("ps", "-aq", "--filter", label), "rm", "-f", "-v")
	remove(list("network", "ls", "-q", "--filter", label), "network", "rm")
	remove(list("volume", "ls", "-q", "--filter", label), "volume", "rm")
	// By name, not id: an id shared by several names would need forcing.
	remove(list("images", "--filter", "reference="+rackName+"/*", "--format", "{{.Repository}}:{{.Tag}}"), "rmi")
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
			return "", errors.New("run it from the convox repository (bash bench/router/run.sh)")
		}
		dir = parent
	}
}

// manifest is testdata/apps/web's convox.yml with one process (so that
// the router, nginx and the direct runs all reach the same one), no
// HTTP-to-HTTPS redirect (so that plain HTTP is proxied, not answered with
// 308), and cpu set to the whole machine: the default request of 250
// millicores becomes a Docker CPU quota of a quarter of a CPU, which would
// make the throttled backend, not the proxies, the subject of the
// benchmark (and its 100 ms CFS periods the p99).
func manifest(cpus int) string {
	return fmt.Sprintf(`environment:
  - GREETING=hello
services:
  web:
    build: .
    port: 5000
    health: /health
    scale:
      count: 1
      cpu: %d
    tls:
      redirect: false
    termination:
      grace: 5
`, 1000*cpus)
}

// sampleApp copies testdata/apps/web into tmp/src with the benchmark's
// manifest and builds the sample server into it, as the end-to-end tests
// do.
func sampleApp(ctx context.Context, root, tmp string) (string, error) {
	dir := filepath.Join(tmp, "src")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, f := range []string{"Dockerfile", ".dockerignore"} {
		data, err := os.ReadFile(filepath.Join(root, "testdata", "apps", "web", f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "convox.yml"), []byte(manifest(runtime.NumCPU())), 0o644); err != nil {
		return "", err
	}
	err := runCmd(ctx, root, []string{"CGO_ENABLED=0"}, "go", "build", "-o", filepath.Join(dir, "server"), "./testdata/apps/server")
	if err != nil {
		return "", fmt.Errorf("building the sample server: %w", err)
	}
	return dir, nil
}

// ensureBaseImage builds the sample's base image when the host lacks it.
func ensureBaseImage(ctx context.Context, root string) error {
	if exec.CommandContext(ctx, "docker", "image", "inspect", baseImage).Run() == nil {
		return nil
	}
	logf("%s is missing: running testdata/images/build debian", baseImage)
	if err := runCmd(ctx, root, nil, filepath.Join(root, "testdata", "images", "build"), "debian"); err != nil {
		return fmt.Errorf("building %s: %w", baseImage, err)
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
