package main

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/singlehost/convox"

// ours lists, for each package of the module, the only packages of ours it
// may import (../shared/design.md, "Packages and who may import whom").
var ours = map[string][]string{
	"":          {"cli", "rack"},
	"cli":       {"api"},
	"api":       {},
	"engine":    {"api", "store", "manifest", "logs"},
	"store":     {"api"},
	"manifest":  {},
	"router":    {},
	"balancer":  {},
	"storage":   {},
	"scheduler": {},
	"logs":      {},
	"docker":    {"engine"},
	"rack":      {"api", "engine", "store", "docker", "manifest", "router", "balancer", "storage", "scheduler", "logs"},
	// e2e and bench drive the built binary, as a user would; the balancer
	// benchmark also runs the balancer package alone, to measure it
	// without the rack around it. The benchmarks share their harness in
	// bench/internal, which drives the binary too and so imports nothing
	// of ours.
	"e2e":            {},
	"bench":          {"balancer", "bench/internal"},
	"bench/internal": {},
	// Test support only: router and e2e tests import it to run pebble.
	"internal/pebbletest": {"internal/porttest"},
	"internal/porttest":   {},
	// Test support only: router and balancer tests find their loops' sockets.
	"internal/socktest": {},
}

// rule is the key of ours whose rules path (relative to the module)
// follows: the longest key that is path or one of its parent directories.
// Sub-packages (test helpers) follow their parent's rules.
func rule(path string) string {
	best := path
	if i := strings.Index(path, "/"); i >= 0 {
		best = path[:i]
	}
	for key := range ours {
		if (path == key || strings.HasPrefix(path, key+"/")) && len(key) > len(best) {
			best = key
		}
	}
	return best
}

// owners names the one package of ours allowed to import each third-party
// package: the boundary stays in one place.
var owners = map[string]string{
	"github.com/docker/docker":  "docker",
	"go.etcd.io/bbolt":          "store",
	"github.com/minio/minio-go": "storage",
	"github.com/robfig/cron":    "scheduler",
	"gopkg.in/yaml.v3":          "manifest",
}

type listedPackage struct {
	ImportPath string
	Imports    []string
}

func TestDependencyRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decoding go list: %v", err)
		}
		name := rule(strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/"))
		allowed, known := ours[name]
		if !known {
			t.Errorf("package %s has no dependency rule: add it to deps_test.go and ../shared/design.md", p.ImportPath)
			continue
		}
		seen++
		for _, imp := range p.Imports {
			if dep, ok := strings.CutPrefix(imp, module+"/"); ok {
				dep = rule(dep)
				if dep != name && !slices.Contains(allowed, dep) {
					t.Errorf("%s imports %s: only %v of ours are allowed", p.ImportPath, imp, allowed)
				}
				continue
			}
			for prefix, owner := range owners {
				if strings.HasPrefix(imp, prefix) && name != owner {
					t.Errorf("%s imports %s: only package %s may", p.ImportPath, imp, owner)
				}
			}
		}
	}
	if seen == 0 {
		t.Fatal("go list returned no packages")
	}
}
