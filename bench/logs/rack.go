package main

// The rack under test, started as bench/deploy starts it (this file adapts
// its rack.go: a package under bench may import nothing of ours).

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// rack is the `convox rack start` process the benchmark measures.
type rack struct {
	name, dir, binary string
	listen            string
	cmd               *exec.Cmd
	stderr            *syncBuffer
	done              chan struct{}
}

func (r *rack) home() string   { return filepath.Join(r.dir, "home") }
func (r *rack) config() string { return filepath.Join(r.dir, "convox-config") }

// pid is the daemon's process id (`convox rack start` is the daemon itself).
func (r *rack) pid() int { return r.cmd.Process.Pid }

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

// apiClient talks to the rack's API (loopback, self-signed certificate).
var apiClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
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

	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			return fmt.Errorf("rack exited: %s\n%s", r.cmd.ProcessState, r.stderr)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if _, err := os.Stat(filepath.Join(r.home(), "password")); err == nil {
			if err := r.api(ctx, "GET", "/system", nil); err == nil {
				return nil
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

// api calls the rack's API directly, as the CLI does, decoding a JSON
// answer into v when v is not nil.
func (r *rack) api(ctx context.Context, method, path string, v any) error {
	pw, err := os.ReadFile(filepath.Join(r.home(), "password"))
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+r.listen+path, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth("convox", strings.TrimSpace(string(pw)))
	req.Header.Set("Accept", "application/json")
	res, err := apiClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, bytes.TrimSpace(body))
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(body, v)
}

// waitRunning polls the app until its status is running.
func (r *rack) waitRunning(ctx context.Context, app string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last string
	for {
		var a struct{ Status string }
		err := r.api(ctx, "GET", "/apps/"+app, &a)
		if err == nil && a.Status == "running" {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = "status " + a.Status
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("app %s is not running after %s (%s)", app, limit, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// convox runs a CLI command against the rack and returns its output.
func (r *rack) convox(ctx context.Context, args ...string) (string, error) {
	cmd := r.command(ctx, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// command is a CLI command against the rack, not started.
func (r *rack) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, r.binary, args...)
	cmd.Env = r.env()
	cmd.Dir = r.dir
	return cmd
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
			return "", errors.New("run it from the convox repository (go run ./bench/logs)")
		}
		dir = parent
	}
}

// manifest is the chatty app's convox.yml: one process, no port (so it is
// ready once it has kept running for a second, with no health check to
// pass while it prints), stopped quickly when replaced.
const manifest = `services:
  ` + service + `:
    build: .
    command: server
    scale:
      count: 1
    termination:
      grace: 1
`

// sampleApp writes the sample app's Dockerfile and .dockerignore, the
// manifest above and the sample server (built from testdata/apps/server)
// into tmp/src.
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
	if err := os.WriteFile(filepath.Join(dir, "convox.yml"), []byte(manifest), 0o644); err != nil {
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
	if dockerQuiet(ctx, "image", "inspect", baseImage) == nil {
		return nil
	}
	logf("%s is missing: running testdata/images/build debian", baseImage)
	if err := runCmd(ctx, root, nil, filepath.Join(root, "testdata", "images", "build"), "debian"); err != nil {
		return fmt.Errorf("building %s: %w", baseImage, err)
	}
	return nil
}
