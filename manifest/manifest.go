// Package manifest reads convox.yml: bytes and an env map in, a typed,
// defaulted and validated Manifest out, or errors that name the line and the
// key path ("convox.yml:7: services.web.scale.count: expected an integer,
// got "lots""). Everything here is a pure function of its arguments.
//
// Loading follows Convox v3 (spec §1.1): ${VAR} interpolation on the raw
// text, YAML parsing, defaults, then the top-level environment and labels
// folded into every service. Keys that mean something only in Convox's
// cloud are accepted and ignored; unknown keys are warnings, never errors.
// The required-env check is separate (RequiredEnv) because the engine runs
// it with a release's env, not at every load.
package manifest

import (
	"errors"
	"maps"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Manifest is a loaded convox.yml. Named maps (resources, services, timers,
// balancers) become lists in file order, each item carrying its key as Name.
type Manifest struct {
	Environment []string          `json:"environment,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Params      map[string]string `json:"params,omitempty"`
	Resources   []Resource        `json:"resources,omitempty"`
	Services    []Service         `json:"services,omitempty"`
	Timers      []Timer           `json:"timers,omitempty"`
	Balancers   []Balancer        `json:"balancers,omitempty"`

	// Warnings are problems worth showing but not worth failing a build
	// for, such as a mistyped key, each as "convox.yml:5: path: message".
	Warnings []string `json:"warnings,omitempty"`
}

// Option changes how Load reads a manifest.
type Option func(*options)

type options struct {
	name string
}

// Name sets the file name that starts every error and warning, for
// manifests not called convox.yml (convox build --manifest).
func Name(file string) Option {
	return func(o *options) { o.name = file }
}

// Load interpolates env into data, parses it and returns the manifest with
// every default applied. Several problems are returned together, each an
// *Error. An empty file is an empty manifest; whether that is acceptable is
// the caller's decision (promote refuses it).
func Load(data []byte, env map[string]string, opts ...Option) (*Manifest, error) {
	o := options{name: "convox.yml"}
	for _, opt := range opts {
		opt(&o)
	}

	text := interpolate(data, env)
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return nil, syntaxError(o.name, text, err)
	}

	d := &decoder{file: o.name, seen: map[string]at{}}
	m := &Manifest{}
	if len(doc.Content) > 0 {
		d.manifest(m, doc.Content[0])
		d.combine(m)
		d.check(m)
	}

	if len(d.errs) > 0 {
		errs := make([]error, 0, len(d.errs))
		for _, e := range sorted(d.errs) {
			errs = append(errs, e)
		}
		return nil, errors.Join(errs...)
	}
	for _, w := range sorted(d.warnings) {
		m.Warnings = append(m.Warnings, w.Error())
	}
	return m, nil
}

// Service returns the service called name.
func (m *Manifest) Service(name string) (*Service, bool) {
	for i := range m.Services {
		if m.Services[i].Name == name {
			return &m.Services[i], true
		}
	}
	return nil, false
}

// Resource returns the resource called name.
func (m *Manifest) Resource(name string) (*Resource, bool) {
	for i := range m.Resources {
		if m.Resources[i].Name == name {
			return &m.Resources[i], true
		}
	}
	return nil, false
}

// topLevelCloudOnly are top-level keys that configure Convox's cloud
// (CloudWatch retention, cost budgets, config maps) and mean nothing here.
var topLevelCloudOnly = []string{"appSettings", "budget", "configs"}

func (d *decoder) manifest(m *Manifest, n *yaml.Node) {
	root := at{line: n.Line, col: n.Column}
	d.fields(root, n, handlers{
		"environment": func(a at, v *yaml.Node) { m.Environment = d.environment(a, v) },
		"labels":      func(a at, v *yaml.Node) { m.Labels = d.labels(a, v) },
		"params":      func(a at, v *yaml.Node) { m.Params = d.stringMap(a, v) },
		"resources": func(a at, v *yaml.Node) {
			d.named(a, v, func(name string, a at, v *yaml.Node) {
				m.Resources = append(m.Resources, d.resource(name, a, v))
			})
		},
		"services": func(a at, v *yaml.Node) {
			d.named(a, v, func(name string, a at, v *yaml.Node) {
				m.Services = append(m.Services, d.service(name, a, v))
			})
		},
		"timers": func(a at, v *yaml.Node) {
			d.named(a, v, func(name string, a at, v *yaml.Node) {
				m.Timers = append(m.Timers, d.timer(name, a, v))
			})
		},
		"balancers": func(a at, v *yaml.Node) {
			d.named(a, v, func(name string, a at, v *yaml.Node) {
				m.Balancers = append(m.Balancers, d.balancer(name, a, v))
			})
		},
	}, topLevelCloudOnly)
}

// combine folds the top-level environment and labels into every service,
// as Convox's CombineEnv and CombineLabels do, so a Service alone says what
// its processes get.
func (d *decoder) combine(m *Manifest) {
	for i := range m.Services {
		s := &m.Services[i]
		if len(m.Environment) > 0 {
			// Top-level entries come first: for the same KEY=default the
			// service's own entry, read later, wins.
			s.Environment = append(append([]string(nil), m.Environment...), s.Environment...)
		}
		for k, v := range m.Labels {
			if _, ok := s.Labels[k]; !ok {
				if s.Labels == nil {
					s.Labels = map[string]string{}
				}
				s.Labels[k] = v // service labels win
			}
		}
	}
}

// check runs the validations that need the whole manifest: references
// between services, resources, timers and balancers.
func (d *decoder) check(m *Manifest) {
	for _, s := range m.Services {
		d.checkService(m, s)
	}
	for _, t := range m.Timers {
		d.checkTimer(m, t)
	}
	for _, b := range m.Balancers {
		d.checkBalancer(m, b)
	}
}

// validName is Convox's rule for service, resource and timer names; they
// end up in host names and container names.
var validName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

const validNameRule = "must contain only lowercase alphanumeric and dashes"

// reservedLabels are label keys Convox uses for its own bookkeeping.
var reservedLabels = []string{"system", "rack", "app", "name", "service", "release", "type"}

// labels reads a map of labels, or a list of "key=value" strings, rejecting
// the keys Convox reserves.
func (d *decoder) labels(a at, n *yaml.Node) map[string]string {
	var labels map[string]string
	if n.Kind == yaml.SequenceNode {
		labels = map[string]string{}
		d.list(a, n, func(a at, v *yaml.Node) {
			kv, ok := d.text(a, v)
			if !ok {
				return
			}
			k, val, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				d.errorf(a, "expected key=value, got %s", describe(v))
				return
			}
			d.checkLabel(a, k)
			labels[k] = val
		})
		return labels
	}
	labels = d.stringMap(a, n)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		d.checkLabel(d.pos(a.path+"."+k), k)
	}
	return labels
}

func (d *decoder) checkLabel(a at, key string) {
	for _, r := range reservedLabels {
		if key == r {
			d.errorf(a, "reserved label key '%s' is not allowed", key)
		}
	}
}
