package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/singlehost/convox/api"
)

// LabelDeploy marks the rollout that started a process, so that a rollout
// which restarts processes of the same release can tell its own from the
// ones it replaces, even after a daemon restart.
const LabelDeploy = "convox.deploy"

// networkName is the app's own Docker network: services reach each other
// there by service name.
func (e *Engine) networkName(app string) string { return e.rack + "-" + app }

func (e *Engine) appLabels(app string) Labels {
	return Labels{LabelRack: e.rack, LabelApp: app}
}

// startService starts one process of s for plan p, rolled out by deploy.
func (e *Engine) startService(ctx context.Context, p *plan, s serviceSpec, deploy string) (Process, string, error) {
	if err := e.runtime.NetworkEnsure(ctx, e.networkName(p.App), e.appLabels(p.App)); err != nil {
		return Process{}, "", fmt.Errorf("creating the app network: %w", err)
	}
	for _, m := range s.Volumes {
		if m.Volume == "" {
			continue
		}
		l := e.appLabels(p.App)
		if err := e.runtime.VolumeEnsure(ctx, m.Volume, l); err != nil {
			return Process{}, "", fmt.Errorf("creating volume %s: %w", m.Volume, err)
		}
	}
	pid := newProcessID(s.Name)
	labels := e.appLabels(p.App)
	for k, v := range s.Labels {
		labels[k] = v
	}
	labels[LabelType] = "service"
	labels[LabelService] = s.Name
	labels[LabelRelease] = p.Release
	labels[LabelProcess] = pid
	labels[LabelDeploy] = deploy

	env := make(map[string]string, len(s.Env)+1)
	for k, v := range s.Env {
		env[k] = v
	}
	publish := append([]int(nil), s.Ports...)
	if s.Port > 0 {
		publish = append([]int{s.Port}, publish...)
	}
	if s.HealthPort > 0 && !slices.Contains(publish, s.HealthPort) {
		publish = append(publish, s.HealthPort)
	}
	proc, err := e.runtime.ProcessStart(ctx, ProcessSpec{
		Name:       e.rack + "-" + p.App + "-" + pid,
		Hostname:   pid,
		Image:      s.Image,
		Command:    s.Command,
		Env:        env,
		Labels:     labels,
		Network:    e.networkName(p.App),
		Aliases:    []string{s.Name},
		Publish:    publish,
		CPU:        s.CPU,
		CPULimit:   s.CPULimit,
		Memory:     s.Memory,
		Init:       s.Init,
		Privileged: s.Privileged,
		Mounts:     s.Volumes,
		StopGrace:  s.Grace,
	})
	if err != nil {
		return Process{}, pid, err
	}
	e.collect(proc)
	e.event(p.App, "process", "Started process %s (release %s)", pid, p.Release)
	return proc, pid, nil
}

// stopProcess stops a process gracefully and removes it.
func (e *Engine) stopProcess(ctx context.Context, p Process, grace time.Duration, why string) error {
	pid := p.Labels[LabelProcess]
	// Out of the router first, drained, so no request fails.
	e.unroute(ctx, p, grace)
	if p.Running() {
		if err := e.runtime.ProcessStop(ctx, p.ID, grace); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("stopping %s: %w", pid, err)
		}
		e.event(p.Labels[LabelApp], "process", "Stopped process %s (%s)", pid, why)
	}
	return e.removeProcess(ctx, p)
}

