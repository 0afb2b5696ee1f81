package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// serving returns what each running web process answers on GET path.
func (r *rack) serving(t *testing.T, app, path string) []string {
	t.Helper()
	var bodies []string
	for _, port := range r.publishedPorts(t, app, "web", "5000") {
		body, err := get("http://127.0.0.1:" + port + path)
		if err != nil {
			bodies = append(bodies, "error: "+err.Error())
			continue
		}
		bodies = append(bodies, strings.TrimSpace(body))
	}
	return bodies
}

// allServe waits until every web process of app answers want, and there
// are n of them.
func (r *rack) allServe(t *testing.T, app string, n int, want string) {
	t.Helper()
	var got []string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		got = r.serving(t, app, "/")
		ok := len(got) == n
		for _, b := range got {
			ok = ok && b == want
		}
		if ok {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("web processes of %s answer %q, want %d answering %q", app, got, n, want)
}

var psRow = regexp.MustCompile(`(?m)^(web-[a-z0-9]{5})\s+web\s+(\S+)\s+(R[A-Z]{10})\s`)

// processes parses `convox ps` into pid → release of running web processes.
func (r *rack) webProcesses(t *testing.T, app string) map[string]string {
	t.Helper()
	res := r.convox("ps", "-a", app)
	if res.code != 0 {
		t.Fatalf("convox ps: %s", res.stderr)
	}
	ps := map[string]string{}
	for _, m := range psRow.FindAllStringSubmatch(res.stdout, -1) {
		if m[2] == "running" {
			ps[m[1]] = m[3]
		}
	}
	return ps
}

// TestDeploy is the heart of the product: deploy, change env, roll back,
// fail a health check, cancel a slow rollout, scale, replace processes.
func TestDeploy(t *testing.T) {
	r := newRack(t)
	r.start()
	dir := sampleApp(t, "")
	r.convox("apps", "create", "myapp").expect(t, "Creating myapp... OK\n", "", 0)

	// First deploy: two processes of the sample app, each serving.
	r1, res := r.deploy(t, "myapp", dir)
	if res.code != 0 || r1 == "" {
		t.Fatalf("deploy: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{"Packaging source... OK\n", "Uploading source... OK\n", "Starting build... OK\n", "Successfully built", "Promoting " + r1 + "... \n", "\nOK\n"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("deploy output lacks %q:\n%s", want, res.stdout)
		}
	}
	if !regexp.MustCompile(`(?m)^Build:   B[A-Z]{10}\nRelease: ` + r1 + `$`).MatchString(res.stdout) {
		t.Errorf("deploy output lacks Build:/Release: lines:\n%s", res.stdout)
	}
	if !regexp.MustCompile(`system/promote Promoted release ` + r1).MatchString(res.stdout) {
		t.Errorf("deploy output lacks the promote events:\n%s", res.stdout)
	}
	r.allServe(t, "myapp", 2, "hello from myapp/web release "+r1)
	if ps := r.webProcesses(t, "myapp"); len(ps) != 2 {
		t.Errorf("convox ps: %v, want 2 running web processes", ps)
	}
	r.convox("apps", "info", "myapp").expect(t,
		"Name    myapp\nStatus  running\nLocked  false\nRelease "+r1+"\nRouter  localhost\n", "", 0)
	if res := r.convox("releases", "-a", "myapp"); !regexp.MustCompile(`(?m)^` + r1 + `  active  B[A-Z]{10}  `).MatchString(res.stdout) {
		t.Errorf("convox releases:\n%s%s", res.stdout, res.stderr)
	}
	if res := r.convox("builds", "-a", "myapp"); !strings.Contains(res.stdout, "complete  "+r1) {
		t.Errorf("convox builds:\n%s%s", res.stdout, res.stderr)
	}
	if res := r.convox("services", "-a", "myapp"); res.stdout != "SERVICE  DOMAIN               PORTS\nweb      web.myapp.localhost  443:5000\n" {
		t.Errorf("convox services:\n%q %s", res.stdout, res.stderr)
	}

	// An env change is a new release; promoted, new processes serve it.
	res = r.convox("env", "set", "GREETING=bonjour", "-a", "myapp", "--promote")
	r2 := releaseLine.FindStringSubmatch(res.stdout)
	if res.code != 0 || r2 == nil || !strings.HasPrefix(res.stdout, "Setting GREETING... OK\n") {
		t.Fatalf("env set: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	r.allServe(t, "myapp", 2, "bonjour from myapp/web release "+r2[1])
	r.convox("env", "-a", "myapp").expect(t, "GREETING=bonjour\n", "", 0)

	// Rolling back makes a new release with r1's build and env.
	res = r.convox("releases", "rollback", r1, "-a", "myapp")
	m := regexp.MustCompile(`Rolling back to ` + r1 + `\.\.\. OK, (R[A-Z]{10})\n`).FindStringSubmatch(res.stdout)
	if res.code != 0 || m == nil {
		t.Fatalf("rollback: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	r3 := m[1]
	r.allServe(t, "myapp", 2, "hello from myapp/web release "+r3)

	// A release that never gets healthy is rolled back, and the old one
	// never stops serving meanwhile.
	var failures, successes atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	oldPorts := r.publishedPorts(t, "myapp", "web", "5000")
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := get("http://127.0.0.1:" + oldPorts[i%len(oldPorts)] + "/"); err != nil {
				failures.Add(1)
			} else {
				successes.Add(1)
			}
		}
	}()
	res = r.convox("env", "set", "HEALTH_FAIL=1", "-a", "myapp", "--promote", "--timeout", "8")
	close(stop)
	wg.Wait()
	if res.code != 1 || !strings.Contains(res.stderr, "ERROR: rollback: ") {
		t.Errorf("unhealthy promote: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, "did not become healthy before the deadline: GET /health returned 500") {
		t.Errorf("unhealthy promote does not say why:\n%s", res.stdout)
	}
	// While it waits, it says so once the health check's grace is over.
	if !regexp.MustCompile(`system/process Process web-[a-z0-9]{5} is not healthy yet after [5-7]s: GET /health returned 500\n`).MatchString(res.stdout) {
		t.Errorf("unhealthy promote does not report the failing check while it waits:\n%s", res.stdout)
	}
	if failures.Load() != 0 || successes.Load() == 0 {
		t.Errorf("old release during the failed promote: %d failed, %d served requests", failures.Load(), successes.Load())
	}
	r.convox("apps", "info", "myapp").expect(t,
		"Name    myapp\nStatus  running\nLocked  false\nRelease "+r3+"\nRouter  localhost\n", "", 0)
	r.allServe(t, "myapp", 2, "hello from myapp/web release "+r3)

	// A crashing release says why, with the process's last words.
	res = r.convox("env", "set", "CRASH=1", "HEALTH_FAIL=", "-a", "myapp", "--promote")
	if res.code != 1 || !strings.Contains(res.stdout, "exited with code 3") || !strings.Contains(res.stdout, "crashing as asked") {
		t.Errorf("crashing promote: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	r.allServe(t, "myapp", 2, "hello from myapp/web release "+r3)

	// Scale up and down: the command returns once the processes run (or
	// are gone), and the scale survives a later promote.
	if res := r.convox("scale", "web", "--count", "3", "-a", "myapp"); res.code != 0 || !strings.HasPrefix(res.stdout, "Scaling web... ") || !strings.HasSuffix(res.stdout, "OK\n") {
		t.Errorf("scale: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if ps := r.webProcesses(t, "myapp"); len(ps) != 3 {
		t.Errorf("right after scale --count 3: %d web processes running, want 3", len(ps))
	}
	r.allServe(t, "myapp", 3, "hello from myapp/web release "+r3)
	r.convox("scale", "web", "--count", "1", "-a", "myapp")
	if ps := r.webProcesses(t, "myapp"); len(ps) != 1 {
		t.Errorf("right after scale --count 1: %d web processes running, want 1", len(ps))
	}
	if res := r.convox("scale", "-a", "myapp"); res.stdout != "SERVICE  DESIRED  RUNNING  CPU  MEMORY\nweb      1        1        250  512\n" {
		t.Errorf("convox scale:\n%q %s", res.stdout, res.stderr)
	}
	r.convox("scale", "web", "--count", "2", "-a", "myapp")
	if ps := r.webProcesses(t, "myapp"); len(ps) != 2 {
		t.Errorf("right after scale --count 2: %d web processes running, want 2", len(ps))
	}

	// ps stop: the process is replaced by a new one.
	before := r.webProcesses(t, "myapp")
	var victim string
	for pid := range before {
		victim = pid
		break
	}
	r.convox("ps", "stop", victim, "-a", "myapp").expect(t, "Stopping "+victim+"... OK\n", "", 0)
	eventually(t, 30*time.Second, "the stopped process replaced", func() bool {
		now := r.webProcesses(t, "myapp")
		_, still := now[victim]
		return len(now) == 2 && !still
	})

	// docker kill: the crash is noticed and the process replaced.
	before = r.webProcesses(t, "myapp")
	for pid := range before {
		victim = pid
		break
	}
	docker(t, "kill", r.name+"-myapp-"+victim)
	eventually(t, 30*time.Second, "the killed process replaced", func() bool {
		now := r.webProcesses(t, "myapp")
		_, still := now[victim]
		return len(now) == 2 && !still
	})
}

// TestDeployCancel: `convox apps cancel` during a slow rollout rolls back and
// the old release keeps serving.
func TestDeployCancel(t *testing.T) {
	r := newRack(t)
	r.start()
	dir := sampleApp(t, "")
	r.convox("apps", "create", "slow").expect(t, "Creating slow... OK\n", "", 0)
	r1, res := r.deploy(t, "slow", dir)
	if res.code != 0 {
		t.Fatalf("deploy: %s %s", res.stdout, res.stderr)
	}
	done := make(chan result)
	go func() { done <- r.convox("env", "set", "START_DELAY=120", "-a", "slow", "--promote") }()
	eventually(t, 30*time.Second, "app updating", func() bool {
		return strings.Contains(r.convox("apps", "info", "slow").stdout, "Status  updating")
	})
	r.convox("apps", "cancel", "slow").expect(t, "Cancelling deployment of slow... OK\n", "", 0)
	res = <-done
	if res.code != 1 || !strings.Contains(res.stdout, "cancelled") {
		t.Errorf("cancelled promote: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	r.allServe(t, "slow", 2, "hello from slow/web release "+r1)
	if got := r.convox("apps", "info", "slow").stdout; !strings.Contains(got, "Status  running\n") || !strings.Contains(got, "Release "+r1+"\n") {
		t.Errorf("after cancel:\n%s", got)
	}
	// The cancelled release stays in the list, its env the latest.
	r.convox("env", "-a", "slow").expect(t, "START_DELAY=120\n", "", 0)
}

// TestDeployCrashSafety: the daemon killed with SIGKILL in the middle of a
// promote finishes the rollout after a restart, and a restarted daemon
// adopts running processes without restarting them.
func TestDeployCrashSafety(t *testing.T) {
	r := newRack(t)
	r.start()
	dir := sampleApp(t, "")
	r.convox("apps", "create", "sturdy").expect(t, "Creating sturdy... OK\n", "", 0)
	if _, res := r.deploy(t, "sturdy", dir); res.code != 0 {
		t.Fatalf("deploy: %s %s", res.stdout, res.stderr)
	}
	ids := docker(t, "ps", "-q", "--no-trunc", "--filter", "label=convox.rack="+r.name)

	// Adoption: a clean restart changes no container.
	r.stop()
	r.start()
	time.Sleep(2 * time.Second) // a converge runs at start; give it time to (not) act
	if after := docker(t, "ps", "-q", "--no-trunc", "--filter", "label=convox.rack="+r.name); after != ids {
		t.Errorf("containers changed across a daemon restart:\nbefore %s\nafter  %s", ids, after)
	}

	// kill -9 while the new release's processes are starting.
	done := make(chan result)
	go func() { done <- r.convox("env", "set", "START_DELAY=4", "GREETING=hi", "-a", "sturdy", "--promote") }()
	eventually(t, 30*time.Second, "processes of the new release", func() bool {
		return len(strings.Fields(docker(t, "ps", "-q", "--filter", "label=convox.rack="+r.name))) > 2
	})
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-r.done
	<-done
	r.start()
	r2 := strings.TrimSpace(strings.TrimPrefix(regexp.MustCompile(`Release (R[A-Z]{10})`).FindString(r.convox("apps", "info", "sturdy").stdout), "Release "))
	eventually(t, 60*time.Second, "the interrupted rollout completed", func() bool {
		return strings.Contains(r.convox("apps", "info", "sturdy").stdout, "Status  running\n")
	})
	r.allServe(t, "sturdy", 2, "hi from sturdy/web release "+r2)
}

// TestDeployErrors: a broken manifest or Dockerfile fails the build with a
// clear message and changes nothing that runs.
func TestDeployErrors(t *testing.T) {
	r := newRack(t)
	r.start()
	dir := sampleApp(t, "")
	r.convox("apps", "create", "broken").expect(t, "Creating broken... OK\n", "", 0)
	r1, res := r.deploy(t, "broken", dir)
	if res.code != 0 {
		t.Fatalf("deploy: %s %s", res.stdout, res.stderr)
	}

	for _, tt := range []struct {
		name, file, content, want string
	}{
		{"manifest type error", "convox.yml", "services:\n  web:\n    build: .\n    port: 5000\n    scale:\n      count: lots\n",
			`ERROR: convox.yml:6: services.web.scale.count: expected an integer, got "lots"`},
		{"manifest unknown resource", "convox.yml", "services:\n  web:\n    build: .\n    resources:\n      - db\n",
			"ERROR: convox.yml:5: services.web.resources[0]: service web references a resource that does not exist: db"},
		{"failing Dockerfile", "Dockerfile", "FROM convoxtest/debian:bookworm\nRUN echo about to fail && exit 3\n",
			"returned a non-zero code: 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bad := t.TempDir()
			for _, f := range []string{"Dockerfile", "convox.yml", "server"} {
				data, _ := os.ReadFile(filepath.Join(dir, f))
				os.WriteFile(filepath.Join(bad, f), data, 0o755)
			}
			os.WriteFile(filepath.Join(bad, tt.file), []byte(tt.content), 0o644)
			res := r.convox("deploy", bad, "-a", "broken")
			if res.code != 1 || !strings.Contains(res.stdout+res.stderr, tt.want) || !strings.HasSuffix(res.stderr, "ERROR: build failed\n") {
				t.Errorf("exit %d, want 1 with %q and ERROR: build failed\nstdout:\n%s\nstderr:\n%s", res.code, tt.want, res.stdout, res.stderr)
			}
			r.allServe(t, "broken", 2, "hello from broken/web release "+r1)
		})
	}
}

// TestBuildExportImport: a build exported from one app runs in another.
func TestBuildExportImport(t *testing.T) {
	r := newRack(t)
	r.start()
	dir := sampleApp(t, "")
	r.convox("apps", "create", "source").expect(t, "Creating source... OK\n", "", 0)
	r.convox("apps", "create", "copy").expect(t, "Creating copy... OK\n", "", 0)
	res := r.convox("build", dir, "-a", "source", "--id")
	if res.code != 0 || !regexp.MustCompile(`^R[A-Z]{10}$`).MatchString(res.stdout) {
		t.Fatalf("build --id: exit %d stdout %q\n%s", res.code, res.stdout, res.stderr)
	}
	build := regexp.MustCompile(`Build:   (B[A-Z]{10})`).FindStringSubmatch(res.stderr)
	if build == nil {
		t.Fatalf("build --id wrote no Build: line on stderr:\n%s", res.stderr)
	}
	file := filepath.Join(t.TempDir(), "build.tgz")
	r.convox("builds", "export", build[1], "-a", "source", "-f", file).expect(t, "Exporting build... OK\n", "", 0)
	res = r.convox("builds", "import", "-a", "copy", "-f", file)
	m := regexp.MustCompile(`^Importing build\.\.\. OK, (R[A-Z]{10})\n$`).FindStringSubmatch(res.stdout)
	if res.code != 0 || m == nil {
		t.Fatalf("builds import: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if res := r.convox("releases", "promote", m[1], "-a", "copy"); res.code != 0 {
		t.Fatalf("promote: %s %s", res.stdout, res.stderr)
	}
	r.allServe(t, "copy", 2, fmt.Sprintf("hello from copy/web release %s", m[1]))
}

// TestScaleFailure: when the processes a scale adds never get healthy, the
// scale rolls back: they are removed, the count is what it was, and the
// processes that ran before keep serving.
func TestScaleFailure(t *testing.T) {
	r := newRack(t)
	r.spawn([]string{"--promote-timeout", "8s"})
	t.Cleanup(func() { r.stop() })
	r.waitUp()
	dir := sampleApp(t, "")
	r.convox("apps", "create", "scaly").expect(t, "Creating scaly... OK\n", "", 0)
	// Processes started after the cut-off answer /health with 500: the
	// deploy's are healthy, the scale's are not.
	cutoff := time.Now().Add(20 * time.Second)
	if res := r.convox("env", "set", fmt.Sprintf("HEALTH_FAIL_AFTER=%d", cutoff.Unix()), "-a", "scaly"); res.code != 0 {
		t.Fatalf("env set: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	rel, res := r.deploy(t, "scaly", dir)
	if res.code != 0 {
		t.Fatalf("deploy: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if time.Now().After(cutoff) {
		t.Fatalf("the deploy ended after the cut-off (%s): the test needs it sooner", cutoff.Format(time.TimeOnly))
	}
	time.Sleep(time.Until(cutoff) + 1500*time.Millisecond)
	before := r.webProcesses(t, "scaly")

	res = r.convox("scale", "web", "--count", "3", "-a", "scaly")
	if res.code == 0 || !strings.Contains(res.stdout, "Rolling back") || !strings.Contains(res.stdout, "Rolled back the scale of web") {
		t.Errorf("scale to unhealthy processes: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if after := r.webProcesses(t, "scaly"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("after the failed scale the web processes are %v, want the ones before it %v", after, before)
	}
	if res := r.convox("scale", "-a", "scaly"); res.stdout != "SERVICE  DESIRED  RUNNING  CPU  MEMORY\nweb      2        2        250  512\n" {
		t.Errorf("convox scale after the failed scale:\n%s%s", res.stdout, res.stderr)
	}
	r.allServe(t, "scaly", 2, "hello from scaly/web release "+rel)
	if res := r.convox("apps", "info", "scaly"); !strings.Contains(res.stdout, "running") {
		t.Errorf("apps info after the failed scale:\n%s%s", res.stdout, res.stderr)
	}
}
