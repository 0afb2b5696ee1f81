package engine

import (
	"sort"
	"strings"
)

// parseEnv reads Convox's env text: KEY=VALUE lines; lines without "=" or
// with an empty key are dropped, keys are trimmed, values kept verbatim
// (spec §1.3).
func parseEnv(text string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			continue
		}
		env[k] = strings.TrimSuffix(v, "\r")
	}
	return env
}

// formatEnv renders env as sorted KEY=VALUE lines.
func formatEnv(env map[string]string) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k + "=" + env[k])
	}
	return b.String()
}

// envDescription describes the change from old to new as Convox does:
// "env add:A,B change:C remove:D", sorted, empty parts left out.
func envDescription(old, new map[string]string) string {
	var add, change, remove []string
	for k, v := range new {
		if ov, ok := old[k]; !ok {
			add = append(add, k)
		} else if ov != v {
			change = append(change, k)
		}
	}
	for k := range old {
		if _, ok := new[k]; !ok {
			remove = append(remove, k)
		}
	}
	parts := []string{"env"}
	for _, p := range []struct {
		name string
		keys []string
	}{{"add", add}, {"change", change}, {"remove", remove}} {
		if len(p.keys) > 0 {
			sort.Strings(p.keys)
			parts = append(parts, p.name+":"+strings.Join(p.keys, ","))
		}
	}
	return strings.Join(parts, " ")
}
