package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// baseImage is what the sample app's Dockerfile builds FROM; it is made
// locally by testdata/images/build (no registry is reachable).
const baseImage = "convoxtest/debian:bookworm"

// app is the name of the benchmark's app on its own rack.
const app = "bench"

// rack is the `convox rack start` process whose balancer is measured.
type rack struct {
	name, dir, binary string
	listen            string // API
	routerHTTP        string
	routerHTTPS       string
	balancer          string // the app's balancer, 127.0.0.1:port
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
			"CONVOX_ROUTER_HTTP", "CONVOX_ROUTER_HTTPS", "CONVOX_DOMAIN", "CONVOX_BALANCER_BIND":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "CONVOX_HOME="+r.home(), "CONVOX_CONFIG="+r.config())
}

// rackSuite builds convox and the sample app, starts the rack, deploys the
// app with one process behind a balancer, and returns the suite with the
// process's published echo port (the balancer's target) and the balancer.
func rackSuite(ctx context.Context, root string, r *rack, connDuration time.Duration, portWait bool) (*suite, string, *target, error) {
	r.binary = filepath.Join(r.dir, "convox")
	if err := runCmd(ctx, root, nil, "go", "build", "-o", r.binary, "."); err != nil {
		return nil, "", nil, fmt.Errorf("building convox: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, "", nil, err
	}
	r.balancer = "127.0.0.1:" + strconv.Itoa(port)
	src, err := sampleApp(ctx, root, r.dir, port)
	if err != nil {
		return nil, "", nil, err
	}
	if err := ensureBaseImage(ctx, root); err != nil {
		return nil, "", nil, err
	}
	logf("rack suite: starting rack %s", r.name)
	if err := r.start(ctx); err != nil {
		return nil, "", nil, err
	}
	if out, err := r.convox(ctx, "apps", "create", app); err != nil {
		return nil, "", nil, fmt.Errorf("convox apps create: %w\n%s", err, out)
	}
	logf("rack suite: deploying the sample app (one process, balancer on %s)", r.balancer)
	dctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	out, err := r.convox(dctx, "deploy", src, "-a", app, "--wait")
	cancel()
	if err != nil {
		return nil, "", nil, fmt.Errorf("convox deploy: %w\n%s", err, out)
	}
	id, backend, err := echoAddr(ctx, r.name)
	if err != nil {
		return nil, "", nil, err
	}
	bpids := backendPids(ctx, id, backend)
	logf("rack suite: the process's echo is published at %s; its processes (container, docker-proxy): %v", backend, bpids)
	proxy := "no docker-proxy: Docker forwards the published port in the kernel"
	if len(bpids) > 1 && hasDockerProxy(bpids) {
		proxy = "through Docker's `docker-proxy` for the published loopback port, in every target's path"
	}
	s := &suite{
		name:         "rack",
		title:        "Through a real rack: the sample app in Docker, its published port",
		backend:      "the sample app's echo (`ECHO_PORT=7000`) in its container, one process, " + proxy,
		backendPids:  func() []int { return bpids },
		connDuration: connDuration,
	}
	// See waitPortBudget.
	s.note = fmt.Sprintf("Connections/s through Docker: whichever way a client comes in, `docker-proxy` connects to the container over the bridge and, as the side that sends the first FIN, keeps each of those connections in TIME_WAIT for 60 s; "+
		"the kernel reuses such ports early only for loopback connections (`net.ipv4.tcp_tw_reuse=2`). "+
		"As the %d ports of the ephemeral range fill up, each connect scans longer for a free port and docker-proxy burns the CPUs: "+
		"a sustained rate above about %d new connections/s to one process cannot last, and a run would pay for the ones before it. ",
		ephemeralPorts(), ephemeralPorts()/60)
	if portWait {
		s.beforeConns = func(ctx context.Context) error { return waitPortBudget(ctx, 7000) }
		s.note += fmt.Sprintf("So these runs last %s each and start only once fewer than %d connections to the container's port are in TIME_WAIT: they measure bursts from a clean state.",
			connDuration, maxTimeWait)
	} else {
		s.note += fmt.Sprintf("These runs (-short) last %s each and **did not wait** for the TIME_WAITs to clear: their figures are pessimistic, the more so for later targets.", connDuration)
	}
	bal := &target{name: "convox rack balancer", kind: "balancer", addr: r.balancer, pids: func() []int { return []int{r.cmd.Process.Pid} }}
	return s, backend, bal, nil
}

// manifest is the sample app with one process serving the TCP echo on 7000
// behind balancer echo on port, and cpu set to the whole machine: the
// default request of 250 millicores becomes a Docker CPU quota of a quarter
// of a CPU, which would make the throttled backend the subject of the
// benchmark.
func manifest(port, cpus int) string {
	return fmt.Sprintf(`services:
  web:
    build: .
    port: 5000
    health: /health
    environment:
      - ECHO_PORT=7000
    scale:
      count: 1
      cpu: %d
    termination:
      grace: 5
balancers:
  echo:
    service: web
    ports:
      %d: 7000
`, 1000*cpus, port)
}

// sampleApp copies testdata/apps/web into tmp/src with the benchmark's
// manifest and builds the sample server into it, as the end-to-end tests
// do.
func sampleApp(ctx context.Context, root, tmp string, port int) (string, error) {
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
	if err := os.WriteFile(filepath.Join(dir, "convox.yml"), []byte(manifest(port, runtime.NumCPU())), 0o644); err != nil {
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

// start starts the daemon on free loopback ports, its balancers on
// loopback only, and waits until its API answers.
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
		"--router-http", r.routerHTTP, "--router-https", r.routerHTTPS, "--balancer-bind", "127.0.0.1")
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

// echoAddr is the one web process's container and the loopback address its
// echo port is published on: the balancer's target.
func echoAddr(ctx context.Context, rackName string) (id, addr string, err error) {
	out, err := dockerOut(ctx, "ps", "-q", "--filter", "label=convox.rack="+rackName,
		"--filter", "label=convox.app="+app, "--filter", "label=convox.service=web")
	if err != nil {
		return "", "", err
	}
	ids := strings.Fields(out)
	if len(ids) != 1 {
		return "", "", fmt.Errorf("%d web processes run, want 1", len(ids))
	}
	out, err = dockerOut(ctx, "port", ids[0], "7000/tcp")
	if err != nil {
		return "", "", err
	}
	for _, l := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "127.0.0.1:"); ok {
			return ids[0], "127.0.0.1:" + p, nil
		}
	}
	return "", "", fmt.Errorf("process %s publishes 7000 on no 127.0.0.1 port: %q", ids[0], out)
}

