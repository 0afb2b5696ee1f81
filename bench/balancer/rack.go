package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/singlehost/convox/bench/internal/rackbench"
)

// app is the name of the benchmark's app on its own rack.
const app = "bench"

// rackSuite builds convox and the sample app, starts the rack, deploys the
// app with one process behind a balancer, and returns the suite with the
// process's published echo port (the balancer's target) and the balancer.
func rackSuite(ctx context.Context, root string, r *rackbench.Rack, connDuration time.Duration, portWait bool, loops int) (*suite, string, *target, error) {
	if err := r.Build(ctx, root); err != nil {
		return nil, "", nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, "", nil, err
	}
	balancerAddr := "127.0.0.1:" + strconv.Itoa(port)
	src, err := rackbench.SampleApp(ctx, root, r.Dir, manifest(port, runtime.NumCPU()))
	if err != nil {
		return nil, "", nil, err
	}
	if err := rackbench.EnsureBaseImage(ctx, root); err != nil {
		return nil, "", nil, err
	}
	rackbench.Logf("rack suite: starting rack %s", r.Name)
	// Ports below the ephemeral range (see freePort), balancers on
	// loopback only.
	r.PickAddr = freeAddr
	r.Args = []string{"--balancer-bind", "127.0.0.1", "--proxy-loops", strconv.Itoa(loops)}
	if err := r.Start(ctx); err != nil {
		return nil, "", nil, err
	}
	if out, err := r.Convox(ctx, "apps", "create", app); err != nil {
		return nil, "", nil, fmt.Errorf("convox apps create: %w\n%s", err, out)
	}
	rackbench.Logf("rack suite: deploying the sample app (one process, balancer on %s)", balancerAddr)
	dctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	out, err := r.Convox(dctx, "deploy", src, "-a", app, "--wait")
	cancel()
	if err != nil {
		return nil, "", nil, fmt.Errorf("convox deploy: %w\n%s", err, out)
	}
	// The process's echo port: the balancer's target.
	id, backend, err := r.OneProcess(ctx, app, "web", "7000/tcp")
	if err != nil {
		return nil, "", nil, err
	}
	_, hostPort, _ := strings.Cut(backend, ":")
	bpids := rackbench.BackendPids(ctx, id, hostPort)
	rackbench.Logf("rack suite: the process's echo is published at %s; its processes (container, docker-proxy): %v", backend, bpids)
	viaProxy := len(bpids) > 1 && hasDockerProxy(bpids)
	proxy := "no docker-proxy: Docker forwards the published port in the kernel"
	if viaProxy {
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
	s.note = "Connections/s through Docker: without docker-proxy, each client (the load, haproxy, the balancer) holds the TIME_WAITs of its own connections. "
	if viaProxy {
		s.note = fmt.Sprintf("Connections/s through Docker: whichever way a client comes in, `docker-proxy` connects to the container over the bridge and, as the side that sends the first FIN, keeps each of those connections in TIME_WAIT for 60 s; "+
			"the kernel reuses such ports early only for loopback connections (`net.ipv4.tcp_tw_reuse=2`). "+
			"As the %d ports of the ephemeral range fill up, each connect scans longer for a free port and docker-proxy burns the CPUs: "+
			"a sustained rate above about %d new connections/s to one process cannot last, and a run would pay for the ones before it. ",
			ephemeralPorts(), ephemeralPorts()/60)
	}
	if portWait {
		s.beforeConns = func(ctx context.Context) error { return waitPortBudget(ctx, 7000) }
		s.note += fmt.Sprintf("These runs last %s each and start only once fewer than %d connections to the container's port are in TIME_WAIT: they measure bursts from a clean state.",
			connDuration, maxTimeWait)
	} else {
		s.note += fmt.Sprintf("These runs (-short) last %s each and **did not wait** for the TIME_WAITs to clear: their figures are pessimistic, the more so for later targets.", connDuration)
	}
	name := "convox rack balancer"
	if loops > 0 {
		name = fmt.Sprintf("convox rack balancer (--proxy-loops %d)", loops)
	}
	bal := &target{name: name, kind: "balancer", addr: balancerAddr, pids: func() []int { return []int{r.PID()} }}
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

func hasDockerProxy(pids []int) bool {
	for _, pid := range pids {
		if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(data)) == "docker-proxy" {
			return true
		}
	}
	return false
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
	rackbench.Logf("rack suite: %d connections to the container's port %d in TIME_WAIT; waiting until fewer than %d", n, port, maxTimeWait)
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
