package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/singlehost/convox/api"
)

// statusRack reports the app statuses it is given, one per AppGet (the last
// one sticks), and no log.
type statusRack struct {
	api.Rack

	mu       sync.Mutex
	statuses []string
	changed  bool
}

func (s *statusRack) AppGet(ctx context.Context, name string) (*api.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	status := s.statuses[0]
	if len(s.statuses) > 1 {
		s.statuses = s.statuses[1:]
	}
	return &api.App{Name: name, Status: status, Release: "R1"}, nil
}

func (s *statusRack) AppLogs(ctx context.Context, name string, opts api.LogsOptions) (io.ReadCloser, error) {
	return nil, errors.New("no logs here")
}

// TestWaitRunning: updating, rollback and creating are waited out; running
// ends the wait; any other status is the end of the road.
func TestWaitRunning(t *testing.T) {
	tests := []struct {
		statuses []string
		err      string
	}{
		{[]string{"running"}, ""},
		{[]string{"updating", "rollback", "running"}, ""},
		{[]string{"creating", "running"}, ""},
		{[]string{"updating", "failed"}, "app myapp is failed"},
		{[]string{"deleting"}, "app myapp is deleting"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.statuses, ","), func(t *testing.T) {
			t.Parallel()
			a, err := waitRunning(context.Background(), &statusRack{statuses: tt.statuses}, "myapp", nil)
			if tt.err == "" && (err != nil || a.Status != "running") {
				t.Errorf("got %+v, %v; want the running app", a, err)
			}
			if tt.err != "" && (err == nil || err.Error() != tt.err) {
				t.Errorf("err = %v, want %s", err, tt.err)
			}
		})
	}
}

// TestWatchAppWithoutLogs: a log stream that cannot be opened does not stop
// the wait; a change that fails is the error, and nothing is waited for.
func TestWatchAppWithoutLogs(t *testing.T) {
	r := &statusRack{statuses: []string{"updating", "running"}}
	var w bytes.Buffer
	a, err := watchApp(context.Background(), r, &w, "myapp", "Scaling web", func(ctx context.Context) error { return nil })
	if err != nil || a.Status != "running" || w.Len() > 0 {
		t.Errorf("got %+v, %v, output %q; want the running app and no output", a, err, w.String())
	}

	r = &statusRack{statuses: []string{"updating"}}
	_, err = watchApp(context.Background(), r, &w, "myapp", "Scaling web", func(ctx context.Context) error { return errors.New("refused") })
	if err == nil || err.Error() != "refused" {
		t.Errorf("err = %v, want refused", err)
	}
}

// TestWaitRunningCancelled: an interrupted wait ends at once.
func TestWaitRunningCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := waitRunning(ctx, &cancelledRack{}, "myapp", nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

type cancelledRack struct{ api.Rack }

func (cancelledRack) AppGet(ctx context.Context, name string) (*api.App, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &api.App{Name: name, Status: "updating"}, nil
}

func TestCopySystemLines(t *testing.T) {
	in := "2026-01-15T12:00:00Z system/promote Promoting\n" +
		"2026-01-15T12:00:01Z service/web/web-1 system/not really\n" +
		"system/too-short\n" +
		"2026-01-15T12:00:02Z system/k8s/web-1 Started\n" +
		"2026-01-15T12:00:03Z system/partial line cut short"
	var w bytes.Buffer
	copySystemLines(&w, strings.NewReader(in), nil)
	want := "2026-01-15T12:00:00Z system/promote Promoting\n2026-01-15T12:00:02Z system/k8s/web-1 Started\n"
	if w.String() != want {
		t.Errorf("got %q, want %q", w.String(), want)
	}
}

// logRack is a statusRack whose app log is the given text.
type logRack struct {
	*statusRack
	log string
}

func (l *logRack) AppLogs(ctx context.Context, name string, opts api.LogsOptions) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(l.log)), nil
}

// TestWatchAppRollback: a change the rack rolls back is an error, whatever
// the app's status afterwards; one that settles otherwise is not. Events
// before the one that begins the change belong to an earlier change: they
// are not shown and do not count.
func TestWatchAppRollback(t *testing.T) {
	const (
		earlier = "2026-01-15T12:00:00Z system/promote Rolled back to release R0\n"
		begins  = "2026-01-15T12:00:01Z system/scale Scaling web count=3\n"
	)
	tests := []struct {
		name, log string
		err       error
	}{
		{"scaled", begins + "2026-01-15T12:00:02Z system/promote Scaled web\n", nil},
		{"scaled after an earlier rollback", earlier + begins + "2026-01-15T12:00:02Z system/promote Scaled web\n", nil},
		{"restarted", begins + "2026-01-15T12:00:02Z system/promote Restarted release R1\n", nil},
		{"scale rolled back", begins + "2026-01-15T12:00:02Z system/promote Rolled back the scale of web\n", errRolledBack},
		{"release rolled back", earlier + begins + "2026-01-15T12:00:02Z system/promote Rolled back to release R1\n", errRolledBack},
		{"never begun", earlier, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &logRack{statusRack: &statusRack{statuses: []string{"updating", "running"}}, log: tt.log}
			var w bytes.Buffer
			a, err := watchApp(context.Background(), r, &w, "myapp", "Scaling web", func(ctx context.Context) error { return nil })
			if !errors.Is(err, tt.err) || a == nil || a.Status != "running" {
				t.Errorf("got %+v, %v; want the running app and %v", a, err, tt.err)
			}
			if want, _ := strings.CutPrefix(tt.log, earlier); w.String() != want {
				t.Errorf("output %q, want %q", w.String(), want)
			}
		})
	}
}
