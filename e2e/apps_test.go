package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAppsLifecycle runs the seed's session through the binary, with every
// error a user can meet on the way.
func TestAppsLifecycle(t *testing.T) {
	r := newRack(t)
	r.start()

	r.convox("apps").expect(t, "APP  STATUS  RELEASE\n", "", 0)
	r.convox("apps", "create", "myapp").expect(t, "Creating myapp... OK\n", "", 0)
	r.convox("apps", "info", "myapp").expect(t,
		"Name    myapp\nStatus  running\nLocked  false\nRelease \nRouter  localhost\n", "", 0)
	r.convox("apps").expect(t, "APP    STATUS   RELEASE\nmyapp  running  \n", "", 0)

	r.convox("apps", "create", "myapp").expect(t, "Creating myapp... ", "ERROR: app already exists: myapp\n", 1)
	r.convox("apps", "info", "nope").expect(t, "", "ERROR: app not found: nope\n", 1)
	r.convox("apps", "create", "rack").expect(t, "Creating rack... ", "ERROR: app name is reserved: rack\n", 1)
	r.convox("apps", "create", "My_App").expect(t, "Creating My_App... ",
		"ERROR: invalid app name: My_App: must start with a lowercase letter and contain only lowercase letters, digits and dashes\n", 1)

	r.convox("apps", "lock", "myapp").expect(t, "Locking myapp... OK\n", "", 0)
	r.convox("apps", "info", "myapp").expect(t,
		"Name    myapp\nStatus  running\nLocked  true\nRelease \nRouter  localhost\n", "", 0)
	r.convox("apps", "delete", "myapp").expect(t, "Deleting myapp... ",
		"ERROR: app is locked: myapp (run \"convox apps unlock myapp\" to allow deleting it)\n", 1)
	r.convox("apps", "unlock", "myapp").expect(t, "Unlocking myapp... OK\n", "", 0)

	r.convox("apps", "cancel", "myapp").expect(t, "Cancelling deployment of myapp... ", "ERROR: app is not updating\n", 1)
	r.convox("apps", "cancel", "nope").expect(t, "Cancelling deployment of nope... ", "ERROR: app not found: nope\n", 1)
	r.convox("apps", "lock", "nope").expect(t, "Locking nope... ", "ERROR: app not found: nope\n", 1)

	r.convox("api", "get", "/apps/myapp/budget").expect(t, "{\n  \"config\": null,\n  \"state\": null\n}\n", "", 0)
	r.convox("api", "get", "/apps").expect(t, `[
  {
    "generation": "3",
    "locked": false,
    "name": "myapp",
    "parameters": {},
    "release": "",
    "router": "localhost",
    "status": "running"
  }
]
`, "", 0)

	r.convox("apps", "delete", "myapp").expect(t, "Deleting myapp... OK\n", "", 0)
	r.convox("apps", "delete", "myapp").expect(t, "Deleting myapp... ", "ERROR: app not found: myapp\n", 1)
	r.convox("apps").expect(t, "APP  STATUS  RELEASE\n", "", 0)
}

// TestAppResolution: -a, then .convox/app, then the directory's name.
func TestAppResolution(t *testing.T) {
	r := newRack(t)
	r.start()

	dir := filepath.Join(t.TempDir(), "dirapp")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.convoxIn(dir, nil, "apps", "create").expect(t, "Creating dirapp... OK\n", "", 0)
	r.convoxIn(dir, nil, "apps", "info").expect(t,
		"Name    dirapp\nStatus  running\nLocked  false\nRelease \nRouter  localhost\n", "", 0)

	if err := os.MkdirAll(filepath.Join(dir, ".convox"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".convox", "app"), []byte("fileapp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.convoxIn(dir, nil, "apps", "create").expect(t, "Creating fileapp... OK\n", "", 0)
	r.convoxIn(dir, nil, "apps", "lock", "-a", "dirapp").expect(t, "Locking dirapp... OK\n", "", 0)
	r.convoxIn(dir, nil, "apps").expect(t,
		"APP      STATUS   RELEASE\ndirapp   running  \nfileapp  running  \n", "", 0)
}

// TestAppsDeleteRemovesDockerObjects: deleting an app removes every
// container, network and volume labelled with it, and nothing else.
func TestAppsDeleteRemovesDockerObjects(t *testing.T) {
	requireImage(t, baseImage)
	r := newRack(t)
	r.start()
	r.convox("apps", "create", "gone").expect(t, "Creating gone... OK\n", "", 0)
	r.convox("apps", "create", "kept").expect(t, "Creating kept... OK\n", "", 0)

	make := func(app string) (container, network, volume string) {
		labels := []string{"--label", "convox.rack=" + r.name, "--label", "convox.app=" + app}
		network = docker(t, append(append([]string{"network", "create"}, labels...), r.name+"-"+app)...)
		volume = docker(t, append(append([]string{"volume", "create"}, labels...), r.name+"-"+app+"-data")...)
		container = docker(t, append(append([]string{"run", "-d", "--network", r.name + "-" + app, "-v", volume + ":/data"}, labels...), baseImage, "sleep", "600")...)
		t.Cleanup(func() {
			_ = runQuiet("docker", "rm", "-f", container)
			_ = runQuiet("docker", "network", "rm", network)
			_ = runQuiet("docker", "volume", "rm", "-f", volume)
		})
		return container, network, volume
	}
	gc, gn, gv := make("gone")
	kc, kn, kv := make("kept")

	r.convox("apps", "delete", "gone").expect(t, "Deleting gone... OK\n", "", 0)

	for _, q := range []struct{ kind, id string }{{"container", gc}, {"network", gn}, {"volume", gv}} {
		if runQuiet("docker", q.kind, "inspect", q.id) == nil {
			t.Errorf("%s %s of the deleted app still exists", q.kind, q.id)
		}
	}
	for _, q := range []struct{ kind, id string }{{"container", kc}, {"network", kn}, {"volume", kv}} {
		if err := runQuiet("docker", q.kind, "inspect", q.id); err != nil {
			t.Errorf("%s %s of another app was removed", q.kind, q.id)
		}
	}
	if got := docker(t, "inspect", "-f", "{{.State.Running}}", kc); got != "true" {
		t.Errorf("container of the kept app: running = %s", got)
	}
	r.convox("apps").expect(t, "APP   STATUS   RELEASE\nkept  running  \n", "", 0)
}

func runQuiet(name string, args ...string) error {
	return exec.Command(name, args...).Run()
}

// TestHelp: every command explains itself.
func TestHelp(t *testing.T) {
	r := newRack(t)
	for _, args := range [][]string{{"--help"}, {"apps", "--help"}, {"apps", "create", "--help"}, {"rack", "start", "--help"}, {"api", "get", "--help"}} {
		res := r.convox(args...)
		if res.code != 0 || !strings.Contains(res.stdout, "Usage:") {
			t.Errorf("convox %s: exit %d, stdout %q", strings.Join(args, " "), res.code, res.stdout)
		}
	}
}
