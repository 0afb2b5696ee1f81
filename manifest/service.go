package manifest

import (
	"fmt"
	"net/netip"
	"strings"

	"gopkg.in/yaml.v3"
)

// Service is a long-running workload (spec §1.4), with every default
// applied and the top-level environment and labels folded in.
type Service struct {
	Name string `json:"name"`

	Build   Build  `json:"build"`             // empty when Image is set and build is not
	Image   string `json:"image,omitempty"`   // an external image; supersedes Build
	Command string `json:"command,omitempty"` // as written; see Args

	Port     Port       `json:"port"` // zero Port when the service has none
	Ports    []PortSpec `json:"ports,omitempty"`
	Health   Health     `json:"health"`
	Liveness *Liveness  `json:"liveness,omitempty"` // nil: no liveness check

	Scale      Scale      `json:"scale"`
	Deployment Deployment `json:"deployment"`

	Environment []string       `json:"environment,omitempty"` // top-level entries first
	Resources   []ResourceLink `json:"resources,omitempty"`

	Domains   []string `json:"domains,omitempty"`
	Internal  bool     `json:"internal"`
	Singleton bool     `json:"singleton"`
	Sticky    bool     `json:"sticky"`
	Timeout   int      `json:"timeout"` // router proxy timeout, seconds
	TLS       TLS      `json:"tls"`
	Whitelist []string `json:"whitelist,omitempty"` // CIDR prefixes allowed at the router; empty allows all

	Termination Termination       `json:"termination"`
	Init        bool              `json:"init"`
	Privileged  bool              `json:"privileged"`
	Volumes     []string          `json:"volumes,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"` // top-level labels included
	Agent       bool              `json:"agent"`            // one process per host
}

// Build says how to build the service's image.
type Build struct {
	Path     string   `json:"path,omitempty"`     // context directory, relative to convox.yml
	Manifest string   `json:"manifest,omitempty"` // Dockerfile name, relative to Path
	Args     []string `json:"args,omitempty"`     // build args: KEY=value, or KEY to take it from the env
}

// TLS holds the router's TLS behaviour for the service.
type TLS struct {
	Redirect bool `json:"redirect"` // redirect HTTP to HTTPS with a 308
}

// Termination holds how a process is stopped.
type Termination struct {
	Grace int `json:"grace"` // seconds between SIGTERM and SIGKILL
}

// Args is the command split into arguments the way Convox v3 does it (see
// splitWords): they replace the image's CMD and keep its ENTRYPOINT. Nil
// means no command, so the image's CMD runs. Load rejects commands that do
// not split, so Args cannot fail on a loaded manifest.
func (s Service) Args() []string {
	args, _ := splitWords(s.Command)
	return args
}

// serviceCloudOnly are service keys that configure Kubernetes or a cloud
// load balancer, or were v2-only (links, policies, tags, nlb), or are
// deprecated (drain: v3 uses termination.grace). They mean nothing on one
// host; accepting them lets a manifest move between racks unchanged.
var serviceCloudOnly = []string{
	"accessControl", "annotations", "certificate", "configMounts", "disableHostUsers",
	"dnsConfig", "drain", "grpcHealthEnabled", "imagePullSecrets", "ingressAnnotations",
	"initContainer", "internalAndExternal", "internalRouter", "lifecycle", "links", "nlb",
	"nodeAffinityLabels", "nodeSelectorLabels", "policies", "securityContext", "startupProbe",
	"tags", "test", "volumeOptions",
}

