// Package e2e tests the real binary: it builds convox, starts `convox rack
// start` on a temporary home and a free port against the real Docker engine,
// and runs CLI commands as a user would, checking their exact output.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
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
	"testing"
	"time"
)

// binary is the convox binary built once for the whole run.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode (they need the Docker engine and the test images); run `make test`")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "convox-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "convox")
	build := exec.Command("go", "build", "-o", binary, "..")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building convox:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// baseImage is the Debian image testdata/images/build makes.
const baseImage = "convoxtest/debian:bookworm"

// rack is one `convox rack start` process.
type rack struct {
	t      *testing.T
	name   string
	home   string
	config string // the official CLI's settings directory
	listen string
	// routerHTTP and routerHTTPS are the router's addresses.
	routerHTTP, routerHTTPS string
	cmd                     *exec.Cmd
	stderr                  *syncBuffer
	done                    chan struct{}
	err                     error
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

// newRack prepares a rack with a fresh home, name and port; it does not start it.
func newRack(t *testing.T) *rack {
	t.Helper()
	dir := t.TempDir()
	name := fmt.Sprintf("e2e%06d", rand.IntN(1000000))
	// Registered first, so it runs last: after the daemon has stopped,
	// everything it left running goes, or a long run of tests exhausts
	// Docker's network address pools.
	t.Cleanup(func() { purgeRack(name) })
	return &rack{
		t:           t,
		name:        name,
		home:        filepath.Join(dir, "home"),
		config:      filepath.Join(dir, "convox-config"),
		listen:      freeAddr(t),
		routerHTTP:  freeAddr(t),
		routerHTTPS: freeAddr(t),
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// env is the environment of every process the rack's tests run: the rack's
// own home and settings, never the developer's.
func (r *rack) env(extra ...string) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "RACK_URL", "CONVOX_HOME", "CONVOX_CONFIG", "CONVOX_LISTEN", "CONVOX_RACK_NAME":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "CONVOX_HOME="+r.home, "CONVOX_CONFIG="+r.config)
	return append(env, extra...)
}

// spawn starts the daemon with extra arguments and environment and returns at once.
func (r *rack) spawn(args []string, env ...string) {
	r.t.Helper()
	r.cmd = exec.Command(binary, append([]string{"rack", "start", "--listen", r.listen, "--name", r.name,
		"--router-http", r.routerHTTP, "--router-https", r.routerHTTPS}, args...)...)
	r.cmd.Env = r.env(env...)
	r.stderr = &syncBuffer{}
	r.cmd.Stdout, r.cmd.Stderr = r.stderr, r.stderr
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
}

// start starts the daemon and waits until its API answers.
func (r *rack) start() {
	r.t.Helper()
	r.spawn(nil)
	r.t.Cleanup(func() { r.stop() })
	r.waitUp()
}

// waitUp waits until a spawned daemon's API answers.
func (r *rack) waitUp() {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			r.t.Fatalf("rack exited: %v\n%s", r.err, r.stderr)
		default:
		}
		if res, err := r.request("GET", "/system", r.password()); err == nil && res.StatusCode == 200 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatalf("rack did not answer within 20s:\n%s", r.stderr)
}

// stop sends SIGTERM and waits for a clean exit.
func (r *rack) stop() {
	r.t.Helper()
	if r.cmd == nil || r.cmd.ProcessState != nil {
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
		_ = r.cmd.Process.Kill()
		<-r.done
		r.t.Errorf("rack did not stop within 15s of SIGTERM:\n%s", r.stderr)
	}
}

// wait waits for a daemon that is expected to exit by itself and returns its
// exit code and output.
func (r *rack) wait() (int, string) {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		_ = r.cmd.Process.Kill()
		r.t.Fatalf("rack did not exit within 20s:\n%s", r.stderr)
	}
	return r.cmd.ProcessState.ExitCode(), r.stderr.String()
}

func (r *rack) password() string {
	data, _ := os.ReadFile(filepath.Join(r.home, "password"))
	return strings.TrimSpace(string(data))
}

// request sends one raw API request with basic auth.
func (r *rack) request(method, path, password string) (*http.Response, error) {
	c := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	req, err := http.NewRequest(method, "https://"+r.listen+path, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth("convox", password)
	return c.Do(req)
}

// result is what a CLI command did.
type result struct {
	stdout, stderr string
	code           int
}

// convox runs the CLI against this rack in dir (the test's temp dir when empty).
func (r *rack) convox(args ...string) result {
	r.t.Helper()
	return r.convoxIn("", nil, args...)
}

func (r *rack) convoxIn(dir string, env []string, args ...string) result {
	r.t.Helper()
	return runConvox(r.t, dir, r.env(env...), "", args...)
}

func runConvox(t *testing.T, dir string, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	cmd.Dir = dir
	if dir == "" {
		cmd.Dir = t.TempDir()
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("convox %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// expect checks a command's exact output and exit code.
func (res result) expect(t *testing.T, stdout, stderr string, code int) {
	t.Helper()
	if res.stdout != stdout || res.stderr != stderr || res.code != code {
		t.Errorf("got stdout %q, stderr %q, exit %d\nwant stdout %q, stderr %q, exit %d",
			res.stdout, res.stderr, res.code, stdout, stderr, code)
	}
}

// docker runs the docker CLI and returns its trimmed output.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func requireImage(t *testing.T, image string) {
	t.Helper()
	if err := exec.Command("docker", "image", "inspect", image).Run(); err != nil {
		t.Fatalf("test image %s is missing: run testdata/images/build (make test does)", image)
	}
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// purgeRack removes every container, network, volume and image of rack name.
func purgeRack(name string) {
	list := func(args ...string) []string {
		out, _ := exec.Command("docker", args...).Output()
		return strings.Fields(string(out))
	}
	label := "label=convox.rack=" + name
	if ids := list("ps", "-aq", "--filter", label); len(ids) > 0 {
		_ = exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
	if ids := list("network", "ls", "-q", "--filter", label); len(ids) > 0 {
		_ = exec.Command("docker", append([]string{"network", "rm"}, ids...)...).Run()
	}
	if ids := list("volume", "ls", "-q", "--filter", label); len(ids) > 0 {
		_ = exec.Command("docker", append([]string{"volume", "rm", "-f"}, ids...)...).Run()
	}
	if ids := list("images", "-q", "--filter", "reference="+name+"/*"); len(ids) > 0 {
		_ = exec.Command("docker", append([]string{"rmi", "-f"}, ids...)...).Run()
	}
}
