package docker

import (
	"errors"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-connections/nat"

	"github.com/singlehost/convox/engine"
)

// TestRuntime_ProcessStart runs the server image as an app's web process
// would run and checks every part of the spec from the outside: over HTTP
// on the published port, by name from a second process on the network, and
// in Docker's own inspect.
func TestRuntime_ProcessStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	image, _ := h.serverImage()
	ctx := h.ctx()
	net, vol := h.name("net"), h.name("vol")
	labels := h.labels(engine.LabelApp, "app1", engine.LabelService, "web")
	if err := h.r.NetworkEnsure(ctx, net, labels); err != nil {
		t.Fatal(err)
	}
	if err := h.r.VolumeEnsure(ctx, vol, labels); err != nil {
		t.Fatal(err)
	}
	greeting := "hello-" + h.suffix
	spec := engine.ProcessSpec{
		Name:      h.name("web"),
		Hostname:  "web-x8k2q",
		Image:     image,
		Env:       map[string]string{"GREETING": greeting, "B": "2", "A": "1"},
		Labels:    labels,
		Network:   net,
		Aliases:   []string{"web"},
		Publish:   []int{8080},
		CPU:       250,
		Memory:    64,
		Init:      true,
		Mounts:    []engine.Mount{{Volume: vol, Target: "/data"}},
		StopGrace: 2500 * time.Millisecond,
	}
	web := h.start(spec)

	t.Run("process", func(t *testing.T) {
		if web.Name != spec.Name || web.Image != image || !web.Running() {
			t.Errorf("got name %q image %q state %q, want %q %q running", web.Name, web.Image, web.State, spec.Name, image)
		}
		// Docker adds the image's labels to the container's.
		for k, v := range labels {
			if web.Labels[k] != v {
				t.Errorf("Labels: got %v, want %v among them", web.Labels, labels)
				break
			}
		}
		if web.Labels["convox.build"] != "B1" {
			t.Errorf("Labels: got %v, want the image's convox.build=B1 too", web.Labels)
		}
		if want := []string{"/server", "-port", "8080"}; !slices.Equal(web.Command, want) {
			t.Errorf("Command: got %q, want %q", web.Command, want)
		}
		if web.IP == "" || web.Started.IsZero() || web.Created.IsZero() || !web.Finished.IsZero() {
			t.Errorf("got IP %q started %v created %v finished %v: want an IP, times of creation and start, no finish", web.IP, web.Started, web.Created, web.Finished)
		}
		addr := web.Ports[8080]
		if len(web.Ports) != 1 || addr.Addr() != netip.MustParseAddr("127.0.0.1") || addr.Port() == 0 {
			t.Errorf("Ports: got %v, want 8080 on 127.0.0.1 at an ephemeral port", web.Ports)
		}
	})

	t.Run("published port", func(t *testing.T) {
		url := "http://" + web.Ports[8080].String() + "/"
		deadline := time.Now().Add(10 * time.Second)
		for {
			body, err := httpGet(url)
			if err == nil {
				if body != greeting+"\n" {
					t.Errorf("GET %s: got %q, want %q", url, body, greeting+"\n")
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v", url, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("network alias", func(t *testing.T) {
		h := h.with(t)
		// The base image has no HTTP client: bash's /dev/tcp is enough.
		client := h.start(engine.ProcessSpec{
			Name:    h.name("client"),
			Network: net,
			Labels:  h.labels(),
			Command: []string{"bash", "-c", `getent hosts web && exec 3<>/dev/tcp/web/8080 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3`},
		})
		if p := h.waitExit(client.ID); p.ExitCode != 0 {
			t.Errorf("client exited with %d:\n%s", p.ExitCode, h.logs(client.ID, engine.LogOptions{}))
		}
		out := h.logs(client.ID, engine.LogOptions{})
		if !strings.HasPrefix(out, web.IP+" ") || !strings.Contains(out, greeting) {
			t.Errorf("client output %q: want web resolved to %s and the greeting %q", out, web.IP, greeting)
		}
	})

	t.Run("docker inspect", func(t *testing.T) {
		h := h.with(t)
		c, err := h.r.c.ContainerInspect(ctx, web.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.HostConfig.CPUShares, int64(256); got != want {
			t.Errorf("CPUShares: got %d, want %d", got, want)
		}
		if got, want := c.HostConfig.Memory, int64(64<<20); got != want {
			t.Errorf("Memory: got %d, want %d", got, want)
		}
		if c.HostConfig.Init == nil || !*c.HostConfig.Init || c.HostConfig.Privileged {
			t.Errorf("Init %v Privileged %v, want init and no privileges", c.HostConfig.Init, c.HostConfig.Privileged)
		}
		if c.Config.StopTimeout == nil || *c.Config.StopTimeout != 3 {
			t.Errorf("StopTimeout: got %v, want 3 (2.5s rounded up)", c.Config.StopTimeout)
		}
		if c.Config.Hostname != spec.Hostname {
			t.Errorf("Hostname: got %q, want %q", c.Config.Hostname, spec.Hostname)
		}
		var ours []string
		for _, e := range c.Config.Env {
			if k, _, _ := strings.Cut(e, "="); spec.Env[k] != "" {
				ours = append(ours, e)
			}
		}
		if want := []string{"A=1", "B=2", "GREETING=" + greeting}; !slices.Equal(ours, want) {
			t.Errorf("Env: got %q, want %q in that order", ours, want)
		}
		if b := c.HostConfig.PortBindings[nat.Port("8080/tcp")]; len(b) != 1 || b[0].HostIP != "127.0.0.1" || b[0].HostPort != "" {
			t.Errorf("PortBindings: got %v, want 127.0.0.1 with an ephemeral port", c.HostConfig.PortBindings)
		}
		if len(c.Mounts) != 1 || c.Mounts[0].Type != mount.TypeVolume || c.Mounts[0].Name != vol || c.Mounts[0].Destination != "/data" {
			t.Errorf("Mounts: got %+v, want %s at /data", c.Mounts, vol)
		}
		if es := c.NetworkSettings.Networks[net]; es == nil || !slices.Contains(es.Aliases, "web") {
			t.Errorf("network %s endpoint: got %+v, want alias web", net, es)
		}
	})

	t.Run("inspect", func(t *testing.T) {
		h := h.with(t)
		got, err := h.r.ProcessInspect(ctx, spec.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != web.ID || got.Ports[8080] != web.Ports[8080] || got.IP != web.IP {
			t.Errorf("inspect by name: got %+v, want %+v", got, web)
		}
	})
}

func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestRuntime_ProcessStart_Mounts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := h.ctx()
	vol := h.name("data")
	if err := h.r.VolumeEnsure(ctx, vol, h.labels()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name  string
		mount engine.Mount
	}{
		{"volume", engine.Mount{Volume: vol, Target: "/data"}},
		{"bind", engine.Mount{Source: dir, Target: "/data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			// One process writes, a later one reads: the data outlives the
			// process that wrote it.
			want := tt.name + "-" + h.suffix
			w := h.start(engine.ProcessSpec{
				Name:    h.name(tt.name + "-writer"),
				Mounts:  []engine.Mount{tt.mount},
				Command: []string{"bash", "-c", "echo " + want + " > /data/" + tt.name},
			})
			if p := h.waitExit(w.ID); p.ExitCode != 0 {
				t.Fatalf("writer exited %d: %s", p.ExitCode, h.logs(w.ID, engine.LogOptions{}))
			}
			if err := h.r.ProcessRemove(ctx, w.ID); err != nil {
				t.Fatal(err)
			}
			rd := h.start(engine.ProcessSpec{
				Name:    h.name(tt.name + "-reader"),
				Mounts:  []engine.Mount{tt.mount},
				Command: []string{"cat", "/data/" + tt.name},
			})
			h.waitExit(rd.ID)
			if got := h.logs(rd.ID, engine.LogOptions{}); got != want+"\n" {
				t.Errorf("reader printed %q, want %q", got, want+"\n")
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(dir, "bind")); err != nil || string(b) != "bind-"+h.suffix+"\n" {
		t.Errorf("host side of the bind mount: %q, %v", b, err)
	}
}

func TestRuntime_ProcessStart_Fails(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tests := []struct {
		name    string
		command []string
		wantErr string
	}{
		{"missing executable", []string{"no-such-executable"}, `"no-such-executable": executable file not found`},
		{"missing path", []string{"/no/such/file"}, "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			ctx := h.ctx()
			name := h.name(strings.ReplaceAll(tt.name, " ", "-"))
			_, err := h.r.ProcessStart(ctx, engine.ProcessSpec{Name: name, Image: baseImage, Command: tt.command, Labels: h.labels()})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "starting process "+name) {
				t.Fatalf("got %v, want an error starting %s containing %q", err, name, tt.wantErr)
			}
			if errors.Is(err, engine.ErrNotFound) {
				t.Errorf("%v: a missing executable is not a missing object", err)
			}
			cs, err := h.r.c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("name", name))})
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != 0 {
				t.Errorf("a failed start left container %s (%s)", cs[0].Names, cs[0].State)
			}
		})
	}
}

func TestRuntime_ProcessList(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	other := "dockertest-other-" + h.suffix
	h.purgeOnCleanup(other)
	start := func(name string, labels engine.Labels, command ...string) engine.Process {
		return h.start(engine.ProcessSpec{Name: h.name(name), Labels: labels, Init: true, Command: command})
	}
	web := start("web", h.labels(engine.LabelService, "web"), "sleep", "60")
	worker := start("worker", h.labels(engine.LabelService, "worker"), "bash", "-c", "exit 5")
	start("elsewhere", engine.Labels{engine.LabelRack: other, engine.LabelService: "web"}, "sleep", "60")
	h.waitExit(worker.ID)

	tests := []struct {
		name string
		sel  engine.Labels
		want []string
	}{
		{"rack", h.labels(), []string{web.Name, worker.Name}},
		{"rack and service", h.labels(engine.LabelService, "web"), []string{web.Name}},
		{"no match", h.labels(engine.LabelService, "db"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			ps, err := h.r.ProcessList(h.ctx(), tt.sel)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.Name)
			}
			sort.Strings(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("fields", func(t *testing.T) {
		h := h.with(t)
		ps, err := h.r.ProcessList(h.ctx(), h.labels())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			switch p.Name {
			case web.Name:
				if !p.Running() || p.IP == "" || p.Started.IsZero() || !slices.Equal(p.Command, []string{"sleep", "60"}) {
					t.Errorf("web: got %+v, want running with an IP, start time and command", p)
				}
			case worker.Name:
				if p.State != engine.StateExited || p.ExitCode != 5 || p.Finished.IsZero() || p.Labels[engine.LabelService] != "worker" {
					t.Errorf("worker: got %+v, want exited with 5, a finish time and its labels", p)
				}
			}
		}
	})
}

func TestRuntime_ProcessStop(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tests := []struct {
		name     string
		command  []string
		grace    time.Duration
		wantCode int
		minTime  time.Duration
		maxTime  time.Duration
	}{
		{
			name:     "exits on TERM",
			command:  []string{"bash", "-c", `trap "echo bye; exit 0" TERM; echo ready; while :; do sleep 0.1; done`},
			grace:    20 * time.Second,
			wantCode: 0,
			maxTime:  5 * time.Second,
		},
		{
			// PID 1 without an init ignores signals it has no handler for:
			// sleep is only stopped by the SIGKILL after the grace period.
			name:     "ignores TERM",
			command:  []string{"bash", "-c", "echo ready; exec sleep 60"},
			grace:    1500 * time.Millisecond,
			wantCode: 137,
			minTime:  1500 * time.Millisecond,
			maxTime:  10 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			t.Parallel()
			p := h.start(engine.ProcessSpec{Name: h.name(strings.ReplaceAll(tt.name, " ", "-")), Command: tt.command})
			h.waitLog(p.ID, "ready")
			begin := time.Now()
			if err := h.r.ProcessStop(h.ctx(), p.ID, tt.grace); err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(begin)
			if elapsed < tt.minTime || elapsed > tt.maxTime {
				t.Errorf("stop took %v, want between %v and %v", elapsed, tt.minTime, tt.maxTime)
			}
			got, err := h.r.ProcessInspect(h.ctx(), p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != engine.StateExited || got.ExitCode != tt.wantCode {
				t.Errorf("after stop: state %s code %d, want exited %d", got.State, got.ExitCode, tt.wantCode)
			}
			// Stopping a stopped process is not an error.
			if err := h.r.ProcessStop(h.ctx(), p.ID, time.Second); err != nil {
				t.Errorf("second stop: %v", err)
			}
		})
	}
}

func TestRuntime_ProcessRemove(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.start(engine.ProcessSpec{Name: h.name("doomed"), Command: []string{"sleep", "60"}})
	if err := h.r.ProcessRemove(h.ctx(), p.ID); err != nil {
		t.Fatalf("removing a running process: %v", err)
	}
	if _, err := h.r.ProcessInspect(h.ctx(), p.ID); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("after remove: got %v, want ErrNotFound", err)
	}
}

func TestCreateConfig(t *testing.T) {
	spec := engine.ProcessSpec{
		Name:       "web-1",
		Hostname:   "web-1",
		Image:      "app:B1",
		Command:    []string{"serve"},
		Env:        map[string]string{"Z": "26", "A": "1", "M": "x=y"},
		Labels:     engine.Labels{engine.LabelApp: "a"},
		Network:    "a",
		Aliases:    []string{"web"},
		Publish:    []int{5000, 5001},
		CPU:        500,
		CPULimit:   1500,
		Memory:     256,
		Privileged: true,
		Mounts:     []engine.Mount{{Volume: "v", Target: "/v"}, {Source: "/h", Target: "/b"}},
		StopGrace:  10*time.Second + time.Millisecond,
	}
	cfg, hc, nc := createConfig(spec)
	if want := []string{"A=1", "M=x=y", "Z=26"}; !slices.Equal(cfg.Env, want) {
		t.Errorf("Env: got %q, want %q", cfg.Env, want)
	}
	if cfg.Entrypoint != nil || !slices.Equal(cfg.Cmd, spec.Command) {
		t.Errorf("Entrypoint %q Cmd %q: want the image's entrypoint and %q", cfg.Entrypoint, cfg.Cmd, spec.Command)
	}
	if cfg.StopTimeout == nil || *cfg.StopTimeout != 11 {
		t.Errorf("StopTimeout: got %v, want 11", cfg.StopTimeout)
	}
	if hc.CPUShares != 512 || hc.NanoCPUs != 1_500_000_000 || hc.Memory != 256<<20 {
		t.Errorf("CPUShares %d NanoCPUs %d Memory %d, want 512, 1.5e9 and 256 MiB", hc.CPUShares, hc.NanoCPUs, hc.Memory)
	}
	if *hc.Init || !hc.Privileged || hc.NetworkMode != "a" {
		t.Errorf("Init %v Privileged %v NetworkMode %q", *hc.Init, hc.Privileged, hc.NetworkMode)
	}
	if len(hc.PortBindings) != 2 || len(cfg.ExposedPorts) != 2 || hc.PortBindings["5001/tcp"][0] != (nat.PortBinding{HostIP: "127.0.0.1"}) {
		t.Errorf("ports: exposed %v bound %v", cfg.ExposedPorts, hc.PortBindings)
	}
	wantMounts := []mount.Mount{
		{Type: mount.TypeVolume, Source: "v", Target: "/v"},
		{Type: mount.TypeBind, Source: "/h", Target: "/b"},
	}
	if !slices.Equal(hc.Mounts, wantMounts) {
		t.Errorf("Mounts: got %+v, want %+v", hc.Mounts, wantMounts)
	}
	if es := nc.EndpointsConfig["a"]; es == nil || !slices.Equal(es.Aliases, []string{"web"}) {
		t.Errorf("EndpointsConfig: got %+v", nc.EndpointsConfig)
	}
	// The spec's labels are copied, not shared with Docker's config.
	cfg.Labels["x"] = "y"
	if _, ok := spec.Labels["x"]; ok {
		t.Error("createConfig shares the spec's label map")
	}

	cfg, hc, nc = createConfig(engine.ProcessSpec{Name: "bare", Image: "i"})
	if cfg.StopTimeout != nil || hc.NanoCPUs != 0 || hc.Memory != 0 || hc.PortBindings != nil || nc != nil || hc.NetworkMode != "" {
		t.Errorf("an empty spec sets limits or networking: %+v %+v %+v", cfg, hc, nc)
	}
}

func TestHostPorts(t *testing.T) {
	tests := []struct {
		name string
		in   nat.PortMap
		want map[int]netip.AddrPort
	}{
		{
			name: "loopback",
			in:   nat.PortMap{"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "49153"}}},
			want: map[int]netip.AddrPort{8080: netip.MustParseAddrPort("127.0.0.1:49153")},
		},
		{
			name: "IPv4 preferred",
			in:   nat.PortMap{"80/tcp": {{HostIP: "::", HostPort: "1"}, {HostIP: "0.0.0.0", HostPort: "2"}, {HostIP: "::1", HostPort: "3"}}},
			want: map[int]netip.AddrPort{80: netip.MustParseAddrPort("0.0.0.0:2")},
		},
		{
			name: "stopped, udp, unparsable",
			in:   nat.PortMap{"8080/tcp": nil, "53/udp": {{HostIP: "127.0.0.1", HostPort: "53"}}, "1/tcp": {{HostIP: "", HostPort: "x"}}},
			want: map[int]netip.AddrPort{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hostPorts(tt.in); !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCeilSeconds(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want int
	}{
		{-time.Second, 0},
		{0, 0},
		{time.Nanosecond, 1},
		{time.Second, 1},
		{1500 * time.Millisecond, 2},
		{30 * time.Second, 30},
	}
	for _, tt := range tests {
		if got := ceilSeconds(tt.in); got != tt.want {
			t.Errorf("ceilSeconds(%v): got %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	if got := parseTime("0001-01-01T00:00:00Z"); !got.IsZero() {
		t.Errorf("Docker's never: got %v, want zero", got)
	}
	want := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	if got := parseTime("2024-05-01T12:00:00.123456789Z"); !got.Equal(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
