package cli

import (
	"bytes"
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"

	"github.com/singlehost/convox/api"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the output of the tests")

// fakeRack is an in-memory rack with just enough behaviour for the CLI's
// commands. It embeds api.Rack so that a call the tests do not expect panics
// (and the server answers 500) instead of passing silently.
type fakeRack struct {
	api.Rack

	mu     sync.Mutex
	apps   map[string]*api.App
	system api.System
	// cancel is AppCancel's answer for an existing app.
	cancel error
}

func newFakeRack(apps ...api.App) *fakeRack {
	f := &fakeRack{
		apps: map[string]*api.App{},
		system: api.System{
			Name:     "dev",
			Provider: "local",
			Domain:   "localhost",
			Status:   "running",
			Version:  "3.25.0",
		},
		cancel: api.Errorf(api.ErrForbidden, "app is not updating"),
	}
	for _, a := range apps {
		f.apps[a.Name] = &a
	}
	return f
}

func (f *fakeRack) SystemGet(ctx context.Context) (*api.System, error) {
	s := f.system
	return &s, nil
}

func (f *fakeRack) AppCreate(ctx context.Context, name string) (*api.App, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.apps[name]; ok {
		return nil, api.Errorf(api.ErrConflict, "app already exists: %s", name)
	}
	a := &api.App{Name: name, Status: api.StatusRunning, Router: "localhost", Generation: "3"}
	f.apps[name] = a
	return a, nil
}

func (f *fakeRack) AppGet(ctx context.Context, name string) (*api.App, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.apps[name]
	if !ok {
		return nil, api.Errorf(api.ErrNotFound, "app not found: %s", name)
	}
	c := *a
	return &c, nil
}

func (f *fakeRack) AppList(ctx context.Context) ([]api.App, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var as []api.App
	for _, a := range f.apps {
		as = append(as, *a)
	}
	slices.SortFunc(as, func(a, b api.App) int { return strings.Compare(a.Name, b.Name) })
	return as, nil
}

func (f *fakeRack) AppUpdate(ctx context.Context, name string, opts api.AppUpdateOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.apps[name]
	if !ok {
		return api.Errorf(api.ErrNotFound, "app not found: %s", name)
	}
	if opts.Lock != nil {
		a.Locked = *opts.Lock
	}
	return nil
}

func (f *fakeRack) AppDelete(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.apps[name]
	if !ok {
		return api.Errorf(api.ErrNotFound, "app not found: %s", name)
	}
	if a.Locked {
		return api.Errorf(api.ErrConflict, "app is locked: %s", name)
	}
	delete(f.apps, name)
	return nil
}

func (f *fakeRack) AppCancel(ctx context.Context, name string) error {
	if _, err := f.AppGet(ctx, name); err != nil {
		return err
	}
	return f.cancel
}

func (f *fakeRack) AppBudget(ctx context.Context, name string) (*api.Budget, error) {
	if _, err := f.AppGet(ctx, name); err != nil {
		return nil, err
	}
	return &api.Budget{}, nil
}

// serve starts the real API server in front of rack and returns a Connect
// that hands out real clients for it.
func serve(t *testing.T, rack api.Rack) func() (*api.Client, error) {
	t.Helper()
	srv := httptest.NewServer(api.NewServer(rack, "pw", nil))
	t.Cleanup(srv.Close)
	return func() (*api.Client, error) {
		return api.NewClient("http://convox:pw@"+strings.TrimPrefix(srv.URL, "http://"), nil)
	}
}

// closedURL is the address of a server that is no longer listening.
func closedURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

// result is what one run of the CLI printed.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the CLI in-process in env (whose streams it replaces).
func run(t *testing.T, env Env, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env.Stdout, env.Stderr = &stdout, &stderr
	code := Run(context.Background(), args, env, nil)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// assertGolden compares got with testdata/<name>.golden, or rewrites the
// file under -update.
func assertGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cli -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("stdout differs from %s\ngot:\n%q\nwant:\n%q", path, got, want)
	}
}

var (
	myapp  = api.App{Name: "myapp", Status: api.StatusRunning, Release: "RABCDEFGHI", Router: "localhost", Generation: "3"}
	locked = api.App{Name: "myapp", Status: api.StatusRunning, Release: "RABCDEFGHI", Locked: true}
	other  = api.App{Name: "another-app", Status: api.StatusCreating}
)

