package docker

import (
	"context"
	"errors"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/singlehost/convox/engine"
)

// loopback is where published ports listen: the router and balancer reach
// them there, and nothing else can.
const loopback = "127.0.0.1"

// ProcessStart creates and starts a container for spec and returns it as
// inspected after the start, with its published ports. If the start fails
// (say the executable does not exist) the created container is removed and
// Docker's message returned, so a failed start leaves nothing behind.
func (r *Runtime) ProcessStart(ctx context.Context, spec engine.ProcessSpec) (engine.Process, error) {
	cfg, hc, nc := createConfig(spec)
	cctx, cancel := short(ctx)
	created, err := r.c.ContainerCreate(cctx, cfg, hc, nc, nil, spec.Name)
	cancel()
	if err != nil {
		return engine.Process{}, wrap(err, "creating process %s", spec.Name)
	}
	sctx, cancel := short(ctx)
	err = r.c.ContainerStart(sctx, created.ID, container.StartOptions{})
	cancel()
	if err != nil {
		// Clean up even when ctx is what failed the start.
		rctx, cancel := short(context.WithoutCancel(ctx))
		_ = r.c.ContainerRemove(rctx, created.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		cancel()
		return engine.Process{}, wrap(err, "starting process %s", spec.Name)
	}
	return r.ProcessInspect(ctx, created.ID)
}

// createConfig translates spec into Docker's three create documents.
func createConfig(spec engine.ProcessSpec) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	cfg := &container.Config{
		Hostname:   spec.Hostname,
		Image:      spec.Image,
		Entrypoint: spec.Entrypoint,
		Cmd:        spec.Command,
		Env:        envList(spec.Env),
		Labels:     spec.Labels.Copy(),
	}
	if spec.StopGrace > 0 {
		t := ceilSeconds(spec.StopGrace)
		cfg.StopTimeout = &t
	}
	useInit := spec.Init
	hc := &container.HostConfig{
		Init:       &useInit,
		Privileged: spec.Privileged,
		Resources: container.Resources{
			CPUShares: cpuShares(spec.CPU),
			NanoCPUs:  int64(spec.CPULimit) * 1_000_000,
			Memory:    int64(spec.Memory) << 20,
		},
	}
	if len(spec.Publish) > 0 {
		cfg.ExposedPorts = nat.PortSet{}
		hc.PortBindings = nat.PortMap{}
		for _, p := range spec.Publish {
			port := nat.Port(strconv.Itoa(p) + "/tcp")
			cfg.ExposedPorts[port] = struct{}{}
			// HostPort "" lets Docker pick a free ephemeral port; Process.Ports
			// reads it back.
			hc.PortBindings[port] = []nat.PortBinding{{HostIP: loopback, HostPort: ""}}
		}
	}
	for _, m := range spec.Mounts {
		dm := mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target}
		if m.Volume != "" {
			dm = mount.Mount{Type: mount.TypeVolume, Source: m.Volume, Target: m.Target}
		}
		hc.Mounts = append(hc.Mounts, dm)
	}
	var nc *network.NetworkingConfig
	if spec.Network != "" {
		hc.NetworkMode = container.NetworkMode(spec.Network)
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			spec.Network: {Aliases: spec.Aliases},
		}}
	}
	return cfg, hc, nc
}

// envList is env as Docker's KEY=VALUE list, sorted so that the same
// spec always makes the same container.
func envList(env map[string]string) []string {
	l := make([]string, 0, len(env))
	for k, v := range env {
		l = append(l, k+"="+v)
	}
	sort.Strings(l)
	return l
}

// ceilSeconds is d in whole seconds, rounded up: Docker counts grace in
// seconds and must never wait less than asked.
func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// listInspectors bounds the inspects ProcessList runs at once.
const listInspectors = 8

// ProcessList returns the containers carrying sel, running or not. Docker's
// list lacks what the engine relies on (start and finish times, exit code,
// the OOM flag, the exact command), so each container found is inspected,
// a few at a time; one removed meanwhile is left out.
func (r *Runtime) ProcessList(ctx context.Context, sel engine.Labels) ([]engine.Process, error) {
	lctx, cancel := short(ctx)
	cs, err := r.c.ContainerList(lctx, container.ListOptions{All: true, Filters: labelFilter(sel)})
	cancel()
	if err != nil {
		return nil, wrap(err, "listing processes")
	}
	ps := make([]engine.Process, len(cs))
	errs := make([]error, len(cs))
	sem := make(chan struct{}, listInspectors)
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ps[i], errs[i] = r.ProcessInspect(ctx, c.ID)
		}()
	}
	wg.Wait()
	out := ps[:0]
	for i, p := range ps {
		switch {
		case errs[i] == nil:
			out = append(out, p)
		case errors.Is(errs[i], engine.ErrNotFound):
		default:
			return nil, errs[i]
		}
	}
	return out, nil
}

