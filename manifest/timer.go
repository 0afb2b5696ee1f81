package manifest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Timer runs a command on a schedule in a new process of Service (spec §1.7).
type Timer struct {
	Name     string `json:"name"`
	Schedule string `json:"schedule"` // 5-field cron in UTC, or a descriptor such as @daily
	Service  string `json:"service"`
	Command  string `json:"command,omitempty"` // as written; see Args

	// Concurrency is what to do when a run is due while the last is still
	// going: Allow (start another), Forbid (skip) or Replace (stop the old).
	Concurrency string `json:"concurrency"`
	// ParallelCount is how many processes each run starts, each with
	// TIMER_INDEX set to 0…ParallelCount−1.
	ParallelCount int `json:"parallelCount"`
}

// Args is the command split into arguments, as Service.Args.
func (t Timer) Args() []string {
	args, _ := splitWords(t.Command)
	return args
}

func (d *decoder) timer(name string, a at, n *yaml.Node) Timer {
	if !validName.MatchString(name) {
		d.errorf(a, "timer name %s invalid, %s", name, validNameRule)
	}
	// Defaults (spec §1.7): Allow, one process per run.
	t := Timer{Name: name, Concurrency: "Allow", ParallelCount: 1}
	d.fields(a, n, handlers{
		"schedule":    func(a at, v *yaml.Node) { t.Schedule = d.schedule(a, name, d.str(a, v)) },
		"service":     func(a at, v *yaml.Node) { t.Service = strings.TrimSpace(d.str(a, v)) },
		"command":     func(a at, v *yaml.Node) { t.Command = d.command(a, v) },
		"concurrency": func(a at, v *yaml.Node) { t.Concurrency = d.concurrency(a, d.str(a, v)) },
		"parallelCount": func(a at, v *yaml.Node) {
			if i, ok := d.integer(a, v); ok && i < 1 {
				d.errorf(a, "must be at least 1, got %d", i)
			} else if ok {
				t.ParallelCount = i
			}
		},
	}, []string{"annotations"})
	if !d.has(a.path + ".schedule") {
		d.errorf(a, "timer %s has no schedule", name)
	}
	return t
}

// checkTimer checks the timer's service exists; it may be scaled to 0.
func (d *decoder) checkTimer(m *Manifest, t Timer) {
	switch _, ok := m.Service(t.Service); {
	case t.Service == "":
		d.errorf(d.pos("timers."+t.Name), "timer %s has blank service", t.Name)
	case !ok:
		d.errorf(d.pos("timers."+t.Name+".service"), "timer %s references a service that does not exist: %s", t.Name, t.Service)
	}
}

// concurrency reads Allow, Forbid or Replace in any case, written back in
// Convox's title case.
func (d *decoder) concurrency(a at, s string) string {
	for _, c := range []string{"Allow", "Forbid", "Replace"} {
		if strings.EqualFold(strings.TrimSpace(s), c) {
			return c
		}
	}
	d.errorf(a, "expected Allow, Forbid or Replace, got %q", s)
	return "Allow"
}

// descriptors are the named schedules both Kubernetes CronJobs (Convox v3)
// and robfig/cron (our scheduler) accept. @every is robfig-only, so a
// manifest using it would not run on Convox; it is refused.
var descriptors = []string{"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}

// schedule normalises a cron schedule as Convox v3's compatibility pass
// does (spec §1.7): only the first 5 fields are kept (v2's AWS cron had 6)
// and a "?" field becomes "*". It then checks each field, so a bad
// schedule fails here, with its line, rather than at promote.
func (d *decoder) schedule(a at, timer, s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "@") {
		if !slices.Contains(descriptors, strings.ToLower(s)) {
			d.errorf(a, "invalid schedule %q: expected 5 cron fields or one of %s", s, strings.Join(descriptors, ", "))
		}
		return strings.ToLower(s)
	}
	fields := strings.Fields(s)
	if len(fields) < 5 {
		d.errorf(a, "invalid schedule %q: expected 5 cron fields (minute hour day-of-month month day-of-week), got %d", s, len(fields))
		return s
	}
	fields = fields[:5]
	for i, f := range fields {
		if f == "?" {
			fields[i] = "*"
		}
	}
	s = strings.Join(fields, " ")
	if strings.Contains(s, "?") {
		d.errorf(a, "timer %s invalid, schedule cannot contain ?", timer)
		return s
	}
	for i, f := range fields {
		if err := cronFields[i].check(f); err != nil {
			d.errorf(a, "invalid schedule %q: %v", s, err)
			break
		}
	}
	return s
}

// cronField is one field of a standard 5-field cron expression.
type cronField struct {
	name     string
	min, max int
	names    []string // names for min, min+1, … (months, weekdays)
}

var cronFields = []cronField{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{name: "day of week", min: 0, max: 6, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// check accepts what robfig/cron's standard parser accepts: a comma list
// of *, N, N-M or a name, each optionally followed by /step.
func (c cronField) check(f string) error {
	for _, item := range strings.Split(f, ",") {
		rng, step, hasStep := strings.Cut(item, "/")
		if hasStep {
			if n, err := strconv.Atoi(step); err != nil || n < 1 {
				return fmt.Errorf("%s step %q is not a positive number", c.name, step)
			}
		}
		if rng == "*" {
			continue
		}
		lo, hi, isRange := strings.Cut(rng, "-")
		from, err := c.value(lo)
		if err != nil {
			return err
		}
		to := from
		if isRange {
			if to, err = c.value(hi); err != nil {
				return err
			}
			if to < from {
				return fmt.Errorf("%s range %s ends before it starts", c.name, rng)
			}
		}
	}
	return nil
}

func (c cronField) value(s string) (int, error) {
	if i := slices.Index(c.names, strings.ToLower(s)); i >= 0 {
		return c.min + i, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a number", c.name, s)
	}
	if n < c.min || n > c.max {
		return 0, fmt.Errorf("%s %d is out of range %d-%d", c.name, n, c.min, c.max)
	}
	return n, nil
}
