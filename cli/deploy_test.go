package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/singlehost/convox/api"
)

// TestDeployCommands runs the commands that build, release, deploy and run
// an app against the real API server in front of a deployRack, and compares
// stdout (and, where it carries the progress, stderr) with golden files.
func TestDeployCommands(t *testing.T) {
	pending := api.App{Name: "myapp", Status: api.StatusUpdating, Release: "RABCDEFGHI"}
	tests := []struct {
		name string
		args []string
		// setup changes the fake and the run's surroundings.
		setup func(t *testing.T, d *deployRack, env *Env)
		// golden is stdout's golden file; "" means stdout must be empty
		// unless stdout is given.
		golden string
		stdout string
		// stderr is stderr exactly, unless stderrGolden names its file.
		stderr       string
		stderrGolden string
		code         int
		check        func(t *testing.T, d *deployRack, env *Env)
	}{
		// build
		{name: "build", args: []string{"build", "-a", "myapp", "-d", "my build"},
			setup:  func(t *testing.T, d *deployRack, env *Env) { d.buildStatuses = []string{"running", "complete"} },
			golden: "build",
			check: func(t *testing.T, d *deployRack, env *Env) {
				wantUpload(t, d)
				want := api.BuildCreateOptions{Description: "my build", Manifest: "convox.yml"}
				if !reflect.DeepEqual(d.buildOpts, want) {
					t.Errorf("build options = %+v, want %+v", d.buildOpts, want)
				}
			}},
		{name: "build a directory with flags", args: []string{"build", "src", "-a", "myapp", "--build-args", "A=1", "--build-args", "B=x,y",
			"--no-cache", "-m", "other.yml", "--development", "--external", "--wait"},
			setup: func(t *testing.T, d *deployRack, env *Env) {
				d.buildStatuses = []string{"complete"}
				env.Dir = filepath.Dir(env.Dir)
				if err := os.Rename(filepath.Join(env.Dir, "myapp"), filepath.Join(env.Dir, "src")); err != nil {
					t.Fatal(err)
				}
			},
			golden: "build-flags",
			check: func(t *testing.T, d *deployRack, env *Env) {
				want := api.BuildCreateOptions{Manifest: "other.yml", NoCache: true, BuildArgs: []string{"A=1", "B=x", "y"}}
				if !reflect.DeepEqual(d.buildOpts, want) {
					t.Errorf("build options = %+v, want %+v (the wire joins build args with commas)", d.buildOpts, want)
				}
			}},
		{name: "build --id", args: []string{"build", "-a", "myapp", "-d", "x", "--id"},
			setup: func(t *testing.T, d *deployRack, env *Env) {
				d.buildStatuses = []string{"complete"}
				d.buildLog = "a log without a final newline"
			},
			stdout: "RNEW000002", stderrGolden: "build-id-stderr"},
		{name: "build failed", args: []string{"build", "-a", "myapp", "-d", "x"},
			setup: func(t *testing.T, d *deployRack, env *Env) {
				d.buildStatuses = []string{"failed"}
				d.buildLog = "Step 1/2 : RUN exit 3\nThe command '/bin/sh -c exit 3' returned a non-zero code: 3\n"
			},
			golden: "build-failed", stderr: "ERROR: build failed\n", code: 1},
		{name: "build unexpected status", args: []string{"build", "-a", "myapp", "-d", "x"},
			setup:  func(t *testing.T, d *deployRack, env *Env) { d.buildStatuses = []string{"exploded"} },
			golden: "build-unexpected", stderr: "ERROR: unexpected build status: exploded\n", code: 1},
		{name: "build unknown app", args: []string{"build", "-a", "nope", "-d", "x"},
			golden: "build-unknown-app", stderr: "ERROR: app not found: nope\n", code: 1},

		// deploy
		{name: "deploy", args: []string{"deploy", "-a", "myapp", "-d", "x", "--wait"},
			setup: func(t *testing.T, d *deployRack, env *Env) {
				d.buildStatuses = []string{"complete"}
				d.updating = 1
			},
			golden: "deploy",
			check: func(t *testing.T, d *deployRack, env *Env) {
				wantPromotes(t, d, promoteCall{"RNEW000002", api.ReleasePromoteOptions{}})
				follow, prefix, since := true, true, time.Second
				if want := (api.LogsOptions{Follow: &follow, Prefix: &prefix, Since: &since}); len(d.logOpts) != 1 || !reflect.DeepEqual(d.logOpts[0], want) {
					t.Errorf("logs opened with %+v, want once with follow, prefix and since 1s", d.logOpts)
				}
			}},
		{name: "deploy rolled back", args: []string{"deploy", "-a", "myapp", "-d", "x"},
			setup: func(t *testing.T, d *deployRack, env *Env) {
				d.buildStatuses = []string{"complete"}
				d.rollback = true
				d.updating = 1
			},
			golden: "deploy-rollback", stderr: "ERROR: rollback: release RNEW000002 failed; app myapp is running RABCDEFGHI\n", code: 1},
		{name: "deploy --id --force --timeout", args: []string{"deploy", "-a", "myapp", "-d", "x", "--id", "--force", "--timeout", "60"},
			setup:  func(t *testing.T, d *deployRack, env *Env) { d.buildStatuses = []string{"complete"} },
			stdout: "RNEW000002", stderrGolden: "deploy-id-stderr",
			check: func(t *testing.T, d *deployRack, env *Env) {
				wantPromotes(t, d, promoteCall{"RNEW000002", api.ReleasePromoteOptions{Force: true, Timeout: 60}})
			}},
		{name: "deploy waits for the app", args: []string{"deploy", "-a", "myapp", "-d", "x"},
			setup: func(t *testing.T, d *deployRack, env *Env) {
				d.buildStatuses = []string{"complete"}
				d.apps["myapp"].Status = api.StatusUpdating
				d.changing, d.left = true, 1
			},
			golden: "deploy-wait"},

		// builds
		{name: "builds", args: []string{"builds", "-a", "myapp"}, golden: "builds"},
		{name: "builds limit", args: []string{"builds", "-a", "myapp", "-l", "1"}, golden: "builds-limit"},
		{name: "builds info", args: []string{"builds", "info", "BABCDEFGHI", "-a", "myapp"}, golden: "builds-info"},
		{name: "builds info running", args: []string{"builds", "info", "BRUNNINGXX", "-a", "myapp"}, golden: "builds-info-running"},
		{name: "builds info not found", args: []string{"builds", "info", "BNOPE", "-a", "myapp"},
			stderr: "ERROR: build not found: BNOPE\n", code: 1},
		{name: "builds logs", args: []string{"builds", "logs", "BABCDEFGHI", "-a", "myapp"}, golden: "builds-logs"},
		{name: "builds export to a file", args: []string{"builds", "export", "BABCDEFGHI", "-a", "myapp", "-f", "build.tgz"},
			golden: "builds-export",
			check: func(t *testing.T, d *deployRack, env *Env) {
				wantFile(t, filepath.Join(env.Dir, "build.tgz"), "export of BABCDEFGHI")
			}},
		{name: "builds export to stdout", args: []string{"builds", "export", "BABCDEFGHI", "-a", "myapp"},
			stdout: "export of BABCDEFGHI", stderr: "Exporting build... OK\n"},
		{name: "builds export not found", args: []string{"builds", "export", "BNOPE", "-a", "myapp", "-f", "build.tgz"},
			golden: "builds-export-error", stderr: "ERROR: build not found: BNOPE\n", code: 1,
			check: func(t *testing.T, d *deployRack, env *Env) {
				if _, err := os.Stat(filepath.Join(env.Dir, "build.tgz")); !os.IsNotExist(err) {
					t.Errorf("a failed export left its file behind: %v", err)
				}
			}},
		{name: "builds import from a file", args: []string{"builds", "import", "-a", "myapp", "-f", "build.tgz"},
			setup: func(t *testing.T, d *deployRack, env *Env) {
				writeFile(t, filepath.Join(env.Dir, "build.tgz"), "exported build")
			},
			golden: "builds-import",
			check:  func(t *testing.T, d *deployRack, env *Env) { wantImported(t, d, "exported build") }},
		{name: "builds import from stdin", args: []string{"builds", "import", "-a", "myapp", "--id"},
			setup:  func(t *testing.T, d *deployRack, env *Env) { env.Stdin = strings.NewReader("piped build") },
			stdout: "RNEW000002", stderr: "Importing build... OK, RNEW000002\n",
			check: func(t *testing.T, d *deployRack, env *Env) { wantImported(t, d, "piped build") }},

		// releases
		{name: "releases", args: []string{"releases", "-a", "myapp"}, golden: "releases"},
		{name: "releases limit", args: []string{"releases", "-a", "myapp", "--limit", "1"}, golden: "releases-limit"},
		{name: "releases info", args: []string{"releases", "info", "RABCDEFGHI", "-a", "myapp"}, golden: "releases-info"},
		{name: "releases info not found", args: []string{"releases", "info", "RNOPE", "-a", "myapp"},
			stderr: "ERROR: release not found: RNOPE\n", code: 1},
		{name: "releases manifest", args: []string{"releases", "manifest", "RABCDEFGHI", "-a", "myapp"}, golden: "releases-manifest"},
		{name: "releases manifest without build", args: []string{"releases", "manifest", "ROLDRELEAS", "-a", "myapp"},
			stderr: "ERROR: no build for release: ROLDRELEAS\n", code: 1},
		{name: "releases promote newest", args: []string{"releases", "promote", "-a", "myapp"}, golden: "releases-promote",
			check: func(t *testing.T, d *deployRack, env *Env) {
				wantPromotes(t, d, promoteCall{"RNEWESTREL", api.ReleasePromoteOptions{}})
			}},
		{name: "releases promote one", args: []string{"releases", "promote", "ROLDRELEAS", "-a", "myapp", "--force", "--timeout", "30"},
			golden: "releases-promote-one",
			check: func(t *testing.T, d *deployRack, env *Env) {
				wantPromotes(t, d, promoteCall{"ROLDRELEAS", api.ReleasePromoteOptions{Force: true, Timeout: 30}})
			}},
		{name: "releases promote not found", args: []string{"releases", "promote", "RNOPE", "-a", "myapp"},
			golden: "releases-promote-not-found", stderr: "ERROR: release not found: RNOPE\n", code: 1},
		{name: "releases promote without releases", args: []string{"releases", "promote", "-a", "another-app"},
			setup: func(t *testing.T, d *deployRack, env *Env) {
				d.apps["another-app"] = &api.App{Name: "another-app", Status: "running"}
			},
			stderr: "ERROR: no releases for app: another-app\n", code: 1},
		{name: "releases rollback", args: []string{"releases", "rollback", "RABCDEFGHI", "-a", "myapp"}, golden: "releases-rollback",
			check: func(t *testing.T, d *deployRack, env *Env) {
				build, text := "BABCDEFGHI", "BAZ=quux\nFOO=bar"
				wantCreated(t, d, api.ReleaseCreateOptions{Build: &build, Env: &text})
				wantPromotes(t, d, promoteCall{"RNEW000001", api.ReleasePromoteOptions{}})
			}},
		{name: "releases rollback --id", args: []string{"releases", "rollback", "RABCDEFGHI", "-a", "myapp", "--id"},
			stdout: "RNEW000001", stderrGolden: "releases-rollback"},
		{name: "releases rollback rolled back", args: []string{"releases", "rollback", "RABCDEFGHI", "-a", "myapp"},
			setup:  func(t *testing.T, d *deployRack, env *Env) { d.rollback = true },
			golden: "releases-rollback-failed", stderr: "ERROR: rollback: release RNEW000001 failed; app myapp is running RABCDEFGHI\n", code: 1},
		{name: "releases rollback not found", args: []string{"releases", "rollback", "RNOPE", "-a", "myapp"},
			golden: "releases-rollback-not-found", stderr: "ERROR: release not found: RNOPE\n", code: 1},
		{name: "promote while updating", args: []string{"releases", "promote", "RNEWESTREL", "-a", "myapp", "--force"},
			setup: func(t *testing.T, d *deployRack, env *Env) {
				p := pending
				d.apps["myapp"] = &p
			},
			golden: "releases-promote-forced"},

		// env
		{name: "env", args: []string{"env", "-a", "myapp"}, golden: "env"},
		{name: "env of a release", args: []string{"env", "-a", "myapp", "--release", "RABCDEFGHI"}, golden: "env-release"},
		{name: "env of an app without releases", args: []string{"env", "-a", "another-app"},
			setup: func(t *testing.T, d *deployRack, env *Env) { a := other; d.apps["another-app"] = &a }},
		{name: "env get", args: []string{"env", "get", "NEW", "-a", "myapp"}, golden: "env-get"},
		{name: "env get of a release", args: []string{"env", "get", "BAZ", "-a", "myapp", "--release", "RABCDEFGHI"}, golden: "env-get-release"},
		{name: "env get missing", args: []string{"env", "get", "NOPE", "-a", "myapp"},
			stderr: "ERROR: env not found: NOPE\n", code: 1},
		{name: "env set", args: []string{"env", "set", "ZED=1", "AAA=a=b", "ignored", "-a", "myapp"}, golden: "env-set",
			check: func(t *testing.T, d *deployRack, env *Env) {
				text := "AAA=a=b\nFOO=bar\nNEW=1\nZED=1"
				wantCreated(t, d, api.ReleaseCreateOptions{Env: &text})
			}},
		{name: "env set from stdin", args: []string{"env", "set", "X=1", "-a", "myapp"},
			setup: func(t *testing.T, d *deployRack, env *Env) {
				env.Stdin = strings.NewReader("FROM_STDIN=yes\r\n\nnot a pair\nFOO=baz\n")
			},
			golden: "env-set-stdin",
			check: func(t *testing.T, d *deployRack, env *Env) {
				text := "FOO=baz\nFROM_STDIN=yes\nNEW=1\nX=1"
				wantCreated(t, d, api.ReleaseCreateOptions{Env: &text})
			}},
		{name: "env set replace from a release", args: []string{"env", "set", "ONLY=1", "--replace", "--release", "RABCDEFGHI", "-a", "myapp"},
			golden: "env-set-replace",
			check: func(t *testing.T, d *deployRack, env *Env) {
				text, parent := "ONLY=1", "RABCDEFGHI"
				wantCreated(t, d, api.ReleaseCreateOptions{Env: &text, ParentRelease: &parent})
			}},
		{name: "env set onto a release", args: []string{"env", "set", "A=1", "--release", "RABCDEFGHI", "-a", "myapp"},
			check: func(t *testing.T, d *deployRack, env *Env) {
				text, parent := "A=1\nBAZ=quux\nFOO=bar", "RABCDEFGHI"
				wantCreated(t, d, api.ReleaseCreateOptions{Env: &text, ParentRelease: &parent})
			},
			golden: "env-set-release"},
		{name: "env set promote", args: []string{"env", "set", "A=1", "-a", "myapp", "--promote", "--timeout", "8"}, golden: "env-set-promote",
			check: func(t *testing.T, d *deployRack, env *Env) {
				wantPromotes(t, d, promoteCall{"RNEW000001", api.ReleasePromoteOptions{Timeout: 8}})
			}},
		{name: "env set --id", args: []string{"env", "set", "A=1", "-a", "myapp", "--id", "-p"},
			stdout: "RNEW000001", stderrGolden: "env-set-promote"},
		{name: "env unset", args: []string{"env", "unset", "NEW", "FOO", "NEW", "-a", "myapp"}, golden: "env-unset",
			check: func(t *testing.T, d *deployRack, env *Env) {
				text := ""
				wantCreated(t, d, api.ReleaseCreateOptions{Env: &text})
			}},
		{name: "env unset --id", args: []string{"env", "unset", "NEW", "-a", "myapp", "--id"},
			stdout: "RNEW000001", stderr: "Unsetting NEW... OK\nRelease: RNEW000001\n"},
		{name: "env unset needs a key", args: []string{"env", "unset", "-a", "myapp"},
			stderr: "ERROR: requires at least 1 arg(s), only received 0\n", code: 1},
		{name: "env edit", args: []string{"env", "edit", "-a", "myapp"},
			setup: func(t *testing.T, d *deployRack, env *Env) {
				setEditor(t, env, `echo ADDED=1 >> "$1"; sed "s/^FOO=.*/FOO=changed/" "$1" > "$1.new"; mv "$1.new" "$1"`)
			},
			golden: "env-edit",
			check: func(t *testing.T, d *deployRack, env *Env) {
				text := "ADDED=1\nFOO=changed\nNEW=1"
				wantCreated(t, d, api.ReleaseCreateOptions{Env: &text})
			}},
		{name: "env edit removing", args: []string{"env", "edit", "-a", "myapp", "--release", "RABCDEFGHI", "-p"},
			setup: func(t *testing.T, d *deployRack, env *Env) {
				setEditor(t, env, `grep -v ^BAZ= "$1" > "$1.new"; mv "$1.new" "$1"`)
			},
			golden: "env-edit-remove",
			check: func(t *testing.T, d *deployRack, env *Env) {
				text, parent := "FOO=bar", "RABCDEFGHI"
				wantCreated(t, d, api.ReleaseCreateOptions{Env: &text, ParentRelease: &parent})
			}},
		{name: "env edit unchanged", args: []string{"env", "edit", "-a", "myapp"},
			setup:  func(t *testing.T, d *deployRack, env *Env) { setEditor(t, env, `exit 0`) },
			golden: "env-edit-unchanged",
			check:  func(t *testing.T, d *deployRack, env *Env) { wantCreated(t, d) }},
		{name: "env edit failing editor", args: []string{"env", "edit", "-a", "myapp"},
			setup:  func(t *testing.T, d *deployRack, env *Env) { setEditor(t, env, `exit 3`) },
			stderr: "ERROR: editing the env with " + "EDITOR" + ": exit status 3\n", code: 1},

		// ps
		{name: "ps", args: []string{"ps", "-a", "myapp"}, golden: "ps"},
		{name: "ps of a service", args: []string{"ps", "-a", "myapp", "-s", "worker"}, golden: "ps-service"},
		{name: "ps of a release", args: []string{"ps", "-a", "myapp", "--release", "RNEWESTREL"}, golden: "ps-service"},
		{name: "ps info", args: []string{"ps", "info", "web-6499468bf8-8wkjj", "-a", "myapp"}, golden: "ps-info"},
		{name: "ps info not found", args: []string{"ps", "info", "web-nope", "-a", "myapp"},
			stderr: "ERROR: process not found: web-nope\n", code: 1},
		{name: "ps stop", args: []string{"ps", "stop", "web-6499468bf8-8wkjj", "-a", "myapp"}, golden: "ps-stop",
			check: func(t *testing.T, d *deployRack, env *Env) {
				if !reflect.DeepEqual(d.stopped, []string{"web-6499468bf8-8wkjj"}) {
					t.Errorf("stopped %v", d.stopped)
				}
			}},
		{name: "ps stop not found", args: []string{"ps", "stop", "web-nope", "-a", "myapp"},
			golden: "ps-stop-error", stderr: "ERROR: process not found: web-nope\n", code: 1},

		// services, scale, restart
		{name: "services", args: []string{"services", "-a", "myapp"}, golden: "services"},
		{name: "services restart", args: []string{"services", "restart", "web", "-a", "myapp"}, golden: "services-restart",
			check: func(t *testing.T, d *deployRack, env *Env) { wantRestarted(t, d, "web") }},
		{name: "services restart not found", args: []string{"services", "restart", "nope", "-a", "myapp"},
			golden: "services-restart-error", stderr: "ERROR: service not found: nope\n", code: 1},
		{name: "scale", args: []string{"scale", "-a", "myapp"}, golden: "scale"},
		{name: "scale one service", args: []string{"scale", "web", "-a", "myapp"}, golden: "scale-web"},
		{name: "scale unknown service", args: []string{"scale", "nope", "-a", "myapp"},
			stderr: "ERROR: service not found: nope\n", code: 1},
		{name: "scale count", args: []string{"scale", "web", "--count", "3", "-a", "myapp"}, golden: "scale-count",
			setup: func(t *testing.T, d *deployRack, env *Env) { d.updating = 1 },
			check: func(t *testing.T, d *deployRack, env *Env) {
				three := 3
				wantScaled(t, d, api.ServiceUpdateOptions{Count: &three})
			}},
		{name: "scale sizes", args: []string{"scale", "worker", "--cpu", "500", "--memory", "1024", "--count", "0", "-a", "myapp"},
			golden: "scale-sizes",
			check: func(t *testing.T, d *deployRack, env *Env) {
				zero, cpu, mem := 0, 500, 1024
				wantScaled(t, d, api.ServiceUpdateOptions{Count: &zero, Cpu: &cpu, Memory: &mem})
			}},
		{name: "scale needs a service", args: []string{"scale", "--count", "3", "-a", "myapp"},
			stderr: "ERROR: service name required: convox scale <service> --count N\n", code: 1},
		{name: "scale unknown service count", args: []string{"scale", "nope", "--count", "3", "-a", "myapp"},
			golden: "scale-error", stderr: "ERROR: service not found: nope\n", code: 1},
		{name: "restart", args: []string{"restart", "-a", "myapp"}, golden: "restart",
			setup: func(t *testing.T, d *deployRack, env *Env) {
				d.events = []string{
					"2026-01-15T12:00:00Z system/restart Restarting",
					"2026-01-15T12:00:01Z service/web/web-7c9d8f-q2x4z listening on :5000",
				}
			},
			check: func(t *testing.T, d *deployRack, env *Env) { wantRestarted(t, d, "web", "worker") }},
		{name: "restart quiet", args: []string{"restart", "worker", "-a", "myapp"}, golden: "restart-quiet",
			setup: func(t *testing.T, d *deployRack, env *Env) { d.events = nil },
			check: func(t *testing.T, d *deployRack, env *Env) { wantRestarted(t, d, "worker") }},

		// logs
		{name: "logs", args: []string{"logs", "-a", "myapp"}, golden: "logs",
			check: func(t *testing.T, d *deployRack, env *Env) {
				follow, prefix, since := true, true, 2*time.Minute
				wantLogOptions(t, d, api.LogsOptions{Follow: &follow, Prefix: &prefix, Since: &since})
			}},
		{name: "logs with options", args: []string{"logs", "-a", "myapp", "--filter", "web-7c9d8f", "--since", "10m", "--no-follow", "--tail", "5"},
			golden: "logs-filter",
			check: func(t *testing.T, d *deployRack, env *Env) {
				follow, prefix, since, tail := false, true, 10*time.Minute, 5
				wantLogOptions(t, d, api.LogsOptions{Filter: "web-7c9d8f", Follow: &follow, Prefix: &prefix, Since: &since, Tail: &tail})
			}},
		{name: "logs of a service", args: []string{"logs", "-a", "myapp", "-s", "worker"}, golden: "logs-service"},
		{name: "logs of an unknown app", args: []string{"logs", "-a", "nope"},
			stderr: "ERROR: app not found: nope\n", code: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := newDeployRack()
			env := Env{Connect: serve(t, fake), Dir: sourceDir(t), Now: testClock}
			if tt.setup != nil {
				tt.setup(t, fake, &env)
			}
			res := run(t, env, tt.args...)
			cmd := "convox " + strings.Join(tt.args, " ")
			if res.code != tt.code {
				t.Errorf("%s: exit %d, want %d (stderr %q)", cmd, res.code, tt.code, res.stderr)
			}
			if tt.stderrGolden != "" {
				assertGolden(t, tt.stderrGolden, res.stderr)
			} else if res.stderr != strings.ReplaceAll(tt.stderr, "EDITOR", editorPath(env)) {
				t.Errorf("%s: stderr %q, want %q", cmd, res.stderr, tt.stderr)
			}
			switch {
			case tt.golden != "":
				assertGolden(t, tt.golden, res.stdout)
			case res.stdout != tt.stdout:
				t.Errorf("%s: stdout %q, want %q", cmd, res.stdout, tt.stdout)
			}
			if tt.check != nil {
				fake.mu.Lock()
				defer fake.mu.Unlock()
				tt.check(t, fake, &env)
			}
		})
	}
}

