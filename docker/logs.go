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

// maxLine bounds how much of a line without a newline is held back.
const maxLine = 64 << 10

// ProcessLogs streams a container's output with stdout and stderr merged
// line by line: each write into the stream is one or more whole lines, so
// the two interleave only between lines, and the lines Docker sent
// together arrive together (a reader can store them as one batch). Without
// a TTY Docker multiplexes both streams in frames; with one the output is
// already a single raw stream. The stream is bounded by ctx only; closing
// it releases the connection.
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
// a TTY, else split out of Docker's stdout/stderr frames. Whole lines are
// gathered and passed on in one write just before demux would wait for
// Docker again (or once maxBatch bytes are held), so that a burst of lines
// costs the reader one wake-up, not one per line.
func demux(w io.Writer, body io.Reader, tty bool) error {
	lines := &lineBatch{w: w}
	stdout, stderr := &lineWriter{lines: lines}, &lineWriter{lines: lines}
	src := &pushingReader{r: body, lines: lines}
	var err error
	if tty {
		_, err = io.Copy(stdout, src)
	} else {
		_, err = stdcopy.StdCopy(stdout, stderr, src)
	}
	// A last line without a newline still belongs to the output, as a
	// line of its own.
	for _, lw := range []*lineWriter{stdout, stderr} {
		if aerr := lw.cut(); err == nil {
			err = aerr
		}
	}
	if perr := lines.push(); err == nil {
		err = perr
	}
	return err
}

// maxBatch bounds the whole lines held back for one write.
const maxBatch = 64 << 10

// lineBatch gathers the whole lines of both streams, in the order they
// were completed, for one write to w.
type lineBatch struct {
	w   io.Writer
	buf []byte
}

func (b *lineBatch) add(line []byte) error {
	b.buf = append(b.buf, line...)
	if len(b.buf) >= maxBatch {
		return b.push()
	}
	return nil
}

// push writes what is gathered.
func (b *lineBatch) push() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// pushingReader pushes the gathered lines before each read of Docker's
// stream, which may wait: nothing is held back while the process is quiet.
type pushingReader struct {
	r     io.Reader
	lines *lineBatch
}

func (p *pushingReader) Read(b []byte) (int, error) {
	if err := p.lines.push(); err != nil {
		return 0, err
	}
	return p.r.Read(b)
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

// lineWriter hands the whole lines written to it to lines, and holds a
// partial one back until its newline comes; maxLine bytes without one are
// cut into a line of their own, so that a process printing no newlines
// cannot grow the buffer without end.
type lineWriter struct {
	lines   *lineBatch
	partial []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.partial = append(l.partial, p...)
			if len(l.partial) >= maxLine {
				if err := l.cut(); err != nil {
					return 0, err
				}
			}
			break
		}
		line := p[:i+1]
		if len(l.partial) > 0 {
			l.partial = append(l.partial, line...)
			line = l.partial
		}
		if err := l.lines.add(line); err != nil {
			return 0, err
		}
		l.partial = l.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

// cut passes on the partial line, ended with a newline.
func (l *lineWriter) cut() error {
	if len(l.partial) == 0 {
		return nil
	}
	l.partial = append(l.partial, '\n')
	err := l.lines.add(l.partial)
	l.partial = l.partial[:0]
	return err
}
