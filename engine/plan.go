package engine

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/singlehost/convox/api"
	"github.com/singlehost/convox/manifest"
	"github.com/singlehost/convox/store"
)

// plan is what a release asks to run: its services, fully resolved from the
// release's manifest, env and the app's scale overrides. It is derived, never
// stored: the release and the store's scales are the truth.
type plan struct {
	App       string
	Release   string
	Build     string
	Services  []serviceSpec
	Balancers []balancerSpec
}

// serviceSpec is one service of a plan, in runtime terms.
type serviceSpec struct {
	Name       string
	Image      string
	Command    []string // nil: the image's CMD
	Env        map[string]string
	Port       int // main port; 0 when the service has none
	Ports      []int
	Health     healthSpec
	HealthPort int // where Health checks: the main port unless health.port says
	Count      int
	CPU        int // millicores requested: a weight, not a cap
	CPULimit   int // millicores cap; 0 = none
	Memory     int // MB cap: limit.memory, else memory
	Minimum    int // deployment.minimum, percent
	Maximum    int // deployment.maximum, percent
	Init       bool
	Privileged bool
	Grace      time.Duration // termination.grace
	Volumes    []Mount
	Labels     map[string]string
	Internal   bool
	Domains    []string
	Sticky     bool
	Timeout    time.Duration // router timeout
	Redirect   bool          // tls.redirect
	Whitelist  []netip.Prefix
}

// service returns the named service of p.
func (p *plan) service(name string) (serviceSpec, bool) {
	for _, s := range p.Services {
		if s.Name == name {
			return s, true
		}
	}
	return serviceSpec{}, false
}

// surge is how many processes a rollout may start above the service's
// count, and unavailable how many it may stop before their replacements are
// healthy; together they implement deployment.maximum/minimum as Kubernetes
// does (maxSurge = max−100 %, maxUnavailable = 100−min %), with at least one
// of them non-zero so a rollout can always make progress.
func (s serviceSpec) surge() (surge, unavailable int) {
	surge = s.Count * (s.Maximum - 100) / 100
	if s.Count > 0 && s.Maximum > 100 && surge == 0 {
		surge = 1
	}
	unavailable = s.Count * (100 - s.Minimum) / 100
	if s.Count > 0 && surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable
}

// plan resolves release id of app.
func (e *Engine) plan(ctx context.Context, app, id string) (*plan, error) {
	var pl *plan
	err := e.store.View(ctx, func(tx *store.Tx) error {
		rel, err := getRelease(tx, app, id)
		if err != nil {
			return err
		}
		pl, err = e.planTx(tx, app, rel)
		return err
	})
	return pl, err
}