// TestCommands runs each command against the real API server in front of a
// fake rack and compares stdout with a golden file. An empty golden name
// means stdout must be empty.
func TestCommands(t *testing.T) {
	tests := []struct {
		name string
		args []string
		apps []api.App
		// setup changes the fake's behaviour before the run.
		setup  func(f *fakeRack)
		golden string
		stderr string
		code   int
		// check inspects the rack afterwards.
		check func(t *testing.T, f *fakeRack)
	}{
		{name: "apps", args: []string{"apps"}, apps: []api.App{myapp, other}, golden: "apps"},
		{name: "apps empty", args: []string{"apps"}, golden: "apps-empty"},
		{name: "apps create", args: []string{"apps", "create", "myapp"}, golden: "apps-create",
			check: func(t *testing.T, f *fakeRack) { wantApp(t, f, "myapp", true) }},
		{name: "apps create exists", args: []string{"apps", "create", "myapp"}, apps: []api.App{myapp},
			golden: "apps-create-error", stderr: "ERROR: app already exists: myapp\n", code: 1},
		{name: "apps info", args: []string{"apps", "info", "myapp"}, apps: []api.App{myapp}, golden: "apps-info"},
		{name: "apps info no release no router", args: []string{"apps", "info", "another-app"}, apps: []api.App{other}, golden: "apps-info-bare"},
		{name: "apps info not found", args: []string{"apps", "info", "nope"},
			stderr: "ERROR: app not found: nope\n", code: 1},
		{name: "apps lock", args: []string{"apps", "lock", "myapp"}, apps: []api.App{myapp}, golden: "apps-lock",
			check: func(t *testing.T, f *fakeRack) { wantLocked(t, f, "myapp", true) }},
		{name: "apps lock not found", args: []string{"apps", "lock", "nope"},
			golden: "apps-lock-error", stderr: "ERROR: app not found: nope\n", code: 1},
		{name: "apps unlock", args: []string{"apps", "unlock", "myapp"}, apps: []api.App{locked}, golden: "apps-unlock",
			check: func(t *testing.T, f *fakeRack) { wantLocked(t, f, "myapp", false) }},
		{name: "apps cancel", args: []string{"apps", "cancel", "myapp"}, apps: []api.App{myapp},
			setup: func(f *fakeRack) { f.cancel = nil }, golden: "apps-cancel"},
		{name: "apps cancel not found", args: []string{"apps", "cancel", "nope"},
			golden: "apps-cancel-not-found", stderr: "ERROR: app not found: nope\n", code: 1},
		{name: "apps cancel not updating", args: []string{"apps", "cancel", "myapp"}, apps: []api.App{myapp},
			golden: "apps-cancel-error", stderr: "ERROR: app is not updating\n", code: 1},
		{name: "apps delete", args: []string{"apps", "delete", "myapp"}, apps: []api.App{myapp}, golden: "apps-delete",
			check: func(t *testing.T, f *fakeRack) { wantApp(t, f, "myapp", false) }},
		{name: "apps delete locked", args: []string{"apps", "delete", "myapp"}, apps: []api.App{locked}, golden: "apps-delete-error",
			stderr: "ERROR: app is locked: myapp (run \"convox apps unlock myapp\" to allow deleting it)\n", code: 1,
			check: func(t *testing.T, f *fakeRack) { wantApp(t, f, "myapp", true) }},
		{name: "apps delete not found", args: []string{"apps", "delete", "nope"},
			golden: "apps-delete-not-found", stderr: "ERROR: app not found: nope\n", code: 1},
		{name: "apps delete needs the name", args: []string{"apps", "delete"},
			stderr: "ERROR: accepts 1 arg(s), received 0\n", code: 1},
		{name: "rack", args: []string{"rack"}, golden: "rack"},
		{name: "version", args: []string{"version"}, golden: "version"},
		{name: "api get apps", args: []string{"api", "get", "/apps"}, apps: []api.App{myapp, other}, golden: "api-get-apps"},
		{name: "api get without slash", args: []string{"api", "get", "apps/myapp/budget"}, apps: []api.App{myapp}, golden: "api-get-budget"},
		{name: "api get not found", args: []string{"api", "get", "/apps/nope"},
			stderr: "ERROR: app not found: nope\n", code: 1},
		{name: "unknown command", args: []string{"nope"},
			stderr: "ERROR: unknown command \"nope\" for \"convox\"\n", code: 1},
		{name: "unknown subcommand", args: []string{"apps", "nope"},
			stderr: "ERROR: unknown command \"nope\" for \"convox apps\"\n", code: 1},
		{name: "unknown flag", args: []string{"apps", "--nope"},
			stderr: "ERROR: unknown flag: --nope\n", code: 1},
		{name: "wait is accepted", args: []string{"apps", "lock", "myapp", "--wait"}, apps: []api.App{myapp}, golden: "apps-lock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeRack(tt.apps...)
			if tt.setup != nil {
				tt.setup(fake)
			}
			res := run(t, Env{Connect: serve(t, fake), Dir: t.TempDir()}, tt.args...)
			if res.code != tt.code || res.stderr != tt.stderr {
				t.Errorf("convox %s: exit %d, stderr %q; want exit %d, stderr %q",
					strings.Join(tt.args, " "), res.code, res.stderr, tt.code, tt.stderr)
			}
			if tt.golden == "" {
				if res.stdout != "" {
					t.Errorf("stdout = %q, want none", res.stdout)
				}
			} else {
				assertGolden(t, tt.golden, res.stdout)
			}
			if tt.check != nil {
				tt.check(t, fake)
			}
		})
	}
}

