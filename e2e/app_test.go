package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sampleApp copies testdata/apps/web into a temporary directory and builds
// the sample server into it, returning the directory, ready to deploy.
// edit, if given, rewrites convox.yml.
func sampleApp(t *testing.T, manifest string) string {
	t.Helper()
	requireImage(t, baseImage)
	dir := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"Dockerfile", "convox.yml", ".dockerignore"} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "apps", "web", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if manifest != "" {
		if err := os.WriteFile(filepath.Join(dir, "convox.yml"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "server"), "../testdata/apps/server")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the sample server: %v\n%s", err, out)
	}
	return dir
}

var releaseLine = regexp.MustCompile(`(?m)^Release: (R[A-Z]{10})$`)

// deploy runs `convox deploy` and returns the new release id.
func (r *rack) deploy(t *testing.T, app, dir string, args ...string) (string, result) {
	t.Helper()
	res := r.convox(append([]string{"deploy", dir, "-a", app, "--wait"}, args...)...)
	m := releaseLine.FindStringSubmatch(res.stdout)
	if m == nil {
		return "", res
	}
	return m[1], res
}

// publishedPorts returns the 127.0.0.1 ports of a service's running
// processes, as Docker reports them.
func (r *rack) publishedPorts(t *testing.T, app, service string, containerPort string) []string {
	t.Helper()
	ids := docker(t, "ps", "-q", "--filter", "label=convox.rack="+r.name, "--filter", "label=convox.app="+app, "--filter", "label=convox.service="+service)
	var ports []string
	for _, id := range strings.Fields(ids) {
		out := docker(t, "port", id, containerPort+"/tcp")
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "127.0.0.1:") {
				ports = append(ports, strings.TrimPrefix(line, "127.0.0.1:"))
			}
		}
	}
	return ports
}

// get fetches a URL and returns its body, or "" and the error text.
func get(url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		return string(b), &statusError{res.StatusCode}
	}
	return string(b), err
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

// eventually polls f until it returns true or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if f() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s", what, within)
}
