package engine

import (
	"bufio"
	"context"
	"io"
	"strings"
	"time"

	"github.com/singlehost/convox/logs"
)

// Every line a process prints is copied into its app's log store, so that
// `convox logs` shows it after the container is gone and across daemon
// restarts. One collector follows each container; the log store's Source
// remembers how far it got, so a restarted daemon resumes without losing
// or repeating lines.

// collect makes sure a collector follows process p. It is cheap to call
// for a process already collected.
func (e *Engine) collect(p Process) {
	if e.logs == nil || p.Labels[LabelProcess] == "" {
		return
	}
	e.mu.Lock()
	if _, ok := e.collecting[p.ID]; ok {
		e.mu.Unlock()
		return
	}
	done := make(chan struct{})
	e.collecting[p.ID] = done
	e.mu.Unlock()
	err := e.background(func(ctx context.Context) {
		defer close(done)
		if err := e.follow(ctx, p); err != nil && ctx.Err() == nil {
			e.log.Warn("collecting a process's output", "process", p.Labels[LabelProcess], "error", err)
		}
	})
	if err != nil {
		close(done)
		e.mu.Lock()
		delete(e.collecting, p.ID)
		e.mu.Unlock()
	}
}

// collected waits, at most for timeout, until the collector of process id
// has read everything the process printed: the process must have stopped.
// Removing a container before that would lose its last lines.
func (e *Engine) collected(id string, timeout time.Duration) {
	e.mu.Lock()
	done, ok := e.collecting[id]
	e.mu.Unlock()
	if !ok {
		return
	}
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// follow copies p's output into the log store until p stops.
func (e *Engine) follow(ctx context.Context, p Process) error {
	for {
		if err := e.followOnce(ctx, p); err != nil {
			return err
		}
		// The stream also ends when dockerd restarts or drops it; only a
		// stopped process has no more to say.
		cur, err := e.runtime.ProcessInspect(ctx, p.ID)
		if err != nil || !cur.Running() {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// followOnce reads one stream of p's output, from where the store has it.
func (e *Engine) followOnce(ctx context.Context, p Process) error {
	app := p.Labels[LabelApp]
	src, err := e.logs.Source(app, p.ID)
	if err != nil {
		return err
	}
	rc, err := e.runtime.ProcessLogs(ctx, p.ID, LogOptions{Follow: true, Since: src.Since(), Timestamps: true})
	if err != nil {
		return err
	}
	defer rc.Close()
	stream := "service/" + p.Labels[LabelService] + "/" + p.Labels[LabelProcess]
	br := bufio.NewReaderSize(rc, 64<<10)
	// The lines at hand are stored as one batch: one write for a burst,
	// not one per line. The runtime hands over whole lines.
	batch := make([]logs.Entry, 0, 64)
	store := func() error {
		err := src.Append(batch...)
		batch = batch[:0]
		return err
	}
	// last is the newest time read; replay, the time a replay started.
	var last, replay time.Time
	for {
		line, err := br.ReadString('\n')
		if line == "" {
			if err := store(); err != nil {
				return err
			}
			if err != nil && err != io.EOF && ctx.Err() == nil {
				return err
			}
			return nil
		}
		line = strings.TrimSuffix(line, "\n")
		ts, msg, _ := strings.Cut(line, " ")
		t, perr := time.Parse(time.RFC3339Nano, ts)
		if perr != nil {
			t, msg = time.Now().UTC(), line
		}
		switch {
		case !t.Before(last):
			last, replay = t, time.Time{}
		case replay.IsZero() || t.Before(replay):
			// Docker 20.10's follow stream replays lines it already sent
			// when it rotates the log file. Going back in time is treated
			// as a resume: a fresh Source drops what the store holds.
			replay = t
			if err := store(); err != nil {
				return err
			}
			if src, err = e.logs.Source(app, p.ID); err != nil {
				return err
			}
		}
		batch = append(batch, logs.Entry{Time: t, Stream: stream, Message: msg})
		if br.Buffered() == 0 || len(batch) == cap(batch) || err != nil {
			if err := store(); err != nil {
				return err
			}
		}
	}
}

// forgetLogs drops the cursor of a removed process.
func (e *Engine) forgetLogs(p Process) {
	e.mu.Lock()
	delete(e.collecting, p.ID)
	e.mu.Unlock()
	if e.logs != nil {
		if err := e.logs.Forget(p.Labels[LabelApp], p.ID); err != nil {
			e.log.Warn("forgetting a process's log cursor", "error", err)
		}
	}
}
