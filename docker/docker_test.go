package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/singlehost/convox/engine"
)

// The tests run against the real Docker engine (as nomad's driver tests
// do): the Runtime is a translation layer and only the engine can say
// whether the translation is right. -short skips them.

// baseImage is built locally by testdata/images/build; nothing is pulled.
const baseImage = "convoxtest/debian:bookworm"

// harness is one test's view of the engine: everything it creates carries
// its own convox.rack label and goes away with the test.
type harness struct {
	t      *testing.T
	r      *Runtime
	suffix string // random, in every name
	rack   string // dockertest-<suffix>
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: needs a Docker engine and " + baseImage + " (not in -short mode)")
	}
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Ping(ctx); err != nil {
		t.Fatalf("docker tests need a running engine: %v", err)
	}
	if _, err := r.ImageInspect(ctx, baseImage); err != nil {
		t.Fatalf("test image %s is missing (%v): build it with testdata/images/build", baseImage, err)
	}
	h := &harness{t: t, r: r, suffix: randSuffix()}
	h.rack = "dockertest-" + h.suffix
	h.purgeOnCleanup(h.rack)
	t.Cleanup(func() { r.Close() })
	return h
}

// with is h for the subtest t: t.Fatal must come from t's own goroutine.
func (h *harness) with(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

func randSuffix() string { return fmt.Sprintf("%08x", rand.Uint32()) }

// purgeOnCleanup removes everything labelled with rack when the test ends.
func (h *harness) purgeOnCleanup(rack string) {
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := h.r.Purge(ctx, engine.Labels{engine.LabelRack: rack}); err != nil {
			h.t.Errorf("cleanup: %v", err)
		}
	})
}

// name is a host-unique name for the test's object called s.
func (h *harness) name(s string) string { return "dockertest-" + h.suffix + "-" + s }

