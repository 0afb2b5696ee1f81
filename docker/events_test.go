package docker

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"

	"github.com/singlehost/convox/engine"
)

func TestRuntime_Events(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	other := "dockertest-other-" + h.suffix
	h.purgeOnCleanup(other)
	ctx, cancel := context.WithCancel(h.ctx())
	defer cancel()
	evs, errs := h.r.Events(ctx, h.labels())

	// Another rack's process must not show up.
	stranger := h.start(engine.ProcessSpec{Name: h.name("stranger"), Labels: engine.Labels{engine.LabelRack: other}, Command: []string{"true"}})
	labels := h.labels(engine.LabelApp, "app1", engine.LabelProcess, "web-abcde")
	p := h.start(engine.ProcessSpec{Name: h.name("crasher"), Labels: labels, Command: []string{"bash", "-c", "exit 7"}})

	var seen []string
	timeout := time.After(15 * time.Second)
	for done := false; !done; {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatalf("events closed early; got %v", seen)
			}
			if ev.ID == stranger.ID {
				t.Errorf("got %s of another rack's process", ev.Action)
			}
			if ev.ID != p.ID {
				continue
			}
			seen = append(seen, ev.Action)
			if !maps.Equal(ev.Labels, labels) {
				t.Errorf("%s: labels %v, want exactly %v", ev.Action, ev.Labels, labels)
			}
			if time.Since(ev.Time) > time.Minute || time.Until(ev.Time) > time.Second {
				t.Errorf("%s: time %v is not now", ev.Action, ev.Time)
			}
			if ev.Action == "die" {
				if ev.ExitCode != 7 {
					t.Errorf("die: exit code %d, want 7", ev.ExitCode)
				}
				done = true
			}
		case err := <-errs:
			t.Fatalf("events failed: %v", err)
		case <-timeout:
			t.Fatalf("no die event after 15s; got %v", seen)
		}
	}
	if len(seen) < 2 || seen[len(seen)-2] != "start" {
		t.Errorf("got %v, want start then die", seen)
	}

	// Ending ctx closes both channels, with no error.
	cancel()
	deadline := time.After(5 * time.Second)
	for evs != nil || errs != nil {
		select {
		case _, ok := <-evs:
			if !ok {
				evs = nil
			}
		case err, ok := <-errs:
			if ok {
				t.Errorf("after cancel: got error %v, want none", err)
			} else {
				errs = nil
			}
		case <-deadline:
			t.Fatal("channels still open 5s after ctx ended")
		}
	}
}

func TestEventOf(t *testing.T) {
	m := events.Message{
		Type:   events.ContainerEventType,
		Action: events.ActionDie,
		Actor: events.Actor{ID: "abc", Attributes: map[string]string{
			"convox.app": "a", "convox.rack": "r", "exitCode": "137",
			"image": "app:B1", "name": "web-1", "com.example": "x",
		}},
		Time:     1700000000,
		TimeNano: 1700000000123456789,
	}
	got := eventOf(m)
	want := engine.Event{
		ID: "abc", Action: "die", ExitCode: 137,
		Labels: engine.Labels{"convox.app": "a", "convox.rack": "r"},
		Time:   time.Unix(0, 1700000000123456789),
	}
	if got.ID != want.ID || got.Action != want.Action || got.ExitCode != want.ExitCode || !maps.Equal(got.Labels, want.Labels) || !got.Time.Equal(want.Time) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	m = events.Message{Action: events.ActionStart, Actor: events.Actor{ID: "abc"}, Time: 1700000000}
	if got := eventOf(m); got.ExitCode != 0 || len(got.Labels) != 0 || !got.Time.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("start without nanoseconds: got %+v", got)
	}

	m = events.Message{Action: events.ActionHealthStatusUnhealthy, Actor: events.Actor{ID: "abc"}}
	if got := eventOf(m); got.Action != "health_status" {
		t.Errorf("%s: got action %q, want health_status", m.Action, got.Action)
	}
}
