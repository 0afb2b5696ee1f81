package engine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/singlehost/convox/api"
	"github.com/singlehost/convox/logs"
)

// event records a rack event about app in its log, under system/<source>,
// where `convox logs` and the CLI's deploy progress show it.
func (e *Engine) event(app, source, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.log.Info(msg, "app", app, "source", source)
	if e.logs == nil {
		return
	}
	now := time.Now().UTC()
	var entries []logs.Entry
	for _, line := range strings.Split(msg, "\n") {
		entries = append(entries, logs.Entry{Time: now, Stream: "system/" + source, Message: line})
	}
	if err := e.logs.Append(app, entries...); err != nil {
		e.log.Warn("writing an app event", "app", app, "error", err)
	}
}

// lastOutput is the last n lines a process printed, indented, for error
// messages; "" when there are none or they cannot be read.
func (e *Engine) lastOutput(ctx context.Context, id string, n int) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rc, err := e.runtime.ProcessLogs(ctx, id, LogOptions{Tail: n})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var lines []string
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		lines = append(lines, "  "+sc.Text())
	}
	return strings.Join(lines, "\n")
}

// AppLogs streams app's log: rack events and, once processes' output is
// collected, everything they print.
func (e *Engine) AppLogs(ctx context.Context, app string, opts api.LogsOptions) (io.ReadCloser, error) {
	if _, err := e.AppGet(ctx, app); err != nil {
		return nil, err
	}
	return e.readLogs(ctx, app, "", opts)
}

// readLogs renders app's log entries under stream prefix as text lines.
func (e *Engine) readLogs(ctx context.Context, app, prefix string, opts api.LogsOptions) (io.ReadCloser, error) {
	q := logs.Query{Filter: opts.Filter, Prefix: prefix, Follow: true}
	since := 2 * time.Minute // Convox's default (spec §2.3)
	if opts.Since != nil {
		since = *opts.Since
	}
	if since > 0 {
		q.Since = time.Now().Add(-since)
	}
	if opts.Follow != nil {
		q.Follow = *opts.Follow
	}
	if opts.Tail != nil {
		q.Tail = *opts.Tail
	}
	ctx, cancel := context.WithCancel(ctx)
	ch, err := e.logs.Read(ctx, app, q)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("reading logs: %w", err)
	}
	pr, pw := io.Pipe()
	go func() {
		defer cancel()
		w := bufio.NewWriter(pw)
		for entry := range ch {
			line := entry.String()
			if opts.Prefix != nil && !*opts.Prefix {
				line = entry.Message
			}
			if _, err := w.WriteString(line + "\n"); err != nil {
				return
			}
			// Flush when the channel has nothing more queued: batch
			// history, stay live for follow.
			if len(ch) == 0 {
				if err := w.Flush(); err != nil {
					return
				}
			}
		}
		w.Flush()
		pw.Close()
	}()
	return readCloser{pr, func() { cancel(); pr.Close() }}, nil
}

type readCloser struct {
	io.Reader
	close func()
}

func (r readCloser) Close() error { r.close(); return nil }
