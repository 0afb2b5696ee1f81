package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/singlehost/convox/bench/internal/procfs"
)

// target is one way to reach the backend process.
type target struct {
	name   string // in the tables
	kind   string // "direct", "nginx" or "router"
	scheme string // "http" or "https"
	url    string // what wrk is given
	pids   func() []int
}

// result is one wrk run against one target.
type result struct {
	target             *target
	round, attempts    int
	rps                float64
	p50, p75, p90, p99 time.Duration
	requests           int64
	errors             int64 // socket errors of every kind
	non2xx             int64 // responses other than 2xx or 3xx
	proxyCPU           time.Duration
	busy               float64 // share of the machine's CPU time that was busy
	// other is the share of the machine's CPU time used by processes
	// other than wrk, the proxy, the backend and its docker-proxy: other
	// work on the machine, which a run must not have to share the CPUs with.
	other  float64
	output string
}

// cpuPerRequest is the proxy's CPU time per request; -1 without a proxy.
func (r *result) cpuPerRequest() time.Duration {
	if r.target.pids == nil || r.requests == 0 {
		return -1
	}
	return r.proxyCPU / time.Duration(r.requests)
}

// load is how wrk is run.
type load struct {
	threads, conns int
	duration       time.Duration
	host           string // Host header (and, over TLS, server name)
	script         string // Lua script that connects to 127.0.0.1 whatever the URL's host
	close          bool   // Connection: close on every request
	// backend lists the backend's processes (the server in its container
	// and the docker-proxy of its published port), whose CPU time is not
	// other load.
	backend func() []int
}

func (l load) args(t *target, d time.Duration) []string {
	args := []string{
		"-t" + strconv.Itoa(l.threads), "-c" + strconv.Itoa(l.conns),
		fmt.Sprintf("-d%ds", int(d.Seconds())), "--latency",
		"-H", "Host: " + l.host,
	}
	if l.close {
		args = append(args, "-H", "Connection: close")
	}
	if t.scheme == "https" {
		args = append(args, "-s", l.script)
	}
	return append(args, t.url)
}

// command is the wrk command line, for the report.
func (l load) command(t *target) string {
	args := l.args(t, l.duration)
	for i, a := range args {
		if strings.ContainsAny(a, " '") {
			args[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return "wrk " + strings.Join(args, " ")
}

// resolveScript makes wrk connect to 127.0.0.1 while the URL names the
// routed host: wrk takes the TLS server name (SNI) from the URL, and the
// router only serves certificates for routed hosts, which do not resolve
// here. A script that only overrides wrk.resolve keeps wrk's requests
// static, so it costs nothing per request.
const resolveScript = `-- Written by bench/router: connect to 127.0.0.1, keep the URL's host
-- for SNI and the Host header.
function wrk.resolve(host, service)
   wrk.addrs = wrk.lookup("127.0.0.1", service)
end
`

func writeResolveScript(dir string) (string, error) {
	path := filepath.Join(dir, "resolve.lua")
	return path, os.WriteFile(path, []byte(resolveScript), 0o644)
}

// run runs wrk against t for d and parses its report, with the proxy's
// and the machine's CPU time over the run.
func (l load) run(ctx context.Context, t *target, d time.Duration) (*result, error) {
	cmd := exec.CommandContext(ctx, "wrk", l.args(t, d)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var proxy, backend []int
	if t.pids != nil {
		proxy = t.pids()
	}
	if l.backend != nil {
		backend = l.backend()
	}
	cpu0, back0, sys0 := procfs.CPUTimes(proxy), procfs.CPUTimes(backend), machineTime()
	err := cmd.Run()
	cpu1, back1, sys1 := procfs.CPUTimes(proxy), procfs.CPUTimes(backend), machineTime()
	if err != nil {
		return nil, fmt.Errorf("wrk against %s: %w\n%s%s", t.name, err, stdout.String(), stderr.String())
	}
	res, err := parseWrk(stdout.String())
	if err != nil {
		return nil, fmt.Errorf("wrk against %s: %w\n%s", t.name, err, stdout.String())
	}
	res.target = t
	res.proxyCPU = cpu1 - cpu0
	if total := sys1.total - sys0.total; total > 0 {
		res.busy = float64(sys1.busy-sys0.busy) / float64(total)
		// Process times hold user and system time, not the interrupt
		// and softirq time the machine accounts apart, so they are set
		// against the machine's user and system time.
		known := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime() + res.proxyCPU + (back1 - back0)
		res.other = max(0, float64(sys1.task-sys0.task)-float64(known/procfs.Tick())) / float64(total)
	}
	return res, nil
}

// waitQuiet waits, up to limit, until the machine has been less than 15%
// busy for a second, so that a run does not start in the middle of other
// work (another benchmark, a test suite). It reports whether it was.
func waitQuiet(ctx context.Context, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for ctx.Err() == nil {
		t0 := machineTime()
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
		t1 := machineTime()
		if total := t1.total - t0.total; total > 0 && float64(t1.busy-t0.busy)/float64(total) < 0.15 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
	return false
}

var (
	wrkRPS       = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)\s*$`)
	wrkLatency   = regexp.MustCompile(`(?m)^\s+(50|75|90|99)%\s+([0-9.]+)(us|ms|s|m|h)\s*$`)
	wrkRequests  = regexp.MustCompile(`(?m)^\s+(\d+) requests in `)
	wrkSocketErr = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx    = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// parseWrk reads wrk's report (with --latency).
func parseWrk(out string) (*result, error) {
	r := &result{output: out}
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return nil, errors.New("no Requests/sec line")
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkRequests.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	found := 0
	for _, m := range wrkLatency.FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return nil, err
		}
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond,
			"s": time.Second, "m": time.Minute, "h": time.Hour}[m[3]]
		d := time.Duration(v * float64(unit))
		switch m[1] {
		case "50":
			r.p50 = d
		case "75":
			r.p75 = d
		case "90":
			r.p90 = d
		case "99":
			r.p99 = d
		}
		found++
	}
	if found != 4 {
		return nil, errors.New("no latency distribution (50%/75%/90%/99%)")
	}
	if m := wrkSocketErr.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.errors += n
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return r, nil
}

// machineTicks are the machine's CPU ticks so far: busy (not idle,
// waiting for I/O or stolen by the hypervisor), task (user and system,
// what processes are charged) and total.
type machineTicks struct{ busy, task, total int64 }

func machineTime() machineTicks {
	h := procfs.Host()
	return machineTicks{
		busy:  h.User + h.Nice + h.System + h.IRQ + h.SoftIRQ,
		task:  h.User + h.Nice + h.System,
		total: h.Total(),
	}
}
