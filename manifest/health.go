package manifest

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// Health is the readiness check that gates a rolling deploy: an HTTP GET of
// Path, 200–399 within Timeout, every Interval seconds after Grace. Only
// services with a port are checked.
type Health struct {
	Path     string `json:"path"`
	Grace    int    `json:"grace"`    // seconds before the first check
	Interval int    `json:"interval"` // seconds between checks
	Timeout  int    `json:"timeout"`  // seconds per check
	Disable  bool   `json:"disable"`
	// Port is where to check: the main port unless health.port says
	// otherwise (its scheme then defaults to the main port's).
	Port *Port `json:"port,omitempty"`
}

// Liveness restarts a process after FailureThreshold consecutive failed
// checks of Path.
type Liveness struct {
	Path             string `json:"path"`
	Grace            int    `json:"grace"`
	Interval         int    `json:"interval"`
	Timeout          int    `json:"timeout"`
	SuccessThreshold int    `json:"successThreshold"`
	FailureThreshold int    `json:"failureThreshold"`
	Port             *Port  `json:"port,omitempty"` // as Health.Port
}

// health reads a path, or a map {path, grace, interval, timeout, disable, port}.
func (d *decoder) health(a at, n *yaml.Node) Health {
	var h Health
	switch n.Kind {
	case yaml.ScalarNode:
		h.Path = d.str(a, n)
	case yaml.MappingNode:
		d.fields(a, n, handlers{
			"path":     func(a at, v *yaml.Node) { h.Path = d.str(a, v) },
			"grace":    func(a at, v *yaml.Node) { h.Grace = d.natural(a, v) },
			"interval": func(a at, v *yaml.Node) { h.Interval = d.natural(a, v) },
			"timeout":  func(a at, v *yaml.Node) { h.Timeout = d.natural(a, v) },
			"disable":  func(a at, v *yaml.Node) { h.Disable = d.boolean(a, v) },
			"port":     func(a at, v *yaml.Node) { h.Port = d.checkPort(a, v) },
		}, nil)
	default:
		d.errorf(a, "expected a path or a map, got %s", describe(n))
	}
	return h
}

// liveness reads {path, grace, interval, timeout, successThreshold,
// failureThreshold, port}; without a path there is no check (nil), as in
// Convox.
func (d *decoder) liveness(a at, n *yaml.Node) *Liveness {
	var l Liveness
	d.fields(a, n, handlers{
		"path":             func(a at, v *yaml.Node) { l.Path = strings.TrimSpace(d.str(a, v)) },
		"grace":            func(a at, v *yaml.Node) { l.Grace = d.natural(a, v) },
		"interval":         func(a at, v *yaml.Node) { l.Interval = d.natural(a, v) },
		"timeout":          func(a at, v *yaml.Node) { l.Timeout = d.natural(a, v) },
		"successThreshold": func(a at, v *yaml.Node) { l.SuccessThreshold = d.natural(a, v) },
		"failureThreshold": func(a at, v *yaml.Node) { l.FailureThreshold = d.natural(a, v) },
		"port":             func(a at, v *yaml.Node) { l.Port = d.checkPort(a, v) },
	}, nil)
	if l.Path == "" {
		d.warnf(a, "no path, so no liveness check")
		return nil
	}
	return &l
}

func (d *decoder) checkPort(a at, n *yaml.Node) *Port {
	p := d.port(a, n)
	if p.Port == 0 {
		return nil
	}
	return &p
}

// healthDefaults applies Convox's health defaults: path "/", interval 5,
// grace = interval, timeout = interval − 1 (zero counts as unset, as in
// Convox), and the check's port from the main port.
func healthDefaults(h *Health, main Port) {
	if h.Path == "" {
		h.Path = "/"
	}
	if h.Interval == 0 {
		h.Interval = 5
	}
	if h.Grace == 0 {
		h.Grace = h.Interval
	}
	if h.Timeout == 0 {
		h.Timeout = h.Interval - 1
	}
	h.Port = checkPortDefault(h.Port, main)
}

// livenessDefaults applies Convox's liveness defaults: grace 10, interval 5,
// timeout 5, successThreshold 1, failureThreshold 3, and the main port.
func livenessDefaults(l *Liveness, main Port) {
	if l.Grace == 0 {
		l.Grace = 10
	}
	if l.Interval == 0 {
		l.Interval = 5
	}
	if l.Timeout == 0 {
		l.Timeout = 5
	}
	if l.SuccessThreshold == 0 {
		l.SuccessThreshold = 1
	}
	if l.FailureThreshold == 0 {
		l.FailureThreshold = 3
	}
	l.Port = checkPortDefault(l.Port, main)
}

// checkPortDefault fills a check's port from the service's main port, and
// its scheme from the main port's, so the engine reads one field.
func checkPortDefault(p *Port, main Port) *Port {
	if p == nil {
		if main.Port == 0 {
			return nil
		}
		return &Port{Port: main.Port, Scheme: main.Scheme}
	}
	if p.Scheme == "" {
		p.Scheme = main.Scheme
		if p.Scheme == "" {
			p.Scheme = "http"
		}
	}
	return p
}