func wantApp(t *testing.T, f *fakeRack, name string, exists bool) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.apps[name]; ok != exists {
		t.Errorf("app %s exists = %v, want %v", name, ok, exists)
	}
}

func wantLocked(t *testing.T, f *fakeRack, name string, locked bool) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if a := f.apps[name]; a == nil || a.Locked != locked {
		t.Errorf("app %s = %+v, want locked %v", name, a, locked)
	}
}

// TestAppResolution: the argument, then --app, then ./.convox/app, then the
// working directory's name.
func TestAppResolution(t *testing.T) {
	withFile := filepath.Join(t.TempDir(), "dirapp")
	if err := os.MkdirAll(filepath.Join(withFile, ".convox"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(withFile, ".convox", "app"), []byte("  fileapp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(t.TempDir(), "dirapp")
	if err := os.Mkdir(plain, 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		dir  string
		args []string
		want string
	}{
		{"argument wins", withFile, []string{"apps", "create", "argapp", "-a", "flagapp"}, "Creating argapp... OK\n"},
		{"flag", withFile, []string{"apps", "create", "-a", "flagapp"}, "Creating flagapp... OK\n"},
		{"flag before the command", withFile, []string{"apps", "--app", "flagapp", "create"}, "Creating flagapp... OK\n"},
		{"file", withFile, []string{"apps", "create"}, "Creating fileapp... OK\n"},
		{"directory", plain, []string{"apps", "create"}, "Creating dirapp... OK\n"},
		{"file for lock", withFile, []string{"apps", "lock"}, "Locking fileapp... "},
		{"directory for cancel", plain, []string{"apps", "cancel"}, "Cancelling deployment of dirapp... "},
		{"directory for info", plain, []string{"apps", "info"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, Env{Connect: serve(t, newFakeRack()), Dir: tt.dir}, tt.args...)
			if res.stdout != tt.want {
				t.Errorf("stdout = %q (stderr %q), want %q", res.stdout, res.stderr, tt.want)
			}
		})
	}

	// The app that info finds is the one it names.
	fake := newFakeRack(api.App{Name: "dirapp", Status: api.StatusRunning})
	res := run(t, Env{Connect: serve(t, fake), Dir: plain}, "apps", "info")
	if want := "Name    dirapp\nStatus  running\nLocked  false\nRelease \n"; res.stdout != want || res.code != 0 {
		t.Errorf("apps info in %s: exit %d, stdout %q (stderr %q), want %q", plain, res.code, res.stdout, res.stderr, want)
	}
}

// TestUnreachableRack: a rack that does not answer gets one line that says
// what to do, without the password; version still answers.
func TestUnreachableRack(t *testing.T) {
	url := closedURL(t)
	env := Env{Getenv: envMap(map[string]string{"RACK_URL": "http://convox:secret@" + strings.TrimPrefix(url, "http://")}), Dir: t.TempDir()}

	want := "ERROR: rack not reachable at " + url + ": is \"convox rack start\" running?\n"
	for _, args := range [][]string{{"apps"}, {"apps", "info", "myapp"}, {"rack"}, {"api", "get", "/apps"}} {
		res := run(t, env, args...)
		if res.code != 1 || res.stderr != want || res.stdout != "" {
			t.Errorf("convox %s: exit %d, stdout %q, stderr %q; want exit 1, stderr %q",
				strings.Join(args, " "), res.code, res.stdout, res.stderr, want)
		}
	}

	res := run(t, env, "apps", "create", "myapp")
	if res.code != 1 || res.stdout != "Creating myapp... " || res.stderr != want {
		t.Errorf("apps create: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}

	res = run(t, env, "version")
	if res.code != 0 || res.stderr != "" {
		t.Errorf("version: exit %d, stderr %q, want 0 and none", res.code, res.stderr)
	}
	assertGolden(t, "version-no-rack", res.stdout)
}

// TestRackResolution: RACK_URL, else the rack recorded in the home, else the
// default address.
func TestRackResolution(t *testing.T) {
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, api.URLFile), []byte("https://convox:pw@127.0.0.1:6443\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"RACK_URL wins", map[string]string{"RACK_URL": "https://convox:pw@rack.example:5443", "CONVOX_HOME": home}, "https://rack.example:5443"},
		{"blank RACK_URL is unset", map[string]string{"RACK_URL": "  ", "CONVOX_HOME": home}, "https://127.0.0.1:6443"},
		{"recorded in the home", map[string]string{"CONVOX_HOME": home}, "https://127.0.0.1:6443"},
		{"nothing recorded", map[string]string{"CONVOX_HOME": t.TempDir()}, "https://127.0.0.1:5443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := Env{Getenv: envMap(tt.env)}
			c, err := env.rack()
			if err != nil {
				t.Fatal(err)
			}
			if c.URL() != tt.want {
				t.Errorf("rack URL = %s, want %s", c.URL(), tt.want)
			}
		})
	}

	res := run(t, Env{Getenv: envMap(map[string]string{"RACK_URL": "ftp://x"})}, "apps")
	if res.code != 1 || !strings.HasPrefix(res.stderr, "ERROR: invalid rack url") {
		t.Errorf("invalid RACK_URL: exit %d, stderr %q", res.code, res.stderr)
	}
}

// TestRackStartGrafted: the daemon's command runs under `rack`, with the
// context and streams of the run.
func TestRackStartGrafted(t *testing.T) {
	type key struct{}
	var got any
	start := &cobra.Command{
		Use:  "start",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			got = cmd.Context().Value(key{})
			cmd.Println("started")
			return nil
		},
	}
	var stdout bytes.Buffer
	ctx := context.WithValue(context.Background(), key{}, "ctx")
	code := Run(ctx, []string{"rack", "start"}, Env{Stdout: &stdout}, start)
	if code != 0 || got != "ctx" || stdout.String() != "started\n" {
		t.Errorf("rack start: exit %d, context value %v, stdout %q", code, got, stdout.String())
	}
}

// TestHelp: every command explains itself on stdout, and `convox` alone
// prints help.
func TestHelp(t *testing.T) {
	start := &cobra.Command{Use: "start", Short: "Run the rack daemon", RunE: func(*cobra.Command, []string) error { return nil }}
	for _, args := range [][]string{nil, {"--help"}, {"apps", "--help"}, {"apps", "create", "-h"}, {"rack", "start", "--help"}, {"api", "get", "--help"}, {"version", "--help"}, {"api"}} {
		var stdout, stderr bytes.Buffer
		code := Run(context.Background(), args, Env{Stdout: &stdout, Stderr: &stderr}, start)
		if code != 0 || !strings.Contains(stdout.String(), "Usage:") || stderr.Len() > 0 {
			t.Errorf("convox %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
	}
}

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}
