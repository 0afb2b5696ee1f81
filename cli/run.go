package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/singlehost/convox/api"
)

// exitError ends the CLI with a remote command's exit code and no message
// of its own: the command has said what it had to say.
type exitError struct{ code int }

func (e *exitError) Error() string { return "exit status " + strconv.Itoa(e.code) }

type runOptions struct {
	app, service, command, release string
	detach, entrypoint             bool
	timeout                        int
}

func newRunCommand(env *Env) *cobra.Command {
	var flags appFlags
	var opts runOptions
	cmd := &cobra.Command{
		Use:   "run <service> <command...>",
		Short: "Run a one-off process of a service",
		Long: `Run starts a one-off process from a service's image, environment and network,
runs the command in it with your terminal attached, and exits with the
command's exit code. With --detach it starts the command and returns.`,
		Example: `  convox run web rake db:migrate
  echo hi | convox run web cat
  convox run web --detach "sleep 60"`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			opts.app, opts.service, opts.command = app, args[0], strings.Join(args[1:], " ")
			return runRun(cmd.Context(), env, opts)
		},
	}
	addAppFlags(cmd, &flags)
	f := cmd.Flags()
	f.BoolVarP(&opts.detach, "detach", "d", false, "start the process and return")
	f.IntVarP(&opts.timeout, "timeout", "t", 3600, "seconds the process may run")
	f.BoolVarP(&opts.entrypoint, "entrypoint", "e", true, "run the command through the image's ENTRYPOINT")
	f.StringVar(&opts.release, "release", "", "release to run (default: the active one)")
	return cmd
}

func runRun(ctx context.Context, env *Env, opts runOptions) error {
	r, err := env.rack()
	if err != nil {
		return err
	}
	if opts.detach {
		startf(env.Stdout, "Running detached process")
		p, err := r.ProcessRun(ctx, opts.app, opts.service, api.ProcessRunOptions{Command: opts.command, Release: opts.release})
		if err != nil {
			return err
		}
		ok(env.Stdout, p.Id)
		return nil
	}
	// As Convox does: a process that only waits, then the command
	// executed in it, so the terminal is attached from the first byte.
	t := newTerminal(env)
	p, err := r.ProcessRun(ctx, opts.app, opts.service, api.ProcessRunOptions{
		Command: "sleep " + strconv.Itoa(opts.timeout), Release: opts.release, Height: t.height, Width: t.width,
	})
	if err != nil {
		return err
	}
	defer func() {
		// The process goes even when the command was interrupted.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = r.ProcessStop(ctx, opts.app, p.Id)
	}()
	if err := waitProcessRunning(ctx, r, opts.app, p.Id); err != nil {
		return err
	}
	return execute(ctx, r, t, opts.app, p.Id, opts.command, opts.entrypoint)
}

func waitProcessRunning(ctx context.Context, r api.Rack, app, pid string) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		p, err := r.ProcessGet(ctx, app, pid)
		if err != nil {
			return err
		}
		switch p.Status {
		case "running":
			return nil
		case "crashed", "complete", "failed":
			return fmt.Errorf("process %s ended before the command could run (%s)", pid, p.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %s did not start within 5m", pid)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func newExecCommand(env *Env) *cobra.Command {
	var flags appFlags
	cmd := &cobra.Command{
		Use:   "exec <pid> <command...>",
		Short: "Run a command in a running process",
		Example: `  convox exec web-x8k2q bash
  convox exec web-x8k2q -- ls -la /app`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := env.app(nil, flags.app)
			if err != nil {
				return err
			}
			r, err := env.rack()
			if err != nil {
				return err
			}
			return execute(cmd.Context(), r, newTerminal(env), app, args[0], strings.Join(args[1:], " "), false)
		},
	}
	addAppFlags(cmd, &flags)
	return cmd
}

// terminal is the caller's side of an exec session: its streams and, when
// stdin is a terminal, its size and raw mode.
type terminal struct {
	in            io.Reader
	out           io.Writer
	fd            int
	tty           bool
	height, width int
}

func newTerminal(env *Env) *terminal {
	t := &terminal{in: env.Stdin, out: env.Stdout, fd: -1}
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		t.fd, t.tty = int(f.Fd()), true
		if w, h, err := term.GetSize(t.fd); err == nil {
			t.width, t.height = w, h
		}
	}
	return t
}

func (t *terminal) Read(p []byte) (int, error)  { return t.in.Read(p) }
func (t *terminal) Write(p []byte) (int, error) { return t.out.Write(p) }

// execute runs command in process pid with the caller's terminal and turns
// its exit code into the CLI's.
func execute(ctx context.Context, r api.Rack, t *terminal, app, pid, command string, entrypoint bool) error {
	if t.tty {
		// Keys go to the remote terminal as typed: Ctrl-C reaches the
		// command, not this CLI.
		if state, err := term.MakeRaw(t.fd); err == nil {
			defer term.Restore(t.fd, state)
		}
	}
	code, err := r.ProcessExec(ctx, app, pid, command, t, api.ProcessExecOptions{
		Entrypoint: entrypoint, Tty: t.tty, Height: t.height, Width: t.width,
	})
	if err != nil && ctx.Err() != nil {
		// Interrupted (Ctrl-C): exit as a shell does after SIGINT.
		return &exitError{code: 130}
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// exitCode is the CLI's exit code for err, and whether err printed itself.
func exitCode(err error) (int, bool) {
	var e *exitError
	if errors.As(err, &e) {
		return e.code, true
	}
	return 1, false
}
