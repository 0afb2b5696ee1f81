package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestConverge: a crash loop is replaced with growing back-off, visible in
// ps and the logs; a process killed from outside is replaced and its
// replacement routed as soon as it is healthy; stray containers of the rack
// are removed; volumes outlive deploys; one app's stuck rollout does not
// block another app.
func TestConverge(t *testing.T) {
	r := newRack(t)
	r.start()
	dir := sampleApp(t, `services:
  web:
    build: .
    port: 5000
    health: /health
    volumes:
      - /data
    scale:
      count: 1
`)
	r.convox("apps", "create", "loop").expect(t, "Creating loop... OK\n", "", 0)
	r.convox("apps", "create", "calm").expect(t, "Creating calm... OK\n", "", 0)
	for _, app := range []string{"loop", "calm"} {
		if _, res := r.deploy(t, app, dir); res.code != 0 {
			t.Fatalf("deploy %s: %s %s", app, res.stdout, res.stderr)
		}
	}

	// A volume outlives a deploy.
	ports := r.publishedPorts(t, "calm", "web", "5000")
	if b, err := get("http://127.0.0.1:" + ports[0] + "/file?path=/data/note&write=kept"); err != nil || b != "kept" {
		t.Fatalf("writing to the volume: %q %v", b, err)
	}
	if res := r.convox("env", "set", "GREETING=later", "-a", "calm", "--promote"); res.code != 0 {
		t.Fatalf("promote: %s %s", res.stdout, res.stderr)
	}
	ports = r.publishedPorts(t, "calm", "web", "5000")
	if b, err := get("http://127.0.0.1:" + ports[0] + "/file?path=/data/note"); err != nil || b != "kept" {
		t.Errorf("the volume after a deploy: %q %v", b, err)
	}

	// A process killed from outside is replaced, and the replacement is
	// health-checked at once rather than at the next periodic converge (10 s
	// apart): twice, as a replacement could start just before one.
	started := regexp.MustCompile(`(?m)^(\S+) system/process Started process (web-[a-z0-9]{5})`)
	healthy := regexp.MustCompile(`(?m)^(\S+) system/process Process (web-[a-z0-9]{5}) is healthy`)
	calmLogs := func() string { return r.convox("logs", "-a", "calm", "--no-follow", "--since", "10m").stdout }
	for range 2 {
		victim := regexp.MustCompile(`web-[a-z0-9]{5}`).FindString(r.convox("ps", "-a", "calm").stdout)
		if victim == "" {
			t.Fatal("no process of calm in convox ps")
		}
		known := map[string]bool{}
		for _, m := range started.FindAllStringSubmatch(calmLogs(), -1) {
			known[m[2]] = true
		}
		docker(t, "kill", r.name+"-calm-"+victim)
		var start, ready time.Time
		eventually(t, 30*time.Second, "the killed process replaced and healthy", func() bool {
			logs := calmLogs()
			for _, m := range started.FindAllStringSubmatch(logs, -1) {
				if known[m[2]] {
					continue
				}
				start, _ = time.Parse(time.RFC3339, m[1])
				for _, h := range healthy.FindAllStringSubmatch(logs, -1) {
					if h[2] == m[2] {
						ready, _ = time.Parse(time.RFC3339, h[1])
						return true
					}
				}
			}
			return false
		})
		if d := ready.Sub(start); d > 3*time.Second {
			t.Errorf("the replacement of %s was healthy %s after it started: want it checked at once (within 3 s), not at the next converge", victim, d)
		}
	}

	// One app stuck updating does not hold another back.
	stuck := make(chan result)
	go func() {
		stuck <- r.convox("env", "set", "START_DELAY=60", "-a", "loop", "--promote", "--timeout", "20")
	}()
	eventually(t, 20*time.Second, "loop updating", func() bool {
		return strings.Contains(r.convox("apps", "info", "loop").stdout, "Status  updating")
	})
	if res := r.convox("env", "set", "GREETING=meanwhile", "-a", "calm", "--promote"); res.code != 0 {
		t.Errorf("promoting calm while loop is updating: %s %s", res.stdout, res.stderr)
	}
	r.convox("apps", "cancel", "loop")
	<-stuck

	// A process that dies every few seconds is replaced again and again,
	// each time a little later.
	if res := r.convox("env", "set", "EXIT_AFTER=2", "START_DELAY=", "-a", "loop", "--promote"); res.code != 0 {
		t.Fatalf("promote: %s %s", res.stdout, res.stderr)
	}
	delays := regexp.MustCompile(`Process web-[a-z0-9]{5} exited with code 1; replacing it in (\d+)s`)
	var seenCrashed bool
	eventually(t, 60*time.Second, "three crashes with growing back-off", func() bool {
		if strings.Contains(r.convox("ps", "-a", "loop").stdout, "  crashed  ") {
			seenCrashed = true
		}
		logs := r.convox("logs", "-a", "loop", "--no-follow", "--since", "10m").stdout
		m := delays.FindAllStringSubmatch(logs, -1)
		return len(m) >= 3 && m[0][1] == "1" && m[1][1] == "2" && m[2][1] == "4"
	})
	if !seenCrashed {
		t.Errorf("convox ps never showed the crashed process while it backed off")
	}

	// A container of this rack for an app that does not exist is removed.
	stray := docker(t, "run", "-d", "--label", "convox.rack="+r.name, "--label", "convox.app=ghost",
		"--label", "convox.type=service", baseImage, "sleep", "600")
	eventually(t, 40*time.Second, "the stray container removed", func() bool {
		return runQuiet("docker", "inspect", stray) != nil
	})
}
