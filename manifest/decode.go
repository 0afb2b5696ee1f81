package manifest

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// at names a place in the manifest: the dotted key path and the line and
// column of the key (or list item) that leads to it. Messages point at the
// key rather than at the value because the key is what the path names.
type at struct {
	path      string
	line, col int
}

func (a at) key(name string, n *yaml.Node) at {
	if a.path == "" {
		return at{name, n.Line, n.Column}
	}
	return at{a.path + "." + name, n.Line, n.Column}
}

func (a at) index(i int, n *yaml.Node) at {
	return at{fmt.Sprintf("%s[%d]", a.path, i), n.Line, n.Column}
}

// decoder turns yaml.v3 nodes into typed values, collecting every error and
// warning instead of stopping at the first, so one run shows them all.
type decoder struct {
	file     string
	errs     []*Error
	warnings []*Error
	// seen holds every key and list item that was present with a non-null
	// value, by path. Defaults use it to tell "absent" from "zero" (as
	// Convox's attribute set does) and later checks use it for positions.
	seen map[string]at
}

func (d *decoder) errorf(a at, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: a.line, Column: a.col, Path: a.path, Message: fmt.Sprintf(format, args...)})
}

func (d *decoder) warnf(a at, format string, args ...any) {
	d.warnings = append(d.warnings, &Error{File: d.file, Line: a.line, Column: a.col, Path: a.path, Message: fmt.Sprintf(format, args...)})
}

// has reports whether the key at path was written in the manifest.
func (d *decoder) has(path string) bool {
	_, ok := d.seen[path]
	return ok
}

// pos is the position of path, or of its nearest written parent, for checks
// made after decoding (references, ranges of defaulted values).
func (d *decoder) pos(path string) at {
	for p := path; p != ""; {
		if a, ok := d.seen[p]; ok {
			return at{path, a.line, a.col}
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return at{path: path}
}

// resolve follows aliases so that *anchor reads like the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// isBlank is null or a string of blanks: what `"${VAR}"` becomes when VAR is
// unset, which should mean "use the default" as an unquoted ${VAR} does.
func isBlank(n *yaml.Node) bool {
	return isNull(n) || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && strings.TrimSpace(n.Value) == ""
}

// describe names what a node holds for "expected X, got Y" messages:
// strings quoted, other scalars as written, collections by kind.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!null":
		return "nothing"
	case "!!str":
		return strconv.Quote(n.Value)
	}
	return n.Value
}

type pair struct{ key, value *yaml.Node }

// mapping returns the pairs of a map node in file order, with merge keys
// (<<: *defaults) expanded where they stand; keys written in the map win over
// merged ones, as YAML's merge rule says. yaml.v3 only rejects duplicate keys
// when decoding into Go maps, not into Nodes, so it is done here. A null
// node is an empty map: `web:` with nothing under it is a service with every
// default, as it was for Convox.
func (d *decoder) mapping(a at, n *yaml.Node) []pair {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(a, "expected a map, got %s", describe(n))
		return nil
	}
	written := map[string]int{} // key → line
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !isMerge(k) {
			if line, dup := written[k.Value]; dup {
				d.errorf(a.key(k.Value, k), "duplicate key (first defined at line %d)", line)
				continue
			}
			written[k.Value] = k.Line
		}
	}
	var pairs []pair
	added := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if isMerge(k) {
			for _, p := range d.merged(a, v) {
				if _, ok := written[p.key.Value]; !ok && !added[p.key.Value] {
					added[p.key.Value] = true
					pairs = append(pairs, p)
				}
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(at{a.path, k.Line, k.Column}, "expected a name as key, got %s", describe(k))
			continue
		}
		if added[k.Value] {
			continue // a duplicate, reported above
		}
		added[k.Value] = true
		pairs = append(pairs, pair{k, v})
	}
	return pairs
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// merged returns the pairs a merge key brings in: one map, or a list of maps
// where earlier maps win.
func (d *decoder) merged(a at, v *yaml.Node) []pair {
	v = resolve(v)
	if v.Kind != yaml.SequenceNode {
		return d.mapping(a, v)
	}
	var pairs []pair
	seen := map[string]bool{}
	for _, item := range v.Content {
		for _, p := range d.mapping(a, item) {
			if !seen[p.key.Value] {
				seen[p.key.Value] = true
				pairs = append(pairs, p)
			}
		}
	}
	return pairs
}

// handlers maps each key a map understands to the function that decodes its
// value. Handlers get the value with aliases resolved, never a blank one.
type handlers map[string]func(a at, v *yaml.Node)

