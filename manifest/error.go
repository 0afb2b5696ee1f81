package manifest

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem found in a manifest. Load returns every problem it
// finds, joined with errors.Join (one per line, in line order), except that
// a YAML syntax error is returned alone; errors.As reaches the first.
type Error struct {
	File    string // the Name option, "convox.yml" by default
	Line    int    // 1-based; 0 when yaml.v3 gave no line
	Column  int    // 1-based; 0 when unknown
	Path    string // dotted key path, list items as [i]: "services.web.ports[1]"; empty for the whole file
	Message string
}

// Error renders the problem as "convox.yml:7: services.web.scale.count: message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// sorted orders problems by line, keeping the order they were found in
// within a line, so decode errors and later checks read top to bottom.
func sorted(list []*Error) []*Error {
	slices.SortStableFunc(list, func(a, b *Error) int { return a.Line - b.Line })
	return list
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 parse error ("yaml: line 3: …") into an Error
// that reads like every other manifest error.
//
// yaml.v3 reports the line where the enclosing structure began, so a
// mis-indented key on line 9 of a service is blamed on line 1. The line of
// the mistake is the first line at which the text so far fails to parse
// with the same message; a manifest is small, so parsing its prefixes is
// cheap. If no prefix matches (the message depends on what follows),
// yaml.v3's line stands.
func syntaxError(file string, data []byte, err error) *Error {
	e := &Error{File: file, Message: strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Message = m[2]
	}
	lines := strings.SplitAfter(string(data), "\n")
	for n := max(e.Line, 1); n < len(lines); n++ {
		var doc yaml.Node
		perr := yaml.Unmarshal([]byte(strings.Join(lines[:n], "")), &doc)
		if perr != nil && strings.HasSuffix(perr.Error(), ": "+e.Message) {
			e.Line = n
			break
		}
	}
	return e
}

// suggest returns the candidate closest to a mistyped key, or "" when none
// is close enough to be a likely typo (at most two edits, and no more than
// half the key's length, so short keys do not match everything).
func suggest(key string, candidates []string) string {
	slices.Sort(candidates)
	best, bestDist := "", 3
	for _, c := range candidates {
		dist := distance(strings.ToLower(key), strings.ToLower(c))
		if dist < bestDist && dist*2 <= len(key) {
			best, bestDist = c, dist
		}
	}
	return best
}

// distance is the Levenshtein edit distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
