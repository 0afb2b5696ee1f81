package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"

	"github.com/singlehost/convox/engine"
)

// ImageBuild builds spec.Context with the classic builder (BuildKit needs a
// session API that 20.10's engine only offers experimentally) and streams
// the build's text to out as Docker sends it. Intermediate containers are
// removed even when a step fails. A failed step returns Docker's message,
// e.g. "The command '/bin/sh -c exit 3' returned a non-zero code: 3".
func (r *Runtime) ImageBuild(ctx context.Context, spec engine.BuildSpec, out io.Writer) error {
	args := make(map[string]*string, len(spec.Args))
	for k, v := range spec.Args {
		args[k] = &v
	}
	resp, err := r.c.ImageBuild(ctx, spec.Context, build.ImageBuildOptions{
		Version:     build.BuilderV1,
		Tags:        []string{spec.Tag},
		Dockerfile:  spec.Dockerfile,
		BuildArgs:   args,
		Labels:      spec.Labels,
		NoCache:     spec.NoCache,
		Remove:      true,
		ForceRemove: true,
	})
	if err != nil {
		return wrap(err, "building %s", spec.Tag)
	}
	defer resp.Body.Close()
	return decodeMessages(resp.Body, func(m jsonMessage) error {
		var err error
		switch {
		case m.Stream != "":
			_, err = io.WriteString(out, m.Stream)
		case m.Status != "":
			// FROM of an image the host lacks pulls it: show the pull.
			err = writeStatus(out, m)
		}
		return err
	})
}

// ImageInspect describes a local image; ErrNotFound if absent.
func (r *Runtime) ImageInspect(ctx context.Context, ref string) (engine.Image, error) {
	ctx, cancel := short(ctx)
	defer cancel()
	ii, err := r.c.ImageInspect(ctx, ref)
	if err != nil {
		return engine.Image{}, wrap(err, "inspecting image %s", ref)
	}
	img := engine.Image{ID: ii.ID}
	if cfg := ii.Config; cfg != nil {
		img.Entrypoint = cfg.Entrypoint
		img.Cmd = cfg.Cmd
		img.Env = cfg.Env
		for p := range cfg.ExposedPorts {
			if port, ok := tcpPort(p); ok {
				img.Ports = append(img.Ports, port)
			}
		}
		sort.Ints(img.Ports)
	}
	return img, nil
}

// tcpPort parses Docker's "8080/tcp" (a bare "8080" is TCP too); other
// protocols are not ours.
func tcpPort(s string) (int, bool) {
	num, proto, _ := strings.Cut(s, "/")
	if proto != "" && proto != "tcp" {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 || n > 65535 {
		return 0, false
	}
	return n, true
}

// ImagePull pulls ref, writing one line per layer status change (the byte
// counters of downloads in progress are left out).
func (r *Runtime) ImagePull(ctx context.Context, ref string, out io.Writer) error {
	body, err := r.c.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return wrap(err, "pulling %s", ref)
	}
	defer body.Close()
	return decodeMessages(body, func(m jsonMessage) error { return writePullStatus(out, m) })
}

// writePullStatus prints a pull's status message unless it only advances a
// download's byte counter.
func writePullStatus(out io.Writer, m jsonMessage) error {
	if m.Status == "" || m.Progress != "" || m.ProgressDetail.Total > 0 {
		return nil
	}
	return writeStatus(out, m)
}

// ImageTag gives the image src the additional name dst.
func (r *Runtime) ImageTag(ctx context.Context, src, dst string) error {
	ctx, cancel := short(ctx)
	defer cancel()
	return wrap(r.c.ImageTag(ctx, src, dst), "tagging %s as %s", src, dst)
}

// ImageRemove removes ref. It does not force: an image that a container
// (even a stopped one) still uses, or an id with several names, stays and
// the error says why.
func (r *Runtime) ImageRemove(ctx context.Context, ref string) error {
	ctx, cancel := short(ctx)
	defer cancel()
	_, err := r.c.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true})
	return wrap(err, "removing image %s", ref)
}

// ImageSave streams refs to w as one `docker save` archive.
func (r *Runtime) ImageSave(ctx context.Context, refs []string, w io.Writer) error {
	body, err := r.c.ImageSave(ctx, refs)
	if err != nil {
		return wrap(err, "saving %s", strings.Join(refs, ", "))
	}
	defer body.Close()
	if _, err := io.Copy(w, body); err != nil {
		return fmt.Errorf("saving %s: %w", strings.Join(refs, ", "), err)
	}
	return nil
}

// ImageLoad loads a `docker save` archive. Docker reports a bad archive in
// the response stream, not in the status code, so the stream is read to the
// end.
func (r *Runtime) ImageLoad(ctx context.Context, rd io.Reader) error {
	resp, err := r.c.ImageLoad(ctx, rd)
	if err != nil {
		return wrap(err, "loading images")
	}
	defer resp.Body.Close()
	if !resp.JSON {
		_, err := io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := decodeMessages(resp.Body, func(jsonMessage) error { return nil }); err != nil {
		return fmt.Errorf("loading images: %w", err)
	}
	return nil
}

// jsonMessage is one message of the JSON streams of build, pull, push and
// load (Docker's jsonmessage.JSONMessage, the fields we use).
type jsonMessage struct {
	Stream         string `json:"stream"`
	Status         string `json:"status"`
	ID             string `json:"id"`
	Progress       string `json:"progress"`
	ProgressDetail struct {
		Current int64 `json:"current"`
		Total   int64 `json:"total"`
	} `json:"progressDetail"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// decodeMessages reads a JSON message stream to its end, handing each
// message to fn. A message carrying an error ends the stream with that
// error, in Docker's words.
func decodeMessages(r io.Reader, fn func(jsonMessage) error) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading docker's response: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(strings.TrimSpace(m.ErrorDetail.Message))
		}
		if m.Error != "" {
			return errors.New(strings.TrimSpace(m.Error))
		}
		if err := fn(m); err != nil {
			return err
		}
	}
}

// writeStatus prints a status message as `docker pull` does without a
// terminal: "id: status".
func writeStatus(out io.Writer, m jsonMessage) error {
	var err error
	if m.ID != "" {
		_, err = fmt.Fprintf(out, "%s: %s\n", m.ID, m.Status)
	} else {
		_, err = fmt.Fprintln(out, m.Status)
	}
	return err
}