// sourceDir is an app's source, named myapp: a Dockerfile, a manifest,
// sources, what .dockerignore leaves out and a symbolic link.
func sourceDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "myapp")
	for name, content := range map[string]string{
		"Dockerfile":              "FROM debian\nCOPY . /app\n",
		"convox.yml":              "services:\n  web:\n    build: .\n    port: 5000\n",
		".dockerignore":           "# not needed in the image\nnode_modules\n*.log\n!keep.log\n",
		"src/main.go":             "package main\n",
		"node_modules/x/index.js": "x",
		"debug.log":               "noise",
		"keep.log":                "kept",
		"src/nested.log":          "only top-level logs are ignored",
	} {
		writeFile(t, filepath.Join(dir, name), content)
	}
	if err := os.Chmod(filepath.Join(dir, "src", "main.go"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("src/main.go", filepath.Join(dir, "main")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantFile(t *testing.T, path, want string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != want {
		t.Errorf("%s holds %q, want %q", path, data, want)
	}
}

// setEditor makes EDITOR a shell script with script as its body, called
// with one argument before the file, to show that EDITOR may hold flags.
func setEditor(t *testing.T, env *Env, script string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "editor")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nshift\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env.Getenv = envMap(map[string]string{"EDITOR": path + " --wait"})
}

func editorPath(env Env) string {
	if env.Getenv == nil {
		return ""
	}
	return strings.Fields(env.Getenv("EDITOR") + " x")[0]
}

// wantUpload checks the build's source: one object under tmp/ that the
// build was created from, holding the source without what .dockerignore
// excludes.
func wantUpload(t *testing.T, d *deployRack) {
	t.Helper()
	if len(d.objects) != 1 {
		t.Fatalf("uploaded %d objects, want 1", len(d.objects))
	}
	for key, data := range d.objects {
		if !regexp.MustCompile(`^tmp/[0-9a-f]{30}\.tgz$`).MatchString(key) {
			t.Errorf("source key %q, want tmp/<30 hex>.tgz", key)
		}
		if want := "object://myapp/" + key; d.sourceURL != want {
			t.Errorf("build created from %q, want %q", d.sourceURL, want)
		}
		want := []string{".dockerignore", "Dockerfile", "convox.yml", "keep.log", "main -> src/main.go", "src/", "src/main.go", "src/nested.log"}
		if got := tarEntries(t, data); !slices.Equal(got, want) {
			t.Errorf("source holds %q, want %q", got, want)
		}
	}
}

// tarEntries lists a gzip'd tar's entries in order, links as "name ->
// target".
func tarEntries(t *testing.T, data []byte) []string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		name := h.Name
		if h.Typeflag == tar.TypeSymlink {
			name += " -> " + h.Linkname
		}
		names = append(names, name)
	}
}

