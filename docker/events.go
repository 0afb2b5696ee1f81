package docker

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"

	"github.com/singlehost/convox/engine"
)

// Events streams the state changes of containers carrying sel. The
// subscription is in place when Events returns, so nothing that happens
// afterwards is missed. Both channels close when ctx ends (without an error)
// or after the one error that ends the stream (Docker's stream never ends on
// its own, so its end is an error too).
func (r *Runtime) Events(ctx context.Context, sel engine.Labels) (<-chan engine.Event, <-chan error) {
	f := labelFilter(sel)
	f.Add("type", string(events.ContainerEventType))
	msgs, derrs := r.c.Events(ctx, events.ListOptions{Filters: f})
	out := make(chan engine.Event)
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		defer close(out)
		for {
			select {
			case m := <-msgs:
				select {
				case out <- eventOf(m):
				case <-ctx.Done():
					return
				}
			case err := <-derrs:
				if ctx.Err() != nil {
					return
				}
				if err == nil || errors.Is(err, io.EOF) {
					err = errors.New("stream ended")
				}
				errs <- wrap(err, "docker events")
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, errs
}

// eventOf translates a container event. Docker puts the container's labels
// among the actor's attributes with its name, image and exit code; only
// ours (convox.*) are kept. Docker appends a detail to some actions
// ("health_status: healthy", "exec_start: bash"); Action is the bare verb.
func eventOf(m events.Message) engine.Event {
	action, _, _ := strings.Cut(string(m.Action), ": ")
	ev := engine.Event{
		ID:     m.Actor.ID,
		Action: action,
		Labels: engine.Labels{},
		Time:   time.Unix(0, m.TimeNano),
	}
	if m.TimeNano == 0 {
		ev.Time = time.Unix(m.Time, 0)
	}
	for k, v := range m.Actor.Attributes {
		if strings.HasPrefix(k, "convox.") {
			ev.Labels[k] = v
		}
	}
	if s, ok := m.Actor.Attributes["exitCode"]; ok {
		if code, err := strconv.Atoi(s); err == nil {
			ev.ExitCode = code
		}
	}
	return ev
}
