// Command convox is a Convox-compatible PaaS for one Docker host: the same
// binary runs the rack daemon (`convox rack start`) and the CLI that drives
// it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/singlehost/convox/cli"
	"github.com/singlehost/convox/rack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], rack.StartCommand())
	stop()
	os.Exit(code)
}
