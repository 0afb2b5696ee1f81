package main

import (
	"context"
	"fmt"
	"time"

	"github.com/singlehost/convox/bench/internal/rackbench"
)

// waitRunning polls the app until its status is running.
func waitRunning(ctx context.Context, r *rackbench.Rack, app string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last string
	for {
		var a struct{ Status string }
		err := r.API(ctx, "GET", "/apps/"+app, &a)
		if err == nil && a.Status == "running" {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = "status " + a.Status
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("app %s is not running after %s (%s)", app, limit, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// manifest is the chatty app's convox.yml: one process, no port (so it is
// ready once it has kept running for a second, with no health check to
// pass while it prints), stopped quickly when replaced.
const manifest = `services:
  ` + service + `:
    build: .
    command: server
    scale:
      count: 1
    termination:
      grace: 1
`
