package manifest

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Balancer is an extra TCP/UDP load balancer in front of a service's ports
// (spec §1.8). There is no TLS termination on balancers.
type Balancer struct {
	Name      string         `json:"name"`
	Service   string         `json:"service"`
	Ports     []BalancerPort `json:"ports"`               // in file order
	Whitelist []string       `json:"whitelist,omitempty"` // CIDR prefixes allowed to connect; empty allows all
}

// BalancerPort forwards connections on the host's Listen port to the
// service's Target port.
type BalancerPort struct {
	Listen   int    `json:"listen"`
	Target   int    `json:"target"`
	Protocol string `json:"protocol"` // tcp or udp, lower-case like service ports
}

func (d *decoder) balancer(name string, a at, n *yaml.Node) Balancer {
	// Convox does not check balancer names; we do because they name
	// listeners and show in `convox balancers` beside the other names.
	if !validName.MatchString(name) {
		d.errorf(a, "balancer name %s invalid, %s", name, validNameRule)
	}
	b := Balancer{Name: name}
	entries := 0 // ports written, valid or not: invalid ones have their own errors
	d.fields(a, n, handlers{
		"service": func(a at, v *yaml.Node) { b.Service = strings.TrimSpace(d.str(a, v)) },
		"ports":   func(a at, v *yaml.Node) { b.Ports, entries = d.balancerPorts(a, v) },
		"whitelist": func(a at, v *yaml.Node) {
			b.Whitelist = d.cidrs(a, v, func(c string) string {
				return fmt.Sprintf("balancer %s whitelist %s is not a valid cidr range", name, c)
			})
		},
	}, []string{"annotations"})
	if entries == 0 {
		d.errorf(d.pos(a.path+".ports"), "balancer %s has no ports", name)
	}
	return b
}

// checkBalancer checks the balancer's service exists.
func (d *decoder) checkBalancer(m *Manifest, b Balancer) {
	switch _, ok := m.Service(b.Service); {
	case b.Service == "":
		d.errorf(d.pos("balancers."+b.Name), "balancer %s has blank service", b.Name)
	case !ok:
		d.errorf(d.pos("balancers."+b.Name+".service"), "balancer %s refers to unknown service %s", b.Name, b.Service)
	}
}

// balancerPorts reads the map listen → target, where a target is a port
// (TCP) or {port, protocol}. It also returns how many entries there were.
func (d *decoder) balancerPorts(a at, n *yaml.Node) ([]BalancerPort, int) {
	var ports []BalancerPort
	pairs := d.mapping(a, n)
	if n.Kind != yaml.MappingNode {
		return nil, -1 // not a map: mapping said so, "no ports" would be noise
	}
	for _, p := range pairs {
		ka := a.key(p.key.Value, p.key)
		d.seen[ka.path] = ka
		listen, err := strconv.Atoi(strings.TrimSpace(p.key.Value))
		if err != nil {
			d.errorf(ka, "expected a port number as key, got %s", describe(p.key))
			continue
		}
		bp := BalancerPort{Listen: d.portRange(ka, listen), Protocol: "tcp"}
		v := resolve(p.value)
		switch {
		case isNull(v):
			d.errorf(ka, "missing target port")
		case v.Kind == yaml.MappingNode:
			d.fields(ka, v, handlers{
				"port": func(a at, v *yaml.Node) {
					if i, ok := d.integer(a, v); ok {
						bp.Target = d.portRange(a, i)
					}
				},
				"protocol": func(a at, v *yaml.Node) { bp.Protocol = d.protocol(a, d.str(a, v)) },
			}, nil)
			if !d.has(ka.path + ".port") {
				d.errorf(ka, "missing target port")
			}
		default:
			if i, ok := d.integer(ka, v); ok {
				bp.Target = d.portRange(ka, i)
			}
		}
		if bp.Listen > 0 && bp.Target > 0 && bp.Protocol != "" {
			ports = append(ports, bp)
		}
	}
	return ports, len(pairs)
}
