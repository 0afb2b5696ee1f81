package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/singlehost/convox/bench/internal/rackbench"
)

// pollEvery is how often the processes are polled, for ours and for the
// baseline alike.
const pollEvery = 25 * time.Millisecond

// plain is the baseline: the same replace done with the docker CLI only.
type plain struct {
	dir   string
	label string   // key=value on every container it runs, for the clean-up
	prev  []string // the containers serving now
}

// plainRun is one timed baseline replace.
type plainRun struct {
	total, build, run, wait, remove time.Duration
}

// replace builds the image bench/plain:<i> (cached), runs two containers of
// it, waits until both answer GET / with 200, then removes the previous
// pair.
func (p *plain) replace(ctx context.Context, i int) (*plainRun, error) {
	tag := fmt.Sprintf("%s:%d", plainRepo, i)
	release := fmt.Sprintf("plain%d", i)
	var r plainRun
	start := time.Now()

	// The classic builder, as the rack uses (this Docker has no buildx;
	// DOCKER_BUILDKIT=0 keeps it so where it has).
	build := exec.CommandContext(ctx, "docker", "build", "-t", tag, p.dir)
	build.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	out, err := build.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("docker build: %w\n%s", err, out)
	}
	r.build = time.Since(start)
	if i > 0 {
		var lines []line
		for _, l := range strings.Split(string(out), "\n") {
			lines = append(lines, line{text: l})
		}
		if !isCached(lines) {
			return nil, fmt.Errorf("docker build was not fully cached:\n%s", out)
		}
	}

	var ids []string
	for range 2 {
		id, err := rackbench.Docker(ctx, "run", "-d", "-p", "127.0.0.1::5000", "-e", "PORT=5000",
			"-e", "APP="+app, "-e", "SERVICE=web", "-e", "RELEASE="+release, "--label", p.label, tag)
		if err != nil {
			return nil, err
		}
		ids = append(ids, strings.TrimSpace(id))
	}
	r.run = time.Since(start) - r.build

	var ports []string
	for _, id := range ids {
		port, err := rackbench.PublishedPort(ctx, id, "5000/tcp")
		if err != nil {
			return nil, err
		}
		ports = append(ports, port)
	}
	deadline := time.Now().Add(30 * time.Second)
	for answered := map[string]bool{}; len(answered) < len(ports); {
		for _, port := range ports {
			if answered[port] {
				continue
			}
			body, err := httpGet(ctx, "http://127.0.0.1:"+port+"/")
			if err == nil && strings.Contains(body, "release "+release) {
				answered[port] = true
			}
		}
		if len(answered) == len(ports) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("the containers of %s did not answer within 30s", tag)
		}
		time.Sleep(pollEvery)
	}
	r.wait = time.Since(start) - r.build - r.run

	if len(p.prev) > 0 {
		if _, err := rackbench.Docker(ctx, append([]string{"rm", "-f"}, p.prev...)...); err != nil {
			return nil, err
		}
	}
	p.prev = ids
	r.total = time.Since(start)
	r.remove = r.total - r.build - r.run - r.wait
	return &r, nil
}

// pollServing polls the rack's processes of app until the two of release
// answer GET / naming it and no process of another release is left, and
// returns when each of these was first seen, counted from start (-1 if
// never, by the end of ctx). It reads the containers from Docker's API (a
// docker CLI process every 25ms would load the machine being measured).
func pollServing(ctx context.Context, rackName, release string, start time.Time) (serving, oldGone time.Duration) {
	serving, oldGone = -1, -1
	filters, _ := json.Marshal(map[string][]string{"label": {"convox.rack=" + rackName, "convox.app=" + app}})
	path := "/containers/json?all=1&filters=" + url.QueryEscape(string(filters))
	for ctx.Err() == nil && (serving < 0 || oldGone < 0) {
		var cs []struct {
			ID     string `json:"Id"`
			State  string
			Labels map[string]string
			Ports  []struct {
				IP          string
				PrivatePort int
				PublicPort  int
			}
		}
		if err := rackbench.DockerAPI(ctx, path, &cs); err == nil {
			old, answering, mine := 0, 0, 0
			for _, c := range cs {
				if c.Labels["convox.release"] != release {
					old++
					continue
				}
				if c.State != "running" || c.Labels["convox.service"] != "web" {
					continue
				}
				mine++
				if serving >= 0 {
					continue
				}
				for _, p := range c.Ports {
					if p.PrivatePort == 5000 && p.IP == "127.0.0.1" && p.PublicPort > 0 {
						body, err := httpGet(ctx, fmt.Sprintf("http://127.0.0.1:%d/", p.PublicPort))
						if err == nil && strings.Contains(body, "release "+release) {
							answering++
						}
						break
					}
				}
			}
			if serving < 0 && mine == 2 && answering == 2 {
				serving = time.Since(start)
			}
			if oldGone < 0 && old == 0 && mine > 0 {
				oldGone = time.Since(start)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(pollEvery):
		}
	}
	return serving, oldGone
}

// machine describes where the benchmark ran.
type machine struct {
	rackbench.Machine
	driver string
}

func describeMachine(ctx context.Context) machine {
	m := machine{Machine: rackbench.DescribeMachine(ctx)}
	if out, err := rackbench.Docker(ctx, "info", "--format", "{{.Driver}}"); err == nil {
		m.driver = strings.TrimSpace(out)
	}
	return m
}