// labels are the test's rack label plus kv pairs.
func (h *harness) labels(kv ...string) engine.Labels {
	l := engine.Labels{engine.LabelRack: h.rack}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

// start starts spec with the test's rack label added, failing the test on
// error.
func (h *harness) start(spec engine.ProcessSpec) engine.Process {
	h.t.Helper()
	if spec.Image == "" {
		spec.Image = baseImage
	}
	if spec.Labels == nil {
		spec.Labels = engine.Labels{}
	}
	if _, ok := spec.Labels[engine.LabelRack]; !ok {
		spec.Labels[engine.LabelRack] = h.rack
	}
	p, err := h.r.ProcessStart(h.ctx(), spec)
	if err != nil {
		h.t.Fatalf("ProcessStart %s: %v", spec.Name, err)
	}
	return p
}

// waitExit polls until the process is no longer running.
func (h *harness) waitExit(id string) engine.Process {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p, err := h.r.ProcessInspect(h.ctx(), id)
		if err != nil {
			h.t.Fatal(err)
		}
		if p.State != engine.StateRunning && p.State != engine.StateCreated {
			return p
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("process %s still %s after 20s", p.Name, p.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logs returns the whole output of a process.
func (h *harness) logs(id string, opts engine.LogOptions) string {
	h.t.Helper()
	rc, err := h.r.ProcessLogs(h.ctx(), id, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		h.t.Fatalf("reading logs: %v", err)
	}
	return string(b)
}

// waitLog polls a process's output until it contains want.
func (h *harness) waitLog(id, want string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := h.logs(id, engine.LogOptions{})
		if strings.Contains(out, want) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("output of %s is %q, still without %q after 10s", id, out, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// build builds a context of files (name → content; names ending in "*"
// are executable, the star removed) and fails the test on error. The image
// is removed when the test ends.
func (h *harness) build(tag string, files map[string]string, out io.Writer) {
	h.t.Helper()
	err := h.r.ImageBuild(h.ctx(), engine.BuildSpec{
		Context:    tarOf(h.t, files),
		Dockerfile: "Dockerfile",
		Tag:        tag,
		Labels:     h.labels(),
	}, out)
	if err != nil {
		h.t.Fatalf("building %s: %v", tag, err)
	}
	h.t.Cleanup(func() { h.r.ImageRemove(context.Background(), tag) })
}

func tarOf(t *testing.T, files map[string]string) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		mode := int64(0o644)
		name, exec := strings.CutSuffix(n, "*")
		if exec {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(files[n])), ModTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// The server image (testdata/server built into an image FROM the base) is
// built once for the package and removed by TestMain.
var (
	serverOnce  sync.Once
	serverTag   = "convoxtest/dockertest-server:" + randSuffix()
	serverOut   string
	serverErr   error
	serverBuilt bool
)

// serverDockerfile exercises RUN, ARG, ENTRYPOINT, CMD and EXPOSE.
const serverDockerfile = `FROM ` + baseImage + `
ARG FLAVOUR
COPY server /server
RUN echo "built $FLAVOUR" > /built
EXPOSE 8080 9000/udp
ENTRYPOINT ["/server"]
CMD ["-port", "8080"]
`

// serverImage returns the tag of the server image and the build's output.
func (h *harness) serverImage() (string, string) {
	h.t.Helper()
	serverOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dockertest-server")
		if err != nil {
			serverErr = err
			return
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "server")
		cmd := exec.Command("go", "build", "-o", bin, "./testdata/server")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			serverErr = fmt.Errorf("go build ./testdata/server: %v\n%s", err, out)
			return
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			serverErr = err
			return
		}
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		serverErr = h.r.ImageBuild(ctx, engine.BuildSpec{
			Context:    tarOf(h.t, map[string]string{"Dockerfile": serverDockerfile, "server*": string(b)}),
			Dockerfile: "Dockerfile",
			Tag:        serverTag,
			Args:       map[string]string{"FLAVOUR": "vanilla"},
			Labels:     engine.Labels{engine.LabelRack: "dockertest-server", "convox.build": "B1"},
		}, &out)
		serverOut, serverBuilt = out.String(), serverErr == nil
	})
	if serverErr != nil {
		h.t.Fatalf("building the server image: %v\noutput:\n%s", serverErr, serverOut)
	}
	return serverTag, serverOut
}

func TestMain(m *testing.M) {
	code := m.Run()
	if serverBuilt {
		if r, err := New(); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := r.ImageRemove(ctx, serverTag); err != nil {
				fmt.Fprintln(os.Stderr, "removing the server image:", err)
			}
			cancel()
			r.Close()
		}
	}
	os.Exit(code)
}

func TestRuntime_NotFound(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	missing := h.name("missing")
	image := "convoxtest/" + missing + ":latest"
	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"ProcessInspect", func(ctx context.Context) error { _, err := h.r.ProcessInspect(ctx, missing); return err }},
		{"ProcessStop", func(ctx context.Context) error { return h.r.ProcessStop(ctx, missing, time.Second) }},
		{"ProcessRemove", func(ctx context.Context) error { return h.r.ProcessRemove(ctx, missing) }},
		{"ProcessLogs", func(ctx context.Context) error {
			_, err := h.r.ProcessLogs(ctx, missing, engine.LogOptions{})
			return err
		}},
		{"ProcessExec", func(ctx context.Context) error {
			_, err := h.r.ProcessExec(ctx, missing, engine.ExecOptions{Command: []string{"true"}})
			return err
		}},
		{"ProcessStart missing image", func(ctx context.Context) error {
			_, err := h.r.ProcessStart(ctx, engine.ProcessSpec{Name: missing, Image: image, Labels: h.labels()})
			return err
		}},
		{"ImageInspect", func(ctx context.Context) error { _, err := h.r.ImageInspect(ctx, image); return err }},
		{"ImageTag", func(ctx context.Context) error { return h.r.ImageTag(ctx, image, image+"2") }},
		{"ImageRemove", func(ctx context.Context) error { return h.r.ImageRemove(ctx, image) }},
		{"ImageSave", func(ctx context.Context) error { return h.r.ImageSave(ctx, []string{image}, io.Discard) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			err := tt.call(h.ctx())
			if !errors.Is(err, engine.ErrNotFound) {
				t.Fatalf("got %v, want an error wrapping engine.ErrNotFound", err)
			}
			if strings.Contains(err.Error(), "Error response from daemon") {
				t.Errorf("error %q keeps the client's prefix", err)
			}
		})
	}
}

func TestRuntime_Purge(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	other := "dockertest-other-" + h.suffix
	h.purgeOnCleanup(other)
	ctx := h.ctx()
	// Each rack gets one of everything; only h.rack's may go.
	for _, rack := range []string{h.rack, other} {
		labels := engine.Labels{engine.LabelRack: rack, engine.LabelApp: "purge"}
		if err := h.r.NetworkEnsure(ctx, rack+"-net", labels); err != nil {
			t.Fatal(err)
		}
		if err := h.r.VolumeEnsure(ctx, rack+"-vol", labels); err != nil {
			t.Fatal(err)
		}
		h.start(engine.ProcessSpec{
			Name: rack + "-proc", Labels: labels, Init: true, Command: []string{"sleep", "60"},
			Network: rack + "-net", Mounts: []engine.Mount{{Volume: rack + "-vol", Target: "/data"}},
		})
	}
	if err := h.r.Purge(ctx, h.labels(engine.LabelApp, "purge")); err != nil {
		t.Fatal(err)
	}
	if err := h.r.Purge(ctx, h.labels(engine.LabelApp, "purge")); err != nil {
		t.Fatalf("second purge: %v", err)
	}
	for _, tt := range []struct {
		rack string
		want bool
	}{{h.rack, false}, {other, true}} {
		_, err := h.r.c.ContainerInspect(ctx, tt.rack+"-proc")
		if got := err == nil; got != tt.want {
			t.Errorf("container of %s exists: got %v, want %v (%v)", tt.rack, got, tt.want, err)
		}
		_, err = h.r.c.NetworkInspect(ctx, tt.rack+"-net", network.InspectOptions{})
		if got := err == nil; got != tt.want {
			t.Errorf("network of %s exists: got %v, want %v (%v)", tt.rack, got, tt.want, err)
		}
		_, err = h.r.c.VolumeInspect(ctx, tt.rack+"-vol")
		if got := err == nil; got != tt.want {
			t.Errorf("volume of %s exists: got %v, want %v (%v)", tt.rack, got, tt.want, err)
		}
	}
}

