package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/singlehost/convox/engine"
)

// maxLine bounds how much of a line without a newline is held back before it
// is handed on anyway, so that a process printing no newlines cannot grow
// the buffer without end.
const maxLine = 64 << 10

// ProcessLogs streams a container's output with stdout and stderr merged
// line by line: each write into the stream is one whole line, so the two
// interleave only between lines. Without a TTY Docker
// multiplexes both streams in frames; with one the output is already a
// single raw stream. The stream is bounded by ctx only; closing it releases
// the connection.
func (r *Runtime) ProcessLogs(ctx context.Context, id string, opts engine.LogOptions) (io.ReadCloser, error) {
	ictx, cancel := short(ctx)
	c, err := r.c.ContainerInspect(ictx, id)
	cancel()
	if err != nil {
		return nil, wrap(err, "reading logs of process %s", id)
	}
	lo := container.LogsOptions{
		ShowStdout: true,
		ShowStderr: true,
		Follow:     opts.Follow,
		Timestamps: opts.Timestamps,
		Tail:       "all",
	}
	if opts.Tail > 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	if !opts.Since.IsZero() {
		// Docker takes seconds.nanoseconds since the epoch.
		lo.Since = fmt.Sprintf("%d.%09d", opts.Since.Unix(), opts.Since.Nanosecond())
	}
	body, err := r.c.ContainerLogs(ctx, id, lo)
	if err != nil {
		return nil, wrap(err, "reading logs of process %s", id)
	}
	tty := c.Config != nil && c.Config.Tty
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(demux(pw, body, tty))
		body.Close()
	}()
	return &logStream{PipeReader: pr, body: body}, nil
}

// demux copies a log stream to w as whole lines: raw when the container has
// a TTY, else split out of Docker's stdout/stderr frames.
func demux(w io.Writer, body io.Reader, tty bool) error {
	stdout, stderr := &lineWriter{w: w}, &lineWriter{w: w}
	var err error
	if tty {
		_, err = io.Copy(stdout, body)
	} else {
		_, err = stdcopy.StdCopy(stdout, stderr, body)
	}
	// A last line without a newline still belongs to the output.
	if ferr := stdout.flush(); err == nil {
		err = ferr
	}
	if ferr := stderr.flush(); err == nil {
		err = ferr
	}
	return err
}

// logStream is the reading end of a demultiplexed log; Close also closes
// Docker's response so the copying goroutine ends.
type logStream struct {
	*io.PipeReader
	body io.Closer
}

func (s *logStream) Close() error {
	s.body.Close()
	return s.PipeReader.Close()
}

// lineWriter passes on what is written to it one whole line per Write.
type lineWriter struct {
	w   io.Writer
	buf []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	rest := l.buf
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		if _, err := l.w.Write(rest[:i+1]); err != nil {
			return 0, err
		}
		rest = rest[i+1:]
	}
	l.buf = append(l.buf[:0], rest...)
	if len(l.buf) >= maxLine {
		if err := l.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// flush passes on a partial line.
func (l *lineWriter) flush() error {
	if len(l.buf) == 0 {
		return nil
	}
	_, err := l.w.Write(l.buf)
	l.buf = l.buf[:0]
	return err
}
