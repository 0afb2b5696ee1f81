package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRackStartFirstRun: the home and its secrets are created private, the
// API needs the password, and the rack registers itself for the official CLI.
func TestRackStartFirstRun(t *testing.T) {
	r := newRack(t)
	r.start()

	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{"", 0o700}, {"rack.db", 0o600}, {"password", 0o600}, {"rack.crt", 0o600}, {"rack.key", 0o600}, {"rack.url", 0o600}} {
		fi, err := os.Stat(filepath.Join(r.home, f.name))
		if err != nil {
			t.Errorf("%s: %v", f.name, err)
			continue
		}
		if got := fi.Mode().Perm(); got != f.mode {
			t.Errorf("%s: mode %o, want %o", filepath.Join(r.home, f.name), got, f.mode)
		}
	}

	rackURL := "https://convox:" + r.password() + "@" + r.listen
	if got, _ := os.ReadFile(filepath.Join(r.config, "racks", r.name)); string(got) != rackURL {
		t.Errorf("racks/%s = %q, want %q", r.name, got, rackURL)
	}
	if got, _ := os.ReadFile(filepath.Join(r.config, "rack")); string(got) != r.name {
		t.Errorf("rack = %q, want %q", got, r.name)
	}

	for _, pw := range []string{"wrong", ""} {
		res, err := r.request("GET", "/apps", pw)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized || body != "invalid authentication\n" || res.Header.Get("WWW-Authenticate") != `Basic realm="convox"` {
			t.Errorf("password %q: got %d %q (WWW-Authenticate %q), want 401 \"invalid authentication\"", pw, res.StatusCode, body, res.Header.Get("WWW-Authenticate"))
		}
	}

	// RACK_URL, in the official CLI's form, reaches the same rack from anywhere.
	res := runConvox(t, "", append(r.env(), "CONVOX_HOME="+t.TempDir(), "RACK_URL="+rackURL), "", "rack")
	res.expect(t, "Name     "+r.name+"\nProvider local\nRouter   localhost\nStatus   running\nVersion  3.25.0\n", "", 0)
	r.convox("version").expect(t, "client: 3.25.0\nserver: 3.25.0\n", "", 0)
}

// TestRackRestartKeepsAppsAndContainers: apps persist in bbolt, and stopping
// the daemon leaves containers running.
func TestRackRestartKeepsAppsAndContainers(t *testing.T) {
	requireImage(t, baseImage)
	r := newRack(t)
	r.start()
	r.convox("apps", "create", "persist").expect(t, "Creating persist... OK\n", "", 0)
	r.convox("apps", "lock", "persist").expect(t, "Locking persist... OK\n", "", 0)
	c := docker(t, "run", "-d", "--label", "convox.rack="+r.name, "--label", "convox.app=persist", baseImage, "sleep", "600")
	t.Cleanup(func() { _ = runQuiet("docker", "rm", "-f", c) })

	r.stop()
	if code := r.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("rack exit code after SIGTERM = %d, want 0\n%s", code, r.stderr)
	}
	if got := docker(t, "inspect", "-f", "{{.State.Running}}", c); got != "true" {
		t.Errorf("container running after the daemon stopped = %s, want true", got)
	}
	r.convox("apps").expect(t, "", `ERROR: rack not reachable at https://`+r.listen+`: is "convox rack start" running?`+"\n", 1)
	r.convox("version").expect(t, "client: 3.25.0\nserver: none\n", "", 0)

	r.start()
	r.convox("apps").expect(t, "APP      STATUS   RELEASE\npersist  running  \n", "", 0)
	r.convox("apps", "info", "persist").expect(t,
		"Name    persist\nStatus  running\nLocked  true\nRelease \nRouter  localhost\n", "", 0)
}

// TestRackStartRefusals: each reason not to start is one line and exit 1,
// and never a hang.
func TestRackStartRefusals(t *testing.T) {
	running := newRack(t)
	running.start()

	t.Run("same home", func(t *testing.T) {
		second := newRack(t)
		second.home = running.home
		second.spawn(nil)
		code, out := second.wait()
		wantLine(t, code, out, "ERROR: another rack is already running with home "+running.home+" (stop it first, or use --home)")
	})
	t.Run("port taken", func(t *testing.T) {
		second := newRack(t)
		second.listen = running.listen
		second.spawn(nil)
		code, out := second.wait()
		wantLine(t, code, out, "ERROR: cannot listen on "+running.listen+": bind: address already in use (is another rack using that port? try --listen)")
	})
	t.Run("docker down", func(t *testing.T) {
		second := newRack(t)
		second.spawn(nil, "DOCKER_HOST=unix:///nonexistent/docker.sock")
		code, out := second.wait()
		if code != 1 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "ERROR: docker engine at unix:///nonexistent/docker.sock does not answer: ") || !strings.HasSuffix(out, ": start the Docker engine and retry\n") {
			t.Errorf("got exit %d, output %q", code, out)
		}
	})
	t.Run("bad resource image flag", func(t *testing.T) {
		second := newRack(t)
		second.spawn([]string{"--resource-image", "postgres"})
		code, out := second.wait()
		wantLine(t, code, out, `ERROR: invalid --resource-image "postgres": want TYPE=IMAGE, e.g. postgres=postgres:16`)
	})
	t.Run("bad proxy loops flag", func(t *testing.T) {
		second := newRack(t)
		second.spawn([]string{"--proxy-loops", "-1"})
		code, out := second.wait()
		wantLine(t, code, out, `ERROR: invalid --proxy-loops -1: want 0 (one per two CPUs) or more`)
	})
	t.Run("bad environment", func(t *testing.T) {
		second := newRack(t)
		second.spawn(nil, "CONVOX_PROXY_LOOPS=many")
		code, out := second.wait()
		wantLine(t, code, out, `ERROR: invalid CONVOX_PROXY_LOOPS "many": want a whole number`)
	})
}

func wantLine(t *testing.T, code int, out, line string) {
	t.Helper()
	if code != 1 || out != line+"\n" {
		t.Errorf("got exit %d, output %q\nwant exit 1, output %q", code, out, line+"\n")
	}
}

// TestCLIWithoutRack: the CLI says what to do when nothing answers.
func TestCLIWithoutRack(t *testing.T) {
	r := newRack(t)
	r.convox("apps").expect(t, "", `ERROR: rack not reachable at https://127.0.0.1:5443: is "convox rack start" running?`+"\n", 1)
	runConvox(t, "", append(r.env(), "RACK_URL=https://convox:pw@"+r.listen), "", "apps", "info", "x").
		expect(t, "", `ERROR: rack not reachable at https://`+r.listen+`: is "convox rack start" running?`+"\n", 1)
}
