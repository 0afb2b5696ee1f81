package rackbench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/singlehost/convox/bench/internal/procfs"
)

// BenchLabel is the label key a benchmark puts, with the rack's name as
// value, on the containers it runs beside the rack (a baseline's), so
// that CleanupDocker removes them too.
const BenchLabel = "convox.bench"

// Docker runs the docker CLI and returns its standard output; the error
// carries its standard error.
func Docker(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// dockerTransport reaches the Docker engine's API on its unix socket: a
// benchmark that polls Docker talks to it directly, since a docker CLI
// process every few milliseconds would load the machine being measured.
var dockerTransport = &http.Transport{
	DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		sock := "/var/run/docker.sock"
		if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
			sock = h
		}
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	},
}

// dockerClient is for short calls; dockerStream, for streams, has no
// timeout.
var (
	dockerClient = &http.Client{Timeout: 5 * time.Second, Transport: dockerTransport}
	dockerStream = &http.Client{Transport: dockerTransport}
)

// DockerAPI sends GET path to the Docker engine's API and decodes the
// JSON answer into v.
func DockerAPI(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://docker"+path, nil)
	if err != nil {
		return err
	}
	res, err := dockerClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("docker API %s: %s", path, res.Status)
	}
	return json.NewDecoder(res.Body).Decode(v)
}

// DockerStream sends GET path to the Docker engine's API with no timeout,
// for a stream (events) that lasts until ctx ends; the caller checks the
// status and closes the body.
func DockerStream(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://docker"+path, nil)
	if err != nil {
		return nil, err
	}
	return dockerStream.Do(req)
}

// Containers lists the ids of the running containers of the rack's app
// and service.
func (r *Rack) Containers(ctx context.Context, app, service string) ([]string, error) {
	out, err := Docker(ctx, "ps", "-q", "--filter", "label=convox.rack="+r.Name,
		"--filter", "label=convox.app="+app, "--filter", "label=convox.service="+service)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// OneProcess is the one running process of the app's service, and the
// loopback address its port (like "5000/tcp") is published on: the address
// the router or a balancer forwards to, and the one a baseline uses.
func (r *Rack) OneProcess(ctx context.Context, app, service, port string) (id, addr string, err error) {
	ids, err := r.Containers(ctx, app, service)
	if err != nil {
		return "", "", err
	}
	if len(ids) != 1 {
		return "", "", fmt.Errorf("%d %s processes run, want 1", len(ids), service)
	}
	p, err := PublishedPort(ctx, ids[0], port)
	if err != nil {
		return "", "", err
	}
	return ids[0], "127.0.0.1:" + p, nil
}

// PublishedPort is the host port on 127.0.0.1 that Docker publishes the
// container's port (like "5000/tcp") on, as `docker port` gives it.
func PublishedPort(ctx context.Context, id, port string) (string, error) {
	out, err := Docker(ctx, "port", id, port)
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "127.0.0.1:"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("process %s publishes %s on no 127.0.0.1 port: %q", id, port, out)
}

// BackendPids are the processes of container id (its init and their
// children) and the docker-proxy that publishes hostPort, if any: what
// serves a published port, whose CPU time is the backend's.
func BackendPids(ctx context.Context, id, hostPort string) []int {
	var pids []int
	if out, err := Docker(ctx, "inspect", "-f", "{{.State.Pid}}", id); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(out)); err == nil && pid > 0 {
			pids = append(pids, pid)
			pids = append(pids, procfs.Children(pid)...)
		}
	}
	return append(pids, procfs.DockerProxies(hostPort)...)
}

// CleanupDocker removes everything the run of rack name left in Docker:
// the rack's containers, networks, volumes and images, the containers
// labelled BenchLabel=name and the images of repos (a baseline's). It
// runs after an interrupt too, so it has a context of its own.
func CleanupDocker(name string, repos ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	list := func(args ...string) []string {
		out, err := Docker(ctx, args...)
		if err != nil {
			Logf("clean-up: %v", err)
		}
		return strings.Fields(out)
	}
	remove := func(what []string, args ...string) {
		if len(what) == 0 {
			return
		}
		if _, err := Docker(ctx, append(args, what...)...); err != nil {
			Logf("clean-up: %v", err)
		}
	}
	label := "label=convox.rack=" + name
	remove(list("ps", "-aq", "--filter", label), "rm", "-f", "-v")
	remove(list("ps", "-aq", "--filter", "label="+BenchLabel+"="+name), "rm", "-f", "-v")
	remove(list("network", "ls", "-q", "--filter", label), "network", "rm")
	remove(list("volume", "ls", "-q", "--filter", label), "volume", "rm")
	// By name, not id: an id shared by several names would need forcing.
	remove(list("images", "--filter", "reference="+name+"/*", "--format", "{{.Repository}}:{{.Tag}}"), "rmi")
	for _, repo := range repos {
		remove(list("images", repo, "--format", "{{.Repository}}:{{.Tag}}"), "rmi")
	}
}