// fields decodes a map key by key. A null or blank value counts as absent,
// as a null did for Convox's yaml.v2 parser (so `port: ${PORT}` with PORT
// unset means no port, quoted or not). Keys in ignored mean something only in Convox's cloud and are
// skipped silently, so manifests move between racks unchanged; keys starting
// with "x-" are the usual home of YAML anchors and are skipped too. Any other
// key gets a warning naming the closest known key: a typo should be visible,
// but Convox never rejected unknown keys, so neither do we.
func (d *decoder) fields(a at, n *yaml.Node, known handlers, ignored []string) {
	for _, p := range d.mapping(a, n) {
		name := p.key.Value
		ka := a.key(name, p.key)
		if h, ok := known[name]; ok {
			if v := resolve(p.value); !isBlank(v) {
				d.seen[ka.path] = ka
				h(ka, v)
			}
			continue
		}
		if slices.Contains(ignored, name) || strings.HasPrefix(name, "x-") {
			continue
		}
		if s := suggest(name, slices.Concat(slices.Collect(maps.Keys(known)), ignored)); s != "" {
			d.warnf(ka, "unknown key (did you mean %q?)", s)
		} else {
			d.warnf(ka, "unknown key")
		}
	}
}

// named walks a map of name → item (services, resources, timers,
// balancers) in file order, which is the order Convox lists them in.
func (d *decoder) named(a at, n *yaml.Node, item func(name string, a at, v *yaml.Node)) {
	for _, p := range d.mapping(a, n) {
		ka := a.key(p.key.Value, p.key)
		d.seen[ka.path] = ka
		item(p.key.Value, ka, resolve(p.value))
	}
}

// list calls item for each element of a list node, aliases resolved.
func (d *decoder) list(a at, n *yaml.Node, item func(a at, v *yaml.Node)) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(a, "expected a list, got %s", describe(n))
		return
	}
	for i, v := range n.Content {
		ia := a.index(i, v)
		d.seen[ia.path] = ia
		item(ia, resolve(v))
	}
}

// str reads any scalar as its text: `image: 123` is the string "123", as
// yaml.v2 would have read it into a string field.
func (d *decoder) str(a at, n *yaml.Node) string {
	s, _ := d.text(a, n)
	return s
}

// text is str that also says whether the node was a scalar, for callers
// with further checks that would only repeat the type error.
func (d *decoder) text(a at, n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(a, "expected a string, got %s", describe(n))
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	return n.Value, true
}

// integer reads a YAML integer, or a string holding one: `count: "${COUNT}"`
// is a common way to interpolate and should not be a type error.
func (d *decoder) integer(a at, n *yaml.Node) (int, bool) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int":
			var i int
			if err := n.Decode(&i); err == nil {
				return i, true
			}
		case "!!str":
			if i, err := strconv.Atoi(strings.TrimSpace(n.Value)); err == nil {
				return i, true
			}
		}
	}
	d.errorf(a, "expected an integer, got %s", describe(n))
	return 0, false
}

// natural is an integer that may not be negative.
func (d *decoder) natural(a at, n *yaml.Node) int {
	i, ok := d.integer(a, n)
	if ok && i < 0 {
		d.errorf(a, "can not be negative, got %d", i)
		return 0
	}
	return i
}

// boolean reads true/false and, because Convox parsed manifests with
// yaml.v2 (YAML 1.1), also yes/no/on/off/y/n in any case, quoted or not.
func (d *decoder) boolean(a at, n *yaml.Node) bool {
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!bool" || n.ShortTag() == "!!str") {
		switch strings.ToLower(strings.TrimSpace(n.Value)) {
		case "true", "yes", "on", "y":
			return true
		case "false", "no", "off", "n":
			return false
		}
	}
	d.errorf(a, "expected a boolean, got %s", describe(n))
	return false
}

// strs reads a list of strings.
func (d *decoder) strs(a at, n *yaml.Node) []string {
	var out []string
	d.list(a, n, func(a at, v *yaml.Node) { out = append(out, d.str(a, v)) })
	return out
}

// commaList reads a comma-separated string or a list of strings, trimming
// items and dropping blank ones (so `domain: ${HOST}` with HOST unset is no
// domain rather than an empty one).
func (d *decoder) commaList(a at, n *yaml.Node) []string {
	var raw []string
	switch n.Kind {
	case yaml.ScalarNode:
		raw = strings.Split(d.str(a, n), ",")
	case yaml.SequenceNode:
		raw = d.strs(a, n)
	default:
		d.errorf(a, "expected a string or a list, got %s", describe(n))
	}
	var out []string
	for _, s := range raw {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// stringMap reads a map of scalars, such as resource options.
func (d *decoder) stringMap(a at, n *yaml.Node) map[string]string {
	out := map[string]string{}
	for _, p := range d.mapping(a, n) {
		ka := a.key(p.key.Value, p.key)
		d.seen[ka.path] = ka
		out[p.key.Value] = d.str(ka, resolve(p.value))
	}
	return out
}