// TestRuntime_Ensure checks that ensuring twice, and racing from two
// clients (two racks' daemons would be two processes), leaves exactly one
// object with our labels.
func TestRuntime_Ensure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r2, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r2.Close() })
	tests := []struct {
		kind   string
		ensure func(r *Runtime, ctx context.Context, name string, l engine.Labels) error
		count  func(ctx context.Context, name string) (n int, labels map[string]string)
	}{
		{
			"network",
			(*Runtime).NetworkEnsure,
			func(ctx context.Context, name string) (int, map[string]string) {
				nets, err := h.r.networksNamed(ctx, name)
				if err != nil || len(nets) == 0 {
					return 0, nil
				}
				return len(nets), nets[0].Labels
			},
		},
		{
			"volume",
			(*Runtime).VolumeEnsure,
			func(ctx context.Context, name string) (int, map[string]string) {
				vs, err := h.r.c.VolumeList(ctx, volume.ListOptions{})
				if err != nil {
					return -1, nil
				}
				var n int
				var labels map[string]string
				for _, v := range vs.Volumes {
					if v.Name == name {
						n, labels = n+1, v.Labels
					}
				}
				return n, labels
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			h := h.with(t)
			ctx := h.ctx()
			labels := h.labels(engine.LabelApp, "ensure")
			name := h.name(tt.kind)
			for i := 0; i < 2; i++ {
				if err := tt.ensure(h.r, ctx, name, labels); err != nil {
					t.Fatalf("ensure #%d: %v", i+1, err)
				}
			}
			raced := h.name(tt.kind + "-raced")
			var wg sync.WaitGroup
			errs := make([]error, 8)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = tt.ensure([]*Runtime{h.r, r2}[i%2], ctx, raced, labels)
				}()
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatalf("racing ensures: %v", err)
			}
			for _, n := range []string{name, raced} {
				count, got := tt.count(ctx, n)
				if count != 1 {
					t.Errorf("%d %ss named %s, want 1", count, tt.kind, n)
				}
				if got[engine.LabelRack] != h.rack || got[engine.LabelApp] != "ensure" {
					t.Errorf("labels of %s: got %v, want %v", n, got, labels)
				}
			}
		})
	}
}

// TestRuntime_NetworkEnsure_Duplicates makes the state Docker 20.10's
// unlocked duplicate check lets concurrent creates reach (several networks
// of one name) and checks that NetworkEnsure leaves only the oldest.
func TestRuntime_NetworkEnsure_Duplicates(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := h.ctx()
	name := h.name("dup")
	var wg sync.WaitGroup
	ids := make([]string, 6)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.r.c.NetworkCreate(ctx, name, network.CreateOptions{Labels: h.labels()})
			if err == nil {
				ids[i] = resp.ID
			}
		}()
	}
	wg.Wait()
	nets, err := h.r.networksNamed(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(nets) < 2 {
		t.Logf("this engine refused concurrent duplicates (%d network): nothing to dedupe", len(nets))
	}
	if err := h.r.NetworkEnsure(ctx, name, h.labels()); err != nil {
		t.Fatal(err)
	}
	after, err := h.r.networksNamed(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 1 || after[0].ID != nets[0].ID {
		t.Errorf("after NetworkEnsure: %d networks named %s, want only the oldest (%s)", len(after), name, shortID(nets[0].ID))
	}
}

// rawContainer creates and starts a container the Runtime cannot express
// (a TTY), labelled for cleanup.
func (h *harness) rawContainer(cfg *container.Config) string {
	h.t.Helper()
	ctx := h.ctx()
	cfg.Labels = h.labels()
	c, err := h.r.c.ContainerCreate(ctx, cfg, &container.HostConfig{}, nil, nil, h.name("raw"))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.r.c.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		h.t.Fatal(err)
	}
	return c.ID
}

// An engine that does not answer is ErrUnavailable (the API's 503), and
// the message says what to do.
func TestRuntime_EngineDown(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	c, err := client.NewClientWithOpts(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	r := &Runtime{c: c}
	_, err = r.ProcessList(context.Background(), engine.Labels{"convox.app": "x"})
	want := "listing processes: Cannot connect to the Docker daemon at unix://" + sock + ". Is the docker daemon running? Start it, then retry."
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	if !errors.Is(err, engine.ErrUnavailable) || errors.Is(err, engine.ErrNotFound) {
		t.Errorf("errors.Is: ErrUnavailable %v, ErrNotFound %v; want true, false", errors.Is(err, engine.ErrUnavailable), errors.Is(err, engine.ErrNotFound))
	}
}
