package docker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"

	"github.com/singlehost/convox/engine"
)

func TestRuntime_ImageBuild(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tag, out := h.serverImage()
	// The classic builder numbers steps, and counts the labels it adds
	// as steps of their own at the end.
	for _, want := range []string{
		`(?m)^Step 1/\d+ : FROM ` + regexp.QuoteMeta(baseImage) + `$`,
		`(?m)^Step 4/\d+ : RUN echo "built \$FLAVOUR" > /built$`,
		`(?m)^Successfully tagged ` + regexp.QuoteMeta(tag) + `$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("build output does not match %s:\n%s", want, out)
		}
	}
	img, err := h.r.ImageInspect(h.ctx(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(img.ID, "sha256:") {
		t.Errorf("ID: got %q, want sha256:…", img.ID)
	}
	if want := []string{"/server"}; !slices.Equal(img.Entrypoint, want) {
		t.Errorf("Entrypoint: got %q, want %q", img.Entrypoint, want)
	}
	if want := []string{"-port", "8080"}; !slices.Equal(img.Cmd, want) {
		t.Errorf("Cmd: got %q, want %q", img.Cmd, want)
	}
	if want := []int{8080}; !slices.Equal(img.Ports, want) {
		t.Errorf("Ports (TCP only): got %v, want %v", img.Ports, want)
	}
	if !slices.ContainsFunc(img.Env, func(s string) bool { return strings.HasPrefix(s, "PATH=") }) {
		t.Errorf("Env: got %q, want the base image's PATH", img.Env)
	}
	raw, err := h.r.c.ImageInspect(h.ctx(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if got := raw.Config.Labels["convox.build"]; got != "B1" {
		t.Errorf("label convox.build: got %q, want B1", got)
	}
	// The build argument reached the RUN step.
	p := h.start(engine.ProcessSpec{Name: h.name("built"), Image: tag, Entrypoint: []string{"cat"}, Command: []string{"/built"}})
	h.waitExit(p.ID)
	if got := h.logs(p.ID, engine.LogOptions{}); got != "built vanilla\n" {
		t.Errorf("/built: got %q, want %q", got, "built vanilla\n")
	}
}

func TestRuntime_ImageBuild_Errors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tests := []struct {
		name       string
		dockerfile string
		wantErr    string
		wantOut    string
	}{
		{
			name:       "failing step",
			dockerfile: "FROM " + baseImage + "\nRUN echo before-failing\nRUN exit 3\n",
			wantErr:    "The command '/bin/sh -c exit 3' returned a non-zero code: 3",
			wantOut:    "before-failing",
		},
		{
			name:       "parse error",
			dockerfile: "FROM " + baseImage + "\nFROBNICATE now\n",
			wantErr:    "unknown instruction: FROBNICATE",
		},
		{
			name:       "missing base image",
			dockerfile: "FROM convoxtest/" + h.name("nobase") + ":none\n",
			// No registry answers here: the pull fails, in words that
			// depend on the network.
			wantOut: "FROM convoxtest/" + h.name("nobase"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			var out bytes.Buffer
			tag := "convoxtest/" + h.name("broken") + ":latest"
			err := h.r.ImageBuild(h.ctx(), engine.BuildSpec{
				Context:    tarOf(t, map[string]string{"Dockerfile": tt.dockerfile}),
				Dockerfile: "Dockerfile",
				Tag:        tag,
				Labels:     h.labels(),
				NoCache:    true,
			}, &out)
			removeDangling(t, h.r, out.String())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) { // "" matches any error
				t.Fatalf("got error %v, want one containing %q\noutput:\n%s", err, tt.wantErr, out.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out.String())
			}
			if _, err := h.r.ImageInspect(h.ctx(), tag); !errors.Is(err, engine.ErrNotFound) {
				t.Errorf("a failed build left %s: %v", tag, err)
			}
		})
	}
	// ForceRemove: the failed steps' containers are gone.
	cs, err := h.r.c.ContainerList(h.ctx(), container.ListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if strings.Contains(c.Command, "exit 3") {
			t.Errorf("intermediate container %s (%s) left behind", shortID(c.ID), c.Command)
		}
	}
}

// removeDangling removes, when the test ends, the images a failed build
// left: the steps before the failing one each made an untagged image, as
// `docker build` leaves them.
func removeDangling(t *testing.T, r *Runtime, out string) {
	for _, m := range regexp.MustCompile(`(?m)^ ---> ([0-9a-f]{12})$`).FindAllStringSubmatch(out, -1) {
		t.Cleanup(func() {
			ctx := context.Background()
			if img, err := r.c.ImageInspect(ctx, m[1]); err == nil && len(img.RepoTags) == 0 {
				r.c.ImageRemove(ctx, m[1], image.RemoveOptions{})
			}
		})
	}
}

func TestRuntime_ImagePull_Error(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// Nothing listens on port 1: the pull fails fast, with Docker's reason.
	var out bytes.Buffer
	err := h.r.ImagePull(h.ctx(), "127.0.0.1:1/"+h.name("nope")+":latest", &out)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("got %v, want an error naming the registry", err)
	}
}

// TestRuntime_ImageTagSaveLoad round-trips a tiny image (FROM scratch, so
// that save and load stay fast) through tag, save, remove and load.
func TestRuntime_ImageTagSaveLoad(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := h.ctx()
	tag := "convoxtest/" + h.name("tiny") + ":v1"
	h.build(tag, map[string]string{
		"Dockerfile": "FROM scratch\nCOPY hello.txt /\nCMD [\"/nothing\"]\n",
		"hello.txt":  "hello " + h.suffix + "\n",
	}, io.Discard)
	img, err := h.r.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("tag", func(t *testing.T) {
		h := h.with(t)
		alias := "convoxtest/" + h.name("tiny") + ":alias"
		if err := h.r.ImageTag(ctx, tag, alias); err != nil {
			t.Fatal(err)
		}
		got, err := h.r.ImageInspect(ctx, alias)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != img.ID {
			t.Errorf("%s is %s, want %s", alias, got.ID, img.ID)
		}
		// Removing a name keeps the image while another name remains.
		if err := h.r.ImageRemove(ctx, alias); err != nil {
			t.Fatal(err)
		}
		if _, err := h.r.ImageInspect(ctx, alias); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("after removing %s: got %v, want ErrNotFound", alias, err)
		}
		if _, err := h.r.ImageInspect(ctx, tag); err != nil {
			t.Errorf("removing the alias removed %s: %v", tag, err)
		}
	})

	t.Run("save remove load", func(t *testing.T) {
		h := h.with(t)
		archive := filepath.Join(t.TempDir(), "images.tar")
		f, err := os.Create(archive)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.r.ImageSave(ctx, []string{tag}, f); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := h.r.ImageRemove(ctx, tag); err != nil {
			t.Fatal(err)
		}
		if _, err := h.r.ImageInspect(ctx, tag); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("after ImageRemove: got %v, want ErrNotFound", err)
		}
		f, err = os.Open(archive)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := h.r.ImageLoad(ctx, f); err != nil {
			t.Fatal(err)
		}
		got, err := h.r.ImageInspect(ctx, tag)
		if err != nil {
			t.Fatalf("after ImageLoad: %v", err)
		}
		if got.ID != img.ID {
			t.Errorf("loaded %s, want %s", got.ID, img.ID)
		}
	})

	t.Run("load garbage", func(t *testing.T) {
		h := h.with(t)
		err := h.r.ImageLoad(ctx, strings.NewReader("not a tar archive"))
		if err == nil {
			t.Fatal("loading garbage: no error")
		}
	})
}

func TestDecodeMessages(t *testing.T) {
	tests := []struct {
		name    string
		stream  string
		want    string
		wantErr string
	}{
		{
			name:   "stream text as is",
			stream: `{"stream":"Step 1/2 : FROM x\n"}{"stream":" ---> abc\n"}{"aux":{"ID":"sha256:1"}}`,
			want:   "Step 1/2 : FROM x\n ---> abc\n",
		},
		{
			name:    "error detail wins",
			stream:  `{"stream":"Step 2/2 : RUN exit 3\n"}{"errorDetail":{"code":3,"message":"The command '/bin/sh -c exit 3' returned a non-zero code: 3"},"error":"ignored"}{"stream":"never\n"}`,
			want:    "Step 2/2 : RUN exit 3\n",
			wantErr: "The command '/bin/sh -c exit 3' returned a non-zero code: 3",
		},
		{
			name:    "bare error",
			stream:  `{"error":"boom\n"}`,
			wantErr: "boom",
		},
		{
			name:    "truncated stream",
			stream:  `{"stream":"a\n"}{"str`,
			want:    "a\n",
			wantErr: "reading docker's response: unexpected EOF",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			err := decodeMessages(strings.NewReader(tt.stream), func(m jsonMessage) error {
				out.WriteString(m.Stream)
				return nil
			})
			if got := errString(err); got != tt.wantErr {
				t.Errorf("error: got %q, want %q", got, tt.wantErr)
			}
			if out.String() != tt.want {
				t.Errorf("output: got %q, want %q", out.String(), tt.want)
			}
		})
	}
}

// TestImagePullOutput checks that a pull prints statuses, one line each,
// without the byte counters.
func TestImagePullOutput(t *testing.T) {
	stream := `{"status":"Pulling from library/x","id":"latest"}
{"status":"Pulling fs layer","progressDetail":{},"id":"abc"}
{"status":"Downloading","progressDetail":{"current":10,"total":100},"progress":"[=>  ]","id":"abc"}
{"status":"Download complete","progressDetail":{},"id":"abc"}
{"status":"Digest: sha256:1"}
`
	var out strings.Builder
	err := decodeMessages(strings.NewReader(stream), func(m jsonMessage) error { return writePullStatus(&out, m) })
	if err != nil {
		t.Fatal(err)
	}
	want := "latest: Pulling from library/x\nabc: Pulling fs layer\nabc: Download complete\nDigest: sha256:1\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestTCPPort(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"8080/tcp", 8080, true},
		{"53", 53, true},
		{"53/udp", 0, false},
		{"0/tcp", 0, false},
		{"70000/tcp", 0, false},
		{"http/tcp", 0, false},
	}
	for _, tt := range tests {
		got, ok := tcpPort(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("tcpPort(%q): got %d, %v, want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