// stopProcesses stops ps together: they leave the routes at once, drain
// in parallel, then stop in parallel. The first errors are joined.
func (e *Engine) stopProcesses(ctx context.Context, ps []Process, grace time.Duration, why string) error {
	if len(ps) == 0 {
		return nil
	}
	e.unrouteAll(ctx, ps, grace)
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() { errs[i] = e.stopProcess(ctx, p, grace, why) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// removeProcess removes a stopped process once its output is in the log
// store.
func (e *Engine) removeProcess(ctx context.Context, p Process) error {
	e.unroute(ctx, p, 0)
	e.collect(p)
	e.collected(p.ID, 5*time.Second)
	if err := e.runtime.ProcessRemove(ctx, p.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("removing %s: %w", p.Labels[LabelProcess], err)
	}
	e.forgetLogs(p)
	return nil
}

// processes lists app's processes of the given type ("" for all).
func (e *Engine) processes(ctx context.Context, app, kind string) ([]Process, error) {
	sel := e.appLabels(app)
	if kind != "" {
		sel[LabelType] = kind
	}
	// The runtime's error names the operation already.
	return e.runtime.ProcessList(ctx, sel)
}

// apiProcess renders a runtime process as Convox shows it.
func apiProcess(p Process) api.Process {
	ap := api.Process{
		Id:       p.Labels[LabelProcess],
		App:      p.Labels[LabelApp],
		Command:  strings.Join(p.Command, " "),
		Host:     p.IP,
		Image:    p.Image,
		Instance: "local",
		Name:     p.Labels[LabelService],
		Release:  p.Labels[LabelRelease],
		Started:  p.Started,
		Ports:    []string{},
	}
	for cport, hostAddr := range p.Ports {
		ap.Ports = append(ap.Ports, strconv.Itoa(int(hostAddr.Port()))+":"+strconv.Itoa(cport))
	}
	sort.Strings(ap.Ports)
	switch {
	case p.Running():
		ap.Status = "running"
	case p.State == StateCreated:
		ap.Status = "pending"
	case p.ExitCode == 0:
		ap.Status = "complete"
	default:
		ap.Status = "crashed"
	}
	if ap.Started.IsZero() {
		ap.Started = p.Created
	}
	return ap
}

// ProcessList returns app's processes, sorted by id.
func (e *Engine) ProcessList(ctx context.Context, app string, opts api.ProcessListOptions) ([]api.Process, error) {
	if _, err := e.AppGet(ctx, app); err != nil {
		return nil, err
	}
	ps, err := e.processes(ctx, app, "")
	if err != nil {
		return nil, err
	}
	out := []api.Process{}
	for _, p := range ps {
		if p.Labels[LabelType] == "build" || p.Labels[LabelType] == "resource" {
			continue
		}
		ap := apiProcess(p)
		if opts.Release != "" && ap.Release != opts.Release || opts.Service != "" && ap.Name != opts.Service {
			continue
		}
		out = append(out, ap)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out, nil
}

// findProcess returns app's process with id pid.
func (e *Engine) findProcess(ctx context.Context, app, pid string) (Process, error) {
	sel := e.appLabels(app)
	sel[LabelProcess] = pid
	ps, err := e.runtime.ProcessList(ctx, sel)
	if err != nil {
		return Process{}, err
	}
	if len(ps) == 0 {
		return Process{}, api.Errorf(api.ErrNotFound, "process not found: %s", pid)
	}
	return ps[0], nil
}

// ProcessGet returns one process.
func (e *Engine) ProcessGet(ctx context.Context, app, pid string) (*api.Process, error) {
	if _, err := e.AppGet(ctx, app); err != nil {
		return nil, err
	}
	p, err := e.findProcess(ctx, app, pid)
	if err != nil {
		return nil, err
	}
	ap := apiProcess(p)
	return &ap, nil
}

// ProcessStop stops a process; a service process is then replaced by the
// next converge.
func (e *Engine) ProcessStop(ctx context.Context, app, pid string) error {
	if _, err := e.AppGet(ctx, app); err != nil {
		return err
	}
	p, err := e.findProcess(ctx, app, pid)
	if err != nil {
		return err
	}
	grace := 30 * time.Second
	if s, ok := e.activeService(ctx, app, p.Labels[LabelService]); ok {
		grace = s.Grace
	}
	if err := e.stopProcess(ctx, p, grace, "stopped by request"); err != nil {
		return err
	}
	e.converge(app)
	return nil
}
