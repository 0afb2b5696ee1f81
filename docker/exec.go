package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/singlehost/convox/engine"
)

// Without a size a terminal is the classic 24×80: the 0×0 pty Docker makes
// when given none breaks full-screen programs.
const (
	defaultHeight = 24
	defaultWidth  = 80
)

// startFailure begins the message the engine writes into the stdout stream
// when the runtime could not start an exec's command at all ("OCI runtime
// exec failed: exec failed: ... executable file not found in $PATH").
const startFailure = "OCI runtime exec failed"

// ProcessExec runs opts.Command in the running container id and returns its
// exit code once it has ended and its output has been copied.
//
// Attaching to the exec is what starts the command. Stdin is copied in,
// then half-closed so that the command sees EOF; output is copied out,
// split into stdout and stderr unless there is a TTY. With a TTY, Stdin is
// what a keyboard would send: the command sees the end of its input when
// Stdin carries the terminal's EOF character (^D), not when Stdin ends.
//
// When ctx ends the connection is closed and ctx's error returned; the
// command runs on in the container. A Read of Stdin in progress when
// ProcessExec returns is not waited for: that copy ends at its next write.
// The exit code is -1 whenever the error is not nil.
//
// Docker 20.10 quirks handled here:
//   - A command that cannot be started (not found, not executable) is
//     reported on the stdout stream, with exit code 126: the message is
//     moved to Stderr (with a TTY it stays on the terminal, Stdout).
//   - API 1.41 has no initial console size, so the TTY is resized as the
//     command starts: a command that reads its size at once may still see
//     0×0, and then gets a SIGWINCH.
//   - With a TTY, the end of the caller's input (a half-close) makes the
//     engine stop sending output, so it is not passed on.
//   - The exit code can lag the end of the stream, so it is polled for.
func (r *Runtime) ProcessExec(ctx context.Context, id string, opts engine.ExecOptions) (int, error) {
	op := "running " + commandName(opts.Command) + " in process " + id
	var size *[2]uint
	if opts.Tty {
		size = &[2]uint{defaultHeight, defaultWidth}
		if opts.Height > 0 {
			size[0] = uint(opts.Height)
		}
		if opts.Width > 0 {
			size[1] = uint(opts.Width)
		}
	}
	cctx, cancel := short(ctx)
	created, err := r.c.ContainerExecCreate(cctx, id, container.ExecOptions{
		Cmd:          opts.Command,
		Env:          envList(opts.Env),
		Tty:          opts.Tty,
		ConsoleSize:  size, // the client drops it below API 1.42
		AttachStdin:  opts.Stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
	})
	cancel()
	if err != nil {
		return -1, wrap(err, "%s", op)
	}
	if size != nil && versions.LessThan(r.c.ClientVersion(), "1.42") {
		// No initial size below API 1.42: the pty starts at 0×0. The
		// engine holds a resize until the command has started (up to 10s),
		// so one sent now, aside, lands as early as can be; it ends with
		// the call.
		rctx, cancel := short(ctx)
		defer cancel()
		go r.c.ContainerExecResize(rctx, created.ID, container.ResizeOptions{Height: size[0], Width: size[1]})
	}
	hj, err := r.attach(ctx, created.ID, container.ExecAttachOptions{Tty: opts.Tty, ConsoleSize: size})
	if err != nil {
		return -1, wrap(err, "%s", op)
	}
	defer hj.Close()
	// Closing the connection is the only way to interrupt its reads.
	defer context.AfterFunc(ctx, hj.Close)()

	if opts.Stdin != nil {
		go func() {
			io.Copy(hj.Conn, opts.Stdin)
			// Without a TTY the half-close ends the command's input. With
			// one the engine would take it for the end of the whole
			// session and stop sending output, and a command reading a
			// terminal sees no EOF anyway: its end of input is a ^D.
			if !opts.Tty {
				hj.CloseWrite()
			}
		}()
	}

	stdout, stderr := orDiscard(opts.Stdout), orDiscard(opts.Stderr)
	var held holdWriter
	if opts.Tty {
		_, err = io.Copy(stdout, hj.Reader)
	} else {
		held.w = stdout
		_, err = stdcopy.StdCopy(&held, stderr, hj.Reader)
	}
	if ctx.Err() != nil {
		return -1, wrap(ctx.Err(), "%s", op)
	}
	if err != nil {
		return -1, wrap(err, "%s: copying output", op)
	}
	ins, err := r.execWait(ctx, created.ID)
	if err != nil {
		return -1, wrap(err, "%s", op)
	}
	// Only now is it known whether a held-back write was the command's.
	started := ins.Pid != 0
	if held.buf != nil {
		w := stdout
		if !started {
			w = stderr
		}
		if _, err := w.Write(held.buf); err != nil {
			return -1, wrap(err, "%s: copying output", op)
		}
	}
	if !started && ins.ExitCode == 0 {
		// Never started, yet no failure recorded: no success to report.
		return -1, fmt.Errorf("%s: the command did not start", op)
	}
	return ins.ExitCode, nil
}

// attach starts the exec and hijacks its connection. The client bounds only
// the dial with ctx, not the wait for the engine's answer, so the wait is
// bounded here; a connection that arrives too late is closed.
func (r *Runtime) attach(ctx context.Context, execID string, opts container.ExecAttachOptions) (types.HijackedResponse, error) {
	type result struct {
		hj  types.HijackedResponse
		err error
	}
	ctx, cancel := short(ctx)
	defer cancel()
	done := make(chan result, 1)
	go func() {
		hj, err := r.c.ContainerExecAttach(ctx, execID, opts)
		done <- result{hj, err}
	}()
	select {
	case res := <-done:
		return res.hj, res.err
	case <-ctx.Done():
		go func() {
			if res := <-done; res.err == nil {
				res.hj.Close()
			}
		}()
		return types.HijackedResponse{}, ctx.Err()
	}
}

// execWait polls the exec until the engine reports it ended: the output
// stream can end before the engine has recorded the exit, and a command
// that closes its output early runs on after it.
func (r *Runtime) execWait(ctx context.Context, execID string) (container.ExecInspect, error) {
	delay := 5 * time.Millisecond
	for {
		ictx, cancel := short(ctx)
		ins, err := r.c.ContainerExecInspect(ictx, execID)
		cancel()
		if err != nil || !ins.Running {
			return ins, err
		}
		select {
		case <-ctx.Done():
			return ins, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

// holdWriter passes writes on to w, except a first write that reads like
// the engine's failure to start the command: that one is held in buf until
// the caller knows whether the command ran (a later write shows it did).
// stdcopy writes each frame whole, and the engine writes its message as one.
type holdWriter struct {
	w    io.Writer
	seen bool
	buf  []byte
}

func (h *holdWriter) Write(p []byte) (int, error) {
	if !h.seen {
		h.seen = true
		if bytes.HasPrefix(p, []byte(startFailure)) {
			h.buf = bytes.Clone(p)
			return len(p), nil
		}
	}
	if h.buf != nil {
		if _, err := h.w.Write(h.buf); err != nil {
			return 0, err
		}
		h.buf = nil
	}
	return h.w.Write(p)
}

// commandName names a command in errors.
func commandName(cmd []string) string {
	if len(cmd) == 0 {
		return "no command"
	}
	return cmd[0]
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
