package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/singlehost/convox/api"
)

// Waiting for an app: promote, scale and restart start a change on the rack
// and then wait for the app to run again, showing the rack's events (the
// system/ lines of the app's log) as they come, as Convox's
// WaitForAppWithLogs does (spec §3.1, §4.2).

const (
	// appPollInterval is how often the app's status is read while waiting.
	appPollInterval = 500 * time.Millisecond
	// waitLimit bounds any wait for an app (Convox gives up after 35m).
	waitLimit = 30 * time.Minute
	// logDrain is how long the log stream is still read once the app runs,
	// so that the events that say why reach the screen before the verdict.
	logDrain = 300 * time.Millisecond
)

type promoteOptions struct {
	force bool
	// timeout is the rack's deadline for the rollout in seconds; 0 is the
	// rack's default.
	timeout int
}

// promote promotes release id of app and waits until the rack has either
// run it or rolled back, printing progress to w:
//
//	Promoting RABCDEFGHI...
//	<system/ log lines>
//	OK
//
// A rollback is an error. Unless forced, a promote first waits for an app
// that is busy with another change ("Waiting for app to be ready... OK").
func promote(ctx context.Context, r api.Rack, w io.Writer, app, id string, opts promoteOptions) error {
	if !opts.force {
		a, err := r.AppGet(ctx, app)
		if err != nil {
			return err
		}
		if a.Status != api.StatusRunning {
			startf(w, "Waiting for app to be ready")
			if _, err := waitRunning(ctx, r, app, nil); err != nil {
				return err
			}
			ok(w)
		}
	}
	startf(w, "Promoting %s", id)
	fmt.Fprintln(w)
	a, err := watchApp(ctx, r, w, app, "Promoting release "+id, func(ctx context.Context) error {
		return r.ReleasePromote(ctx, app, id, api.ReleasePromoteOptions{Force: opts.force, Timeout: opts.timeout})
	})
	if err != nil && !errors.Is(err, errRolledBack) {
		return err
	}
	if err != nil || a.Release != id {
		running := a.Release
		if running == "" {
			running = "no release"
		}
		return fmt.Errorf("rollback: release %s failed; app %s is running %s", id, app, running)
	}
	ok(w)
	return nil
}

// watchApp runs change (a promote, a scale, a restart) and waits until app
// runs again, copying the rack's events to w meanwhile. It returns the app
// as it then is, and errRolledBack if the rack rolled the change back. The
// log stream is opened before the change so that its first events are not
// missed; if it cannot be opened or breaks, the wait goes on without it.
// The stream starts a little in the past, so the events before the one
// that begins the change (begins, a prefix) are another change's: they
// are neither shown nor taken as the end of this one.
func watchApp(ctx context.Context, r api.Rack, w io.Writer, app, begins string, change func(ctx context.Context) error) (*api.App, error) {
	logCtx, stopLogs := context.WithCancel(ctx)
	defer stopLogs()
	follow, prefix, since := true, true, time.Second
	logs, err := r.AppLogs(logCtx, app, api.LogsOptions{Follow: &follow, Prefix: &prefix, Since: &since})
	if err != nil {
		logs = nil
	}
	if err := change(ctx); err != nil {
		if logs != nil {
			logs.Close()
		}
		return nil, err
	}
	copied := make(chan struct{})
	// The rack's last event of a rollout means the app is about to run:
	// it wakes the poll rather than leaving it to the next tick, and the
	// events worth showing have been shown.
	wake := make(chan struct{}, 1)
	var settled, rolledBack atomic.Bool
	if logs != nil {
		go func() {
			defer close(copied)
			begun := false
			copySystemLines(w, logs, func(stream, event string) bool {
				if !begun {
					begun = strings.HasPrefix(event, begins)
					return begun
				}
				if stream == "system/promote" && slices.ContainsFunc(settledEvents, func(e string) bool { return strings.HasPrefix(event, e) }) {
					rolledBack.Store(strings.HasPrefix(event, rolledBackEvent))
					settled.Store(true)
					select {
					case wake <- struct{}{}:
					default:
					}
				}
				return true
			})
		}()
	} else {
		close(copied)
	}
	a, err := waitRunning(ctx, r, app, wake)
	if err == nil && !settled.Load() {
		select {
		case <-copied:
		case <-time.After(logDrain):
		}
	}
	// Closing the stream ends the copy; nothing else writes to w until it
	// has.
	stopLogs()
	if logs != nil {
		logs.Close()
	}
	<-copied
	if err == nil && rolledBack.Load() {
		return a, errRolledBack
	}
	return a, err
}

// errRolledBack says that the change watchApp waited for was rolled back;
// the rack's events, shown above it, say why.
var errRolledBack = errors.New("rolled back: the events above say why")

// settledEvents are the rack's messages that end a rollout.
var settledEvents = []string{"Promoted release ", "Restarted release ", "Scaled ", rolledBackEvent}

const rolledBackEvent = "Rolled back"

// copySystemLines copies the lines of an app log (with prefixes) whose
// stream, the second field, is the rack's (system/…) until r ends; keep,
// when not nil, sees each such line's stream and event first and says
// whether to copy it.
func copySystemLines(w io.Writer, r io.Reader, keep func(stream, event string) bool) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			// A partial line at the end is cut short by the close.
			return
		}
		fields := strings.SplitN(line, " ", 3)
		if len(fields) != 3 || !strings.HasPrefix(fields[1], "system/") {
			continue
		}
		if keep == nil || keep(fields[1], fields[2]) {
			io.WriteString(w, line)
		}
	}
}

// waitRunning polls app until its status is running and returns it. An app
// that is updating, rolling back or being created is waited for; any other
// status (failed, deleting) is an error, as is waiting longer than
// waitLimit.
func waitRunning(ctx context.Context, r api.Rack, app string, wake <-chan struct{}) (*api.App, error) {
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	stopped := func(err error) error {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("app %s is still not running after %s", app, waitLimit)
		}
		return err
	}
	for {
		a, err := r.AppGet(ctx, app)
		if err != nil {
			return nil, stopped(err)
		}
		switch a.Status {
		case api.StatusRunning:
			return a, nil
		case api.StatusUpdating, api.StatusRollback, api.StatusCreating:
		default:
			return nil, fmt.Errorf("app %s is %s", app, a.Status)
		}
		t := time.NewTimer(appPollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, stopped(ctx.Err())
		case <-wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// newlineFirst starts a new line before the first bytes written through
// it, so that events do not trail a step's "Restarting web... " and a step
// without events still reads "Restarting web... OK".
type newlineFirst struct {
	w       io.Writer
	started bool
}

func (n *newlineFirst) Write(p []byte) (int, error) {
	if !n.started && len(p) > 0 {
		n.started = true
		if _, err := io.WriteString(n.w, "\n"); err != nil {
			return 0, err
		}
	}
	return n.w.Write(p)
}

// addPromoteFlags adds --force and --timeout, the flags of every command
// that promotes.
func addPromoteFlags(cmd *cobra.Command, o *promoteOptions) {
	cmd.Flags().BoolVar(&o.force, "force", false, "promote even while the app is updating")
	cmd.Flags().IntVar(&o.timeout, "timeout", 0, "seconds the new processes have to become healthy before the rack rolls back (default: the rack's)")
}
