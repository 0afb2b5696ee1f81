// Package rackbench is the harness the benchmarks under bench/ share: it
// runs a throwaway `convox rack start` as a user would (the built binary,
// on a home of its own and free loopback ports), drives it with the CLI and
// its API, deploys the sample app, finds the app's processes in Docker and
// removes everything the run left there. Every benchmark measures the
// product through this one path, so their figures are comparable and a fix
// to the harness reaches them all.
package rackbench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
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

// Rack is a `convox rack start` process and the directory it lives in.
// Set the exported fields before Start; Start fills in the addresses.
type Rack struct {
	// Name is the rack's name, random so that the Docker objects of two
	// runs (labelled convox.rack=<Name>) are told apart.
	Name string
	// Dir holds the rack's home, the CLI's settings and the binary.
	Dir    string
	Binary string
	// Args are extra arguments of `convox rack start` (--domain, …).
	Args []string
	// PickAddr picks the loopback addresses of the API and the router's
	// listeners; nil is FreeAddr.
	PickAddr func() (string, error)

	Listen, RouterHTTP, RouterHTTPS string

	cmd    *exec.Cmd
	stderr *SyncBuffer
	done   chan struct{}
}

// New is a rack named benchNNNNNN in dir, with its binary at dir/convox;
// nothing is built or started yet.
func New(dir string) *Rack {
	return &Rack{
		Name:   fmt.Sprintf("bench%06d", rand.IntN(1000000)),
		Dir:    dir,
		Binary: filepath.Join(dir, "convox"),
	}
}

// Home is the rack's home directory (its store, password, CA, logs).
func (r *Rack) Home() string { return filepath.Join(r.Dir, "home") }

func (r *Rack) config() string { return filepath.Join(r.Dir, "convox-config") }

// PID is the daemon's process id: `convox rack start` is the daemon
// itself, so its CPU time is the rack's (router and balancer included).
func (r *Rack) PID() int { return r.cmd.Process.Pid }

// env is the environment of the rack and of every CLI command: this run's
// home and settings directory, never the user's.
func (r *Rack) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "RACK_URL", "CONVOX_HOME", "CONVOX_CONFIG", "CONVOX_LISTEN", "CONVOX_RACK_NAME",
			"CONVOX_ROUTER_HTTP", "CONVOX_ROUTER_HTTPS", "CONVOX_DOMAIN", "CONVOX_BALANCER_BIND":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "CONVOX_HOME="+r.Home(), "CONVOX_CONFIG="+r.config())
}

// Build builds the convox binary from the module at root.
func (r *Rack) Build(ctx context.Context, root string) error {
	if err := runCmd(ctx, root, nil, "go", "build", "-o", r.Binary, "."); err != nil {
		return fmt.Errorf("building convox: %w", err)
	}
	return nil
}

// Start starts the daemon on free loopback ports (API and both router
// listeners) and waits until its API answers.
func (r *Rack) Start(ctx context.Context) error {
	free := r.PickAddr
	if free == nil {
		free = FreeAddr
	}
	addrs := make([]string, 3)
	for i := range addrs {
		a, err := free()
		if err != nil {
			return err
		}
		addrs[i] = a
	}
	r.Listen, r.RouterHTTP, r.RouterHTTPS = addrs[0], addrs[1], addrs[2]
	args := append([]string{"rack", "start", "--listen", r.Listen, "--name", r.Name,
		"--router-http", r.RouterHTTP, "--router-https", r.RouterHTTPS}, r.Args...)
	// Not CommandContext: the daemon is stopped with SIGTERM by Stop, so
	// that it exits cleanly even when the benchmark is interrupted.
	r.cmd = exec.Command(r.Binary, args...)
	r.cmd.Env = r.env()
	r.stderr = &SyncBuffer{}
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
		if _, err := os.Stat(filepath.Join(r.Home(), "password")); err == nil {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := r.API(pctx, "GET", "/system", nil)
			cancel()
			if err == nil {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("rack did not answer within 20s:\n%s", r.stderr)
}

// Stop sends SIGTERM and waits for the daemon to exit (killing it after
// 15s). It does nothing on a rack that never started or has stopped.
func (r *Rack) Stop() {
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
		Logf("rack did not stop within 15s of SIGTERM; killing it")
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// Command is a CLI command against the rack, not started.
func (r *Rack) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, r.Binary, args...)
	cmd.Env = r.env()
	cmd.Dir = r.Dir
	return cmd
}

// Convox runs a CLI command against the rack and returns its output.
func (r *Rack) Convox(ctx context.Context, args ...string) (string, error) {
	out, err := r.Command(ctx, args...).CombinedOutput()
	return string(out), err
}

// apiClient talks to the rack's API (loopback, self-signed certificate).
var apiClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
}

// API calls the rack's API directly, as the CLI does, without the CLI's
// own cost; it decodes a JSON answer into v when v is not nil.
func (r *Rack) API(ctx context.Context, method, path string, v any) error {
	pw, err := os.ReadFile(filepath.Join(r.Home(), "password"))
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+r.Listen+path, nil)
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

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// SyncBuffer collects a child process's output while the benchmark may
// read it (to report why the child failed).
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Logf reports progress on stderr; a benchmark's report goes to stdout.
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
