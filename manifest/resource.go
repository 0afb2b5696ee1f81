package manifest

import (
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Resource is a backing service the rack runs for the app (spec §1.6).
// Whether Type is one the rack can run is the engine's to decide.
type Resource struct {
	Name    string            `json:"name"`
	Type    string            `json:"type"`              // postgres, mysql, mariadb, redis, memcached, …
	Image   string            `json:"image,omitempty"`   // custom image; overrides options.version
	Options map[string]string `json:"options,omitempty"` // version, storage, cpu, mem, …
}

// ResourceLink is one entry of a service's resources list: "name", or
// "name:ENV" to inject a single variable under a name of the app's choosing.
type ResourceLink struct {
	Name string `json:"name"`
	Env  string `json:"env,omitempty"`
}

// resourceFields are the six values a resource provides, in Convox's order.
var resourceFields = []string{"URL", "USER", "PASS", "HOST", "PORT", "NAME"}

// Vars returns the variables the link injects, given the resource's values
// keyed URL, USER, PASS, HOST, PORT and NAME (missing ones are empty).
// A plain link "my-db" gives MY_DB_URL, MY_DB_USER, … (name upper-cased,
// dashes to underscores). "my-db:DATABASE_HOST" gives only DATABASE_HOST,
// holding the field named by the last _-separated word when it is one of
// the six, and the URL otherwise, as Convox does (so DB_URL and CUSTOM_DB
// both get the URL).
func (l ResourceLink) Vars(values map[string]string) map[string]string {
	if l.Env != "" {
		field := "URL"
		if i := strings.LastIndexByte(l.Env, '_'); i >= 0 {
			for _, f := range resourceFields {
				if l.Env[i+1:] == f {
					field = f
				}
			}
		}
		return map[string]string{l.Env: values[field]}
	}
	prefix := strings.ReplaceAll(strings.ToUpper(l.Name), "-", "_")
	vars := map[string]string{}
	for _, f := range resourceFields {
		vars[prefix+"_"+f] = values[f]
	}
	return vars
}

func (d *decoder) resource(name string, a at, n *yaml.Node) Resource {
	if !validName.MatchString(name) {
		d.errorf(a, "resource name %s invalid, %s", name, validNameRule)
	}
	r := Resource{Name: name}
	d.fields(a, n, handlers{
		"type":    func(a at, v *yaml.Node) { r.Type = strings.TrimSpace(d.str(a, v)) },
		"image":   func(a at, v *yaml.Node) { r.Image = d.str(a, v) },
		"options": func(a at, v *yaml.Node) { r.Options = d.stringMap(a, v) },
	}, nil)
	if r.Type == "" {
		d.errorf(d.pos(a.path+".type"), "resource %q has blank type", name)
	}
	if len(r.Options) == 0 {
		r.Options = nil
	}
	return r
}

// envName is what a variable name may be; anything else could not be set
// in a process environment from a shell.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// resourceLinks reads a service's resources list of "name" or "name:ENV".
// That the resources exist is checked once the whole manifest is read.
func (d *decoder) resourceLinks(a at, n *yaml.Node) []ResourceLink {
	var links []ResourceLink
	d.list(a, n, func(a at, v *yaml.Node) {
		s, ok := d.text(a, v)
		if !ok {
			return
		}
		name, env, renamed := strings.Cut(s, ":")
		l := ResourceLink{Name: strings.TrimSpace(name), Env: strings.TrimSpace(env)}
		switch {
		case l.Name == "":
			d.errorf(a, "expected a resource name, got %s", describe(v))
		case renamed && !envName.MatchString(l.Env):
			d.errorf(a, "invalid variable name %q (expected name:ENV_NAME)", l.Env)
		default:
			links = append(links, l)
		}
	})
	return links
}
