package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLogs: what every process printed is kept, including processes a
// deploy replaced; follow mode is live; filter works; a daemon restart loses
// and duplicates nothing.
func TestLogs(t *testing.T) {
	r := newRack(t)
	r.start()
	dir := sampleApp(t, "")
	r.convox("apps", "create", "chatty").expect(t, "Creating chatty... OK\n", "", 0)
	r1, res := r.deploy(t, "chatty", dir)
	if res.code != 0 {
		t.Fatalf("deploy: %s %s", res.stdout, res.stderr)
	}
	first := r.webProcesses(t, "chatty")

	line := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ service/web/(web-[a-z0-9]{5}) Starting web on port 5000$`)
	logs := r.convox("logs", "-a", "chatty", "--no-follow", "--since", "10m").stdout
	got := map[string]bool{}
	for _, m := range line.FindAllStringSubmatch(logs, -1) {
		got[m[1]] = true
	}
	for pid := range first {
		if !got[pid] {
			t.Errorf("logs lack the start line of %s:\n%s", pid, logs)
		}
	}
	if !strings.Contains(logs, "system/promote Promoted release "+r1) {
		t.Errorf("logs lack the rack's events:\n%s", logs)
	}

	// A deploy replaces the processes; their lines stay.
	if res := r.convox("env", "set", "GREETING=again", "-a", "chatty", "--promote"); res.code != 0 {
		t.Fatalf("promote: %s %s", res.stdout, res.stderr)
	}
	logs = r.convox("logs", "-a", "chatty", "--no-follow", "--since", "10m").stdout
	for pid := range first {
		if !strings.Contains(logs, "service/web/"+pid+" Starting web on port 5000") || !strings.Contains(logs, "service/web/"+pid+" stopping on SIGTERM") {
			t.Errorf("logs of the replaced process %s are gone:\n%s", pid, logs)
		}
	}

	// Filter.
	filtered := r.convox("logs", "-a", "chatty", "--no-follow", "--since", "10m", "--filter", "SIGTERM").stdout
	if n := strings.Count(filtered, "\n"); n != 2 || strings.Contains(filtered, "Starting") {
		t.Errorf("--filter SIGTERM gave %d lines:\n%s", n, filtered)
	}

	// Follow sees a new line within a second.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	follow := exec.CommandContext(ctx, binary, "logs", "-a", "chatty", "--since", "1s")
	follow.Env = r.env()
	out, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); follow.Wait() }()
	seen := make(chan time.Time, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "marker-1234") {
				seen <- time.Now()
				return
			}
		}
	}()
	time.Sleep(500 * time.Millisecond) // let the follower connect
	res = r.convox("run", "web", "echo marker-1234", "-a", "chatty")
	printed := time.Now()
	if res.code != 0 || !strings.Contains(res.stdout, "marker-1234") {
		t.Fatalf("run: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	select {
	case at := <-seen:
		if d := at.Sub(printed); d > time.Second {
			t.Errorf("follow saw the line %s after the run ended", d)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("follow did not see the one-off process's line")
	}
	cancel()

	// A numbered sequence across a daemon kill: nothing lost, nothing twice.
	if res := r.convox("env", "set", "TICK_MS=20", "-a", "chatty", "--promote"); res.code != 0 {
		t.Fatalf("promote: %s %s", res.stdout, res.stderr)
	}
	ticking := r.webProcesses(t, "chatty")
	time.Sleep(time.Second)
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	time.Sleep(2 * time.Second) // the processes keep printing meanwhile
	r.start()
	time.Sleep(2 * time.Second)
	r.convox("scale", "web", "--count", "0", "-a", "chatty")
	eventually(t, 30*time.Second, "processes stopped", func() bool { return len(r.webProcesses(t, "chatty")) == 0 })
	logs = r.convox("logs", "-a", "chatty", "--no-follow", "--since", "10m", "--filter", "tick ").stdout
	for pid := range ticking {
		var ticks []int
		for _, l := range strings.Split(logs, "\n") {
			if _, msg, ok := strings.Cut(l, " service/web/"+pid+" tick "); ok {
				n, _ := strconv.Atoi(msg)
				ticks = append(ticks, n)
			}
		}
		if len(ticks) < 100 {
			t.Errorf("%s: only %d ticks stored", pid, len(ticks))
			continue
		}
		for i, n := range ticks {
			if n != i+1 {
				t.Errorf("%s: tick %d stored at position %d: lines lost or duplicated around a daemon restart", pid, n, i+1)
				break
			}
		}
	}
}

// TestLogsBounded: an app's stored log is bounded and drops the oldest.
func TestLogsBounded(t *testing.T) {
	r := newRack(t)
	r.spawn([]string{"--log-max-bytes", "200000"})
	r.t.Cleanup(func() { r.stop() })
	r.waitUp()
	dir := sampleApp(t, "")
	r.convox("apps", "create", "bounded").expect(t, "Creating bounded... OK\n", "", 0)
	if _, res := r.deploy(t, "bounded", dir); res.code != 0 {
		t.Fatalf("deploy: %s %s", res.stdout, res.stderr)
	}
	res := r.convox("run", "web", "seq 1 30000 | sed 's/^/n /'", "-a", "bounded")
	if res.code != 0 {
		t.Fatalf("run: %s %s", res.stdout, res.stderr)
	}
	eventually(t, 20*time.Second, "the last line stored", func() bool {
		return strings.Contains(r.convox("logs", "-a", "bounded", "--no-follow", "--since", "10m", "--filter", "n 30000").stdout, " n 30000\n")
	})
	logs := r.convox("logs", "-a", "bounded", "--no-follow", "--since", "10m", "--filter", "n ").stdout
	if strings.Contains(logs, " n 1\n") {
		t.Errorf("the oldest line survived a 200 kB bound")
	}
	if n := strings.Count(logs, "\n"); n < 1000 || n > 20000 {
		t.Errorf("%d lines kept under a 200 kB bound", n)
	}
}

// TestRunExec: one-off processes and exec, with exit codes, stdin, detach
// and a terminal.
func TestRunExec(t *testing.T) {
	r := newRack(t)
	r.start()
	dir := sampleApp(t, "")
	r.convox("apps", "create", "runner").expect(t, "Creating runner... OK\n", "", 0)
	r.convox("run", "web", "true", "-a", "runner").expect(t, "", "ERROR: app runner has no release yet: deploy it first\n", 1)
	if _, res := r.deploy(t, "runner", dir); res.code != 0 {
		t.Fatalf("deploy: %s %s", res.stdout, res.stderr)
	}

	r.convox("run", "web", "echo hello $APP", "-a", "runner").expect(t, "hello runner\n", "", 0)
	r.convox("run", "web", "exit 3", "-a", "runner").expect(t, "", "", 3)
	if res := runConvox(t, "", r.env(), "hi there\n", "run", "web", "cat", "-a", "runner"); res.stdout != "hi there\n" || res.code != 0 {
		t.Errorf("stdin through run: %q exit %d %s", res.stdout, res.code, res.stderr)
	}
	res := r.convox("run", "web", "nosuchcommand", "-a", "runner")
	if res.code != 127 || !strings.Contains(res.stdout+res.stderr, "nosuchcommand: not found") {
		t.Errorf("missing command: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	r.convox("run", "nosuch", "true", "-a", "runner").expect(t, "", "ERROR: service not found: nosuch\n", 1)

	// Detached: the process shows in ps while it runs and is removed after.
	res = r.convox("run", "web", "--detach", "sleep 3; echo detached-done", "-a", "runner")
	m := regexp.MustCompile(`^Running detached process\.\.\. OK, (web-[a-z0-9]{5})\n$`).FindStringSubmatch(res.stdout)
	if res.code != 0 || m == nil {
		t.Fatalf("run --detach: exit %d %q %s", res.code, res.stdout, res.stderr)
	}
	if ps := r.convox("ps", "-a", "runner").stdout; !strings.Contains(ps, m[1]) {
		t.Errorf("the detached process is not in ps:\n%s", ps)
	}
	eventually(t, 30*time.Second, "the detached process removed", func() bool {
		return !strings.Contains(r.convox("ps", "-a", "runner").stdout, m[1])
	})
	if logs := r.convox("logs", "-a", "runner", "--no-follow", "--since", "10m").stdout; !strings.Contains(logs, "service/web/"+m[1]+" detached-done") {
		t.Errorf("the detached process's output is not in the logs:\n%s", logs)
	}

	// exec into a service process.
	var pid string
	for p := range r.webProcesses(t, "runner") {
		pid = p
	}
	r.convox("exec", pid, "hostname", "-a", "runner").expect(t, pid+"\n", "", 0)
	r.convox("exec", pid, "exit 5", "-a", "runner").expect(t, "", "", 5)
	r.convox("exec", "web-zzzzz", "true", "-a", "runner").expect(t, "", "ERROR: process not found: web-zzzzz\n", 1)

	// With a terminal: script(1) gives the CLI a pseudo-terminal.
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatalf("script(1) is needed for the terminal test: apt-get install bsdutils")
	}
	cmd := exec.Command("script", "-qec", fmt.Sprintf("%s run web tty -a runner", binary), "/dev/null")
	cmd.Env = r.env()
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "/dev/pts/") {
		t.Errorf("run with a terminal: %v\n%q", err, out)
	}
}