func (d *decoder) service(name string, a at, n *yaml.Node) Service {
	if !validName.MatchString(name) {
		d.errorf(a, "service name %s invalid, %s", name, validNameRule)
	}
	s := Service{Name: name}
	d.fields(a, n, handlers{
		"agent":       func(a at, v *yaml.Node) { s.Agent = d.agent(a, v) },
		"build":       func(a at, v *yaml.Node) { s.Build = d.build(a, v) },
		"command":     func(a at, v *yaml.Node) { s.Command = d.command(a, v) },
		"deployment":  func(a at, v *yaml.Node) { s.Deployment = d.deployment(a, v) },
		"domain":      func(a at, v *yaml.Node) { s.Domains = d.commaList(a, v) },
		"environment": func(a at, v *yaml.Node) { s.Environment = d.environment(a, v) },
		"health":      func(a at, v *yaml.Node) { s.Health = d.health(a, v) },
		"image":       func(a at, v *yaml.Node) { s.Image = d.str(a, v) },
		"init":        func(a at, v *yaml.Node) { s.Init = d.boolean(a, v) },
		"internal":    func(a at, v *yaml.Node) { s.Internal = d.boolean(a, v) },
		"labels":      func(a at, v *yaml.Node) { s.Labels = d.labels(a, v) },
		"liveness":    func(a at, v *yaml.Node) { s.Liveness = d.liveness(a, v) },
		"port":        func(a at, v *yaml.Node) { s.Port = d.port(a, v) },
		"ports":       func(a at, v *yaml.Node) { s.Ports = d.ports(a, v) },
		"privileged":  func(a at, v *yaml.Node) { s.Privileged = d.boolean(a, v) },
		"resources":   func(a at, v *yaml.Node) { s.Resources = d.resourceLinks(a, v) },
		"scale":       func(a at, v *yaml.Node) { s.Scale = d.scale(a, v) },
		"singleton":   func(a at, v *yaml.Node) { s.Singleton = d.boolean(a, v) },
		"sticky":      func(a at, v *yaml.Node) { s.Sticky = d.boolean(a, v) },
		"termination": func(a at, v *yaml.Node) {
			d.fields(a, v, handlers{"grace": func(a at, v *yaml.Node) { s.Termination.Grace = d.natural(a, v) }}, nil)
		},
		"timeout": func(a at, v *yaml.Node) { s.Timeout = d.natural(a, v) },
		"tls": func(a at, v *yaml.Node) {
			d.fields(a, v, handlers{"redirect": func(a at, v *yaml.Node) { s.TLS.Redirect = d.boolean(a, v) }}, nil)
		},
		"volumes": func(a at, v *yaml.Node) { s.Volumes = d.volumes(a, v) },
		"whitelist": func(a at, v *yaml.Node) {
			s.Whitelist = d.cidrs(a, v, func(c string) string {
				return fmt.Sprintf("%q is not a valid cidr range", c)
			})
		},
	}, serviceCloudOnly)
	d.serviceDefaults(a, &s)
	return s
}

// serviceDefaults applies Convox v3's defaults (v3:pkg/manifest/manifest.go
// ApplyDefaults, spec §1.4), each where a key was absent rather than zero
// unless noted: Convox treats some zeros as "unset" and we keep that.
func (d *decoder) serviceDefaults(a at, s *Service) {
	has := func(key string) bool { return d.has(a.path + "." + key) }

	// build: context "." when there is no image; Dockerfile when there is a
	// context. An image wins over a build (Convox pulls, never builds).
	if s.Image == "" && s.Build.Path == "" {
		s.Build.Path = "."
	}
	if s.Build.Path != "" && s.Build.Manifest == "" {
		s.Build.Manifest = "Dockerfile"
	}
	if s.Image != "" && has("build") {
		d.warnf(d.pos(a.path+".build"), "ignored because image is set")
	}

	// port: scheme http whenever there is a port.
	if s.Port.Port > 0 && s.Port.Scheme == "" {
		s.Port.Scheme = "http"
	}
	// ports: an entry repeating the main port over TCP says nothing new and
	// would publish the port twice; Convox drops it too.
	ports := s.Ports[:0]
	for _, p := range s.Ports {
		if p.Port != s.Port.Port || p.Protocol != "tcp" {
			ports = append(ports, p)
		}
	}
	s.Ports = ports
	if len(s.Ports) == 0 {
		s.Ports = nil
	}

	healthDefaults(&s.Health, s.Port)
	if s.Liveness != nil {
		livenessDefaults(s.Liveness, s.Port)
	}
	d.scaleDefaults(a, &s.Scale)

	// deployment: min 50 / max 200, but an agent or singleton never runs
	// an extra process, so it stops the old one first: min 0 / max 100.
	if !has("deployment.minimum") {
		s.Deployment.Minimum = 50
		if s.Agent || s.Singleton {
			s.Deployment.Minimum = 0
		}
	}
	if !has("deployment.maximum") {
		s.Deployment.Maximum = 200
		if s.Agent || s.Singleton {
			s.Deployment.Maximum = 100
		}
	}

	// init: true unless written (a false must stay false).
	if !has("init") {
		s.Init = true
	}
	// termination.grace: 30 unless written (0 means kill at once).
	if !has("termination.grace") {
		s.Termination.Grace = 30
	}
	// timeout: 60, and Convox treats 0 as unset.
	if s.Timeout == 0 {
		s.Timeout = 60
	}
	// tls.redirect: true unless written.
	if !has("tls.redirect") {
		s.TLS.Redirect = true
	}
}