// backendPids are the container's processes and the docker-proxy of its
// published port, if any.
func backendPids(ctx context.Context, id, addr string) []int {
	_, hostPort, _ := strings.Cut(addr, ":")
	var pids []int
	if out, err := dockerOut(ctx, "inspect", "-f", "{{.State.Pid}}", id); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(out)); err == nil && pid > 0 {
			pids = append(pids, pid)
			pids = append(pids, children(pid)...)
		}
	}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		data, err := os.ReadFile(c)
		if err != nil {
			continue
		}
		args := strings.Split(string(data), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "docker-proxy" {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-host-port" && args[i+1] == hostPort {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(c)))
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func hasDockerProxy(pids []int) bool {
	for _, pid := range pids {
		if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(data)) == "docker-proxy" {
			return true
		}
	}
	return false
}

// children lists the direct child processes of pid.
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
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
			return "", errors.New("run it from the convox repository (bash bench/balancer/run.sh)")
		}
		dir = parent
	}
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

// maxTimeWait is how many connections to the container's port may be in
// TIME_WAIT before a connections/s run through the rack starts.
const maxTimeWait = 4000

// waitPortBudget waits (at most 75 s) until fewer than maxTimeWait
// connections to port are in TIME_WAIT: docker-proxy's connections to the
// container are not on loopback, so their ports are not reused before the
// 60 s of TIME_WAIT pass, and a run that found the ephemeral range nearly
// spent would measure docker-proxy's search for a free port.
func waitPortBudget(ctx context.Context, port int) error {
	deadline := time.Now().Add(75 * time.Second)
	n := timeWaits(port)
	if n < maxTimeWait {
		return nil
	}
	logf("rack suite: %d connections to the container's port %d in TIME_WAIT; waiting until fewer than %d", n, port, maxTimeWait)
	for n >= maxTimeWait && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		n = timeWaits(port)
	}
	return nil
}

// ephemeralPorts is the size of the kernel's ephemeral port range.
func ephemeralPorts() int {
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			lo, err1 := strconv.Atoi(f[0])
			hi, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && hi >= lo {
				return hi - lo + 1
			}
		}
	}
	return 28232
}
