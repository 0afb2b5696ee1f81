package engine

import (
	"context"
	"sync"
	"time"
)

// convergeEvery is how often every app is converged even when nothing
// reported a change: the safety net under Docker events.
const convergeEvery = 10 * time.Second

// The event stream is subscribed to again after eventsRetryMin, doubling up
// to eventsRetryMax while it keeps failing (Docker down): the periodic
// converge covers the gap, and the log gets a line per retry, not per
// second. A stream that held for eventsRetryMax starts over at the minimum.
const (
	eventsRetryMin = time.Second
	eventsRetryMax = 30 * time.Second
)

// Run does the engine's background work until ctx ends: it resumes rollouts
// that a daemon crash interrupted, runs builds and rollouts handed to it,
// and converges every app on start, on Docker events, when asked and
// periodically. Work in flight stops with ctx; the records in the store
// let the next Run finish it.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	spawn := func(f func(ctx context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}

	e.resume(ctx, spawn)
	spawn(e.convergeAll)

	events, errs := e.runtime.Events(ctx, Labels{LabelRack: e.rack})
	subscribed, retry := time.Now(), eventsRetryMin
	var resubscribe <-chan time.Time // set while the stream is down
	tick := time.NewTicker(convergeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case job := <-e.jobs:
			spawn(job)
		case app := <-e.kick:
			spawn(func(ctx context.Context) { e.convergeApp(ctx, app) })
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if app := ev.Labels[LabelApp]; app != "" && (ev.Action == "die" || ev.Action == "destroy" || ev.Action == "oom") {
				spawn(func(ctx context.Context) { e.convergeApp(ctx, app) })
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// The periodic converge keeps apps right meanwhile.
			if time.Since(subscribed) >= eventsRetryMax {
				retry = eventsRetryMin
			}
			e.log.Warn("docker events stopped; resubscribing", "retry_in", retry, "error", err)
			events, errs = nil, nil
			resubscribe = time.After(retry)
			retry = min(2*retry, eventsRetryMax)
		case <-resubscribe:
			resubscribe = nil
			events, errs = e.runtime.Events(ctx, Labels{LabelRack: e.rack})
			subscribed = time.Now()
		case <-tick.C:
			spawn(e.convergeAll)
		}
	}
}