// checkService validates what needs the whole manifest: resource links.
func (d *decoder) checkService(m *Manifest, s Service) {
	for i, r := range s.Resources {
		if _, ok := m.Resource(r.Name); !ok {
			d.errorf(d.pos(fmt.Sprintf("services.%s.resources[%d]", s.Name, i)), "service %s references a resource that does not exist: %s", s.Name, r.Name)
		}
	}
}

// agent is a boolean. v2's {enabled, ports} form is rejected with Convox
// v3's message, since the ports now belong to the service.
func (d *decoder) agent(a at, n *yaml.Node) bool {
	if n.Kind == yaml.MappingNode {
		d.errorf(a, "agent ports are now specified at the service level")
		return false
	}
	return d.boolean(a, n)
}

// build reads a context path, or a map {path, manifest, args}.
func (d *decoder) build(a at, n *yaml.Node) Build {
	var b Build
	if n.Kind == yaml.ScalarNode {
		b.Path = d.str(a, n)
		return b
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(a, "expected a path or a map, got %s", describe(n))
		return b
	}
	d.fields(a, n, handlers{
		"path":     func(a at, v *yaml.Node) { b.Path = d.str(a, v) },
		"manifest": func(a at, v *yaml.Node) { b.Manifest = d.str(a, v) },
		"args":     func(a at, v *yaml.Node) { b.Args = d.strs(a, v) },
	}, nil)
	return b
}

// command reads the command string. A list, v2's exec form, is accepted
// too and kept as a quoted string that Args splits back into that list.
func (d *decoder) command(a at, n *yaml.Node) string {
	if n.Kind == yaml.SequenceNode {
		return quoteWords(d.strs(a, n))
	}
	c := d.str(a, n)
	if _, err := splitWords(c); err != nil {
		d.errorf(a, "%v", err)
	}
	return c
}

// volumes reads volume specs: "/data" (the service's own) or "name:/path"
// (shared by the app's services). Either way the mount point must be an
// absolute path, or Docker would refuse it at run time.
func (d *decoder) volumes(a at, n *yaml.Node) []string {
	var out []string
	d.list(a, n, func(a at, v *yaml.Node) {
		vol, ok := d.text(a, v)
		if !ok {
			return
		}
		vol = strings.TrimSpace(vol)
		target := vol
		if i := strings.LastIndexByte(vol, ':'); i >= 0 {
			target = vol[i+1:]
		}
		if !strings.HasPrefix(target, "/") {
			d.errorf(a, "expected /path or name:/path, got %q", vol)
			return
		}
		out = append(out, vol)
	})
	return out
}

// cidrs reads a comma-separated string or a list of CIDR prefixes. A bare
// address is taken as a one-address prefix (/32 or /128) because that is
// what people mean by it, and written that way so consumers see prefixes
// only.
func (d *decoder) cidrs(a at, n *yaml.Node, invalid func(cidr string) string) []string {
	var out []string
	for _, c := range d.commaList(a, n) {
		if _, err := netip.ParsePrefix(c); err == nil {
			out = append(out, c)
		} else if ip, err := netip.ParseAddr(c); err == nil {
			out = append(out, netip.PrefixFrom(ip, ip.BitLen()).String())
		} else {
			d.errorf(a, "%s", invalid(c))
		}
	}
	return out
}
