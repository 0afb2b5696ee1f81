package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// dockerTransport reaches the Docker engine's API on its unix socket.
var dockerTransport = &http.Transport{
	DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		sock := "/var/run/docker.sock"
		if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
			sock = h
		}
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	},
}

// dockerClient is for short calls; the event stream has no timeout.
var (
	dockerClient = &http.Client{Timeout: 5 * time.Second, Transport: dockerTransport}
	dockerStream = &http.Client{Transport: dockerTransport}
)

func dockerAPI(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://docker"+path, nil)
	if err != nil {
		return err
	}
	res, err := dockerClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("docker API %s: %s", path, res.Status)
	}
	return json.NewDecoder(res.Body).Decode(v)
}

// event is one of Docker's container events.
type event struct {
	Action string
	Actor  struct {
		ID         string
		Attributes map[string]string // the container's labels, among others
	}
	TimeNano int64 `json:"timeNano"`
}

// events streams the start and destroy events of the containers labelled
// label (key=value) from since on, until ctx ends. Docker replays the
// events it already has from since, so a subscription that lands late
// misses nothing; the call does not wait for it. The channel closes when
// the stream ends.
func events(ctx context.Context, label string, since time.Time) <-chan event {
	filters, _ := json.Marshal(map[string][]string{
		"type":  {"container"},
		"event": {"start", "destroy"},
		"label": {label},
	})
	path := fmt.Sprintf("/events?since=%d.%09d&filters=%s", since.Unix(), since.Nanosecond(), url.QueryEscape(string(filters)))
	ch := make(chan event, 16)
	go func() {
		defer close(ch)
		req, err := http.NewRequestWithContext(ctx, "GET", "http://docker"+path, nil)
		if err != nil {
			return
		}
		res, err := dockerStream.Do(req)
		if err != nil {
			logf("docker events: %v", err)
			return
		}
		defer res.Body.Close()
		if res.StatusCode != 200 {
			logf("docker events: %s", res.Status)
			return
		}
		dec := json.NewDecoder(bufio.NewReader(res.Body))
		for {
			var ev event
			if err := dec.Decode(&ev); err != nil {
				return
			}
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// container is what the benchmark reads of `docker inspect`.
type container struct {
	State struct {
		StartedAt time.Time
		Pid       int
	}
	Config struct {
		Image string
	}
	LogPath string
}

// logFiles counts the files of a container's json-file log: the current
// one and those rotated (<path>.1, <path>.2, …); 0 if they cannot be
// listed (another log driver, no permission).
func logFiles(path string) int {
	if path == "" {
		return 0
	}
	if _, err := os.Stat(path); err != nil {
		return 0
	}
	n := 1
	for ; ; n++ {
		if _, err := os.Stat(path + "." + strconv.Itoa(n)); err != nil {
			return n
		}
	}
}

func inspect(ctx context.Context, id string) (*container, error) {
	var c container
	if err := dockerAPI(ctx, "/containers/"+id+"/json", &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// dockerOut runs the docker CLI and returns its standard output.
func dockerOut(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// dockerQuiet runs the docker CLI for its exit status only.
func dockerQuiet(ctx context.Context, args ...string) error {
	return exec.CommandContext(ctx, "docker", args...).Run()
}

// cleanupDocker removes everything the run left in Docker: the rack's
// containers, networks, volumes and images, and the plain containers. It
// runs after an interrupt too, so it has a context of its own.
func cleanupDocker(rackName string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	list := func(args ...string) []string {
		out, err := dockerOut(ctx, args...)
		if err != nil {
			logf("clean-up: %v", err)
		}
		return strings.Fields(out)
	}
	remove := func(what []string, args ...string) {
		if len(what) == 0 {
			return
		}
		if _, err := dockerOut(ctx, append(args, what...)...); err != nil {
			logf("clean-up: %v", err)
		}
	}
	label := "label=convox.rack=" + rackName
	remove(list("ps", "-aq", "--filter", label), "rm", "-f", "-v")
	remove(list("ps", "-aq", "--filter", "label="+plainLabel+"="+rackName), "rm", "-f", "-v")
	remove(list("network", "ls", "-q", "--filter", label), "network", "rm")
	remove(list("volume", "ls", "-q", "--filter", label), "volume", "rm")
	// By name, not id: an id shared by several names would need forcing.
	remove(list("images", "--filter", "reference="+rackName+"/*", "--format", "{{.Repository}}:{{.Tag}}"), "rmi")
}

// machine describes where the benchmark ran.
type machine struct {
	cpus                      int
	cpu, mem, kernel          string
	docker, driver, goVersion string
	logOpts                   string
	load                      string
}

func describeMachine(ctx context.Context) machine {
	m := machine{cpus: runtime.NumCPU(), goVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "free", "-h").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "Mem:" {
				m.mem = f[1]
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.load = strings.Join(strings.Fields(string(data))[:3], " ")
	}
	if out, err := dockerOut(ctx, "version", "--format", "{{.Server.Version}}"); err == nil {
		m.docker = strings.TrimSpace(out)
	}
	if out, err := dockerOut(ctx, "info", "--format", "{{.Driver}} / log driver {{.LoggingDriver}}"); err == nil {
		m.driver = strings.TrimSpace(out)
	}
	// The json-file driver's rotation (max-size, max-file) decides how
	// much of a container's output Docker keeps; daemon.json sets it.
	if data, err := os.ReadFile("/etc/docker/daemon.json"); err == nil {
		var cfg struct {
			LogOpts map[string]string `json:"log-opts"`
		}
		if json.Unmarshal(data, &cfg) == nil {
			var kv []string
			for _, k := range []string{"max-size", "max-file"} {
				if v, ok := cfg.LogOpts[k]; ok {
					kv = append(kv, k+"="+v)
				}
			}
			m.logOpts = strings.Join(kv, " ")
		}
	}
	return m
}

// The CPU time of a process, from /proc/<pid>/stat: utime + stime of all
// its threads, in clock ticks.

var clockTick = func() time.Duration {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 10 * time.Millisecond
	}
	hz, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || hz <= 0 {
		return 10 * time.Millisecond
	}
	return time.Second / time.Duration(hz)
}()

// unknown is a CPU time that could not be read.
const unknown = time.Duration(math.MinInt64)

// cpuTime is pid's utime+stime; unknown when it cannot be read (pid 0,
// gone).
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return unknown
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return unknown
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return unknown
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return unknown
	}
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return unknown
	}
	return time.Duration(u+s) * clockTick
}

// hostCPU is the host's CPU time so far, in clock ticks summed over CPUs:
// all of it, and the busy part (not idle or waiting for I/O).
func hostCPU() (total, busy int64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return total, busy
}

// findProcess returns the pid of the process named comm whose command
// line contains arg (any, if arg is ""); 0 if there is none or several.
func findProcess(comm, arg string) int {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	found := 0
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		c, err := os.ReadFile("/proc/" + d.Name() + "/comm")
		if err != nil || strings.TrimSpace(string(c)) != comm {
			continue
		}
		if arg != "" {
			cmdline, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
			if err != nil || !strings.Contains(string(cmdline), arg) {
				continue
			}
		}
		if found != 0 {
			return 0
		}
		found = pid
	}
	return found
}

// shimOf is the pid of the containerd shim that holds container id's
// stdio; 0 if not found.
func shimOf(id string) int {
	for _, comm := range []string{"containerd-shim", "containerd-shim-runc-v2"} {
		if pid := findProcess(comm, id); pid != 0 {
			return pid
		}
	}
	return 0
}