func wantPromotes(t *testing.T, d *deployRack, want ...promoteCall) {
	t.Helper()
	if !reflect.DeepEqual(d.promotes, want) {
		t.Errorf("promotes %+v, want %+v", d.promotes, want)
	}
}

// wantCreated checks the releases the CLI created itself (not those a
// build or an import made).
func wantCreated(t *testing.T, d *deployRack, want ...api.ReleaseCreateOptions) {
	t.Helper()
	var got []api.ReleaseCreateOptions
	for _, c := range d.created {
		if c.Env != nil || c.ParentRelease != nil {
			got = append(got, c)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("created %d releases, want %d", len(got), len(want))
	}
	str := func(s *string) string {
		if s == nil {
			return "<nil>"
		}
		return *s
	}
	for i := range want {
		g, w := got[i], want[i]
		if str(g.Build) != str(w.Build) || str(g.Env) != str(w.Env) || str(g.ParentRelease) != str(w.ParentRelease) || str(g.Description) != str(w.Description) {
			t.Errorf("release %d: build %s, env %q, parent %s, description %s; want build %s, env %q, parent %s, description %s",
				i, str(g.Build), str(g.Env), str(g.ParentRelease), str(g.Description), str(w.Build), str(w.Env), str(w.ParentRelease), str(w.Description))
		}
	}
}

func wantImported(t *testing.T, d *deployRack, want string) {
	t.Helper()
	if d.imported != want {
		t.Errorf("imported %q, want %q", d.imported, want)
	}
}

func wantScaled(t *testing.T, d *deployRack, want ...api.ServiceUpdateOptions) {
	t.Helper()
	if !reflect.DeepEqual(d.scaled, want) {
		t.Errorf("scaled %+v, want %+v", d.scaled, want)
	}
}

func wantRestarted(t *testing.T, d *deployRack, want ...string) {
	t.Helper()
	if !slices.Equal(d.restarted, want) {
		t.Errorf("restarted %v, want %v", d.restarted, want)
	}
}

func wantLogOptions(t *testing.T, d *deployRack, want api.LogsOptions) {
	t.Helper()
	if len(d.logOpts) != 1 || !reflect.DeepEqual(d.logOpts[0], want) {
		t.Errorf("logs opened with %+v, want once with %+v", d.logOpts, want)
	}
}

// TestTerminalStreams: export refuses to write a build to a terminal, and
// import to read one. /dev/null stands in for the terminal: it is a
// character device, which is what the check looks at.
func TestTerminalStreams(t *testing.T) {
	tty, err := os.Open(os.DevNull)
	if err != nil {
		t.Skip(err)
	}
	defer tty.Close()
	ttyOut, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer ttyOut.Close()

	connect := serve(t, newDeployRack())
	var stderr bytes.Buffer
	code := Run(context.Background(), []string{"builds", "export", "BABCDEFGHI", "-a", "myapp"}, Env{Connect: connect, Stdout: ttyOut, Stderr: &stderr}, nil)
	if want := "ERROR: pipe this command into a file or specify --file\n"; code != 1 || stderr.String() != want {
		t.Errorf("export to a terminal: exit %d, stderr %q, want %q", code, stderr.String(), want)
	}

	stderr.Reset()
	var stdout bytes.Buffer
	code = Run(context.Background(), []string{"builds", "import", "-a", "myapp"}, Env{Connect: connect, Stdin: tty, Stdout: &stdout, Stderr: &stderr}, nil)
	if want := "ERROR: pipe a file into this command or specify --file\n"; code != 1 || stderr.String() != want || stdout.Len() > 0 {
		t.Errorf("import from a terminal: exit %d, stdout %q, stderr %q, want %q", code, stdout.String(), stderr.String(), want)
	}

	// env set reads no lines from a terminal: it would wait for them.
	stderr.Reset()
	stdout.Reset()
	code = Run(context.Background(), []string{"env", "set", "A=1", "-a", "myapp"}, Env{Connect: connect, Stdin: tty, Stdout: &stdout, Stderr: &stderr}, nil)
	if want := "Setting A... OK\nRelease: RNEW000001\n"; code != 0 || stdout.String() != want {
		t.Errorf("env set with a terminal: exit %d, stdout %q, stderr %q, want %q", code, stdout.String(), stderr.String(), want)
	}
}
