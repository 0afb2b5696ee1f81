package manifest

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// interpolation is Convox's pattern (v3:pkg/manifest/helpers.go): the
// shortest ${...}; there is no escaping and no default syntax inside.
var interpolation = regexp.MustCompile(`\$\{([^}]*?)\}`)

// interpolate replaces every ${NAME} in the raw text with env[NAME], a
// missing name becoming the empty string, before any YAML parsing (spec
// §1.1). $NAME without braces is left alone: it is often meant for a shell
// inside the container.
func interpolate(data []byte, env map[string]string) []byte {
	return interpolation.ReplaceAllFunc(data, func(m []byte) []byte {
		return []byte(env[string(m[2:len(m)-1])])
	})
}

// environment reads an environment list: KEY (required), KEY=default, or *
// (spec §1.3). Nested lists are flattened one level, as Convox did, so a
// shared list can be pulled in with an alias (- *common).
func (d *decoder) environment(a at, n *yaml.Node) []string {
	var env []string
	d.list(a, n, func(a at, v *yaml.Node) {
		if v.Kind == yaml.SequenceNode {
			d.list(a, v, func(a at, v *yaml.Node) { env = append(env, d.envEntry(a, v)...) })
			return
		}
		env = append(env, d.envEntry(a, v)...)
	})
	return env
}

func (d *decoder) envEntry(a at, v *yaml.Node) []string {
	e, ok := d.text(a, v)
	if !ok {
		return nil
	}
	if k, _, _ := strings.Cut(e, "="); strings.TrimSpace(k) == "" {
		d.errorf(a, "invalid environment declaration: %q", e)
		return nil
	}
	return []string{e}
}

// RequiredEnv checks that env, a release's environment, holds every variable
// the manifest requires: each bare KEY in a service's environment (the
// top-level list included). It fails with Convox's "required env: A, B"
// (sorted, comma-joined, no file prefix, as the CLI shows it). Convox runs
// this on every load; the engine calls it at build and promote time, when
// it knows which env applies.
func (m *Manifest) RequiredEnv(env map[string]string) error {
	missing := map[string]bool{}
	for _, s := range m.Services {
		for _, e := range s.Environment {
			if e == "*" || strings.Contains(e, "=") {
				continue
			}
			if _, ok := env[e]; !ok {
				missing[e] = true
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("required env: %s", strings.Join(slices.Sorted(maps.Keys(missing)), ", "))
}

// ServiceEnv is the environment s's processes get from the manifest and the
// release env (spec §1.3, precedence lowest first): the KEY=default entries
// of its declarations, then every key of the release env. System variables
// (APP, RACK, PORT, …) and resource URLs are the engine's to add.
//
// Every release variable goes to every service, declared or not, and * adds
// nothing: that is what Convox v3 does (v3:provider/k8s/helpers.go), whatever
// its docs say about scoping. Apps moved from a Convox rack rely on
// `convox env set` reaching all services without touching convox.yml, so
// scoping here would break them silently.
//
// It hangs off Manifest, though it only reads s, so callers need not know
// that Load has already folded the top-level environment into s.
func (m *Manifest) ServiceEnv(s Service, env map[string]string) map[string]string {
	out := map[string]string{}
	for _, e := range s.Environment {
		if k, v, ok := strings.Cut(e, "="); ok {
			out[k] = v
		}
	}
	maps.Copy(out, env)
	return out
}
