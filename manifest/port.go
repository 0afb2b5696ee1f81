package manifest

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Port is a service's main port, the one the router sends HTTP to.
type Port struct {
	Port int `json:"port,omitempty"`
	// Scheme is how the router talks to the process: http, https (TLS,
	// self-signed is fine) or grpc. Convox upper-cases grpc only because
	// its nginx ingress annotation wants it; we keep all three lower-case.
	Scheme string `json:"scheme,omitempty"`
}

// PortSpec is an extra container port: reachable inside the rack and
// through balancers, never routed by host name.
type PortSpec struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol"` // tcp or udp
}

// port reads a main port: 3000, "3000", "https:3000", or a map
// {port, scheme} whose port may itself be "https:3000" (scheme wins).
func (d *decoder) port(a at, n *yaml.Node) Port {
	switch n.Kind {
	case yaml.ScalarNode:
		return d.portScalar(a, n)
	case yaml.MappingNode:
		var p Port
		var scheme string
		d.fields(a, n, handlers{
			"port":   func(a at, v *yaml.Node) { p = d.portScalar(a, v) },
			"scheme": func(a at, v *yaml.Node) { scheme = d.scheme(a, d.str(a, v)) },
		}, nil)
		if !d.has(a.path + ".port") {
			d.errorf(a, "missing port")
		}
		if scheme != "" {
			p.Scheme = scheme
		}
		return p
	}
	d.errorf(a, "expected a port, got %s", describe(n))
	return Port{}
}

func (d *decoder) portScalar(a at, n *yaml.Node) Port {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		scheme, num, ok := strings.Cut(n.Value, ":")
		if !ok {
			scheme, num = "", scheme
		}
		i, err := strconv.Atoi(strings.TrimSpace(num))
		if err != nil {
			d.errorf(a, "expected a port like 3000 or \"https:3000\", got %s", describe(n))
			return Port{}
		}
		return Port{Port: d.portRange(a, i), Scheme: d.scheme(a, scheme)}
	}
	i, ok := d.integer(a, n)
	if !ok {
		return Port{}
	}
	return Port{Port: d.portRange(a, i)}
}

// scheme checks a main port scheme; "" stays "" for the default to fill.
func (d *decoder) scheme(a at, s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "", "http", "https", "grpc":
		return s
	}
	d.errorf(a, "unknown scheme %q (expected http, https or grpc)", s)
	return ""
}

func (d *decoder) portRange(a at, p int) int {
	if p < 1 || p > 65535 {
		d.errorf(a, "port must be between 1 and 65535, got %d", p)
		return 0
	}
	return p
}

// ports reads extra ports: 3001, "3001/udp", or {port, protocol}. Convox's
// parser rejects the map form although its docs show it; we take it.
func (d *decoder) ports(a at, n *yaml.Node) []PortSpec {
	var out []PortSpec
	d.list(a, n, func(a at, v *yaml.Node) {
		p := PortSpec{Protocol: "tcp"}
		switch {
		case v.Kind == yaml.MappingNode:
			d.fields(a, v, handlers{
				"port": func(a at, v *yaml.Node) {
					if i, ok := d.integer(a, v); ok {
						p.Port = d.portRange(a, i)
					}
				},
				"protocol": func(a at, v *yaml.Node) { p.Protocol = d.protocol(a, d.str(a, v)) },
			}, nil)
			if !d.has(a.path + ".port") {
				d.errorf(a, "missing port")
			}
		case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str":
			num, proto, hasProto := strings.Cut(v.Value, "/")
			i, err := strconv.Atoi(strings.TrimSpace(num))
			if err != nil {
				d.errorf(a, "expected a port like 3001 or \"3001/udp\", got %s", describe(v))
				return
			}
			p.Port = d.portRange(a, i)
			if hasProto {
				p.Protocol = d.protocol(a, proto)
			}
		default:
			i, ok := d.integer(a, v)
			if !ok {
				return
			}
			p.Port = d.portRange(a, i)
		}
		if p.Port > 0 && p.Protocol != "" {
			out = append(out, p)
		}
	})
	return out
}

// protocol checks a transport protocol, case-insensitively; the result is
// lower-case ("" when invalid).
func (d *decoder) protocol(a at, s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if s != "tcp" && s != "udp" {
		d.errorf(a, "unknown protocol %q (expected tcp or udp)", s)
		return ""
	}
	return s
}