// planTx resolves a release inside a transaction: its manifest loaded with
// its env (which must hold every required variable), each service's image,
// environment, limits and the scale set by `convox scale`.
func (e *Engine) planTx(tx *store.Tx, app string, rel *api.Release) (*plan, error) {
	env := parseEnv(rel.Env)
	m, err := manifest.Load([]byte(rel.Manifest), env)
	if err != nil {
		return nil, api.Errorf(api.ErrInvalid, "%v", err)
	}
	if err := m.RequiredEnv(env); err != nil {
		return nil, api.Errorf(api.ErrInvalid, "%v", err)
	}
	pl := &plan{App: app, Release: rel.Id, Build: rel.Build}
	var buildDesc string
	if b, err := tx.Build(app, rel.Build); err == nil {
		buildDesc = b.Description
	}
	for _, s := range m.Services {
		sc, err := tx.Scale(app, s.Name)
		if err != nil {
			return nil, err
		}
		spec := serviceSpec{
			Name:       s.Name,
			Image:      e.imageRef(app, s.Name, rel.Build),
			Command:    s.Args(),
			Port:       s.Port.Port,
			Count:      s.Scale.Count.Min,
			CPU:        s.Scale.Cpu,
			CPULimit:   s.Scale.Limit.Cpu,
			Memory:     cmp.Or(s.Scale.Limit.Memory, s.Scale.Memory),
			Minimum:    s.Deployment.Minimum,
			Maximum:    s.Deployment.Maximum,
			Init:       s.Init,
			Privileged: s.Privileged,
			Grace:      time.Duration(s.Termination.Grace) * time.Second,
			Labels:     s.Labels,
			Internal:   s.Internal,
			Domains:    s.Domains,
			Sticky:     s.Sticky,
			Timeout:    time.Duration(s.Timeout) * time.Second,
			Redirect:   s.TLS.Redirect,
			Health: healthSpec{
				Path:     s.Health.Path,
				Scheme:   s.Port.Scheme,
				Grace:    time.Duration(s.Health.Grace) * time.Second,
				Interval: time.Duration(s.Health.Interval) * time.Second,
				Timeout:  time.Duration(max(s.Health.Timeout, 1)) * time.Second,
				Disable:  s.Health.Disable,
			},
		}
		for _, w := range s.Whitelist {
			if p, err := netip.ParsePrefix(w); err == nil {
				spec.Whitelist = append(spec.Whitelist, p)
			}
		}
		spec.HealthPort = spec.Port
		if hp := s.Health.Port; hp != nil && hp.Port > 0 {
			spec.HealthPort, spec.Health.Scheme = hp.Port, hp.Scheme
		}
		for _, p := range s.Ports {
			if p.Protocol == "" || p.Protocol == "tcp" {
				spec.Ports = append(spec.Ports, p.Port)
			}
		}
		if sc.Count != nil {
			spec.Count = *sc.Count
		}
		if sc.Cpu > 0 {
			spec.CPU = sc.Cpu
		}
		if sc.Memory > 0 {
			spec.Memory = sc.Memory
		}
		spec.Env = m.ServiceEnv(s, env)
		for k, v := range map[string]string{
			"APP": app, "RACK": e.rack, "RELEASE": rel.Id, "BUILD": rel.Build,
			"BUILD_DESCRIPTION": buildDesc, "SERVICE": s.Name,
		} {
			spec.Env[k] = v
		}
		if spec.Port > 0 {
			spec.Env["PORT"] = strconv.Itoa(spec.Port)
		}
		for _, v := range s.Volumes {
			spec.Volumes = append(spec.Volumes, e.volumeMount(app, s.Name, v))
		}
		pl.Services = append(pl.Services, spec)
	}
	for _, b := range m.Balancers {
		bs := balancerSpec{Name: b.Name, Service: b.Service, Ports: map[int]int{}}
		for _, p := range b.Ports {
			if p.Protocol == "" || p.Protocol == "tcp" {
				bs.Ports[p.Listen] = p.Target
			}
		}
		for _, w := range b.Whitelist {
			if p, err := netip.ParsePrefix(w); err == nil {
				bs.Whitelist = append(bs.Whitelist, p)
			}
		}
		pl.Balancers = append(pl.Balancers, bs)
		// A balancer's target ports are published on loopback too, where
		// the balancer reaches them.
		for i := range pl.Services {
			if pl.Services[i].Name != b.Service {
				continue
			}
			for _, t := range bs.Ports {
				if !slices.Contains(pl.Services[i].Ports, t) && t != pl.Services[i].Port {
					pl.Services[i].Ports = append(pl.Services[i].Ports, t)
				}
			}
			sort.Ints(pl.Services[i].Ports)
		}
	}
	return pl, nil
}

// volumeMount maps a manifest volume to a named Docker volume that outlives
// deploys: "/data" is the service's own (<rack>-<app>-<service>-data),
// "name:/path" an app volume shared by services (<rack>-<app>-name).
func (e *Engine) volumeMount(app, service, v string) Mount {
	if name, target, ok := strings.Cut(v, ":"); ok && !strings.HasPrefix(name, "/") {
		return Mount{Volume: e.rack + "-" + app + "-" + name, Target: target}
	}
	slug := strings.Trim(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(v)), "-")
	return Mount{Volume: e.rack + "-" + app + "-" + service + "-" + slug, Target: v}
}
