package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/singlehost/convox/bench/internal/procfs"
	"github.com/singlehost/convox/bench/internal/rackbench"
)

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
		res, err := rackbench.DockerStream(ctx, path)
		if err != nil {
			rackbench.Logf("docker events: %v", err)
			return
		}
		defer res.Body.Close()
		if res.StatusCode != 200 {
			rackbench.Logf("docker events: %s", res.Status)
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
	if err := rackbench.DockerAPI(ctx, "/containers/"+id+"/json", &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// machine describes where the benchmark ran.
type machine struct {
	rackbench.Machine
	driver, logOpts, load string
}

func describeMachine(ctx context.Context) machine {
	m := machine{Machine: rackbench.DescribeMachine(ctx)}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.load = strings.Join(strings.Fields(string(data))[:3], " ")
	}
	if out, err := rackbench.Docker(ctx, "info", "--format", "{{.Driver}} / log driver {{.LoggingDriver}}"); err == nil {
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

// clockTick is USER_HZ, the unit of /proc's CPU times.
var clockTick = procfs.Tick()

// unknown is a CPU time that could not be read.
const unknown = time.Duration(math.MinInt64)

// cpuTime is pid's utime+stime; unknown when it cannot be read (pid 0,
// gone).
func cpuTime(pid int) time.Duration {
	if d, ok := procfs.CPUTime(pid); ok {
		return d
	}
	return unknown
}

// hostCPU is the host's CPU time so far, in clock ticks summed over CPUs:
// all of it, and the busy part (not idle or waiting for I/O).
func hostCPU() (total, busy int64) {
	t := procfs.Host()
	return t.Total(), t.Total() - t.Idle - t.IOWait
}

// shimOf is the pid of the containerd shim that holds container id's
// stdio; 0 if not found.
func shimOf(id string) int {
	for _, comm := range []string{"containerd-shim", "containerd-shim-runc-v2"} {
		if pid := procfs.Find(comm, id); pid != 0 {
			return pid
		}
	}
	return 0
}
