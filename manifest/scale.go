package manifest

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Scale is a service's size. Field names follow Convox (Cpu, not CPU)
// because the engine and API already speak them.
type Scale struct {
	Count  Count `json:"count"`
	Cpu    int   `json:"cpu"`    // millicores requested
	Memory int   `json:"memory"` // MB requested
	Limit  Limit `json:"limit"`
}

// Count is the number of processes: Min runs, Max bounds autoscaling
// (which a single host does not do). Count 0 is allowed: a template
// service that only timers run.
type Count struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// Limit caps a process; zero means no cap.
type Limit struct {
	Cpu    int `json:"cpu,omitempty"`    // millicores
	Memory int `json:"memory,omitempty"` // MB
}

// Deployment bounds a rolling update, in percent of the count: at least
// Minimum healthy, at most Maximum in total.
type Deployment struct {
	Minimum int `json:"minimum"`
	Maximum int `json:"maximum"`
}

// scaleCloudOnly are scale keys for GPUs and cluster autoscalers.
var scaleCloudOnly = []string{"autoscale", "cooldown", "gpu", "keda", "targets", "vpa"}

// scale reads a count (2 or "1-3"), or a map {count, cpu, memory, limit},
// where Convox's newer min/max keys may stand in for count.
func (d *decoder) scale(a at, n *yaml.Node) Scale {
	var s Scale
	if n.Kind == yaml.ScalarNode {
		// The short form is the count: record it so defaults see one.
		d.seen[a.path+".count"] = a
		s.Count = d.countScalar(a, n)
		return s
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(a, "expected a count or a map, got %s", describe(n))
		return s
	}
	var minMax Count
	d.fields(a, n, handlers{
		"count":  func(a at, v *yaml.Node) { s.Count = d.count(a, v) },
		"cpu":    func(a at, v *yaml.Node) { s.Cpu = d.natural(a, v) },
		"memory": func(a at, v *yaml.Node) { s.Memory = d.natural(a, v) },
		"min":    func(a at, v *yaml.Node) { minMax.Min = d.natural(a, v) },
		"max":    func(a at, v *yaml.Node) { minMax.Max = d.natural(a, v) },
		"limit": func(a at, v *yaml.Node) {
			d.fields(a, v, handlers{
				"cpu":    func(a at, v *yaml.Node) { s.Limit.Cpu = d.natural(a, v) },
				"memory": func(a at, v *yaml.Node) { s.Limit.Memory = d.natural(a, v) },
			}, nil)
		},
	}, scaleCloudOnly)
	hasMin, hasMax := d.has(a.path+".min"), d.has(a.path+".max")
	if hasMin || hasMax {
		if d.has(a.path + ".count") {
			d.errorf(d.pos(a.path+".count"), "set either count or min and max, not both")
		} else {
			s.Count = d.countBounds(a, minMax, hasMin, hasMax)
		}
	}
	return s
}

// count reads 2, "2", "1-3", or {min, max}.
func (d *decoder) count(a at, n *yaml.Node) Count {
	if n.Kind != yaml.MappingNode {
		return d.countScalar(a, n)
	}
	var c Count
	d.fields(a, n, handlers{
		"min": func(a at, v *yaml.Node) { c.Min = d.natural(a, v) },
		"max": func(a at, v *yaml.Node) { c.Max = d.natural(a, v) },
	}, nil)
	return d.countBounds(a, c, d.has(a.path+".min"), d.has(a.path+".max"))
}

func (d *decoder) countScalar(a at, n *yaml.Node) Count {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && strings.Contains(n.Value, "-") {
		lo, hi, _ := strings.Cut(n.Value, "-")
		i, err1 := strconv.Atoi(strings.TrimSpace(lo))
		j, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || i < 0 {
			d.errorf(a, "expected a range like \"1-3\", got %s", describe(n))
			return Count{}
		}
		return d.countBounds(a, Count{i, j}, true, true)
	}
	i := d.natural(a, n)
	return Count{i, i}
}

// countBounds completes a range given by either end: a missing max is the
// min; a missing min is 1, or the max when that is lower.
func (d *decoder) countBounds(a at, c Count, hasMin, hasMax bool) Count {
	if !hasMin {
		c.Min = min(1, c.Max)
	}
	if !hasMax {
		c.Max = c.Min
	}
	if c.Max < c.Min {
		d.errorf(a, "maximum (%d) can not be less than minimum (%d)", c.Max, c.Min)
	}
	return c
}

// scaleDefaults applies Convox's scale defaults: count 1 when none is
// given (even if other scale keys are), cpu 250 and memory 512 unless a
// limit is set, in which case the request is the limit (zero counts as
// unset for both, as in Convox). Then a limit below its request is an
// error, since Docker would refuse or throttle it at once.
func (d *decoder) scaleDefaults(a at, s *Scale) {
	p := a.path + ".scale"
	if !d.has(p+".count") && !d.has(p+".min") && !d.has(p+".max") {
		s.Count = Count{Min: 1, Max: 1}
	}
	if s.Cpu == 0 {
		s.Cpu = 250
		if s.Limit.Cpu > 0 {
			s.Cpu = s.Limit.Cpu
		}
	}
	if s.Memory == 0 {
		s.Memory = 512
		if s.Limit.Memory > 0 {
			s.Memory = s.Limit.Memory
		}
	}
	if s.Limit.Cpu > 0 && s.Limit.Cpu < s.Cpu {
		d.errorf(d.pos(p+".limit.cpu"), "cpu limit (%d) can not be less than the cpu request (%d)", s.Limit.Cpu, s.Cpu)
	}
	if s.Limit.Memory > 0 && s.Limit.Memory < s.Memory {
		d.errorf(d.pos(p+".limit.memory"), "memory limit (%d) can not be less than the memory request (%d)", s.Limit.Memory, s.Memory)
	}
}

// deployment reads {minimum, maximum}, each checked against Convox's
// ranges; defaults depend on agent and singleton and come later.
func (d *decoder) deployment(a at, n *yaml.Node) Deployment {
	var dep Deployment
	d.fields(a, n, handlers{
		"minimum": func(a at, v *yaml.Node) {
			if i, ok := d.integer(a, v); ok && (i < 0 || i > 100) {
				d.errorf(a, "must be between 0 and 100, got %d", i)
			} else {
				dep.Minimum = i
			}
		},
		"maximum": func(a at, v *yaml.Node) {
			if i, ok := d.integer(a, v); ok && (i < 100 || i > 200) {
				d.errorf(a, "must be between 100 and 200, got %d", i)
			} else {
				dep.Maximum = i
			}
		},
	}, nil)
	return dep
}