// ProcessInspect describes one container; ErrNotFound if absent.
func (r *Runtime) ProcessInspect(ctx context.Context, id string) (engine.Process, error) {
	ctx, cancel := short(ctx)
	defer cancel()
	c, err := r.c.ContainerInspect(ctx, id)
	if err != nil {
		return engine.Process{}, wrap(err, "inspecting process %s", id)
	}
	return processOf(c), nil
}

// processOf translates an inspected container.
func processOf(c container.InspectResponse) engine.Process {
	p := engine.Process{Labels: engine.Labels{}}
	if c.ContainerJSONBase != nil {
		p.ID = c.ID
		p.Name = strings.TrimPrefix(c.Name, "/")
		p.Created = parseTime(c.Created)
		p.Command = append([]string{c.Path}, c.Args...)
		if s := c.State; s != nil {
			p.State = string(s.Status)
			p.ExitCode = s.ExitCode
			p.OOMKilled = s.OOMKilled
			p.Started = parseTime(s.StartedAt)
			p.Finished = parseTime(s.FinishedAt)
		}
	}
	if c.Config != nil {
		p.Image = c.Config.Image
		for k, v := range c.Config.Labels {
			p.Labels[k] = v
		}
	}
	if ns := c.NetworkSettings; ns != nil {
		p.IP = firstIP(ns.Networks)
		p.Ports = hostPorts(ns.Ports)
	}
	return p
}

// parseTime reads Docker's RFC 3339 times; Docker's "never"
// (0001-01-01T00:00:00Z) and anything unreadable are the zero time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.IsZero() {
		return time.Time{}
	}
	return t
}

// firstIP is the address on the first network by name: a process is on one
// network, and the order keeps the answer stable if it is on more.
func firstIP(nets map[string]*network.EndpointSettings) string {
	names := make([]string, 0, len(nets))
	for n := range nets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if es := nets[n]; es != nil && es.IPAddress != "" {
			return es.IPAddress
		}
	}
	return ""
}

// hostPorts maps each published TCP port to its host address, preferring
// IPv4. A stopped container has no bindings and so no ports.
func hostPorts(pm nat.PortMap) map[int]netip.AddrPort {
	ports := map[int]netip.AddrPort{}
	for p, bindings := range pm {
		cport, ok := tcpPort(string(p))
		if !ok {
			continue
		}
		for _, b := range bindings {
			ip, err := netip.ParseAddr(b.HostIP)
			if err != nil {
				continue
			}
			hport, err := strconv.ParseUint(b.HostPort, 10, 16)
			if err != nil || hport == 0 {
				continue
			}
			if cur, seen := ports[cport]; seen && cur.Addr().Is4() {
				continue
			}
			ports[cport] = netip.AddrPortFrom(ip.Unmap(), uint16(hport))
		}
	}
	return ports
}

// ProcessStop sends SIGTERM and, if the process still runs after grace
// (rounded up to whole seconds), SIGKILL. Stopping a stopped process is not
// an error.
func (r *Runtime) ProcessStop(ctx context.Context, id string, grace time.Duration) error {
	t := ceilSeconds(grace)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(t)*time.Second+callTimeout)
	defer cancel()
	return wrap(r.c.ContainerStop(ctx, id, container.StopOptions{Timeout: &t}), "stopping process %s", id)
}

// ProcessRemove removes a container, killing it if it still runs, with its
// anonymous volumes (named volumes stay).
func (r *Runtime) ProcessRemove(ctx context.Context, id string) error {
	ctx, cancel := short(ctx)
	defer cancel()
	return wrap(r.c.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}), "removing process %s", id)
}

// cpuShares turns a CPU request in millicores into Docker's relative weight,
// where 1024 is one CPU's worth (Kubernetes maps requests the same way).
func cpuShares(millicores int) int64 {
	if millicores <= 0 {
		return 0
	}
	return max(int64(millicores)*1024/1000, 2)
}
